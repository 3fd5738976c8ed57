#!/usr/bin/env bash
# Measures what idle WebSocket connections cost in memory, at several connection counts, and
# fits bytes-per-connection + fixed base (least squares) for each quantity:
#
#   server RSS     VmRSS of the ringcast process (/proc/PID/status)
#   loadgen RSS    sum of VmRSS over every ringcast-loadgen process of the run (parent + workers)
#   TCP mem        /proc/net/sockstat "TCP: mem" (pages x page size): socket buffer memory
#   TCP buffers    the same memory counted per socket for this run's connections only: the sum of
#                  `ss -m` skmem r (receive queue) + w (send queue) + f (forward allocation), both
#                  ends; unlike sockstat it is not disturbed by other processes on the host
#   sockets        /proc/net/sockstat "sockets: used"
#   slab           /proc/meminfo "Slab": kernel objects per socket (tcp_sock, inode, file, ...),
#                  which "TCP: mem" does not include
#
# sockstat and Slab are machine-wide, so each is taken as the change from a snapshot
# taken just before the load generator starts (other processes on the host add noise).
# Over loopback the kernel holds BOTH ends of every connection: per server-side socket, halve
# the kernel figures.
#
# Each point: a fresh `ringcast --cores 1 --log-level warn` on a free port, then
# `ringcast-loadgen connect --conns N --ramp-rate 0 --hold 5s --procs P --source-addrs ...`;
# the sample is taken while the connections are held idle.
#
# Usage: tuning/measure-memory.sh [CONNS...]           (default: 1000 5000 10000 19000)
# Environment (all optional):
#   RINGCAST_BIN, LOADGEN_BIN   binaries (default: target/release/ of this checkout)
#   PROCS=3                     loadgen processes at every point (same base at every point);
#                               raised where a process would exceed MAX_PER_PROC connections
#   MAX_PER_PROC=9000           most connections per loadgen process
#   SOURCE_ADDRS=127.0.0.1-127.0.0.20   loopback source addresses to spread connections over
#   HOLD=5s                     how long loadgen holds the connections
#   SETTLE_S=1.5                wait after the last connection is up before sampling
#   DEADLINE_S=170              the whole run is killed after this many seconds
#   CSV=FILE                    also write the raw points as CSV
#   SERVER_ARGS="--mode push"   extra ringcast flags (e.g. push mode with history)
#   URL_PATH="/ws?topics=t"     upgrade path and query (e.g. subscribers of one topic)
# Needs: bash, awk, ss (iproute2), timeout, setsid. Read-only towards the system; no root needed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER_BIN=${RINGCAST_BIN:-$ROOT/target/release/ringcast}
LOADGEN_BIN=${LOADGEN_BIN:-$ROOT/target/release/ringcast-loadgen}
PROCS=${PROCS:-3}
MAX_PER_PROC=${MAX_PER_PROC:-9000}
SOURCE_ADDRS=${SOURCE_ADDRS:-127.0.0.1-127.0.0.20}
HOLD=${HOLD:-5s}
SETTLE_S=${SETTLE_S:-1.5}
DEADLINE_S=${DEADLINE_S:-170}
CSV=${CSV:-}
SERVER_ARGS=${SERVER_ARGS:-}
URL_PATH=${URL_PATH:-/}
POINTS=("$@")
[ ${#POINTS[@]} -gt 0 ] || POINTS=(1000 5000 10000 19000)

PAGE=$(getconf PAGESIZE)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringcast-measure.XXXXXX")
SERVER_PID=""
LOADGEN_PGID=""
WATCHDOG_PID=""

die() { echo "measure-memory: $*" >&2; exit 1; }

# Stops everything this script started, by pid / own process group only.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$LOADGEN_PGID" ] && kill -KILL -- "-$LOADGEN_PGID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null || true
    [ -n "$WATCHDOG_PID" ] && kill -- "-$WATCHDOG_PID" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "measure-memory: interrupted" >&2; exit 130' INT TERM

for bin in "$SERVER_BIN" "$LOADGEN_BIN"; do
    [ -x "$bin" ] || die "$bin not found; build with: cargo build --release --bin ringcast -p ringcast-loadgen"
done
for tool in awk ss timeout setsid; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
# Run copies, so that a rebuild during the run cannot mix two versions.
BUILT=$(date -u -r "$SERVER_BIN" +%Y-%m-%dT%H:%MZ)
cp "$SERVER_BIN" "$WORK/ringcast" && cp "$LOADGEN_BIN" "$WORK/ringcast-loadgen"
SERVER_SRC=$SERVER_BIN SERVER_BIN=$WORK/ringcast LOADGEN_BIN=$WORK/ringcast-loadgen
nofile=$(ulimit -n)
for n in "${POINTS[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] || die "connection count '$n' is not a number"
    if [ "$nofile" != unlimited ] && [ $((n + 200)) -gt "$nofile" ]; then
        die "$n connections need more open files than RLIMIT_NOFILE=$nofile allows the (single) server process"
    fi
done

# Whole-run bound: the watchdog signals this script, whose trap kills the rest.
# It runs in its own process group so that killing the group also ends its sleep.
setsid bash -c "sleep $DEADLINE_S; echo 'measure-memory: deadline of ${DEADLINE_S}s reached' >&2; kill -TERM $$" &
WATCHDOG_PID=$!

rss_kib() { awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
tcp_mem_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
sockets_used() { awk '$1 == "sockets:" { print $3 }' /proc/net/sockstat; }
slab_kib() { awk '$1 == "Slab:" { print $2 }' /proc/meminfo; }
# Bytes per slab cache (num_objs x objsize); /proc/slabinfo is readable by root only.
slab_caches() { awk 'NR > 2 { print $1, $3 * $4 }' /proc/slabinfo 2>/dev/null || true; }
established() { ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l; }
# Bytes of socket buffer memory (skmem r + w + f) held by both ends of the connections to port $1.
skmem_bytes() {
    ss -Htmn state established "( sport = :$1 or dport = :$1 )" 2>/dev/null | grep -o 'skmem:([^)]*)' |
        awk -F'[(),]' '{ for (i = 2; i <= NF; i++) if ($i ~ /^[rwf][0-9]+$/) t += substr($i, 2) } END { print t + 0 }'
}

# Sum of VmRSS (KiB) of the loadgen processes (comm is cut to 15 characters) in the run's group.
loadgen_rss_kib() {
    local total=0 pid
    for pid in $(pgrep -g "$LOADGEN_PGID" '^ringcast-loadge' || true); do
        total=$((total + $(rss_kib "$pid")))
    done
    echo "$total"
}

# Starts a fresh server on a free loopback port; sets SERVER_PID and PORT.
start_server() {
    local log=$WORK/server.log _
    # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
    setsid "$SERVER_BIN" --listen 127.0.0.1:0 --cores 1 --log-level warn $SERVER_ARGS >"$log" 2>&1 &
    SERVER_PID=$!
    PORT=""
    for _ in $(seq 100); do
        PORT=$(sed -n 's#^listening on ws://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' "$log" | head -n1)
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    die "server did not start"
}

stop_server() {
    local _
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

ROWS=()
printf '%-7s %-6s %s\n' conns procs "(measuring; ~7 s per point)" >&2
for n in "${POINTS[@]}"; do
    procs=$(( (n + MAX_PER_PROC - 1) / MAX_PER_PROC ))
    [ "$procs" -ge "$PROCS" ] || procs=$PROCS
    start_server
    sleep 0.3
    base_tcp=$(tcp_mem_pages) base_sock=$(sockets_used) base_slab=$(slab_kib)
    slab_caches >"$WORK/slab.before"

    out=$WORK/loadgen.$n.out
    setsid timeout --kill-after=5 60 "$LOADGEN_BIN" connect --url "ws://127.0.0.1:$PORT$URL_PATH" --conns "$n" \
        --ramp-rate 0 --hold "$HOLD" --procs "$procs" --source-addrs "$SOURCE_ADDRS" --quiet --json \
        >"$out" 2>"$WORK/loadgen.$n.err" &
    LOADGEN_PGID=$!

    # Wait (at most 30 s) until the server side holds all N connections, then let them settle.
    up=0
    for _ in $(seq 300); do
        up=$(established "$PORT")
        [ "$up" -ge "$n" ] && break
        kill -0 "$LOADGEN_PGID" 2>/dev/null || break
        sleep 0.1
    done
    [ "$up" -ge "$n" ] || { cat "$WORK/loadgen.$n.err" >&2; die "only $up of $n connections came up"; }
    sleep "$SETTLE_S"

    srv=$(rss_kib "$SERVER_PID")
    lg=$(loadgen_rss_kib)
    tcp=$(( ($(tcp_mem_pages) - base_tcp) * PAGE / 1024 ))
    skbuf=$(( $(skmem_bytes "$PORT") / 1024 ))
    sock=$(( $(sockets_used) - base_sock ))
    slab=$(( $(slab_kib) - base_slab ))
    slab_caches >"$WORK/slab.after"
    LAST_N=$n
    held=$(established "$PORT")

    wait "$LOADGEN_PGID" || { cat "$WORK/loadgen.$n.err" >&2; die "loadgen failed at $n connections"; }
    LOADGEN_PGID=""
    summary=$(tail -n1 "$out")
    case $summary in
        *"\"conns_established\":$n,"*'"errors_total":0,'*) ;;
        *) die "loadgen did not hold $n connections without errors: $summary" ;;
    esac
    stop_server
    [ "$held" -ge "$n" ] || die "connections dropped while sampling ($held of $n held)"

    if [ $((sock > 2 * n ? sock - 2 * n : 2 * n - sock)) -gt $((n / 20)) ]; then
        echo "measure-memory: warning: at $n connections 'sockets used' changed by $sock, not ~$((2 * n)):" \
            "other processes disturbed the machine-wide columns (sockstat, slab); consider rerunning" >&2
    fi
    printf '%-7s %-6s server %s KiB, loadgen %s KiB, tcp mem %s KiB, tcp buffers %s KiB, sockets %s, slab %s KiB\n' \
        "$n" "$procs" "$srv" "$lg" "$tcp" "$skbuf" "$sock" "$slab" >&2
    ROWS+=("$n $procs $srv $lg $tcp $skbuf $sock $slab")
done

if [ -n "$CSV" ]; then
    { echo "conns,loadgen_procs,server_rss_kib,loadgen_rss_kib,tcp_mem_kib,tcp_buffers_kib,sockets_used,slab_kib"
      printf '%s\n' "${ROWS[@]}" | tr ' ' ','; } >"$CSV"
fi

echo "# ringcast idle-connection memory, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, kernel $(uname -r)"
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev+uncommitted changes"
echo "# binaries: $SERVER_SRC built $BUILT, git $rev"
echo "# server: ringcast --cores 1 --log-level warn; loadgen: connect --ramp-rate 0 --hold $HOLD --source-addrs $SOURCE_ADDRS"
echo "# kernel columns: change in machine-wide values while held; loopback = both ends of every connection"
echo
printf '%s\n' "${ROWS[@]}" | awk '
    BEGIN {
        print "| connections | loadgen procs | server RSS (KiB) | loadgen RSS (KiB) | sockstat TCP mem (KiB) | TCP buffers, ss (KiB) | sockets used | slab (KiB) |"
        print "|---:|---:|---:|---:|---:|---:|---:|---:|"
        ncol = split("server RSS|loadgen RSS|sockstat TCP mem (kernel, both ends)|TCP buffers, ss (kernel, both ends)|sockets used (both ends)|slab (kernel, both ends)", name, "|")
        split("1024 1024 1024 1024 1 1024", scale, " ")
    }
    {
        printf "| %d | %d | %d | %d | %d | %d | %d | %d |\n", $1, $2, $3, $4, $5, $6, $7, $8
        n++; x[n] = $1
        for (c = 1; c <= ncol; c++) y[c, n] = $(c + 2) * scale[c]
    }
    function fmt(c, v, per) {
        if (c == 5) return sprintf(per ? "%.2f sockets" : "%.0f sockets", v)
        return per ? sprintf("%.0f bytes", v) : sprintf("%.1f MiB", v / 1048576)
    }
    END {
        print ""
        print "Least-squares fit, value = base + per_conn x connections (last step: slope between the two largest points):"
        print ""
        print "| quantity | per connection | base | last step |"
        print "|---|---:|---:|---:|"
        if (n < 2) { print "(need at least two points to fit)"; exit }
        for (c = 1; c <= ncol; c++) {
            sx = sy = sxx = sxy = 0
            for (i = 1; i <= n; i++) { sx += x[i]; sy += y[c, i]; sxx += x[i] * x[i]; sxy += x[i] * y[c, i] }
            d = n * sxx - sx * sx
            if (d == 0) { printf "| %s | (all points have the same connection count) | | |\n", name[c]; continue }
            slope = (n * sxy - sx * sy) / d
            base = (sy - slope * sx) / n
            step = x[n] == x[n - 1] ? 0 : (y[c, n] - y[c, n - 1]) / (x[n] - x[n - 1])
            printf "| %s | %s | %s | %s |\n", name[c], fmt(c, slope, 1), fmt(c, base, 0), fmt(c, step, 1)
        }
    }'

# Where the slab memory of the last point went (root only: /proc/slabinfo).
if [ -s "$WORK/slab.after" ]; then
    echo
    echo "Slab caches that grew most at $LAST_N connections (both ends; from /proc/slabinfo):"
    echo
    echo "| cache | growth (KiB) | bytes per connection |"
    echo "|---|---:|---:|"
    awk 'NR == FNR { before[$1] = $2; next } { d = $2 - before[$1]; if (d > 0) print d, $1 }' \
        "$WORK/slab.before" "$WORK/slab.after" |
        sort -rn | head -n 10 | awk -v n="$LAST_N" '{ printf "| %s | %d | %.0f |\n", $2, $1 / 1024, $1 / n }'
fi
