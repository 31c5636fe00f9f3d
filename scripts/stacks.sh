#!/usr/bin/env bash
# Makes Slipway's offline stack images as OCI image layouts, from Debian
# packages and the host's toolchains, without Docker or a registry:
#
#   base    busybox-static, CA certificates, user app (1000:1000): the run
#           image of Go and static apps
#   go      base + the host's Go toolchain (/usr/local/go)
#   node    base + the host's Node.js (Debian/NodeSource package) and npm
#   python  base + Debian's python3 (with venv/ensurepip wheels)
#
# Output: $SLIPWAY_CACHE/stacks/<version>/{base,go,node,python}/ (one OCI
# layout each), keyed by a hash of this script, the layout tool and the
# toolchain versions: a re-run with nothing changed takes well under a
# second. The only line printed on stdout is that directory, so callers do
#
#   export SLIPWAY_STACKS=$(bash scripts/stacks.sh)
#
# Use it from Go with build.LocalStacks(os.Getenv("SLIPWAY_STACKS")).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_pkg() { # need_pkg CMD-THAT-MUST-WORK PACKAGE
	if ! eval "$1" >/dev/null 2>&1; then
		log "installing $2"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
	fi
}
need_pkg 'test -x /bin/busybox && ! ldd /bin/busybox' busybox-static
need_pkg 'command -v node && command -v npm' nodejs
need_pkg 'test -x /usr/bin/python3 && /usr/bin/python3 -c "import ensurepip, venv"' python3-venv
need_pkg 'test -f /etc/ssl/certs/ca-certificates.crt' ca-certificates

BUSYBOX=/bin/busybox
GOROOT_HOST=$(go env GOROOT)
bb_version=$("$BUSYBOX" 2>&1 | head -1 || true)
key=$(
	{
		cat "${BASH_SOURCE[0]}" "$SLIPWAY_ROOT/build/internal/mkstack/main.go"
		echo "$bb_version"
		"$GOROOT_HOST/bin/go" version
		node --version
		npm --version 2>/dev/null
		/usr/bin/python3 --version
		sha256sum /etc/ssl/certs/ca-certificates.crt
	} | sha256sum | cut -c1-12
)
OUT=$SLIPWAY_CACHE/stacks/$key
if [ -f "$OUT/.done" ]; then
	echo "$OUT"
	exit 0
fi

work=$(mktemp -d "$SLIPWAY_CACHE/stacks-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out"
mkstack="$work/mkstack"
(cd "$SLIPWAY_ROOT" && CGO_ENABLED=0 go build -o "$mkstack" ./build/internal/mkstack)

# copy_with_libs ROOT FILE...: copies files (keeping their paths) and the
# shared libraries they need (ldd) into ROOT.
copy_with_libs() {
	local root=$1 f lib
	shift
	for f in "$@"; do
		mkdir -p "$root$(dirname "$f")"
		cp -L "$f" "$root$f"
		ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
			if [ ! -e "$root$lib" ]; then
				mkdir -p "$root$(dirname "$lib")"
				cp -L "$lib" "$root$lib"
			fi
		done
	done
}

make_base() { # make_base ROOT
	local r=$1 p
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc/ssl/certs,tmp,home/app,app,var/cache/slipway,root}
	cp "$BUSYBOX" "$r/bin/busybox"
	"$BUSYBOX" --list-full | while read -r p; do
		[ "$p" = bin/busybox ] && continue
		mkdir -p "$r/$(dirname "$p")"
		ln -sf /bin/busybox "$r/$p"
	done
	cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
	printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
	printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$r/etc/group"
	printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
	chmod 1777 "$r/tmp"
	chown 1000:1000 "$r/home/app" "$r/app"
}

PATHV=/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Every image trusts the system CA bundle (which may hold a proxy's CA),
# including Node.js and pip, which otherwise bring their own.
CA=/etc/ssl/certs/ca-certificates.crt
CAENV=(-env "SSL_CERT_FILE=$CA" -env "NODE_EXTRA_CA_CERTS=$CA" -env "PIP_CERT=$CA")

log "making stack images in $OUT"
# base
make_base "$work/base"
"$mkstack" -rootfs "$work/base" -out "$work/out/base" -env "PATH=$PATHV" "${CAENV[@]}" -env HOME=/home/app -label io.slipway.stack=base

# go
make_base "$work/go"
mkdir -p "$work/go/usr/local"
tar -C "$(dirname "$GOROOT_HOST")" -cf - \
	--exclude='go/test' --exclude='go/api' --exclude='go/doc' --exclude='go/misc' \
	--exclude='*/testdata' --exclude='go/pkg/tool/*/race*' "$(basename "$GOROOT_HOST")" |
	tar -C "$work/go/usr/local" -xf -
[ "$(basename "$GOROOT_HOST")" = go ] || mv "$work/go/usr/local/$(basename "$GOROOT_HOST")" "$work/go/usr/local/go"
"$mkstack" -rootfs "$work/go" -out "$work/out/go" -env "PATH=/usr/local/go/bin:$PATHV" "${CAENV[@]}" -env HOME=/root -label io.slipway.stack=go

# node
make_base "$work/node"
copy_with_libs "$work/node" "$(readlink -f "$(command -v node)")"
mkdir -p "$work/node/usr/lib/node_modules"
cp -a /usr/lib/node_modules/npm "$work/node/usr/lib/node_modules/"
[ -e "$work/node/usr/bin/node" ] || ln -sf "$(readlink -f "$(command -v node)")" "$work/node/usr/bin/node"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$work/node/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$work/node/usr/bin/npx"
mkdir -p "$work/node/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$work/node/lib64/" 2>/dev/null || true
"$mkstack" -rootfs "$work/node" -out "$work/out/node" -env "PATH=$PATHV" "${CAENV[@]}" -env HOME=/home/app -label io.slipway.stack=node

# python
make_base "$work/python"
py=$(readlink -f /usr/bin/python3)
copy_with_libs "$work/python" "$py" /usr/lib/python3.11/lib-dynload/*.so
ln -sf "$(basename "$py")" "$work/python/usr/bin/python3"
ln -sf python3 "$work/python/usr/bin/python"
tar -C / -cf - --exclude='usr/lib/python3.11/test' --exclude='__pycache__' --exclude='usr/lib/python3.11/lib-dynload' \
	usr/lib/python3.11 usr/share/python-wheels | tar -C "$work/python" -xf -
mkdir -p "$work/python/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$work/python/lib64/" 2>/dev/null || true
"$mkstack" -rootfs "$work/python" -out "$work/out/python" -env "PATH=$PATHV" "${CAENV[@]}" -env HOME=/home/app -env LANG=C.UTF-8 -label io.slipway.stack=python

mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT.tmp" && mv "$work/out" "$OUT.tmp"
touch "$OUT.tmp/.done"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
log "stack images ready"
echo "$OUT"
