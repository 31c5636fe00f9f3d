#!/usr/bin/env bash
# The main job: a single-machine PaaS built from Slipway deploys the counter
# sample (Go, PostgreSQL add-on, a release phase that migrates) by git push,
# and prints the URL that serves it.
#
#   scripts/minipaas.sh          set up everything, start minipaas, deploy, print the URL
#   scripts/minipaas.sh stop     stop the apps, minipaas, and the services it used
#
# Idempotent: a second run reuses the running server, the app, its add-on and
# the build cache, and pushes only if the sample changed. minipaas listens on
# 127.0.0.1:7070 (API and git) and 127.0.0.1:8080 (apps, as <app>.localhost);
# MINIPAAS_API_ADDR and MINIPAAS_ROUTER_ADDR change that.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export MINIPAAS_HOME=${MINIPAAS_HOME:-$SLIPWAY_CACHE/minipaas}
API_ADDR=${MINIPAAS_API_ADDR:-127.0.0.1:7070}
ROUTER_ADDR=${MINIPAAS_ROUTER_ADDR:-127.0.0.1:8080}
BIN=$SLIPWAY_CACHE/bin/minipaas
APP=counter
SRC=$MINIPAAS_HOME/src/$APP

build_minipaas() {
	mkdir -p "$(dirname "$BIN")"
	(cd "$SLIPWAY_ROOT" && go build -o "$BIN.tmp" ./examples/minipaas) && mv "$BIN.tmp" "$BIN"
}

running() {
	[ -f "$MINIPAAS_HOME/endpoint.json" ] && "$BIN" apps >/dev/null 2>&1
}

start_server() {
	if running; then
		log "minipaas is already running"
		return 0
	fi
	mkdir -p "$MINIPAAS_HOME"
	log "starting minipaas (log: $MINIPAAS_HOME/server.log)"
	# Its own buildkitd (supervised, under $MINIPAAS_HOME), the services'
	# PostgreSQL and Redis for add-ons, the offline stacks.
	setsid "$BIN" server --api "$API_ADDR" --router "$ROUTER_ADDR" \
		--buildkitd "$SLIPWAY_BUILDKITD" --stacks "$SLIPWAY_STACKS" \
		--postgres "$SLIPWAY_POSTGRES_URL" --redis "$SLIPWAY_REDIS_URL" \
		</dev/null >>"$MINIPAAS_HOME/server.log" 2>&1 &
	wait_for minipaas 120 running
}

deploy_counter() {
	"$BIN" apps | grep -q "^$APP\b" || "$BIN" apps:create "$APP"
	"$BIN" addons -a "$APP" | grep -q "^DATABASE\b" || "$BIN" addons:create postgres -a "$APP"
	mkdir -p "$SRC"
	rsync -a --delete --exclude .git "$SLIPWAY_ROOT/examples/apps/$APP/" "$SRC/"
	(
		cd "$SRC"
		[ -d .git ] || git init -q -b main
		git add -A
		git -c user.name=minipaas -c user.email=minipaas@localhost commit -q -m "Deploy the $APP sample" 2>/dev/null || true
		git push "$("$BIN" git:remote -a "$APP")" main
	)
}

case "${1:-start}" in
start)
	env_file=$(bash "$SLIPWAY_ROOT/scripts/services.sh")
	# shellcheck disable=SC1090
	source "$env_file"
	command -v rsync >/dev/null || { apt-get install -y -qq rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }; }
	build_minipaas
	start_server
	deploy_counter
	url=$("$BIN" url -a "$APP")
	wait_for "$APP" 60 curl -fsS "$url"
	log "$APP answers: $(curl -fsS "$url")"
	echo "$url"
	;;
stop)
	if running; then "$BIN" down; fi
	for _ in $(seq 100); do [ -f "$MINIPAAS_HOME/endpoint.json" ] || break; sleep 0.1; done
	bash "$SLIPWAY_ROOT/scripts/services.sh" stop
	;;
*) die "usage: $0 [start|stop]" ;;
esac
