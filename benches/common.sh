# Shared by the benchmark scripts (sourced): the release binaries, cleanup of what a script
# started, and readers for a server's CPU time and metrics.

BIN=${BIN:-target/release}
CLK_TCK=$(getconf CLK_TCK)

# Builds the release binaries unless $BIN already has both.
ensure_binaries() {
  [ -x "$BIN/ringcast" ] && [ -x "$BIN/ringcast-loadgen" ] || cargo build --release -p ringcast -p ringcast-loadgen --bins
}

# Processes to kill when the script exits (append with pids+=("$!")).
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# User+system CPU ticks of process $1 (divide by CLK_TCK for seconds).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The value of series $2 in the /metrics of the server at $1 (host:port).
metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
