#!/usr/bin/env bash
# Few connections, mid-size messages: ringcast's io_uring path against its epoll path, and
# optionally against another ringcast build (BEFORE, e.g. an older commit's), interleaved.
# 10 connections x 1 KiB echo, 1 and 16 in flight; server on core 0, load generator on core 1.
# Prints msgs/s, msgs per server CPU-second and latency p50 (us) per run.
#
#   git worktree add --detach /tmp/old 1a28d10
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release --bin ringcast)
#   BEFORE=/tmp/old-target/release/ringcast REPS=2 benches/uring_vs_epoll_small.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
ensure_binaries
REPS=${REPS:-2}
DURATION=${DURATION:-4s}

run() { # label in_flight ringcast-args...
  local label=$1 in_flight=$2 out server addr
  shift 2
  out=$(mktemp)
  taskset -c 0 "$@" --listen 127.0.0.1:0 --cores 1 --log-level warn >"$out" 2>/dev/null &
  server=$!; pids+=("$server")
  for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
  addr=$(grep -o '127.0.0.1:[0-9]*' "$out" | head -1)
  timeout 60 taskset -c 1 "$BIN/ringcast-loadgen" echo --url "ws://$addr/" --conns 10 --size 1024 \
    --in-flight "$in_flight" --duration "$DURATION" --cores 1 --server-pid "$server" --json --quiet 2>/dev/null |
    tail -1 | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(sys.argv[1], sys.argv[2], round(d["msgs_per_sec"]), round(d["msgs_per_server_cpu_sec"]), d["latency_us"]["p50"], d["errors_total"])' "$label" "$in_flight"
  kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
  rm -f "$out"
}

echo "build in_flight msgs/s msgs/server-cpu-s p50_us errors"
for _ in $(seq "$REPS"); do
  for in_flight in 1 16; do
    run uring "$in_flight" "$BIN/ringcast"
    [ -n "${BEFORE:-}" ] && run before "$in_flight" "$BEFORE"
    run epoll "$in_flight" "$BIN/ringcast" --io epoll
  done
done
