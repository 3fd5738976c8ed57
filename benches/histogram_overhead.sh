#!/usr/bin/env bash
# What recording the per-core latency histograms costs on the message path: the same echo
# load against two builds of the server, interleaved (A B A B ...), medians reported.
#
# BEFORE is a ringcast binary built from a commit without the histograms, e.g.
#   git worktree add /tmp/before 4171d33 && (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release --bin ringcast)
#   BEFORE=/tmp/before-target/release/ringcast benches/histogram_overhead.sh
# Server on core 0 (one core), load generator on core 1; 100 connections, 20-byte messages,
# ping-pong (1 in flight) and pipelined (16 in flight); REPS runs of DURATION each.
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE=${BEFORE:?set BEFORE to a ringcast binary built without the histograms}
AFTER=${AFTER:-target/release/ringcast}
LOADGEN=${LOADGEN:-target/release/ringcast-loadgen}
REPS=${REPS:-3}
DURATION=${DURATION:-8s}
results=$(mktemp)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -f "$results"; }
trap cleanup EXIT

run() { # build in_flight
  local bin=$1 in_flight=$2 out
  out=$(mktemp)
  taskset -c 0 "$bin" --listen 127.0.0.1:0 --cores 1 --log-level warn >"$out" 2>/dev/null &
  local server=$!; pids+=("$server")
  for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
  local addr; addr=$(grep -o '127.0.0.1:[0-9]*' "$out" | head -1)
  timeout 120 taskset -c 1 "$LOADGEN" echo --url "ws://$addr/" --conns 100 --size 20 --in-flight "$in_flight" \
    --duration "$DURATION" --server-pid "$server" --json --quiet 2>/dev/null | tail -1
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
  rm -f "$out"
}

for rep in $(seq "$REPS"); do
  for in_flight in 1 16; do
    for build in before after; do
      bin=$BEFORE; [ "$build" = after ] && bin=$AFTER
      echo "$build $in_flight $(run "$bin" "$in_flight")" >>"$results"
    done
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    build, in_flight, summary = line.split(" ", 2)
    s = json.loads(summary)
    rows.setdefault((int(in_flight), build), []).append((s["msgs_per_sec"], s["msgs_per_server_cpu_sec"], s["errors_total"]))
print(f"{'in flight':>9} {'build':>6} {'msgs/s (median)':>16} {'msgs/server CPU-s':>18} {'errors':>7} runs")
for (in_flight, build), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "before")):
    rate = statistics.median(r[0] for r in runs)
    eff = statistics.median(r[1] for r in runs)
    print(f"{in_flight:>9} {build:>6} {rate:>16,.0f} {eff:>18,.0f} {sum(r[2] for r in runs):>7} {len(runs)}")
for in_flight in sorted({k[0] for k in rows}):
    b = statistics.median(r[1] for r in rows[(in_flight, "before")])
    a = statistics.median(r[1] for r in rows[(in_flight, "after")])
    print(f"in flight {in_flight}: after/before messages per server CPU-second = {a / b:.3f}")
PY
