//! The benchmark matrix: which servers run, under which workload, and what is reported.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// A server implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// The ringcast server (`--mode echo`).
    Ringcast,
    /// The fastwebsockets peer.
    FastWebSockets,
    /// The tokio-tungstenite peer.
    TokioTungstenite,
}

impl Server {
    /// File name of the release binary.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Ringcast => "ringcast",
            Self::FastWebSockets => "peer-fastwebsockets",
            Self::TokioTungstenite => "peer-tokio-tungstenite",
        }
    }

    /// Short name used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ringcast => "ringcast",
            Self::FastWebSockets => "fastwebsockets",
            Self::TokioTungstenite => "tokio-tungstenite",
        }
    }
}

/// How a variant's results are used in the ratio lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Ringcast in the configuration being compared.
    Subject,
    /// A peer server; ringcast is compared against the best of them.
    Peer,
    /// Ringcast in a reference configuration (one core in the scaling scenario).
    Baseline,
}

/// One server configuration within a scenario.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// Which server.
    pub server: Server,
    /// Worker threads (ringcast `--cores`, peers `--threads`).
    pub workers: u16,
    /// Whether the server runs under `taskset -c 0`.
    pub pinned: bool,
    /// Role in the ratio lines.
    pub role: Role,
}

impl Variant {
    /// The three servers, one worker each, pinned to core 0.
    fn single_core_trio() -> Vec<Self> {
        [
            (Server::Ringcast, Role::Subject),
            (Server::FastWebSockets, Role::Peer),
            (Server::TokioTungstenite, Role::Peer),
        ]
        .into_iter()
        .map(|(server, role)| Self {
            server,
            workers: 1,
            pinned: true,
            role,
        })
        .collect()
    }

    /// Table label, e.g. `ringcast`, `fastwebsockets x2`; a baseline always shows its worker count.
    pub fn label(&self) -> String {
        match (self.workers, self.role) {
            (1, Role::Subject | Role::Peer) => self.server.label().to_owned(),
            (n, _) => format!("{} x{n}", self.server.label()),
        }
    }

    /// The command that starts this variant listening on `addr`.
    pub fn command(&self, bin_dir: &Path, addr: SocketAddr) -> Command {
        let exe = bin_dir.join(self.server.binary());
        let mut cmd = if self.pinned {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", "0"]).arg(exe);
            taskset
        } else {
            Command::new(exe)
        };
        let workers = self.workers.to_string();
        cmd.args(["--listen", &addr.to_string()]);
        match self.server {
            Server::Ringcast => cmd.args(["--mode", "echo", "--cores", &workers]),
            Server::FastWebSockets | Server::TokioTungstenite => cmd.args(["--threads", &workers]),
        };
        cmd
    }
}

/// The load applied to each server.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// `ringcast-loadgen echo`: `conns` connections, each keeping `in_flight` messages of `size` bytes outstanding.
    Echo { conns: u32, in_flight: u32, size: u32 },
    /// `ringcast-loadgen churn`: `conns` concurrent loops of connect, handshake, close.
    Churn { conns: u32 },
    /// `ringcast-loadgen connect`: `conns` idle connections held for `hold_secs` while memory is sampled.
    Idle { conns: u32, hold_secs: u64 },
}

/// Whether larger or smaller values of a metric are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Throughput-like metrics.
    Higher,
    /// Latency- and memory-like metrics.
    Lower,
}

/// A reported quantity: `key` is a dotted path into the loadgen's JSON report (or a key the
/// idle-memory measurement fills in itself).
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Key in a sample.
    pub key: &'static str,
    /// Column heading.
    pub label: &'static str,
    /// Direction of improvement.
    pub better: Better,
    /// Whether ringcast's ratio against the best peer is printed for it.
    pub headline: bool,
}

const fn metric(key: &'static str, label: &'static str, better: Better, headline: bool) -> Metric {
    Metric {
        key,
        label,
        better,
        headline,
    }
}

/// Sample key: server RSS growth per idle connection, bytes.
pub const RSS_PER_CONN: &str = "rss_bytes_per_conn";
/// Sample key: kernel TCP memory growth per idle connection (both loopback ends), bytes.
pub const SOCK_MEM_PER_CONN: &str = "kernel_tcp_bytes_per_conn";
/// Sample key: server CPU time over the measured window as a percentage of one core (derived
/// from the report's `server_cpu_seconds` and `duration_s`); near 100 the server was the bottleneck.
pub const SERVER_BUSY: &str = "server_busy_pct";
/// Sample key: errors counted by the load generator.
pub const ERRORS: &str = "errors_total";
/// Sample key: connections the server had accepted (growth of its open descriptors) when memory was sampled.
pub const CONNS_OPEN: &str = "conns_open";

const ECHO_METRICS: &[Metric] = &[
    metric("msgs_per_sec", "msgs/s", Better::Higher, true),
    metric("msgs_per_server_cpu_sec", "msgs/server-cpu-s", Better::Higher, true),
    metric(SERVER_BUSY, "server busy %", Better::Lower, false),
    metric("latency_us.p50", "p50 us", Better::Lower, false),
    metric("latency_us.p99", "p99 us", Better::Lower, false),
    metric(ERRORS, "errors", Better::Lower, false),
];

const CHURN_METRICS: &[Metric] = &[
    metric("handshakes_per_sec", "handshakes/s", Better::Higher, true),
    metric(
        "handshakes_per_server_cpu_sec",
        "handshakes/server-cpu-s",
        Better::Higher,
        true,
    ),
    metric(SERVER_BUSY, "server busy %", Better::Lower, false),
    metric(ERRORS, "errors", Better::Lower, false),
];

const IDLE_METRICS: &[Metric] = &[
    metric(RSS_PER_CONN, "RSS bytes/conn", Better::Lower, true),
    metric(SOCK_MEM_PER_CONN, "kernel TCP bytes/conn", Better::Lower, false),
    metric(CONNS_OPEN, "conns open", Better::Higher, false),
    metric(ERRORS, "errors", Better::Lower, false),
];

impl Workload {
    /// The metrics reported for this workload, in column order.
    pub fn metrics(&self) -> &'static [Metric] {
        match self {
            Self::Echo { .. } => ECHO_METRICS,
            Self::Churn { .. } => CHURN_METRICS,
            Self::Idle { .. } => IDLE_METRICS,
        }
    }
}

/// A named workload run against a set of server variants.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name matched by `--only`.
    pub name: String,
    /// The load.
    pub workload: Workload,
    /// Servers, in the order each repetition runs them.
    pub variants: Vec<Variant>,
    /// `--core-list` given to the load generator.
    pub client_cores: &'static str,
    /// Caveat printed with the table.
    pub note: &'static str,
}

/// Note for scenarios where server and client each own one core.
const PINNED_NOTE: &str = "server pinned to core 0 (taskset), load generator pinned to core 1";

/// Every scenario, in run order.
pub fn all() -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    for (conns, size) in [(100, 20), (10, 1024), (1000, 20)] {
        for in_flight in [1, 16] {
            scenarios.push(Scenario {
                name: format!("echo-{conns}x{}-inflight{in_flight}", size_label(size)),
                workload: Workload::Echo { conns, in_flight, size },
                variants: Variant::single_core_trio(),
                client_cores: "1",
                note: PINNED_NOTE,
            });
        }
    }
    scenarios.push(Scenario {
        name: "handshake-churn-50".to_owned(),
        workload: Workload::Churn { conns: 50 },
        variants: Variant::single_core_trio(),
        client_cores: "1",
        note: PINNED_NOTE,
    });
    scenarios.push(Scenario {
        name: "idle-memory-10000".to_owned(),
        workload: Workload::Idle {
            conns: 10_000,
            hold_secs: 5,
        },
        variants: Variant::single_core_trio(),
        client_cores: "1",
        note: "server pinned to core 0, load generator on core 1; memory sampled 1 s after the server has \
               accepted them all, while held; kernel TCP memory is system-wide and counts both loopback ends",
    });
    let mut two_core: Vec<Variant> = Variant::single_core_trio()
        .into_iter()
        .map(|variant| Variant {
            workers: 2,
            pinned: false,
            ..variant
        })
        .collect();
    two_core.push(Variant {
        server: Server::Ringcast,
        workers: 1,
        pinned: false,
        role: Role::Baseline,
    });
    scenarios.push(Scenario {
        name: "two-core-echo-100x20B-inflight16".to_owned(),
        workload: Workload::Echo {
            conns: 100,
            in_flight: 16,
            size: 20,
        },
        variants: two_core,
        client_cores: "0,1",
        note: "servers NOT pinned (2 workers; ringcast x1 is the one-core baseline) and the load generator \
               runs on cores 0,1 too: client and server share both cores, so compare only within this table",
    });
    scenarios
}

/// `20B`, `1KiB`.
fn size_label(size: u32) -> String {
    if size % 1024 == 0 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_and_each_has_exactly_one_subject() {
        let scenarios = all();
        let mut names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), scenarios.len());
        for scenario in &scenarios {
            let subjects = scenario.variants.iter().filter(|v| v.role == Role::Subject).count();
            assert_eq!(subjects, 1, "{}", scenario.name);
            assert!(
                scenario.variants.iter().any(|v| v.role == Role::Peer),
                "{}",
                scenario.name
            );
        }
        assert!(names.contains(&"echo-10x1KiB-inflight16"));
    }

    #[test]
    fn pinned_ringcast_command_uses_taskset_and_echo_mode() {
        let variant = Variant {
            server: Server::Ringcast,
            workers: 1,
            pinned: true,
            role: Role::Subject,
        };
        let cmd = variant.command(Path::new("bin"), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cmd.get_program(), "taskset");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "-c",
                "0",
                "bin/ringcast",
                "--listen",
                "127.0.0.1:9000",
                "--mode",
                "echo",
                "--cores",
                "1"
            ]
        );
    }

    #[test]
    fn unpinned_peer_command_passes_threads() {
        let variant = Variant {
            server: Server::TokioTungstenite,
            workers: 2,
            pinned: false,
            role: Role::Peer,
        };
        let cmd = variant.command(Path::new("bin"), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cmd.get_program(), "bin/peer-tokio-tungstenite");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["--listen", "127.0.0.1:9000", "--threads", "2"]);
        assert_eq!(variant.label(), "tokio-tungstenite x2");
    }
}
