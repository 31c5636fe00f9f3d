#!/usr/bin/env bash
# Benchmarks Slipway's builder against raw buildctl on the same buildkitd.
#
# Builds examples/apps/go-web three ways, interleaved (the order rotates
# every round) over ROUNDS rounds (default 3):
#   buildctl    raw `buildctl build` with a hand-written Dockerfile equivalent
#               to Slipway's Go plan, output to an OCI layout (tar=false)
#   dockerfile  Slipway's Dockerfile path, same Dockerfile
#   detect      Slipway's detected-language path (no Dockerfile)
# Each round: a cold build per way (go.mod and cache mount ids no build saw
# before: dependencies are downloaded and the standard library compiled),
# then WARM_REPEAT (default 3) warm builds per way, each after a one-line
# change to main.go, interleaved across the ways.
# Prints the medians, then as its last two lines:
#   build warm ratio slipway/buildctl: X
#   build cold ratio slipway/buildctl: Y
# where Slipway's time is the slower of its two paths.
#
# Needs: scripts/services.sh (buildkitd, buildctl). Takes ~3 min per round.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -f "$SLIPWAY_STATE/env.sh" ] && source "$SLIPWAY_STATE/env.sh"
: "${SLIPWAY_BUILDKIT_ADDR:?run scripts/services.sh first}"
BUILDCTL=${SLIPWAY_BUILDCTL:-$SLIPWAY_CACHE/bin/buildkit-$BUILDKIT_VERSION/buildctl}
[ -n "${SLIPWAY_STACKS:-}" ] || SLIPWAY_STACKS=$(bash "$SLIPWAY_ROOT/scripts/stacks.sh")
ROUNDS=${ROUNDS:-3}
WARM_REPEAT=${WARM_REPEAT:-3} # warm builds per cold build (cheap samples)

W=$(mktemp -d /tmp/slipway-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
log "work dir $W"
(cd "$SLIPWAY_ROOT" && go build -o "$W/benchcmd" ./build/buildkit/internal/benchcmd)

digest_of() { # digest_of LAYOUT: the only manifest digest in its index.json
	grep -o '"digest":"sha256:[0-9a-f]*"' "$1/index.json" | head -1 | cut -d'"' -f4
}
GO_DIGEST=$(digest_of "$SLIPWAY_STACKS/go")
BASE_DIGEST=$(digest_of "$SLIPWAY_STACKS/base")

# dockerfile SCOPE: the hand-written equivalent of Slipway's Go plan.
dockerfile() {
	cat <<DOCKERFILE
FROM slipway/go-build AS build
WORKDIR /app
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOPATH=/tmp/go GOMODCACHE=/var/cache/slipway/go-mod GOCACHE=/var/cache/slipway/go-build
COPY go.mod go.sum ./
RUN --mount=type=cache,id=bench/$1/go-mod,target=/var/cache/slipway/go-mod go mod download
COPY . .
RUN --mount=type=cache,id=bench/$1/go-mod,target=/var/cache/slipway/go-mod --mount=type=cache,id=bench/$1/go-build,target=/var/cache/slipway/go-build go build -trimpath -ldflags=-s -o /app/bin/ ./...
FROM slipway/go-run
COPY --from=build --chown=1000:1000 /app /app
ENV PATH=/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
USER 1000:1000
CMD ["/bin/sh", "-c", "go-web"]
DOCKERFILE
}

# prepare WAY SCOPE: a fresh copy of the app for a cold build of WAY.
prepare() {
	local dir=$W/src-$1
	rm -rf "$dir" && cp -r "$SLIPWAY_ROOT/examples/apps/go-web" "$dir"
	printf '\n// bench %s\n' "$2" >>"$dir/go.mod"
	if [ "$1" != detect ]; then dockerfile "$2" >"$dir/Dockerfile"; fi
}

build_once() { # build_once WAY SCOPE
	local dir=$W/src-$1
	case $1 in
	buildctl)
		"$BUILDCTL" --addr "$SLIPWAY_BUILDKIT_ADDR" build --progress=quiet \
			--frontend dockerfile.v0 --local context="$dir" --local dockerfile="$dir" \
			--oci-layout stackgo="$SLIPWAY_STACKS/go" --oci-layout stackbase="$SLIPWAY_STACKS/base" \
			--opt context:slipway/go-build="oci-layout://stackgo@$GO_DIGEST" \
			--opt context:slipway/go-run="oci-layout://stackbase@$BASE_DIGEST" \
			--output type=oci,dest="$W/out-buildctl",tar=false,name=bench/go-web:latest >/dev/null
		;;
	*)
		"$W/benchcmd" -addr "$SLIPWAY_BUILDKIT_ADDR" -stacks "$SLIPWAY_STACKS" -output "$W/out-$1" \
			-src "$dir" -app go-web -scope "$2" -image bench/go-web:latest >/dev/null
		;;
	esac
}

calc() { awk "BEGIN { printf \"%.6f\", $* }"; }

timed() { # timed WAY SCOPE: prints seconds
	local t0 t1
	t0=$(date +%s.%N)
	build_once "$@" 2>>"$W/stderr.log" || { cat "$W/stderr.log" >&2; die "$1 build failed"; }
	t1=$(date +%s.%N)
	calc "$t1 - $t0"
}

declare -A COLD WARM WLINE
ways=(buildctl dockerfile detect)
for ((r = 0; r < ROUNDS; r++)); do
	declare -A SCOPE=()
	# Cold builds, one per way, the order rotating every round.
	for ((i = 0; i < 3; i++)); do
		way=${ways[$(((i + r) % 3))]}
		SCOPE[$way]=b$(date +%s%N | cut -c8-19)-$way
		prepare "$way" "${SCOPE[$way]}"
		c=$(timed "$way" "${SCOPE[$way]}")
		COLD[$way]+="$c "
		WLINE[$way]=$(printf 'round %d %-10s cold %6.2fs warm' "$r" "$way" "$c")
	done
	# Warm builds after a one-line change, interleaved across the ways so
	# that load from elsewhere on the machine falls on all of them alike.
	for ((k = 0; k < WARM_REPEAT; k++)); do
		for ((i = 0; i < 3; i++)); do
			way=${ways[$(((i + r + k) % 3))]}
			sed -i "s/hello from go-web[^\"]*/hello from go-web round $r change $k/" "$W/src-$way/main.go"
			w=$(timed "$way" "${SCOPE[$way]}")
			WARM[$way]+="$w "
			WLINE[$way]+=$(printf ' %5.2fs' "$w")
		done
	done
	for way in "${ways[@]}"; do echo "${WLINE[$way]}"; done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
for way in "${ways[@]}"; do
	printf 'median %-10s cold %6.2fs warm %6.2fs\n' "$way" "$(echo "${COLD[$way]}" | median)" "$(echo "${WARM[$way]}" | median)"
done
ratio() { # ratio COLD|WARM
	local -n m=$1
	local ref dk dt
	ref=$(echo "${m[buildctl]}" | median)
	dk=$(echo "${m[dockerfile]}" | median)
	dt=$(echo "${m[detect]}" | median)
	printf 'slipway dockerfile/buildctl %s: %.3f, detect/buildctl: %.3f\n' "${1,,}" "$(calc "$dk / $ref")" "$(calc "$dt / $ref")" >&2
	calc "$( (echo "$dk"; echo "$dt") | sort -g | tail -1) / $ref"
}
warm=$(ratio WARM)
cold=$(ratio COLD)
printf 'build warm ratio slipway/buildctl: %.3f\n' "$warm"
printf 'build cold ratio slipway/buildctl: %.3f\n' "$cold"
