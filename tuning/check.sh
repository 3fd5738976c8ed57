#!/usr/bin/env bash
# Checks whether this host's limits allow one ringcast process to hold TARGET_CONNECTIONS
# connections on CORES cores (default: all online cores). Read-only: it changes nothing and
# needs no root. For every item it prints OK or MISSING, and for MISSING the command (and the
# persistent line) that fixes it. Exit status: 0 when everything is OK, 1 otherwise, 2 on bad usage.
#
# Usage: tuning/check.sh TARGET_CONNECTIONS [CORES]
#
# Memory model (bytes; override with the environment variables of the same name). The defaults
# come from tuning/measure-memory.sh (see tuning/README.md), rounded up; rerun it after server changes.
#   SERVER_BYTES_PER_CONN    ringcast resident memory per idle connection (measured 338)
#   KERNEL_BYTES_PER_SOCKET  kernel slab per established TCP socket: tcp_sock, inode, file, dentry,
#                            io_uring request (measured ~4.4-4.9 KiB: half the loopback figure)
#   BUFFER_BYTES_PER_CONN    headroom for socket buffers while data is in flight (idle: 0; one page
#                            each when every connection has a message in flight, as in a broadcast)
#   SERVER_BASE_BYTES, SERVER_BYTES_PER_CORE   fixed server memory
set -uo pipefail

SERVER_BYTES_PER_CONN=${SERVER_BYTES_PER_CONN:-384}
KERNEL_BYTES_PER_SOCKET=${KERNEL_BYTES_PER_SOCKET:-4608}
BUFFER_BYTES_PER_CONN=${BUFFER_BYTES_PER_CONN:-4096}
SERVER_BASE_BYTES=${SERVER_BASE_BYTES:-$((8 << 20))}
SERVER_BYTES_PER_CORE=${SERVER_BYTES_PER_CORE:-$((4 << 20))}
# Descriptors the server uses besides connections: listeners, rings, eventfds, timers, stdio.
FD_MARGIN=1024
# ringcast listens with a backlog of 4096 on each core's SO_REUSEPORT listener.
RINGCAST_BACKLOG=4096
# io_uring ring size per core: 4096 SQEs (64 B) + 8192 CQEs (16 B) + index array, rounded up.
URING_BYTES_PER_CORE=$((512 << 10))
SYSCTL_FILE=/etc/sysctl.d/90-ringcast.conf
LIMITS_FILE=/etc/security/limits.d/90-ringcast.conf

usage() { echo "usage: $0 TARGET_CONNECTIONS [CORES]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
TARGET=$1
CORES=${2:-$(nproc)}
[[ $TARGET =~ ^[1-9][0-9]*$ ]] || usage
[[ $CORES =~ ^[1-9][0-9]*$ ]] || usage

MISSING=0
ok() { printf 'OK       %s\n' "$1"; }
missing() {
    MISSING=$((MISSING + 1))
    printf 'MISSING  %s\n' "$1"
    shift
    local fix
    for fix in "$@"; do printf '         fix: %s\n' "$fix"; done
}
max() { if [ "$1" -ge "$2" ]; then echo "$1"; else echo "$2"; fi; }
min() { if [ "$1" -le "$2" ]; then echo "$1"; else echo "$2"; fi; }
mib() { echo "$(( ($1 + (1 << 20) - 1) >> 20 )) MiB"; }
read_sysctl() { local f=/proc/sys/${1//.//}; [ -r "$f" ] && tr -s ' \t' ' ' <"$f"; }
# Big enough means >= need; "unlimited" always is.
enough() { [ "$1" = unlimited ] || [ "$1" -ge "$2" ]; }

# Checks one single-value sysctl against a minimum; suggests max(need, recommended).
check_sysctl() {
    local key=$1 need=$2 recommended=$3 why=$4 cur
    cur=$(read_sysctl "$key")
    if [ -z "$cur" ]; then
        missing "$key: not readable on this kernel ($why)"
    elif [ "$cur" -ge "$need" ]; then
        ok "$key = $cur (need >= $need; $why)"
    else
        local want
        want=$(max "$need" "$recommended")
        missing "$key = $cur (need >= $need; $why)" \
            "sysctl -w $key=$want   # persist: '$key = $want' in $SYSCTL_FILE"
    fi
}

echo "ringcast host check: $TARGET connections on $CORES cores ($(uname -r), $(date -u +%Y-%m-%d))"
FDS=$((TARGET + FD_MARGIN))

# Open files of the server process: soft limit is what counts (ringcast does not raise it).
soft=$(ulimit -Sn) hard=$(ulimit -Hn)
if enough "$soft" "$FDS"; then
    ok "RLIMIT_NOFILE soft $soft, hard $hard (need >= $FDS: one descriptor per connection + $FD_MARGIN)"
else
    want=$(max "$FDS" 2000000)
    fixes=()
    if enough "$hard" "$FDS"; then
        fixes+=("this shell: ulimit -n $FDS   (the hard limit $hard allows it)")
    fi
    nr_open=$(read_sysctl fs.nr_open)
    if [ "${nr_open:-0}" -lt "$want" ]; then
        fixes+=("persistent, first: sysctl -w fs.nr_open=$(max "$want" 2097152)   (no limit may exceed fs.nr_open)")
    fi
    fixes+=("persistent, systemd: LimitNOFILE=$want in ringcast.service (tuning/ringcast.service)"
        "persistent, login shells: '<user> - nofile $want' in $LIMITS_FILE, log in again, ulimit -n $want")
    missing "RLIMIT_NOFILE soft $soft, hard $hard (need >= $FDS: one descriptor per connection + $FD_MARGIN)" "${fixes[@]}"
fi

check_sysctl fs.nr_open "$FDS" 2097152 "per-process ceiling for RLIMIT_NOFILE"

# System-wide open files: what is in use now plus what the server will add.
in_use=$(awk '{ print $1 }' /proc/sys/fs/file-nr 2>/dev/null || echo 0)
check_sysctl fs.file-max $((in_use + FDS)) 4194304 "system-wide open files: $in_use in use now + $FDS"

# Accept backlogs need not exceed the number of clients; ringcast asks for RINGCAST_BACKLOG.
check_sysctl net.core.somaxconn "$(min "$TARGET" "$RINGCAST_BACKLOG")" 65535 \
    "caps ringcast's listen backlog of $RINGCAST_BACKLOG per core"
check_sysctl net.ipv4.tcp_max_syn_backlog "$(min "$TARGET" 65535)" 65535 \
    "half-open connections during a reconnect storm"

# Ephemeral ports: one per connection per (source address, destination address:port).
range=$(read_sysctl net.ipv4.ip_local_port_range)
lo=${range% *} hi=${range#* }
ports=$((hi - lo + 1))
need_ports=$(min "$TARGET" 64512)
sources=$(( (TARGET + 64511) / 64512 ))
if [ "$ports" -ge "$need_ports" ]; then
    ok "net.ipv4.ip_local_port_range = $lo $hi ($ports ports; load-generator hosts: one port per connection per source address; spread $TARGET connections over >= $(( (TARGET + ports - 1) / ports )) source addresses)"
else
    missing "net.ipv4.ip_local_port_range = $lo $hi ($ports ports; load-generator hosts need $need_ports, and $TARGET connections need >= $sources source addresses at 64512 ports each)" \
        "sysctl -w net.ipv4.ip_local_port_range='1024 65535'   # persist in $SYSCTL_FILE" \
        "ringcast-loadgen connect ... --source-addrs 127.0.0.1-127.0.0.$sources (or several client hosts)"
fi

# TCP buffer memory, in pages: pressure >= one page per connection (a message in flight on every
# connection at once), hard limit >= two pages per connection.
page=$(getconf PAGESIZE)
read -r mem_low mem_pressure mem_high <<<"$(read_sysctl net.ipv4.tcp_mem)"
per_conn_pages=$(( (BUFFER_BYTES_PER_CONN + page - 1) / page ))
need_pressure=$((TARGET * per_conn_pages)) need_high=$((2 * TARGET * per_conn_pages))
if [ "$mem_pressure" -ge "$need_pressure" ] && [ "$mem_high" -ge "$need_high" ]; then
    ok "net.ipv4.tcp_mem = $mem_low $mem_pressure $mem_high pages (need pressure >= $need_pressure, max >= $need_high: $per_conn_pages page(s) in flight per connection)"
else
    new_low=$(max "$mem_low" "$need_pressure") new_p=$(max "$mem_pressure" $((need_pressure * 3 / 2)))
    new_h=$(max "$mem_high" "$need_high")
    missing "net.ipv4.tcp_mem = $mem_low $mem_pressure $mem_high pages (need pressure >= $need_pressure, max >= $need_high: $per_conn_pages page(s) in flight per connection)" \
        "sysctl -w net.ipv4.tcp_mem='$new_low $new_p $new_h'   # persist in $SYSCTL_FILE; max = $(mib $((new_h * page))) of RAM"
fi

# io_uring: switched off by sysctl (6.6+), or blocked by seccomp (containers).
disabled=$(read_sysctl kernel.io_uring_disabled)
case ${disabled:-absent} in
    0 | absent) uring_sysctl="kernel.io_uring_disabled=${disabled:-absent}" ;;
    1) uring_sysctl="" ; missing "kernel.io_uring_disabled = 1 (only members of kernel.io_uring_group may use io_uring; ringcast --io auto falls back to epoll)" \
        "sysctl -w kernel.io_uring_disabled=0, or run the service with the group in kernel.io_uring_group ($(read_sysctl kernel.io_uring_group))" ;;
    *) uring_sysctl="" ; missing "kernel.io_uring_disabled = $disabled (io_uring is off; ringcast --io auto falls back to epoll)" \
        "sysctl -w kernel.io_uring_disabled=0   # persist in $SYSCTL_FILE" ;;
esac
if [ -n "$uring_sysctl" ]; then
    probe=""
    if command -v python3 >/dev/null; then
        # io_uring_setup(2) is syscall 425 on every architecture with the generic syscall table.
        probe=$(python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 4, params)
print("ok" if fd >= 0 else os.strerror(ctypes.get_errno()))
if fd >= 0: os.close(fd)' 2>&1)
    fi
    case $probe in
        ok) ok "io_uring: $uring_sysctl, io_uring_setup works for this user" ;;
        "") ok "io_uring: $uring_sysctl (no python3 to probe io_uring_setup; ringcast --io auto logs a fallback to epoll if it fails)" ;;
        *) missing "io_uring: $uring_sysctl but io_uring_setup fails: $probe (seccomp profile or old kernel?)" \
            "allow io_uring_setup/io_uring_enter/io_uring_register in the container's seccomp profile, or run ringcast --io epoll" ;;
    esac
fi

# Locked memory: io_uring rings are charged to RLIMIT_MEMLOCK before Linux 5.12, to the cgroup after.
kver=$(uname -r) kmaj=${kver%%.*} kmin=${kver#*.}
kmin=${kmin%%[!0-9]*}
memlock=$(ulimit -Sl)
need_lock_kib=$((CORES * URING_BYTES_PER_CORE / 1024))
if [ "$kmaj" -gt 5 ] || { [ "$kmaj" -eq 5 ] && [ "$kmin" -ge 12 ]; }; then
    ok "RLIMIT_MEMLOCK ${memlock} KiB (kernel $kmaj.$kmin >= 5.12 charges io_uring rings to the memory cgroup; LimitMEMLOCK=infinity still recommended)"
elif enough "$memlock" "$need_lock_kib"; then
    ok "RLIMIT_MEMLOCK ${memlock} KiB (need >= $need_lock_kib KiB: io_uring rings of $CORES cores on kernel $kmaj.$kmin)"
else
    missing "RLIMIT_MEMLOCK ${memlock} KiB (need >= $need_lock_kib KiB: io_uring rings of $CORES cores on kernel $kmaj.$kmin < 5.12)" \
        "systemd: LimitMEMLOCK=infinity in ringcast.service" \
        "shell: '<user> - memlock unlimited' in $LIMITS_FILE, then ulimit -l unlimited"
fi

# epoll fallback: one watch per connection.
check_sysctl fs.epoll.max_user_watches "$FDS" 2097152 "only used with --io epoll or the auto fallback"

# Connection tracking, when the module is loaded: one entry per connection.
if [ -r /proc/sys/net/netfilter/nf_conntrack_max ]; then
    check_sysctl net.netfilter.nf_conntrack_max "$FDS" 2097152 "one conntrack entry per connection; a full table drops new connections"
else
    ok "net.netfilter.nf_conntrack_max: conntrack not loaded (nothing to size)"
fi

# Memory: server RSS + kernel socket objects + in-flight buffer headroom.
need_server=$((SERVER_BASE_BYTES + CORES * SERVER_BYTES_PER_CORE + TARGET * SERVER_BYTES_PER_CONN))
need_kernel=$((TARGET * KERNEL_BYTES_PER_SOCKET))
need_buffers=$((TARGET * BUFFER_BYTES_PER_CONN))
need_mem=$((need_server + need_kernel + need_buffers))
avail=$(( $(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo) * 1024 ))
where="MemAvailable"
cg=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup 2>/dev/null)
if [ -n "$cg" ] && [ -r "/sys/fs/cgroup$cg/memory.max" ]; then
    cg_max=$(cat "/sys/fs/cgroup$cg/memory.max")
    cg_cur=$(cat "/sys/fs/cgroup$cg/memory.current" 2>/dev/null || echo 0)
    if [ "$cg_max" != max ] && [ $((cg_max - cg_cur)) -lt "$avail" ]; then
        avail=$((cg_max - cg_cur)) where="room in this cgroup ($cg)"
    fi
fi
model="server $(mib "$need_server") + kernel sockets $(mib "$need_kernel") + in-flight buffers $(mib "$need_buffers") = $(mib "$need_mem")"
if [ "$avail" -ge "$need_mem" ]; then
    ok "memory: $where $(mib "$avail") >= $model"
else
    missing "memory: $where $(mib "$avail") < $model" \
        "a host with >= $(mib "$need_mem") free (plus what else runs there), or fewer connections per host"
fi

echo
if [ "$MISSING" -eq 0 ]; then
    echo "all OK for $TARGET connections"
    exit 0
fi
echo "$MISSING item(s) MISSING for $TARGET connections; persistent settings: tuning/README.md"
exit 1
