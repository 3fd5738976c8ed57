#!/usr/bin/env bash
# Push-mode figures (README, "Push mode: measured"): publish-to-receive latency, deliveries per
# second, server CPU and syscalls per delivery, losses, duplicates and reordering, with the
# bundled load generator's `push` scenario; memory per subscriber and per held message; and the
# memory bound with stalled subscribers.
#
# Every scenario starts fresh servers on loopback and runs RUNS times; each run prints one row
# (quote medians over runs: the machine is shared). Syscalls are counted by `perf stat -e raw_syscalls:sys_enter` on
# the server over the middle of the publishing window (none if perf is missing or not allowed).
#
#   benches/push.sh                       # every scenario, 3 runs each (about 12 minutes)
#   RUNS=1 SCENARIOS="fanout memory" benches/push.sh
#
# Scenarios: fanout (10,000 subscribers of one topic, 64 B at 100 publishes/s, over HTTP and
# over WebSocket, and at 1 publish/s), saturation (the same subscribers, WebSocket publishes at 200 and 400/s),
# topics (19,000 subscribers over 1,000 topics, 1,000 publishes/s over HTTP and WebSocket),
# redis (the same over HTTP through two nodes and a redis-server), memory, stalled.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
SCENARIOS=${SCENARIOS:-"fanout saturation topics redis memory stalled"}
SOURCES=127.0.0.1-127.0.0.20
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringcast-push.XXXXXX")

[ -x "$BIN/ringcast" ] && [ -x "$BIN/ringcast-loadgen" ] || cargo build --release -p ringcast -p ringcast-loadgen
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# metric ADDR NAME: one series' value (0 when absent or when the scrape gets no answer in 5 s).
metric() {
  local v
  v=$(curl -s --max-time 5 "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}')
  echo "${v:-0}"
}
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# start_server NAME ARGS...: a ringcast on a free port; sets ADDR_<NAME> and PID_<NAME>.
start_server() {
  local name=$1 log="$WORK/$1.log"
  shift
  "$BIN/ringcast" --listen 127.0.0.1:0 --log-level warn "$@" >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
  printf -v "ADDR_$name" '%s' "$(grep -o '127.0.0.1:[0-9]*' "$log" | head -1)"
  printf -v "PID_$name" '%s' "$pid"
}

stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# wait_open ADDR... N: until the servers hold N connections together (bounded: 60 s).
wait_open() {
  local n=${!#} total
  for _ in $(seq 600); do
    total=0
    for a in "${@:1:$#-1}"; do total=$((total + $(metric "$a" ringcast_connections_open | cut -d. -f1))); done
    [ "$total" -ge "$n" ] && return 0
    sleep 0.1
  done
  echo "push.sh: only $total of $n connections opened" >&2
  return 1
}

HEADER_DONE=""
header() {
  [ -n "$HEADER_DONE" ] && return
  printf '%-22s %3s %10s %8s %6s %5s %5s %9s %9s %9s %8s %11s %9s\n' scenario run deliv/s expected lost dup ooo \
    p50_ms p99_ms p999_ms srv_cpu deliv/srvcpu sys/deliv
  HEADER_DONE=1
}

# measure NAME SUBSCRIBERS ADDRS PIDS -- LOADGEN_ARGS...: one run of the push scenario.
measure() {
  local name=$1 conns=$2 addrs=$3 spids=$4 run=$5
  shift 6
  local out="$WORK/$name.$run"
  local before_cpu=0 after_cpu=0 before_del=0 after_del=0 p
  timeout 180 "$BIN/ringcast-loadgen" push --conns "$conns" --duration "${DURATION}s" --size 64 \
    --source-addrs "$SOURCES" --out "$out" --quiet "$@" >"$out.txt" 2>&1 &
  local lg=$!
  # shellcheck disable=SC2086 # address lists
  wait_open $addrs "$conns" || true
  sleep 2
  for p in $spids; do before_cpu=$(echo "$before_cpu + $(cpu_s "$p")" | bc); done
  for a in $addrs; do before_del=$((before_del + $(metric "$a" ringcast_push_deliveries_total | cut -d. -f1))); done
  local window=$((DURATION - 4)) syscalls=""
  if command -v perf >/dev/null; then
    local perf_pids
    perf_pids=$(echo "$spids" | tr ' ' ',')
    perf stat -x, -e raw_syscalls:sys_enter -p "$perf_pids" -o "$out.perf" -- sleep "$window" 2>/dev/null || sleep "$window"
    syscalls=$(awk -F, '/raw_syscalls/ {print $1}' "$out.perf" 2>/dev/null || true)
  else
    sleep "$window"
  fi
  for p in $spids; do after_cpu=$(echo "$after_cpu + $(cpu_s "$p")" | bc); done
  for a in $addrs; do after_del=$((after_del + $(metric "$a" ringcast_push_deliveries_total | cut -d. -f1))); done
  wait "$lg" || true
  python3 - "$out/summary.json" "$name" "$run" "$((after_del - before_del))" "$(echo "$after_cpu - $before_cpu" | bc)" \
    "${syscalls:-}" "$window" <<'PY'
import json, sys
path, name, run, delivered, cpu, syscalls, window = sys.argv[1:8]
s = json.load(open(path)); p = s["push"]; lat = s["latency_us"]
delivered, cpu, window = int(delivered), float(cpu), float(window)
per_cpu = f"{delivered / cpu:,.0f}" if cpu > 0 else "-"
sys_per = f"{int(syscalls) / delivered:.5f}" if syscalls and syscalls.isdigit() and delivered else "-"
print(f"{name:<22} {run:>3} {s['msgs_per_sec']:>10,.0f} {p['deliveries_expected']:>8} {p['lost']:>6} {p['duplicated']:>5} "
      f"{p['out_of_order']:>5} {lat['p50'] / 1000:>9.1f} {lat['p99'] / 1000:>9.1f} {lat['p999'] / 1000:>9.1f} "
      f"{cpu / window:>7.2f}c {per_cpu:>11} {sys_per:>9}")
PY
}

# scenario NAME SUBSCRIBERS "SERVER ARGS" LOADGEN_ARGS...: RUNS runs on one fresh server each.
scenario() {
  local name=$1 conns=$2 server_args=$3
  shift 3
  header
  for run in $(seq "$RUNS"); do
    # shellcheck disable=SC2086 # flag list
    start_server A --mode push --cores 2 $server_args
    measure "$name" "$conns" "$ADDR_A" "$PID_A" "$run" -- --url "ws://$ADDR_A/ws" --server-pid "$PID_A" "$@"
    stop_servers
  done
}

redis_scenario() {
  header
  command -v redis-server >/dev/null || { echo "redis: redis-server not installed, skipped" >&2; return; }
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  for run in $(seq "$RUNS"); do
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
    pids+=("$!")
    sleep 0.5
    redis-cli -p "$port" flushall >/dev/null
    start_server A --mode push --cores 0-0 --redis "redis://127.0.0.1:$port"
    start_server B --mode push --cores 1-1 --redis "redis://127.0.0.1:$port"
    for _ in $(seq 100); do
      curl -s "http://$ADDR_A/readyz" | grep -q "redis: connected" && curl -s "http://$ADDR_B/readyz" | grep -q "redis: connected" && break
      sleep 0.1
    done
    measure "topics-2nodes-redis" 19000 "$ADDR_A $ADDR_B" "$PID_A $PID_B" "$run" -- --url "ws://$ADDR_A/ws" \
      --ports "${ADDR_A##*:},${ADDR_B##*:}" --topics 1000 --publish-rate 1000 --procs 2
    stop_servers
  done
}

# Server RSS per subscriber (19,000 and 5,000 subscribers of 1,000 topics, fitted) against
# echo-mode connections, and per message held in history (100 x 1,000 topics of 64 B).
memory_scenario() {
  echo
  printf '%-34s %12s\n' memory bytes
  local rss=() n
  for n in 5000 19000; do
    start_server A --mode push --cores 1
    local base
    base=$(rss_kib "$PID_A")
    timeout 120 "$BIN/ringcast-loadgen" push --url "ws://$ADDR_A/ws" --conns "$n" --topics 1000 --publish-rate 1 \
      --duration 12s --size 64 --source-addrs "$SOURCES" --procs 2 --quiet >/dev/null 2>&1 &
    local lg=$!
    wait_open "$ADDR_A" "$n"
    sleep 3
    rss+=("$base" "$(rss_kib "$PID_A")")
    wait "$lg" || true
    stop_servers
  done
  python3 - "${rss[@]}" <<'PY'
import sys
b1, a1, b2, a2 = map(int, sys.argv[1:5])
per = ((a2 - b2) - (a1 - b1)) * 1024 / 14000
print(f"{'RSS per subscriber (fit 5k-19k)':<34} {per:>12.0f}")
print(f"{'RSS at 19,000 subscribers, KiB':<34} {a2:>12}")
PY
  start_server A --mode push --cores 1 --push-history-size 100 --push-history-ttl 0s
  local before after
  before=$(rss_kib "$PID_A")
  python3 - "$ADDR_A" <<'PY'
import json, socket, sys
host, port = sys.argv[1].split(":")
batch = lambda t0: json.dumps({"messages": [{"topic": f"t{t}", "data": "x" * 64} for t in range(t0, t0 + 1000)]})
for _ in range(100):
    for t0 in (0,):
        body = batch(t0).encode()
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /publish HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        while s.recv(65536):
            pass
        s.close()
PY
  after=$(rss_kib "$PID_A")
  printf '%-34s %12s\n' "held messages" "$(metric "$ADDR_A" ringcast_push_history_messages)"
  printf '%-34s %12.0f\n' "RSS per held 64 B message" "$(echo "($after - $before) * 1024 / 100000" | bc -l)"
  stop_servers
}

# 1,000 subscribers that never read (4 KiB receive buffers) under --max-queued-bytes 65536:
# server RSS growth while 400 publishes of 16 KiB flow, against the bound 1,000 x 64 KiB.
stalled_scenario() {
  echo
  local policy
  for policy in drop close; do
    start_server A --mode push --cores 2 --max-queued-bytes 65536 --push-slow-consumer "$policy"
    local before
    before=$(rss_kib "$PID_A")
    python3 - "$ADDR_A" "$policy" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split(":")
socks = []
for i in range(1000):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.sendall(b"GET /ws?topics=flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    socks.append(s)
time.sleep(40)
PY
    local stalled=$!
    pids+=("$stalled")
    wait_open "$ADDR_A" 1000
    local peak=0 now
    python3 - "$ADDR_A" <<'PY' &
import socket, sys
host, port = sys.argv[1].split(":")
body = b"x" * 16384
for _ in range(400):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /publish/flood HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    while s.recv(65536):
        pass
    s.close()
PY
    local publisher=$!
    while kill -0 "$publisher" 2>/dev/null; do
      now=$(rss_kib "$PID_A")
      [ "$now" -gt "$peak" ] && peak=$now
      sleep 0.2
    done
    printf '%-34s %8s MiB peak growth (bound 62.5 MiB + in-flight), shed %s, slow-consumer closes %s\n' \
      "stalled x1000, policy $policy" "$(( (peak - before) / 1024 ))" \
      "$(metric "$ADDR_A" ringcast_messages_shed_total)" "$(metric "$ADDR_A" ringcast_slow_consumers_total)"
    kill "$stalled" 2>/dev/null || true
    stop_servers
  done
}

echo "ringcast push benchmark, $(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD), $(nproc) cores, kernel $(uname -r)"
echo "(load generator and servers share the machine's cores; deliv/s is the load generator's in-window rate)"
for s in $SCENARIOS; do
  case $s in
    fanout)
      scenario fanout-10k-http 10000 "" --topics 1 --publish-rate 100
      scenario fanout-10k-ws 10000 "--push-ws-publish" --topics 1 --publish-rate 100 --publish-via ws
      # Below saturation: the time one fan-out to 10,000 subscribers takes.
      scenario fanout-10k-ws-1ps 10000 "--push-ws-publish" --topics 1 --publish-rate 1 --publish-via ws
      ;;
    saturation)
      # A longer drain: what is still queued when publishing stops arrives before losses are
      # counted.
      scenario saturate-10k-ws-200 10000 "--push-ws-publish" --topics 1 --publish-rate 200 --publish-via ws \
        --publishers 2 --drain 10s
      scenario saturate-10k-ws-400 10000 "--push-ws-publish" --topics 1 --publish-rate 400 --publish-via ws \
        --publishers 2 --drain 10s
      ;;
    topics)
      scenario topics-19k-1000-http 19000 "" --topics 1000 --publish-rate 1000 --procs 2
      scenario topics-19k-1000-ws 19000 "--push-ws-publish" --topics 1000 --publish-rate 1000 --procs 2 --publish-via ws
      ;;
    redis) redis_scenario ;;
    memory) memory_scenario ;;
    stalled) stalled_scenario ;;
    *) echo "push.sh: unknown scenario $s" >&2; exit 2 ;;
  esac
done
