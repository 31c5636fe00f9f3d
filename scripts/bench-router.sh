#!/usr/bin/env bash
# bench-router.sh: requests/s, latency and proxy CPU of Slipway's router
# against nginx (the reference) and against the backend directly, all on
# 127.0.0.1. Targets are interleaved round by round so that noise from a
# shared machine spreads over all three. Stops by itself (about
# ROUNDS * len(CONNS) * 3 * DURATION seconds, 90 s by default).
#
# Throughput is compared at CONNS connections; added latency is read at
# LATENCY_CONNS (one connection by default: an unloaded proxy, where the p50
# is the proxy's own hop rather than queueing behind a saturated core).
#
# Environment: ROUNDS (3), CONNS ("64 256"), LATENCY_CONNS (1), DURATION (5s), THREADS (2),
# NGINX (/usr/sbin/nginx or $SLIPWAY_NGINX), WRK (wrk), PROFILE (unset: if
# set to a path, the router writes a CPU profile there).
# The cpu column is the CPU time per request of the proxy (nginx: master
# and workers), and for "direct" that of the Go net/http backend itself.
# The router serves through its own HTTP/1.1 front end (Router.Serve), as
# in production. Everything (wrk, the backend, nginx's 2 workers, the
# router with the default GOMAXPROCS) shares the machine's cores, with no
# pinning; on a busy machine compare the cpu column as well as req/s, and
# use more ROUNDS.
# The last line printed is "router/nginx rps ratio: X" (mean over CONNS of
# the ratio of median requests/s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"64 256"}
LATENCY_CONNS=${LATENCY_CONNS:-1}
DURATION=${DURATION:-5s}
THREADS=${THREADS:-2}
NGINX=${NGINX:-${SLIPWAY_NGINX:-/usr/sbin/nginx}}
WRK=${WRK:-wrk}
HOST=bench.test
CLK_TCK=$(getconf CLK_TCK)

command -v "$WRK" >/dev/null || { echo "wrk not found" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx not found at $NGINX" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	exit 1
}

echo "building backend and router..." >&2
(cd "$ROOT" && go build -o "$TMP/benchbackend" ./proxy/internal/benchbackend && go build -o "$TMP/benchrouter" ./proxy/internal/benchrouter)

BPORT=$(free_port)
"$TMP/benchbackend" -addr "127.0.0.1:$BPORT" &
BACKEND_PID=$!
PIDS+=($BACKEND_PID)
wait_port "$BPORT"

NPORT=$(free_port)
mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/body;
	proxy_temp_path $TMP/nginx/proxy;
	fastcgi_temp_path $TMP/nginx/fastcgi;
	uwsgi_temp_path $TMP/nginx/uwsgi;
	scgi_temp_path $TMP/nginx/scgi;
	upstream app {
		server 127.0.0.1:$BPORT;
		keepalive 512;
	}
	server {
		listen 127.0.0.1:$NPORT backlog=4096;
		keepalive_requests 1000000;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$remote_addr;
			proxy_set_header X-Forwarded-Proto \$scheme;
			proxy_set_header X-Forwarded-Port \$server_port;
			proxy_set_header X-Request-Id \$request_id;
			proxy_set_header X-Request-Start \$msec;
		}
	}
}
CONF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/logs/stderr" &
NGINX_PID=$!
PIDS+=($NGINX_PID)
wait_port "$NPORT"

RPORT=$(free_port)
GOMAXPROCS=${ROUTER_GOMAXPROCS:-} "$TMP/benchrouter" -addr "127.0.0.1:$RPORT" -backend "127.0.0.1:$BPORT" -host "$HOST" ${PROFILE:+-cpuprofile "$PROFILE"} &
ROUTER_PID=$!
PIDS+=($ROUTER_PID)
wait_port "$RPORT"

# cpu_ticks PID...: utime+stime of the processes and their children.
cpu_ticks() {
	local total=0 p kids
	for p in "$@"; do
		kids=$(cat /proc/"$p"/task/*/children 2>/dev/null || true)
		for q in $p $kids; do
			[ -r /proc/"$q"/stat ] || continue
			total=$((total + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' /proc/"$q"/stat)))
		done
	done
	echo "$total"
}

# to_ms VALUE: wrk's "1.23ms" / "450.00us" / "1.02s" in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "%.3f", v }'
}

RESULTS=$TMP/results
: >"$RESULTS"
run() { # run NAME PORT CONNS PID...
	local name=$1 port=$2 conns=$3
	shift 3
	local before after out rps p50 p99 reqs cpu
	before=$(cpu_ticks "$@")
	out=$(timeout 60 "$WRK" -t"$((conns < THREADS ? conns : THREADS))" -c"$conns" -d"$DURATION" --latency -H "Host: $HOST" "http://127.0.0.1:$port/")
	after=$(cpu_ticks "$@")
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	if grep -q "Non-2xx" <<<"$out"; then echo "warning: $name returned errors: $(grep Non-2xx <<<"$out")" >&2; fi
	cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "0" }')
	echo "$name $conns $rps $p50 $p99 $cpu" >>"$RESULTS"
	printf '  %-7s c=%-4s %10s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req\n' "$name" "$conns" "$rps" "$p50" "$p99" "$cpu" >&2
}

for ((round = 1; round <= ROUNDS; round++)); do
	echo "round $round/$ROUNDS" >&2
	for c in $LATENCY_CONNS $CONNS; do
		run direct "$BPORT" "$c" "$BACKEND_PID"
		run nginx "$NPORT" "$c" "$NGINX_PID"
		run slipway "$RPORT" "$c" "$ROUTER_PID"
	done
done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -d$DURATION; medians of $ROUNDS interleaved rounds"
printf '%-8s %-6s %12s %10s %10s %14s\n' target conns "req/s" "p50 ms" "p99 ms" "cpu us/req"
median() { sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A MED
for c in $LATENCY_CONNS $CONNS; do
	for t in direct nginx slipway; do
		for col in 3 4 5 6; do
			MED[$t,$c,$col]=$(awk -v t=$t -v c="$c" -v col=$col '$1 == t && $2 == c {print $col}' "$RESULTS" | median)
		done
		cpu=${MED[$t,$c,6]}
		printf '%-8s %-6s %12s %10s %10s %14s\n' "$t" "$c" "${MED[$t,$c,3]}" "${MED[$t,$c,4]}" "${MED[$t,$c,5]}" "$cpu"
	done
done
for c in $LATENCY_CONNS; do
	add=$(awk -v a="${MED[slipway,$c,4]}" -v b="${MED[direct,$c,4]}" 'BEGIN { printf "%.3f", a - b }')
	addn=$(awk -v a="${MED[nginx,$c,4]}" -v b="${MED[direct,$c,4]}" 'BEGIN { printf "%.3f", a - b }')
	echo "c=$c (latency): added p50 over direct: router $add ms, nginx $addn ms"
done
sum=0
for c in $CONNS; do
	r=$(awk -v a="${MED[slipway,$c,3]}" -v b="${MED[nginx,$c,3]}" 'BEGIN { printf "%.3f", a / b }')
	add=$(awk -v a="${MED[slipway,$c,4]}" -v b="${MED[direct,$c,4]}" 'BEGIN { printf "%.3f", a - b }')
	addn=$(awk -v a="${MED[nginx,$c,4]}" -v b="${MED[direct,$c,4]}" 'BEGIN { printf "%.3f", a - b }')
	echo "c=$c: router/nginx rps $r; added p50 over direct: router $add ms, nginx $addn ms"
	sum=$(awk -v s="$sum" -v r="$r" 'BEGIN { print s + r }')
done
n=$(wc -w <<<"$CONNS")
echo "router/nginx rps ratio: $(awk -v s="$sum" -v n="$n" 'BEGIN { printf "%.2f", s / n }')"
