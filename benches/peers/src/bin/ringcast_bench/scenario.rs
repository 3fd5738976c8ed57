//! The benchmark matrix: which servers run, under which workload and client, and what is reported.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::rc::Rc;

/// Names the built-in servers use in tables; an extra server may not take one of them.
const BUILT_IN_NAMES: [&str; 4] = ["ringcast", "ringcast-epoll", "fastwebsockets", "tokio-tungstenite"];

/// A server given with `--server NAME=CMD`: any WebSocket echo server on the loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraServer {
    /// Table label.
    pub name: String,
    /// Shell command line with `{addr}`, `{port}` and `{threads}` placeholders.
    pub command: String,
}

impl ExtraServer {
    /// Parses `NAME=CMD`: NAME is letters, digits, `.`, `_` and `-` (and not a built-in server's
    /// name); CMD is everything after the first `=` and must contain `{addr}` or `{port}`,
    /// since the harness picks a fresh port for every run.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, command) = text
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=CMD, got {text:?}"))?;
        let (name, command) = (name.trim(), command.trim());
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || !name.chars().all(valid_char) {
            return Err(format!(
                "server name {name:?} must be non-empty letters, digits, '.', '_' or '-'"
            ));
        }
        if BUILT_IN_NAMES.contains(&name) {
            return Err(format!("server name {name:?} is taken by a built-in server"));
        }
        if !command.contains("{addr}") && !command.contains("{port}") {
            return Err(format!(
                "the command of {name:?} must listen where the harness says: use {{addr}} (127.0.0.1:PORT) or {{port}}"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            command: command.to_owned(),
        })
    }

    /// The command line with its placeholders filled in; other braces are left alone.
    pub fn render(&self, addr: SocketAddr, threads: u16) -> String {
        self.command
            .replace("{addr}", &addr.to_string())
            .replace("{port}", &addr.port().to_string())
            .replace("{threads}", &threads.to_string())
    }
}

/// Fails if two extra servers share a name.
pub fn check_unique(extras: &[ExtraServer]) -> Result<(), String> {
    for (at, extra) in extras.iter().enumerate() {
        if extras[..at].iter().any(|earlier| earlier.name == extra.name) {
            return Err(format!("--server name {:?} is given twice", extra.name));
        }
    }
    Ok(())
}

/// A server implementation under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    /// The ringcast server (`--mode echo --io auto`: io_uring).
    Ringcast,
    /// The ringcast server on its epoll fallback (`--io epoll`).
    RingcastEpoll,
    /// The fastwebsockets peer.
    FastWebSockets,
    /// The tokio-tungstenite peer.
    TokioTungstenite,
    /// A server from `--server`.
    Extra(Rc<ExtraServer>),
}

impl Server {
    /// Short name used in tables.
    pub fn label(&self) -> &str {
        match self {
            Self::Ringcast => "ringcast",
            Self::RingcastEpoll => "ringcast-epoll",
            Self::FastWebSockets => "fastwebsockets",
            Self::TokioTungstenite => "tokio-tungstenite",
            Self::Extra(extra) => &extra.name,
        }
    }
}

/// File name of the ringcast release binary.
pub const RINGCAST: &str = "ringcast";
/// File name of the fastwebsockets peer's release binary.
pub const PEER_FASTWEBSOCKETS: &str = "peer-fastwebsockets";
/// File name of the tokio-tungstenite peer's release binary.
pub const PEER_TOKIO_TUNGSTENITE: &str = "peer-tokio-tungstenite";

/// How a variant's results are used in the ratio lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Ringcast in the configuration being compared.
    Subject,
    /// Another server; ringcast is compared against the best of them.
    Peer,
    /// Ringcast in a reference configuration (epoll, or one core in the scaling scenario):
    /// each gets its own ratio line, and none is a peer.
    Baseline,
}

/// One server configuration within a scenario.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Which server.
    pub server: Server,
    /// Worker threads (ringcast `--cores`, peers `--threads`, extra servers `{threads}`).
    pub workers: u16,
    /// Whether the server runs under `taskset -c 0`.
    pub pinned: bool,
    /// Role in the ratio lines.
    pub role: Role,
}

impl Variant {
    /// Every server, `workers` workers each: ringcast (subject), ringcast-epoll (baseline), the
    /// two peers and the extra servers (peers).
    fn every_server(extras: &[Rc<ExtraServer>], workers: u16, pinned: bool) -> Vec<Self> {
        let built_in = [
            (Server::Ringcast, Role::Subject),
            (Server::RingcastEpoll, Role::Baseline),
            (Server::FastWebSockets, Role::Peer),
            (Server::TokioTungstenite, Role::Peer),
        ];
        let extra = extras.iter().map(|extra| (Server::Extra(Rc::clone(extra)), Role::Peer));
        built_in
            .into_iter()
            .chain(extra)
            .map(|(server, role)| Self {
                server,
                workers,
                pinned,
                role,
            })
            .collect()
    }

    /// Table label: the server's name for one pinned worker, else with the worker count
    /// (`fastwebsockets x2`, and `ringcast x1` for the unpinned one-core baseline).
    pub fn label(&self) -> String {
        if self.workers == 1 && self.pinned {
            self.server.label().to_owned()
        } else {
            format!("{} x{}", self.server.label(), self.workers)
        }
    }

    /// The command that starts this variant listening on `addr`.
    pub fn command(&self, bin_dir: &Path, addr: SocketAddr) -> Command {
        let (program, args) = match &self.server {
            Server::Ringcast => (exe(bin_dir, RINGCAST), ringcast_args(addr, self.workers, "auto")),
            Server::RingcastEpoll => (exe(bin_dir, RINGCAST), ringcast_args(addr, self.workers, "epoll")),
            Server::FastWebSockets => (exe(bin_dir, PEER_FASTWEBSOCKETS), peer_args(addr, self.workers)),
            Server::TokioTungstenite => (exe(bin_dir, PEER_TOKIO_TUNGSTENITE), peer_args(addr, self.workers)),
            Server::Extra(extra) => ("sh".to_owned(), vec!["-c".to_owned(), extra.render(addr, self.workers)]),
        };
        let mut cmd = if self.pinned {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", "0"]).arg(program);
            taskset
        } else {
            Command::new(program)
        };
        cmd.args(args);
        cmd
    }
}

/// `ringcast --listen ADDR --mode echo --cores N --io IO`, without the program.
fn ringcast_args(addr: SocketAddr, workers: u16, io: &str) -> Vec<String> {
    let (addr, workers) = (addr.to_string(), workers.to_string());
    ["--listen", &addr, "--mode", "echo", "--cores", &workers, "--io", io]
        .map(str::to_owned)
        .to_vec()
}

/// `peer-* --listen ADDR --threads N`, without the program.
fn peer_args(addr: SocketAddr, workers: u16) -> Vec<String> {
    vec![
        "--listen".to_owned(),
        addr.to_string(),
        "--threads".to_owned(),
        workers.to_string(),
    ]
}

/// Path of `binary` in `bin_dir`, as a string for a command line.
fn exe(bin_dir: &Path, binary: &str) -> String {
    bin_dir.join(binary).display().to_string()
}

/// The program that applies an echo or churn load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// `ringcast-loadgen` (monoio, ringcast's own protocol core).
    Loadgen,
    /// `tungstenite-load` (tokio current_thread, tokio-tungstenite).
    TungsteniteLoad,
}

impl Client {
    /// File name of the release binary, also its name in tables.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Loadgen => "ringcast-loadgen",
            Self::TungsteniteLoad => "tungstenite-load",
        }
    }
}

/// The load applied to each server.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// `conns` connections, each keeping `in_flight` messages of `size` bytes outstanding.
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

/// A reported quantity: `key` is a dotted path into the client's JSON report (or a key the
/// harness fills in itself).
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
/// Sample key: errors counted by the client.
pub const ERRORS: &str = "errors_total";
/// Sample key: echoes whose payload differed from the message sent (`tungstenite-load`).
pub const MISMATCHES: &str = "mismatches";
/// Sample key: connections the server had accepted (growth of its open descriptors) when memory was sampled.
pub const CONNS_OPEN: &str = "conns_open";
/// Sample key: server syscalls per echoed message, from the separate syscall-counting run.
pub const SYSCALLS_PER_MSG: &str = "syscalls_per_msg";

const LOADGEN_ECHO_METRICS: &[Metric] = &[
    metric("msgs_per_sec", "msgs/s", Better::Higher, true),
    metric("msgs_per_server_cpu_sec", "msgs/server-cpu-s", Better::Higher, true),
    metric(SERVER_BUSY, "server busy %", Better::Lower, false),
    metric(SYSCALLS_PER_MSG, "syscalls/msg", Better::Lower, false),
    metric("latency_us.p50", "p50 us", Better::Lower, false),
    metric("latency_us.p99", "p99 us", Better::Lower, false),
    metric(ERRORS, "errors", Better::Lower, false),
];

const TUNGSTENITE_ECHO_METRICS: &[Metric] = &[
    metric("msgs_per_sec", "msgs/s", Better::Higher, true),
    metric("msgs_per_server_cpu_sec", "msgs/server-cpu-s", Better::Higher, true),
    metric(SERVER_BUSY, "server busy %", Better::Lower, false),
    metric(SYSCALLS_PER_MSG, "syscalls/msg", Better::Lower, false),
    metric("latency_us.p50", "p50 us", Better::Lower, false),
    metric("latency_us.p99", "p99 us", Better::Lower, false),
    metric(ERRORS, "errors", Better::Lower, false),
    metric(MISMATCHES, "mismatches", Better::Lower, false),
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
    /// The clients that apply this workload, each getting its own table: echo loads run with
    /// both, churn and idle connections with `ringcast-loadgen` only.
    pub fn clients(&self) -> &'static [Client] {
        match self {
            Self::Echo { .. } => &[Client::Loadgen, Client::TungsteniteLoad],
            Self::Churn { .. } | Self::Idle { .. } => &[Client::Loadgen],
        }
    }

    /// The metrics reported for this workload under `client`, in column order.
    pub fn metrics(&self, client: Client) -> &'static [Metric] {
        match (self, client) {
            (Self::Echo { .. }, Client::Loadgen) => LOADGEN_ECHO_METRICS,
            (Self::Echo { .. }, Client::TungsteniteLoad) => TUNGSTENITE_ECHO_METRICS,
            (Self::Churn { .. }, _) => CHURN_METRICS,
            (Self::Idle { .. }, _) => IDLE_METRICS,
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
    /// Cores the client runs on (`--core-list` of the load generator, `taskset -c` of
    /// `tungstenite-load`).
    pub client_cores: &'static str,
    /// Caveat printed with the table.
    pub note: &'static str,
}

/// Note for scenarios where server and client each own one core.
const PINNED_NOTE: &str = "server pinned to core 0 (taskset), client pinned to core 1";

/// Every scenario, in run order, with the extra servers as peers in each.
pub fn all(extras: &[ExtraServer]) -> Vec<Scenario> {
    let extras: Vec<Rc<ExtraServer>> = extras.iter().cloned().map(Rc::new).collect();
    let single_core = || Variant::every_server(&extras, 1, true);
    let mut scenarios = Vec::new();
    for (conns, size) in [(100, 20), (10, 1024), (1000, 20)] {
        for in_flight in [1, 16] {
            scenarios.push(Scenario {
                name: format!("echo-{conns}x{}-inflight{in_flight}", size_label(size)),
                workload: Workload::Echo { conns, in_flight, size },
                variants: single_core(),
                client_cores: "1",
                note: PINNED_NOTE,
            });
        }
    }
    scenarios.push(Scenario {
        name: "handshake-churn-50".to_owned(),
        workload: Workload::Churn { conns: 50 },
        variants: single_core(),
        client_cores: "1",
        note: PINNED_NOTE,
    });
    scenarios.push(Scenario {
        name: "idle-memory-10000".to_owned(),
        workload: Workload::Idle {
            conns: 10_000,
            hold_secs: 5,
        },
        variants: single_core(),
        client_cores: "1",
        note: "server pinned to core 0, load generator on core 1; memory sampled 1 s after the server has \
               accepted them all, while held; kernel TCP memory is system-wide and counts both loopback ends",
    });
    let mut two_core = Variant::every_server(&extras, 2, false);
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
        note: "servers NOT pinned (2 workers; ringcast x1 is the one-core baseline) and the client runs on \
               cores 0,1 too: client and server share both cores, so compare only within this table",
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

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn extra(text: &str) -> ExtraServer {
        ExtraServer::parse(text).unwrap()
    }

    #[test]
    fn scenario_names_are_unique_and_each_has_exactly_one_subject() {
        let scenarios = all(&[extra("uws=./EchoServer {port}")]);
        let mut names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), scenarios.len());
        for scenario in &scenarios {
            let subjects = scenario.variants.iter().filter(|v| v.role == Role::Subject).count();
            assert_eq!(subjects, 1, "{}", scenario.name);
            let peers: Vec<String> = scenario
                .variants
                .iter()
                .filter(|v| v.role == Role::Peer)
                .map(Variant::label)
                .collect();
            assert_eq!(peers.len(), 3, "{}: {peers:?}", scenario.name);
            let labels: Vec<String> = scenario.variants.iter().map(Variant::label).collect();
            assert!(
                labels.iter().any(|label| label.starts_with("ringcast-epoll")),
                "{labels:?}"
            );
        }
        assert!(names.contains(&"echo-10x1KiB-inflight16"));
    }

    #[test]
    fn echo_runs_with_both_clients_and_the_rest_with_the_load_generator() {
        for scenario in all(&[]) {
            let clients = scenario.workload.clients();
            match scenario.workload {
                Workload::Echo { .. } => assert_eq!(clients, [Client::Loadgen, Client::TungsteniteLoad]),
                _ => assert_eq!(clients, [Client::Loadgen]),
            }
        }
    }

    #[test]
    fn pinned_ringcast_commands_use_taskset_echo_mode_and_their_io_driver() {
        let mut variant = Variant {
            server: Server::Ringcast,
            workers: 1,
            pinned: true,
            role: Role::Subject,
        };
        let addr = "127.0.0.1:9000".parse().unwrap();
        let cmd = variant.command(Path::new("bin"), addr);
        assert_eq!(cmd.get_program(), "taskset");
        let expected = [
            "-c",
            "0",
            "bin/ringcast",
            "--listen",
            "127.0.0.1:9000",
            "--mode",
            "echo",
            "--cores",
            "1",
            "--io",
            "auto",
        ];
        assert_eq!(args(&cmd), expected);
        variant.server = Server::RingcastEpoll;
        assert_eq!(args(&variant.command(Path::new("bin"), addr)).last().unwrap(), "epoll");
        assert_eq!(variant.label(), "ringcast-epoll");
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
        assert_eq!(args(&cmd), ["--listen", "127.0.0.1:9000", "--threads", "2"]);
        assert_eq!(variant.label(), "tokio-tungstenite x2");
    }

    #[test]
    fn parses_name_equals_command() {
        let uws = extra("uws=/opt/uws/EchoServer --port {port} --threads {threads}");
        assert_eq!(uws.name, "uws");
        assert_eq!(uws.command, "/opt/uws/EchoServer --port {port} --threads {threads}");
        // Only the first '=' separates; the command may contain more.
        let env = extra(" fws-2 = FOO=1 exec ./peer --listen {addr} ");
        assert_eq!(
            (env.name.as_str(), env.command.as_str()),
            ("fws-2", "FOO=1 exec ./peer --listen {addr}")
        );
        for bad in [
            "no-equals-sign {port}",
            "=cmd {port}",
            "two words=cmd {port}",
            "ringcast=./other {port}",
            "ringcast-epoll=./other {port}",
            "x=./server-on-a-fixed-port 9000",
            "x=",
        ] {
            assert!(ExtraServer::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(check_unique(&[extra("a=s {port}"), extra("b=s {port}")]).is_ok());
        assert!(check_unique(&[extra("a=s {port}"), extra("a=t {addr}")]).is_err());
    }

    #[test]
    fn fills_placeholders_and_leaves_other_braces() {
        let server = extra("s=cd /srv && exec ./echo {addr} -p {port} -t {threads} ${HOME} {x} {port}");
        let rendered = server.render("127.0.0.1:9123".parse().unwrap(), 2);
        assert_eq!(
            rendered,
            "cd /srv && exec ./echo 127.0.0.1:9123 -p 9123 -t 2 ${HOME} {x} 9123"
        );
    }

    #[test]
    fn extra_server_runs_through_sh_pinned_or_not() {
        let scenarios = all(&[extra(
            "copy=exec bin/peer-fastwebsockets --listen {addr} --threads {threads}",
        )]);
        let one_core = scenarios[0].variants.iter().find(|v| v.label() == "copy").unwrap();
        let cmd = one_core.command(Path::new("bin"), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cmd.get_program(), "taskset");
        assert_eq!(
            args(&cmd),
            [
                "-c",
                "0",
                "sh",
                "-c",
                "exec bin/peer-fastwebsockets --listen 127.0.0.1:9000 --threads 1"
            ]
        );
        let two_core = scenarios.last().unwrap();
        let two = two_core.variants.iter().find(|v| v.label() == "copy x2").unwrap();
        let cmd = two.command(Path::new("bin"), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cmd.get_program(), "sh");
        assert!(args(&cmd)[1].ends_with("--threads 2"));
    }
}
