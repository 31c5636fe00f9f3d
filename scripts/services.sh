#!/usr/bin/env bash
# Installs and starts, idempotently, every service Slipway's tests and examples
# run against, then writes their addresses to $SLIPWAY_STATE/env.sh:
#
#   runc, busybox-static, nginx, wrk, redis, git, rsync   Debian packages
#   buildkitd + buildctl v0.33.1        built from the Go module, cached
#   registry (distribution v3)          built from the Go module, cached, 127.0.0.1:5117
#   pebble (ACME test CA)               built from the Go module, cached (tests start it)
#   PostgreSQL 15                       Debian cluster 15/main, role "slipway"
#   Redis                               a private instance on 127.0.0.1:6391, ACL user "slipway"
#   stacks                              offline stack images (scripts/stacks.sh), cached
#
# Usage: scripts/services.sh [start|stop|env]
#   start (default)  install what is missing, start what is not running, print the env file
#   stop             stop what this script started, PostgreSQL's cluster included
#   env              print the path of the env file
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN_BUILDKIT=$SLIPWAY_CACHE/bin/buildkit-$BUILDKIT_VERSION
BIN_REGISTRY=$SLIPWAY_CACHE/bin/distribution-$DISTRIBUTION_VERSION
BIN_PEBBLE=$SLIPWAY_CACHE/bin/pebble-$PEBBLE_VERSION
BK_DIR=$SLIPWAY_STATE/buildkitd
BK_ADDR=unix://$BK_DIR/buildkitd.sock
REG_DIR=$SLIPWAY_STATE/registry
REG_ADDR=127.0.0.1:5117
REDIS_DIR=$SLIPWAY_STATE/redis
REDIS_PORT=6391
ENV_FILE=$SLIPWAY_STATE/env.sh
PG_ROLE=slipway

APT_PACKAGES=(runc busybox-static nginx-light wrk redis-server iproute2 procps git rsync curl)

install_packages() {
	local missing=()
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_tools() {
	mkdir -p "$BIN_BUILDKIT" "$BIN_REGISTRY" "$BIN_PEBBLE"
	go_build_tool buildkitd "github.com/moby/buildkit/cmd/buildkitd@$BUILDKIT_VERSION" github.com/moby/buildkit/cmd/buildkitd "$BIN_BUILDKIT"
	go_build_tool buildctl "github.com/moby/buildkit/cmd/buildctl@$BUILDKIT_VERSION" github.com/moby/buildkit/cmd/buildctl "$BIN_BUILDKIT"
	go_build_tool registry "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION" github.com/distribution/distribution/v3/cmd/registry "$BIN_REGISTRY"
	go_build_tool pebble "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION" github.com/letsencrypt/pebble/v2/cmd/pebble "$BIN_PEBBLE"
}

# started_at PID: the process's start time in clock ticks since boot (field 22
# of /proc/PID/stat), which tells a process from a later one given its number.
started_at() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# alive PIDFILE: whether the process recorded in PIDFILE ("PID STARTTIME") still
# runs. A machine restored from a snapshot can carry stale pid files whose
# numbers now belong to someone else; the start time tells them apart.
alive() {
	local pid start
	[ -f "$1" ] && read -r pid start <"$1" || return 1
	[ -n "$pid" ] && [ -n "$start" ] && [ "$(started_at "$pid")" = "$start" ]
}

# daemon NAME PIDFILE LOGFILE CMD...: starts CMD in its own session unless running.
daemon() {
	local name=$1 pidfile=$2 logfile=$3
	shift 3
	if alive "$pidfile"; then return 0; fi
	log "starting $name"
	setsid "$@" </dev/null >>"$logfile" 2>&1 &
	echo "$! $(started_at $!)" >"$pidfile"
}

start_buildkitd() {
	mkdir -p "$BK_DIR"
	daemon buildkitd "$BK_DIR/pid" "$BK_DIR/log" \
		env PATH="/usr/sbin:/usr/bin:/sbin:/bin" "$BIN_BUILDKIT/buildkitd" \
		--root "$BK_DIR/root" --addr "$BK_ADDR" \
		--oci-worker=true --oci-worker-snapshotter=overlayfs --oci-worker-net=host \
		--containerd-worker=false
	wait_for buildkitd 60 "$BIN_BUILDKIT/buildctl" --addr "$BK_ADDR" debug workers
}

start_registry() {
	mkdir -p "$REG_DIR/data"
	cat >"$REG_DIR/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
http:
  addr: $REG_ADDR
YAML
	daemon registry "$REG_DIR/pid" "$REG_DIR/log" "$BIN_REGISTRY/registry" serve "$REG_DIR/config.yml"
	wait_for registry 30 curl -fsS "http://$REG_ADDR/v2/"
}

pg_password() {
	local f=$SLIPWAY_STATE/postgres.password
	[ -s "$f" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$f")
	cat "$f"
}

start_postgres() {
	local conf=/etc/postgresql/15/main/conf.d/slipway.conf
	local want="max_connections = 500"
	if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
		echo "$want" >"$conf"
		pg_ctlcluster 15 main stop 2>/dev/null || true
	fi
	pg_lsclusters -h | awk '$1==15 && $2=="main" {print $4}' | grep -q online || pg_ctlcluster 15 main start
	wait_for postgres 30 su postgres -c "psql -qAtc 'select 1'"
	local pw
	pw=$(pg_password)
	su postgres -c "psql -qAt" >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE LOGIN SUPERUSER;
  END IF;
END \$\$;
ALTER ROLE $PG_ROLE PASSWORD '$pw';
SQL
}

redis_password() {
	local f=$SLIPWAY_STATE/redis.password
	[ -s "$f" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$f")
	cat "$f"
}

start_redis() {
	mkdir -p "$REDIS_DIR"
	local pw
	pw=$(redis_password)
	(
		umask 077
		cat >"$REDIS_DIR/redis.conf" <<CONF
bind 127.0.0.1
port $REDIS_PORT
daemonize no
dir $REDIS_DIR
save ""
appendonly no
user default off
user slipway on >$pw ~* &* +@all
CONF
	)
	daemon redis "$REDIS_DIR/pid" "$REDIS_DIR/log" redis-server "$REDIS_DIR/redis.conf"
	wait_for redis 30 redis-cli -p "$REDIS_PORT" --user slipway --pass "$pw" --no-auth-warning ping
}

build_stacks() {
	local dir
	dir=$(SLIPWAY_BUILDKIT_ADDR=$BK_ADDR SLIPWAY_BUILDCTL=$BIN_BUILDKIT/buildctl bash "$SLIPWAY_ROOT/scripts/stacks.sh")
	[ -d "$dir" ] || die "scripts/stacks.sh made no stacks directory"
	echo "$dir" >"$SLIPWAY_STATE/stacks.path"
}

write_env() {
	local stacks=""
	[ -f "$SLIPWAY_STATE/stacks.path" ] && stacks=$(cat "$SLIPWAY_STATE/stacks.path")
	(
		umask 077
		cat >"$ENV_FILE.tmp" <<ENV
# Written by scripts/services.sh; source it to run Slipway's integration tests.
export SLIPWAY_STATE='$SLIPWAY_STATE'
export SLIPWAY_BUILDKIT_ADDR='$BK_ADDR'
export SLIPWAY_BUILDCTL='$BIN_BUILDKIT/buildctl'
export SLIPWAY_BUILDKITD='$BIN_BUILDKIT/buildkitd'
export SLIPWAY_RUNC='$(command -v runc)'
export SLIPWAY_POSTGRES_URL='postgres://$PG_ROLE:$(pg_password)@127.0.0.1:5432/postgres?sslmode=disable'
export SLIPWAY_REDIS_URL='redis://slipway:$(redis_password)@127.0.0.1:$REDIS_PORT/0'
export SLIPWAY_REGISTRY='$REG_ADDR'
export SLIPWAY_NGINX='$(command -v nginx)'
export SLIPWAY_WRK='$(command -v wrk)'
export SLIPWAY_PEBBLE='$BIN_PEBBLE/pebble'
export SLIPWAY_STACKS='$stacks'
ENV
	)
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

stop_all() {
	local f
	for f in "$BK_DIR/pid" "$REG_DIR/pid" "$REDIS_DIR/pid"; do
		if alive "$f"; then
			local pid _start
			read -r pid _start <"$f"
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 50); do alive "$f" || break; sleep 0.1; done
			alive "$f" && kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
	if pg_lsclusters -h 2>/dev/null | awk '$1==15 && $2=="main" {print $4}' | grep -q online; then
		pg_ctlcluster 15 main stop
	fi
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root: buildkitd and runc need it"
	mkdir -p "$SLIPWAY_STATE"
	case "${1:-start}" in
	start)
		# Stdout carries only the answer, the env file's path: what the tools
		# print (pg_ctlcluster's "Removed stale pid file.", say) goes to stderr.
		{
			install_packages
			build_tools
			start_postgres
			start_redis
			start_buildkitd
			start_registry
			build_stacks
			write_env
		} >&2
		echo "$ENV_FILE"
		;;
	stop) stop_all ;;
	env) echo "$ENV_FILE" ;;
	*) die "usage: $0 [start|stop|env]" ;;
	esac
}

main "$@"
