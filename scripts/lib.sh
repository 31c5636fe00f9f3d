# shellcheck shell=bash
# Shared helpers for Slipway's set-up scripts. Sourced, never run.
#
# Everything heavy is cached under $SLIPWAY_CACHE (default $HOME/.cache/slipway),
# keyed by version, so a second run is quick and a fresh machine still works.

set -euo pipefail

SLIPWAY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SLIPWAY_CACHE=${SLIPWAY_CACHE:-$HOME/.cache/slipway}
SLIPWAY_STATE=${SLIPWAY_STATE:-$SLIPWAY_CACHE/state}

BUILDKIT_VERSION=v0.33.1
DISTRIBUTION_VERSION=v3.1.2
PEBBLE_VERSION=v2.10.1
GOTESTSUM_VERSION=v1.13.0

log() { printf '[slipway] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# go_build_tool NAME MODULE@VERSION PACKAGE OUTDIR: builds a tool from the Go module
# proxy in a throwaway module (a plain `go install pkg@version` is refused by the
# exclude/replace directives of these modules). Skips when OUTDIR/NAME exists.
go_build_tool() {
	local name=$1 modver=$2 pkg=$3 out=$4
	if [ -x "$out/$name" ]; then return 0; fi
	local tmp
	tmp=$(mktemp -d)
	log "building $name from $modver (cached in $out)"
	(
		cd "$tmp"
		go mod init slipway.local/tools >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "$modver" >go-get.log 2>&1 || { cat go-get.log >&2; exit 1; }
		GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$out/$name.tmp" "$pkg"
	)
	mv "$out/$name.tmp" "$out/$name"
	rm -rf "$tmp"
}

# wait_for DESC SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
	local desc=$1 secs=$2
	shift 2
	local i
	for ((i = 0; i < secs * 10; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	die "$desc did not come up within ${secs}s"
}
