#!/usr/bin/env bash
# Benchmarks the release manager and its stores.
#
#  1. PostgreSQL store: RELEASES releases (default 10000) across APPS apps
#     (default 1000) from 4 Managers, each with its own pool and 4 workers,
#     through Manager.SetConfig (lease + journal + Commit). Checks that none
#     is lost and no version is duplicated, prints the throughput and the
#     ratio to the same number of bare INSERT transactions (reference).
#  2. Deploy overhead: Manager.Deploy on the in-memory Fake scheduler with
#     the in-memory and the bbolt store, against the bare scheduler/router
#     call sequence (reference), DEPLOYS deploys each (default 100).
#
# Needs SLIPWAY_POSTGRES_URL for part 1: sources the env file
# scripts/services.sh writes when it is not set. Bounded: fixed counts and a
# 10-minute timeout per part.
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASES=${RELEASES:-10000}
APPS=${APPS:-1000}
DEPLOYS=${DEPLOYS:-100}
ENV_FILE=${SLIPWAY_STATE:-$HOME/.cache/slipway/state}/env.sh
if [ -z "${SLIPWAY_POSTGRES_URL:-}" ]; then
	if [ -f "$ENV_FILE" ]; then
		# shellcheck disable=SC1090
		. "$ENV_FILE"
	else
		echo "bench-release: SLIPWAY_POSTGRES_URL not set and $ENV_FILE missing; run scripts/services.sh" >&2
		exit 1
	fi
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== PostgreSQL store: $RELEASES releases, $APPS apps, 4 managers"
status=0
SLIPWAY_BENCH_RELEASES=$RELEASES SLIPWAY_BENCH_APPS=$APPS \
	go test -tags integration -run '^TestConcurrentManagers$' -count 1 -timeout 10m -v ./release/postgres >"$out" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
	cat "$out" >&2
	exit "$status"
fi
grep -E 'releases across|reference,' "$out" | sed 's/^ *writers_integration_test.go:[0-9]*: /  /'

echo "== Deploy overhead over the bare scheduler/router calls, $DEPLOYS deploys"
go test -run '^$' -bench '^BenchmarkDeployOverhead$' -benchtime "${DEPLOYS}x" -count 1 -timeout 10m ./release >"$out" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
	cat "$out" >&2
	exit "$status"
fi
grep -E '^BenchmarkDeployOverhead' "$out" | awk '{
	for (i = 1; i <= NF; i++) { if ($i == "µs/deploy") d = $(i-1); if ($i == "µs/reference") r = $(i-1); if ($i == "ratio") x = $(i-1) }
	printf "  %-36s %8s µs/deploy  %8s µs reference  ratio %s\n", $1, d, r, x }'
