#!/usr/bin/env bash
# Soak: TARGET connections churned through ONE ringcast process, its resident memory sampled.
#
# Starts ringcast (echo mode) and runs the bundled load generator's churn scenario against it
# (`ringcast-loadgen churn`: CONNS concurrent loops of connect, upgrade, one echo, close
# handshake, repeat; PROCS processes, bound round-robin to 20 loopback source addresses) in
# runs of RUN seconds, until the server has completed TARGET WebSocket connections (at most
# MAX_RUNS runs, so the soak always ends). Every second it samples the server's VmRSS
# (/proc/PID/status), its open connections and the host's TIME_WAIT sockets. Then it prints:
# connections completed (server: upgrades and clean closes by the client; load generator:
# loops completed inside its windows), errors (the load generator's errors_total, plus every
# server close that was not a clean client close; must be 0, else exit 1), resident memory at
# start (idle), after the first run (warm), its peak, and at the end (load over, no connection
# open), the server's CPU time (user+sys) and per connection, and TIME_WAIT figures.
#
# TIME_WAIT: after the close handshake ringcast closes TCP first, so the TIME_WAIT sockets are
# the server's. The client side closes second and keeps no TIME_WAIT, so its ports are free at
# once; a SYN from a reused client port that meets a server-side TIME_WAIT socket of the same
# 4-tuple is accepted as a new connection (its timestamp is newer; tcp_timestamps is on), and
# beyond net.ipv4.tcp_max_tw_buckets the kernel drops TIME_WAIT sockets (counted in
# TcpExtTW... / TCPTimeWaitOverflow, printed). So the run relies on neither tcp_tw_reuse (it
# concerns TIME_WAIT sockets of the connecting side, which churn does not create) nor on
# tcp_tw_recycle; both settings are printed for the record. The 20 source addresses give
# 20 x 28,000 ephemeral ports of 4-tuples, more than the TIME_WAIT table holds.
#
#   benches/soak.sh                               # 500,000 connections, 64 loops, 2 processes
#   TARGET=100000 RUN=20 benches/soak.sh          # a shorter one
#   BIN=/path/to/release benches/soak.sh          # binaries built elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${TARGET:-500000}
CONNS=${CONNS:-64}
PROCS=${PROCS:-2}
RUN=${RUN:-60}
MAX_RUNS=${MAX_RUNS:-10}
SERVER_CORES=${SERVER_CORES:-1}
BIN=${BIN:-target/release}
CLK_TCK=$(getconf CLK_TCK)

[ -x "$BIN/ringcast" ] && [ -x "$BIN/ringcast-loadgen" ] || cargo build --release -p ringcast -p ringcast-loadgen --bins
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

metric() { curl -s "http://$addr/metrics" | awk -v m="$1" '$1 == m {print $2}' | sed 's/\..*//'; }
rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/$server/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
nstat_value() { nstat -az "$1" 2>/dev/null | awk -v m="$1" '$1 == m {v = $2} END {print v + 0}'; }
time_wait() { awk '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == "tw") print $(i + 1)}' /proc/net/sockstat; }

"$BIN/ringcast" --listen 127.0.0.1:0 --cores "$SERVER_CORES" --log-level warn >"$work/server.out" 2>"$work/server.err" &
server=$!; pids+=("$server")
for _ in $(seq 100); do grep -q listening "$work/server.out" && break; sleep 0.1; done
addr=$(grep -o '127.0.0.1:[0-9]*' "$work/server.out" | head -1)
[ -n "$addr" ] || { echo "soak: the server did not start" >&2; cat "$work/server.err" >&2; exit 1; }
sleep 1

echo "== soak $(date -u +%Y-%m-%dT%H:%M:%SZ): $(uname -r), $(nproc) CPUs, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares its CPUs)"
echo "server: $BIN/ringcast --cores $SERVER_CORES on $addr (pid $server); churn: $CONNS loops, $PROCS processes, 20 source addresses, runs of ${RUN}s"
for key in net.ipv4.tcp_tw_reuse net.ipv4.tcp_max_tw_buckets net.ipv4.tcp_timestamps net.ipv4.ip_local_port_range net.ipv4.tcp_fin_timeout; do
  echo "  $key = $(sysctl -n "$key" 2>/dev/null | tr '\t' ' ')"
done

rss_start=$(rss_kib)
cpu_start=$(cpu_ticks)
tw_overflow_start=$(nstat_value TcpExtTCPTimeWaitOverflow)
# One sample about every second: UNIX time, VmRSS KiB, open connections, TIME_WAIT sockets (host-wide).
(
  while kill -0 "$server" 2>/dev/null; do
    echo "$(date +%s) $(rss_kib) $(metric ringcast_connections_open) $(time_wait)"
    sleep 1
  done
) >"$work/samples" 2>/dev/null &
pids+=("$!")

runs=0 loops=0 lg_errors=0 rss_warm=
while [ "$runs" -lt "$MAX_RUNS" ]; do
  upgrades=$(metric ringcast_upgrades_total)
  [ "${upgrades:-0}" -ge "$TARGET" ] && break
  runs=$((runs + 1))
  timeout $((RUN + 120)) "$BIN/ringcast-loadgen" churn --url "ws://$addr/" --conns "$CONNS" --procs "$PROCS" \
    --source-addrs 127.0.0.1-127.0.0.20 --duration "${RUN}s" --warmup 1s --max-errors 1000000000 \
    --json --quiet >"$work/run$runs.out" 2>"$work/run$runs.err" || {
      echo "soak: run $runs of the load generator failed" >&2; cat "$work/run$runs.err" >&2; exit 1; }
  summary=$(tail -1 "$work/run$runs.out")
  run_loops=$(jq -r '.loops_completed // 0' <<<"$summary")
  run_errors=$(jq -r '.errors_total' <<<"$summary")
  loops=$((loops + run_loops)); lg_errors=$((lg_errors + run_errors))
  [ -n "$rss_warm" ] || { rss_warm=$(rss_kib); warm_at=$(date +%s); }
  printf 'run %2d: %8d loops, %6.0f connections/s, %d errors; server: %d upgrades so far, VmRSS %d KiB\n' \
    "$runs" "$run_loops" "$(jq -r '.conns_per_sec // 0' <<<"$summary")" "$run_errors" \
    "$(metric ringcast_upgrades_total)" "$(rss_kib)"
  [ "$run_errors" -eq 0 ] || jq -c '.errors // empty, .connect_failures // empty' <<<"$summary" >&2
done

# Load over: every connection must close; then the last samples.
for _ in $(seq 100); do [ "$(metric ringcast_connections_open)" = 0 ] && break; sleep 0.1; done
sleep 2
cpu_end=$(cpu_ticks)
rss_end=$(rss_kib)
upgrades=$(metric ringcast_upgrades_total)
by_client=$(metric 'ringcast_connections_closed_total{by="client"}')
abnormal=0
for by in server error shutdown heartbeat; do
  abnormal=$((abnormal + $(metric "ringcast_connections_closed_total{by=\"$by\"}")))
done
for series in ringcast_handshake_timeouts_total ringcast_handshake_aborted_total ringcast_protocol_errors_total ringcast_accept_errors_total; do
  abnormal=$((abnormal + $(curl -s "http://$addr/metrics" | awk -v m="$series" 'index($1, m) == 1 {s += $2} END {print s + 0}')))
done
rejected=$(curl -s "http://$addr/metrics" | awk 'index($1, "ringcast_handshake_rejected_total") == 1 {s += $2} END {print s + 0}')
open_end=$(metric ringcast_connections_open)
tw_overflow=$(( $(nstat_value TcpExtTCPTimeWaitOverflow) - tw_overflow_start ))
kill "$server"
read -r rss_peak rss_peak_warm tw_peak samples < <(awk -v w="$warm_at" \
  '$2 > p {p = $2} $1 > w && $2 > pw {pw = $2} $4 > t {t = $4} END {print p, pw + 0, t, NR}' "$work/samples")
cpu_s=$(awk -v a="$cpu_start" -v b="$cpu_end" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / hz}')

echo "== result"
echo "runs                      $runs of ${RUN}s (same server process throughout)"
echo "connections completed     $upgrades upgrades, $by_client clean closes by the client (server); $loops loops inside the load generator's windows"
echo "errors                    $lg_errors (load generator errors_total) + $abnormal (server: closes other than a clean client close, handshake timeouts/aborts, protocol errors, accept errors) + $rejected rejected"
echo "open at the end           $open_end"
echo "VmRSS (KiB)               start $rss_start (idle), warm $rss_warm (after run 1), peak $rss_peak, peak after run 1 $rss_peak_warm, end $rss_end ($samples one-second samples)"
echo "server CPU                ${cpu_s}s user+sys, $(awk -v c="$cpu_s" -v n="$upgrades" 'BEGIN {printf "%.1f", c / n * 1e6}') us per connection"
echo "load average at the end  $(cut -d' ' -f1-3 /proc/loadavg)"
echo "TIME_WAIT                 peak $tw_peak sockets; TIME_WAIT overflows (TcpExtTCPTimeWaitOverflow) during the soak: $tw_overflow"
status=0
[ "$upgrades" -ge "$TARGET" ] || { echo "FAIL: $upgrades connections, fewer than $TARGET (raise RUN or MAX_RUNS)"; status=1; }
[ $((lg_errors + abnormal + rejected)) -eq 0 ] || { echo "FAIL: errors"; status=1; }
[ "$open_end" = 0 ] || { echo "FAIL: $open_end connections still open"; status=1; }
[ "$by_client" = "$upgrades" ] || { echo "FAIL: $upgrades upgrades but $by_client clean closes"; status=1; }
exit $status
