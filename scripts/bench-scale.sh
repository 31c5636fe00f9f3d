#!/usr/bin/env bash
# Benchmarks the local scheduler against raw runc in one run (same image,
# same machine) and prints:
#   instance start slipway/runc: X   (median start-to-port-bound, target <= 1.5)
#   scale web 0->20 (all healthy): ...; 20->0 (all gone): ...
# Needs root, runc and busybox-static. Bounded: N starts (default 30) and
# SCALE_ROUNDS rounds of 0->20->0 (default 3); stops by itself.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
env_file=${SLIPWAY_STATE:-$HOME/.cache/slipway/state}/env.sh
# shellcheck disable=SC1090
if [ -f "$env_file" ]; then . "$env_file"; fi
export SLIPWAY_RUNC=${SLIPWAY_RUNC:-/usr/sbin/runc}
N=${N:-30}
SCALE_ROUNDS=${SCALE_ROUNDS:-3}
cd "$root"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 600 go test -tags integration -count=1 -run '^$' -bench '^BenchmarkInstanceStart$' -benchtime "${N}x" ./scale/local/ | tee "$out" >/dev/null
timeout 600 go test -tags integration -count=1 -run '^$' -bench '^BenchmarkScaleWeb20$' -benchtime "${SCALE_ROUNDS}x" ./scale/local/ | tee -a "$out" >/dev/null
# Go runs every benchmark once with b.N=1 first; report the full runs.
grep -o 'instance start (n=.*' "$out" | tail -1
grep -o 'instance start slipway/runc:.*' "$out" | tail -1
grep -o 'scale web 0.*' "$out" | tail -1
grep -E '^(ok|FAIL|---)' "$out" || true
