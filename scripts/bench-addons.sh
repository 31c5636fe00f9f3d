#!/usr/bin/env bash
# Measures add-on provisioning latency: Provision and Deprovision of
# addons/postgres and addons/redis, 50 of each (override with N=...),
# against a naive reference in the same run (raw CREATE ROLE/DATABASE;
# one ACL SETUSER), and prints median, p95 and the ratio.
#
# Needs SLIPWAY_POSTGRES_URL and SLIPWAY_REDIS_URL: sources the env file
# scripts/services.sh writes when they are not set. Bounded: 50 iterations
# per adapter and a 10-minute timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50}
ENV_FILE=${SLIPWAY_STATE:-$HOME/.cache/slipway/state}/env.sh
if [ -z "${SLIPWAY_POSTGRES_URL:-}" ] || [ -z "${SLIPWAY_REDIS_URL:-}" ]; then
	if [ -f "$ENV_FILE" ]; then
		# shellcheck disable=SC1090
		. "$ENV_FILE"
	else
		echo "bench-addons: SLIPWAY_POSTGRES_URL/SLIPWAY_REDIS_URL not set and $ENV_FILE missing; run scripts/services.sh" >&2
		exit 1
	fi
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
go test -tags integration -run '^$' -bench '^BenchmarkLatency$' -benchtime "${N}x" -count 1 -timeout 10m -v \
	./addons/postgres ./addons/redis >"$out" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
	cat "$out" >&2
	exit "$status"
fi
grep -E '^Benchmark' "$out" || true
echo
grep -o 'RESULT .*' "$out" | sed 's/^RESULT /add-ons: /; s/ | /\n    /g'
