#!/usr/bin/env bash
# Measures what a minipaas user feels, on the real stack (BuildKit, runc,
# PostgreSQL, the router), with a private minipaas that it starts and stops:
#
#   1. git push to serving: a one-line change of the counter sample, from
#      the start of `git push` until the router serves the new version
#      (median of $PUSHES, default 5)
#   2. a deploy without release phase of an already built image (config:set
#      on the go-web sample, watch window off): from the call until the old
#      instances have drained and stopped (median of $CONFIGS, default 10)
#   3. failed requests under a bounded wrk load across $DEPLOYS (default 20)
#      consecutive deploys of the counter: code pushes, config changes and
#      rollbacks, mixed
#
# The last three lines are the figures. Usage: scripts/bench-minipaas.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PUSHES=${PUSHES:-5}
CONFIGS=${CONFIGS:-10}
DEPLOYS=${DEPLOYS:-20}

# shellcheck disable=SC1090
source "$(bash "$SLIPWAY_ROOT/scripts/services.sh")"
export MINIPAAS_HOME=$(mktemp -d "$SLIPWAY_CACHE/bench-minipaas.XXXXXX")
BIN=$MINIPAAS_HOME/minipaas
WORK=$MINIPAAS_HOME/work
API=127.0.0.1:7270
ROUTER=127.0.0.1:8280
(cd "$SLIPWAY_ROOT" && go build -o "$BIN" ./examples/minipaas)

cleanup() {
	"$BIN" down >/dev/null 2>&1 || true
	[ -n "${SERVER:-}" ] && wait "$SERVER" 2>/dev/null || true
	[ -n "${WRK:-}" ] && kill "$WRK" 2>/dev/null || true
	rm -rf "$MINIPAAS_HOME"
}
trap cleanup EXIT

"$BIN" server --api "$API" --router "$ROUTER" --buildkit-addr "$SLIPWAY_BUILDKIT_ADDR" --stacks "$SLIPWAY_STACKS" \
	--postgres "$SLIPWAY_POSTGRES_URL" --runc "$SLIPWAY_RUNC" --watch=-1s >"$MINIPAAS_HOME/server.log" 2>&1 &
SERVER=$!
wait_for minipaas 60 "$BIN" apps

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
get() { curl -fsS -m 5 -H "Host: $1.localhost" "http://$ROUTER$2"; }
repo() { # repo APP SAMPLE: a git work tree of the sample
	mkdir -p "$WORK/$1"
	cp -r "$SLIPWAY_ROOT/examples/apps/$2/." "$WORK/$1/"
	(cd "$WORK/$1" && git init -q -b main && git add -A && git -c user.name=b -c user.email=b@localhost commit -q -m init)
}
push() { # push APP
	(cd "$WORK/$1" && git push -q "$("$BIN" git:remote -a "$1")" main 2>&1) >>"$MINIPAAS_HOME/push.log"
}
bump() { # bump APP N: a one-line change to version N
	(cd "$WORK/$1" && sed -i -E "s/const version = \"[0-9]+\"/const version = \"$2\"/" cmd/counter/main.go &&
		git -c user.name=b -c user.email=b@localhost commit -q -am "v$2")
}

log "setting up: counter (PostgreSQL, release phase) and go-web"
"$BIN" apps:create counter >/dev/null
"$BIN" addons:create postgres -a counter >/dev/null
"$BIN" apps:create hello >/dev/null
repo counter counter
repo hello go-web
push counter
push hello

log "1. git push to serving, $PUSHES times"
: >"$MINIPAAS_HOME/push.ms"
for i in $(seq 2 $((PUSHES + 1))); do
	bump counter "$i"
	t0=$(now_ms)
	push counter &
	p=$!
	until [ "$(get counter /version 2>/dev/null)" = "$i" ]; do sleep 0.02; done
	echo $(($(now_ms) - t0)) >>"$MINIPAAS_HOME/push.ms"
	log "  push $i served after $(tail -1 "$MINIPAAS_HOME/push.ms") ms"
	wait "$p"
done

log "2. deploy without release phase, $CONFIGS times"
: >"$MINIPAAS_HOME/config.ms"
for i in $(seq "$CONFIGS"); do
	t0=$(now_ms)
	"$BIN" config:set "N=$i" -a hello >/dev/null
	echo $(($(now_ms) - t0)) >>"$MINIPAAS_HOME/config.ms"
	log "  config:set $i took $(tail -1 "$MINIPAAS_HOME/config.ms") ms"
done

log "3. $DEPLOYS deploys under load"
"$SLIPWAY_WRK" -t 2 -c 16 -d 600s -H "Host: counter.localhost" "http://$ROUTER/version" >"$MINIPAAS_HOME/wrk.out" 2>&1 &
WRK=$!
sleep 1
v=100
for i in $(seq "$DEPLOYS"); do
	case $((i % 3)) in
	0) v=$((v + 1)); bump counter "$v"; push counter; what="push v$v" ;;
	1) "$BIN" config:set "DEPLOY=$i" -a counter >/dev/null; what="config" ;;
	2) prev=$("$BIN" releases -a counter | awk '$2=="superseded" {print $1; exit}'); "$BIN" rollback "$prev" -a counter >/dev/null; what="rollback to $prev" ;;
	esac
	log "  deploy $i: $what"
done
kill -INT "$WRK"
wait "$WRK" || true
WRK=
requests=$(awk '/requests in/ {print $1}' "$MINIPAAS_HOME/wrk.out")
non2xx=$(awk -F': ' '/Non-2xx/ {print $2}' "$MINIPAAS_HOME/wrk.out")
sockerr=$(awk '/Socket errors:/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i} END {print s+0}' "$MINIPAAS_HOME/wrk.out")
sed 's/^/  wrk: /' "$MINIPAAS_HOME/wrk.out" >&2

echo "push to serving, median of $PUSHES: $(median <"$MINIPAAS_HOME/push.ms") ms (all: $(paste -sd' ' "$MINIPAAS_HOME/push.ms"))"
echo "deploy without release phase, median of $CONFIGS: $(median <"$MINIPAAS_HOME/config.ms") ms (all: $(paste -sd' ' "$MINIPAAS_HOME/config.ms"))"
echo "failed requests across $DEPLOYS deploys: $((${non2xx:-0} + sockerr)) of ${requests:-0}"
