#!/usr/bin/env bash
# Server CPU spent keeping idle connections alive with heartbeats.
#
# For each ping interval: start ringcast on core 0, open N idle connections with the bundled
# load generator (several processes and source addresses, so one run can pass the per-process
# open-file limit; the load generator answers every ping), wait until all are open, then read
# the server's user+sys CPU time from /proc over a measuring window. Prints CPU as a share of
# one core, pings sent per second, and the load generator's error count.
#
#   benches/heartbeat_cost.sh                 # 19000 connections, intervals 1s and 30s
#   N=5000 WINDOW=20 INTERVALS="1s" benches/heartbeat_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-19000}
WINDOW=${WINDOW:-30}
INTERVALS=${INTERVALS:-"1s 30s"}
PROCS=${PROCS:-3}

. benches/common.sh
ensure_binaries

printf '%-8s %8s %10s %12s %10s %8s\n' interval conns window_s "server_cpu_%" "pings/s" errors
for interval in $INTERVALS; do
  out=$(mktemp)
  taskset -c 0 "$BIN/ringcast" --listen 127.0.0.1:0 --cores 1 --log-level warn \
    --ping-interval "$interval" --pong-timeout 60s >"$out" 2>/dev/null &
  server=$!; pids+=("$server")
  for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
  addr=$(grep -o '127.0.0.1:[0-9]*' "$out" | head -1)
  hold=$((WINDOW + 30))
  timeout $((hold + 60)) taskset -c 1 "$BIN/ringcast-loadgen" connect --url "ws://$addr/" --conns "$N" \
    --procs "$PROCS" --source-addrs 127.0.0.1-127.0.0.20 --hold "${hold}s" --json --quiet >"$out.lg" 2>&1 &
  loadgen=$!; pids+=("$loadgen")
  for _ in $(seq 600); do
    open=$(metric "$addr" ringcast_connections_open); [ "${open%.*}" -ge "$N" ] 2>/dev/null && break; sleep 0.1
  done
  sleep 2
  c0=$(cpu_ticks "$server"); p0=$(metric "$addr" ringcast_heartbeat_pings_total); t0=$(date +%s.%N)
  sleep "$WINDOW"
  c1=$(cpu_ticks "$server"); p1=$(metric "$addr" ringcast_heartbeat_pings_total); t1=$(date +%s.%N)
  wait "$loadgen" || true
  errors=$(tail -1 "$out.lg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors_total"])' 2>/dev/null || echo "?")
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
  python3 - "$interval" "$N" "$c0" "$c1" "$t0" "$t1" "$p0" "$p1" "$errors" "$CLK_TCK" <<'PY'
import sys
interval, n, c0, c1, t0, t1, p0, p1, errors, hz = sys.argv[1:]
window = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(hz) / window * 100
pings = (float(p1 or 0) - float(p0 or 0)) / window
print(f"{interval:<8} {int(n):>8} {window:>10.1f} {cpu:>12.2f} {pings:>10.0f} {errors:>8}")
PY
  rm -f "$out" "$out.lg"
done
