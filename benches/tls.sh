#!/usr/bin/env bash
# What native TLS costs against plain ws, in one interleaved run (plain, tls, plain, tls, ...;
# medians of REPS): the server on core 0 (one core), the load generator on core 1, loopback.
# The TLS server uses the test certificate (tests/fixtures/tls: ECDSA P-256) and the load
# generator's rustls client (TLS 1.3, the suite both prefer); every TLS connection makes a full
# handshake (no resumption on either side).
#
#   handshake: churn, CONNS loops of connect + upgrade + one 20-byte echo + close
#              (connections/s, connections per server CPU-second, setup latency)
#   echo:      100 connections, 20-byte messages ping-pong (1 in flight) and 4 KiB messages
#              with 16 in flight (messages/s, messages per server CPU-second, latency)
#   idle:      IDLE connections opened and held; server VmRSS before and while holding them
#              (KiB per connection), after an echo warm-up on one connection
#
#   REPS=3 DURATION=8s IDLE=10000 benches/tls.sh
#   PROFILE=1 benches/tls.sh    # instead: perf profile of the server under the TLS 4 KiB echo
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh

REPS=${REPS:-3}
DURATION=${DURATION:-8s}
IDLE=${IDLE:-10000}
CONNS=${CONNS:-32}
FIX=tests/fixtures/tls
results=$(mktemp)
trap 'cleanup; rm -f "$results"' EXIT
ensure_binaries

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Starts a one-core server on core 0 (plain or tls); sets $server (pid), $addr, $url, $metrics.
start_server() {
  local kind=$1 out tls=()
  out=$(mktemp)
  [ "$kind" = tls ] && tls=(--tls-cert "$FIX/server.pem" --tls-key "$FIX/server.key")
  taskset -c 0 "$BIN/ringcast" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --cores 1 \
    --log-level warn --ping-interval 0s "${tls[@]}" >"$out" 2>/dev/null &
  server=$!; pids+=("$server")
  for _ in $(seq 100); do grep -q "metrics on" "$out" && break; sleep 0.1; done
  addr=$(grep -o 'listening on [a-z]*://127.0.0.1:[0-9]*' "$out" | grep -o '127.0.0.1:[0-9]*')
  metrics=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$out" | grep -o '127.0.0.1:[0-9]*')
  rm -f "$out"
  if [ "$kind" = tls ]; then url="wss://$addr/"; trust=(--tls-ca "$FIX/ca.pem"); else url="ws://$addr/"; trust=(); fi
}

stop_server() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }

loadgen() { timeout 300 taskset -c 1 "$BIN/ringcast-loadgen" "$@" --cores 1 --json --quiet 2>/dev/null | tail -1; }

if [ "${PROFILE:-0}" = 1 ]; then
  start_server tls
  loadgen echo --url "$url" "${trust[@]}" --conns 100 --size 4096 --in-flight 16 --duration 8s >/dev/null &
  lg=$!
  sleep 2
  perf record -F 2000 -g -p "$server" -o "$results.perf" -- sleep 4 >/dev/null 2>&1
  wait "$lg"
  perf report -i "$results.perf" --no-children --sort symbol 2>/dev/null | grep -E '^ +[0-9]+\.[0-9]+%' | head -15
  rm -f "$results.perf"
  exit 0
fi

for rep in $(seq "$REPS"); do
  for kind in plain tls; do
    start_server "$kind"
    echo "handshake $kind $(loadgen churn --url "$url" "${trust[@]}" --conns "$CONNS" --duration "$DURATION" --server-pid "$server")" >>"$results"
    echo "echo20 $kind $(loadgen echo --url "$url" "${trust[@]}" --conns 100 --size 20 --in-flight 1 --duration "$DURATION" --server-pid "$server")" >>"$results"
    echo "echo4k $kind $(loadgen echo --url "$url" "${trust[@]}" --conns 100 --size 4096 --in-flight 16 --duration "$DURATION" --server-pid "$server")" >>"$results"
    stop_server
    # Idle memory on a fresh server: one echo first (so the code paths are warm), then IDLE
    # connections held while the server's VmRSS is read.
    start_server "$kind"
    loadgen echo --url "$url" "${trust[@]}" --conns 1 --size 20 --duration 1s >/dev/null
    before=$(rss_kib "$server")
    loadgen connect --url "$url" "${trust[@]}" --conns "$IDLE" --ramp-rate 5000 --hold 6s --server-pid "$server" >"$results.connect" &
    lg=$!
    for _ in $(seq 600); do
      [ "$(metric "$metrics" ringcast_connections_open)" = "$IDLE" ] && break; sleep 0.1
    done
    sleep 1
    open=$(metric "$metrics" ringcast_connections_open); held=$(rss_kib "$server")
    wait "$lg" || true
    echo "idle $kind {\"before_kib\": $before, \"held_kib\": $held, \"open\": $open, \"errors_total\": $(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["errors_total"])' "$results.connect")}" >>"$results"
    rm -f "$results.connect"
    stop_server
  done
done

python3 - "$results" "$REPS" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    test, kind, summary = line.split(" ", 2)
    rows.setdefault((test, kind), []).append(json.loads(summary))
med = lambda runs, f: statistics.median(f(r) for r in runs)
errors = lambda runs: sum(r.get("errors_total", 0) for r in runs)
print(f"ringcast, one server core, plain ws vs TLS; medians of {sys.argv[2]} interleaved runs")
print(f"{'':<34} {'plain ws':>14} {'wss (TLS)':>14} {'tls/plain':>10}")
def row(label, test, f, fmt="{:,.0f}"):
    p, t = med(rows[(test, "plain")], f), med(rows[(test, "tls")], f)
    print(f"{label:<34} {fmt.format(p):>14} {fmt.format(t):>14} {t / p:>10.3f}")
row("handshake: connections/s", "handshake", lambda r: r["conns_per_sec"])
row("handshake: per server CPU-second", "handshake", lambda r: r["handshakes_per_server_cpu_sec"])
row("handshake: setup p50 (us)", "handshake", lambda r: r["handshake_latency_us"]["p50"])
row("handshake: setup p99 (us)", "handshake", lambda r: r["handshake_latency_us"]["p99"])
for test, label in (("echo20", "echo 20 B x1"), ("echo4k", "echo 4 KiB x16")):
    row(f"{label}: msgs/s", test, lambda r: r["msgs_per_sec"])
    row(f"{label}: msgs per server CPU-s", test, lambda r: r["msgs_per_server_cpu_sec"])
    row(f"{label}: latency p50 (us)", test, lambda r: r["latency_us"]["p50"])
    row(f"{label}: latency p99 (us)", test, lambda r: r["latency_us"]["p99"])
per_conn = lambda r: (r["held_kib"] - r["before_kib"]) * 1024 / max(r["open"], 1)
row("idle: server bytes per connection", "idle", per_conn)
for kind in ("plain", "tls"):
    runs = rows[("idle", kind)]
    print(f"idle {kind}: open {[r['open'] for r in runs]}, VmRSS KiB before/held "
          f"{[(r['before_kib'], r['held_kib']) for r in runs]}")
print("errors (all runs): " + ", ".join(f"{t} {k} {errors(v)}" for (t, k), v in sorted(rows.items())))
PY
