#!/usr/bin/env bash
# What a /metrics scrape costs the server while it holds many connections.
#
# Starts ringcast on 2 cores, opens N idle connections with the bundled load generator (several
# processes and source addresses, past the per-process open-file limit), then measures the
# server's user+sys CPU over a quiet window and over a window of SCRAPES back-to-back scrapes.
# Prints the CPU per scrape (the difference, divided by the scrapes), the scrape's wall time as
# the client saw it, the render time the server measured on the core that served each scrape
# (`ringcast_metrics_render_seconds`: how long that core was busy rendering),
# and the longest timer pass of each core (the pass that copies the core's histograms out once
# a second: the only moment a scrape's data costs the other cores anything).
#
#   benches/scrape_cost.sh              # 19000 connections, 500 scrapes
#   N=5000 SCRAPES=200 benches/scrape_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-19000}
SCRAPES=${SCRAPES:-500}
PROCS=${PROCS:-3}

. benches/common.sh
ensure_binaries

out=$(mktemp)
"$BIN/ringcast" --listen 127.0.0.1:0 --cores 2 --log-level warn >"$out" 2>/dev/null &
server=$!; pids+=("$server")
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
addr=$(grep -o '127.0.0.1:[0-9]*' "$out" | head -1)
timeout 300 "$BIN/ringcast-loadgen" connect --url "ws://$addr/" --conns "$N" --procs "$PROCS" \
  --source-addrs 127.0.0.1-127.0.0.20 --hold 120s --json --quiet >"$out.lg" 2>&1 &
loadgen=$!; pids+=("$loadgen")
for _ in $(seq 900); do
  open=$(metric "$addr" ringcast_connections_open); [ "${open%.*}" -ge "$N" ] 2>/dev/null && break; sleep 0.1
done
sleep 3
python3 - "$addr" "$server" "$SCRAPES" "$CLK_TCK" "$(metric "$addr" ringcast_connections_open)" <<'PY'
import socket, sys, time, statistics

addr, pid, scrapes, hz, open_conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
host, port = addr.split(":")

def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz

def get(path):
    s = socket.create_connection((host, int(port)))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()

quiet = 5.0
c0 = cpu(); time.sleep(quiet); idle_rate = (cpu() - c0) / quiet
walls, renders, size = [], [], 0
c0, t0 = cpu(), time.monotonic()
for _ in range(scrapes):
    start = time.monotonic()
    text = get("/metrics")
    walls.append(time.monotonic() - start)
    size = len(text)
    # The previous scrape's render time, as the server measured it on its core.
    renders += [float(l.split()[1]) for l in text.splitlines() if l.startswith("ringcast_metrics_render_seconds ")]
window = time.monotonic() - t0
spent = cpu() - c0 - idle_rate * window
walls.sort()
renders = sorted(renders[1:])  # the first reports the render before the measured window
pct = lambda q, xs=walls: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000
print(f"connections open        {float(open_conns):.0f}")
print(f"scrapes                 {scrapes} ({size} bytes each)")
print(f"server CPU per scrape   {spent / scrapes * 1000:.2f} ms (idle {idle_rate * 100:.2f}% of a core subtracted)")
print(f"scrape wall time        p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, max {walls[-1] * 1000:.2f} ms")
print(f"render time on its core p50 {pct(0.5, renders):.3f} ms, p99 {pct(0.99, renders):.3f} ms, max {renders[-1] * 1000:.3f} ms (wall clock: preemption included)")
for core in (0, 1):
    hgrm = get(f"/debug/latency?core={core}&metric=timer_pass_duration")
    line = next(l for l in hgrm.splitlines() if l.startswith("#[Max"))
    print(f"core {core} longest timer pass (incl. histogram copy) {float(line.split('=')[1].split(',')[0]):.1f} us")
PY
rm -f "$out" "$out.lg"
