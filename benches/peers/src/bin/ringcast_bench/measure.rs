//! One measured run: start a server, apply a workload with a client, collect a sample.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{free_port, run_bounded, wait_for_port, Finished, Running};
use crate::scenario::{
    Client, Metric, Scenario, Server, Variant, Workload, CONNS_OPEN, ERRORS, RSS_PER_CONN, SERVER_BUSY,
    SOCK_MEM_PER_CONN, SYSCALLS_PER_MSG,
};
use crate::syscalls::{self, Counter};
use crate::sysinfo::{descendants, has_io_uring, listener_pid, open_fds, rss_bytes, tcp_mem_bytes};

/// Metric key to value for one run.
pub type Sample = BTreeMap<&'static str, f64>;

/// Warm-up before each measured echo or churn run, seconds.
const WARMUP_SECS: u64 = 1;
/// Longest measured window of a syscall-counting run, seconds.
pub const SYSCALL_RUN_SECS: u64 = 2;
/// How long a server may take to accept on its port.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between the server accepting and the load starting (lets every worker reach its listener).
const SETTLE: Duration = Duration::from_millis(200);
/// Slack on top of a client's own duration before it is killed.
const CLIENT_GRACE: Duration = Duration::from_secs(30);
/// How often the idle-memory ramp is polled.
const RAMP_POLL: Duration = Duration::from_millis(50);
/// An idle ramp whose socket count has not moved for this long is over.
const RAMP_STALL: Duration = Duration::from_secs(2);
/// Delay between the end of the idle ramp and the memory sample.
const AFTER_RAMP: Duration = Duration::from_secs(1);

/// What a run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A measured repetition: every metric of the workload, no perf attached.
    Measure,
    /// A shorter run with perf counting the server's syscalls: only [`SYSCALLS_PER_MSG`].
    CountSyscalls,
}

/// Runs single measurements for a fixed set of binaries and duration.
pub struct Bench {
    bin_dir: PathBuf,
    duration_secs: u64,
}

impl Bench {
    /// A bench using the binaries in `bin_dir` and `duration_secs` per echo or churn run.
    pub fn new(bin_dir: PathBuf, duration_secs: u64) -> Self {
        Self { bin_dir, duration_secs }
    }

    /// Starts `variant`, runs the scenario's workload against it once with `client` and stops
    /// it again.
    pub fn run_once(
        &self,
        scenario: &Scenario,
        client: Client,
        variant: &Variant,
        purpose: Purpose,
    ) -> Result<Sample, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let mut server = Running::spawn(&variant.label(), &mut variant.command(&self.bin_dir, addr))?;
        wait_for_port(&mut server, addr, SERVER_START_TIMEOUT)?;
        thread::sleep(SETTLE);
        let mut tree = vec![server.pid()];
        tree.extend(descendants(server.pid()));
        let pid = listener_pid(addr.port(), &tree)?;
        if variant.server == Server::Ringcast && !has_io_uring(pid)? {
            return Err("ringcast --io auto has no io_uring instance: it fell back to epoll".to_owned());
        }
        let url = format!("ws://{addr}/");
        let sample = match (scenario.workload, purpose) {
            (Workload::Idle { conns, hold_secs }, _) => {
                self.idle_memory(pid, &url, scenario.client_cores, conns, hold_secs)?
            }
            (_, Purpose::Measure) => {
                let (report, _) = self.load_report(scenario, client, &url, pid, self.duration_secs)?;
                if matches!(scenario.workload, Workload::Echo { .. }) {
                    require_echoes(&report)?;
                }
                extract(&report, scenario.workload.metrics(client))?
            }
            (_, Purpose::CountSyscalls) => self.count_syscalls(scenario, client, &url, pid)?,
        };
        server.check_alive()?;
        Ok(sample)
    }

    /// Runs the load of a [`SYSCALL_RUN_SECS`] window with perf attached to the server.
    fn count_syscalls(&self, scenario: &Scenario, client: Client, url: &str, pid: u32) -> Result<Sample, String> {
        let counter = Counter::attach(pid, scenario.client_cores)?;
        let duration_secs = self.duration_secs.min(SYSCALL_RUN_SECS);
        let (report, started) = self.load_report(scenario, client, url, pid, duration_secs)?;
        let number = |key: &str| lookup(&report, key).ok_or_else(|| format!("report lacks {key}: {report}"));
        let window = syscalls::Window {
            start_s: number("ramp_s")? + WARMUP_SECS as f64,
            len_s: number("duration_s")?,
        };
        let per_sec = counter.rate(started, window)?;
        let msgs_per_sec = number("msgs_per_sec")?;
        if msgs_per_sec <= 0.0 {
            return Err(format!("no message was echoed in the syscall-counting run: {report}"));
        }
        Ok(Sample::from([(SYSCALLS_PER_MSG, per_sec / msgs_per_sec)]))
    }

    /// Runs an echo or churn client to completion with a window of `duration_secs`; returns
    /// its JSON report and when it was started.
    fn load_report(
        &self,
        scenario: &Scenario,
        client: Client,
        url: &str,
        server_pid: u32,
        duration_secs: u64,
    ) -> Result<(Value, Instant), String> {
        let (mode, mut args) = match scenario.workload {
            Workload::Echo { conns, in_flight, size } => (
                "echo",
                flags([
                    ("--conns", conns.to_string()),
                    ("--in-flight", in_flight.to_string()),
                    ("--size", size.to_string()),
                ]),
            ),
            Workload::Churn { conns } => ("churn", flags([("--conns", conns.to_string())])),
            Workload::Idle { .. } => unreachable!("idle memory is measured by idle_memory"),
        };
        args.extend(flags([
            ("--duration", format!("{duration_secs}s")),
            ("--warmup", format!("{WARMUP_SECS}s")),
            ("--server-pid", server_pid.to_string()),
        ]));
        let mut cmd = match client {
            Client::Loadgen => self.loadgen(mode, url, scenario.client_cores, &args),
            Client::TungsteniteLoad => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", scenario.client_cores])
                    .arg(self.bin_dir.join(client.binary()))
                    .args(["--url", url])
                    .args(&args);
                cmd
            }
        };
        let limit = Duration::from_secs(duration_secs + WARMUP_SECS) + CLIENT_GRACE;
        let what = format!("{} {mode}", client.binary());
        let started = Instant::now();
        let report = report_of(&what, &run_bounded(&what, &mut cmd, limit)?)?;
        Ok((report, started))
    }

    /// Samples server RSS and kernel TCP memory before and while `conns` idle connections are held.
    fn idle_memory(&self, pid: u32, url: &str, cores: &str, conns: u32, hold_secs: u64) -> Result<Sample, String> {
        let (rss_before, tcp_before, fds_before) = (rss_bytes(pid)?, tcp_mem_bytes()?, open_fds(pid)?);
        let args = flags([
            ("--conns", conns.to_string()),
            ("--ramp-rate", "0".to_owned()),
            ("--hold", format!("{hold_secs}s")),
        ]);
        let loadgen = Client::Loadgen.binary();
        let mut client = Running::spawn(
            &format!("{loadgen} connect"),
            &mut self.loadgen("connect", url, cores, &args),
        )?;
        wait_for_ramp(
            &mut client,
            || Ok(open_fds(pid)?.saturating_sub(fds_before)),
            conns,
            hold_secs,
        )?;
        thread::sleep(AFTER_RAMP);
        let (rss_after, tcp_after, fds_after) = (rss_bytes(pid)?, tcp_mem_bytes()?, open_fds(pid)?);
        let finished = client.finish(Duration::from_secs(hold_secs) + CLIENT_GRACE)?;
        let report = report_of(&format!("{loadgen} connect"), &finished)?;
        let per_conn = |before: u64, after: u64| (after as f64 - before as f64) / f64::from(conns);
        let mut sample = Sample::from([
            (RSS_PER_CONN, per_conn(rss_before, rss_after)),
            (SOCK_MEM_PER_CONN, per_conn(tcp_before, tcp_after)),
            (CONNS_OPEN, fds_after.saturating_sub(fds_before) as f64),
        ]);
        if let Some(errors) = report.get(ERRORS).and_then(Value::as_f64) {
            sample.insert(ERRORS, errors);
        }
        Ok(sample)
    }

    /// `ringcast-loadgen MODE --url URL --core-list CORES ARGS... --json --quiet`.
    fn loadgen(&self, mode: &str, url: &str, cores: &str, args: &[String]) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(Client::Loadgen.binary()));
        cmd.args([mode, "--url", url, "--core-list", cores])
            .args(args)
            .args(["--json", "--quiet"]);
        cmd
    }
}

/// Waits until `accepted()` reaches `target` or, once it has started moving, has not moved for
/// `RAMP_STALL` (some connections failed: the open-connections column shows how many made it).
/// Errs if the load generator exits first.
fn wait_for_ramp(
    client: &mut Running,
    accepted: impl Fn() -> Result<u64, String>,
    target: u32,
    hold_secs: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(hold_secs) + CLIENT_GRACE;
    let (mut last, mut last_change) = (accepted()?, Instant::now());
    let stalled = |last: u64, since: Instant| last > 0 && since.elapsed() >= RAMP_STALL;
    while last < u64::from(target) && !stalled(last, last_change) && Instant::now() < deadline {
        client.check_alive()?;
        thread::sleep(RAMP_POLL);
        let now = accepted()?;
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
    }
    Ok(())
}

/// Flattens `(flag, value)` pairs into command-line arguments.
fn flags<const N: usize>(pairs: [(&str, String); N]) -> Vec<String> {
    pairs
        .into_iter()
        .flat_map(|(name, value)| [name.to_owned(), value])
        .collect()
}

/// The JSON report of a finished client. A non-zero exit with a report (both clients exit 1
/// when they counted errors) is accepted with a warning: the errors column shows it.
fn report_of(what: &str, finished: &Finished) -> Result<Value, String> {
    match parse_report(&finished.stdout) {
        Ok(report) => {
            if !finished.status.success() {
                eprintln!(
                    "warning: {what} exited with {}: {}",
                    finished.status,
                    finished.stderr_tail()
                );
            }
            Ok(report)
        }
        Err(err) => Err(format!(
            "{what} failed ({}): {err}; stderr: {}",
            finished.status,
            finished.stderr_tail()
        )),
    }
}

/// Parses the last non-empty stdout line of a client as its JSON report.
fn parse_report(stdout: &str) -> Result<Value, String> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .ok_or("the client printed nothing")?;
    serde_json::from_str(line).map_err(|err| format!("the client's last line is not JSON ({err}): {line}"))
}

/// Fails an echo run in which not one message was echoed inside the window (a stalled server
/// or client), naming the client's error counts.
fn require_echoes(report: &Value) -> Result<(), String> {
    match lookup(report, "messages") {
        Some(messages) if messages > 0.0 => Ok(()),
        _ => Err(format!(
            "no message echoed in the measured window (stalled?); client errors: {}, connections established: {}",
            report.get("errors").unwrap_or(&Value::Null),
            report.get("conns_established").unwrap_or(&Value::Null)
        )),
    }
}

/// Picks `metrics` out of a report; headline metrics are required, the rest optional.
fn extract(report: &Value, metrics: &[Metric]) -> Result<Sample, String> {
    let mut sample = Sample::new();
    for metric in metrics {
        match lookup(report, metric.key) {
            Some(value) => {
                sample.insert(metric.key, value);
            }
            None if metric.headline => return Err(format!("report lacks numeric field {}: {report}", metric.key)),
            None => {}
        }
    }
    Ok(sample)
}

/// Value of `key` in a report: a dotted path, or the derived [`SERVER_BUSY`] percentage.
fn lookup(report: &Value, key: &str) -> Option<f64> {
    if key == SERVER_BUSY {
        return Some(lookup(report, "server_cpu_seconds")? / lookup(report, "duration_s")? * 100.0);
    }
    key.split('.')
        .try_fold(report, |node, key| node.get(key))
        .and_then(Value::as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Workload;

    #[test]
    fn parses_the_last_line_and_nested_fields() {
        let stdout =
            "warming up\n{\"msgs_per_sec\": 1.0}\n{\"msgs_per_sec\": 250000.5, \"msgs_per_server_cpu_sec\": 300000, \
                      \"errors_total\": 0, \"latency_us\": {\"p50\": 41, \"p99\": 95.5}}\n\n";
        let report = parse_report(stdout).unwrap();
        let echo = Workload::Echo {
            conns: 1,
            in_flight: 1,
            size: 1,
        };
        let sample = extract(&report, echo.metrics(Client::Loadgen)).unwrap();
        assert_eq!(sample["msgs_per_sec"], 250000.5);
        assert_eq!(sample["msgs_per_server_cpu_sec"], 300000.0);
        assert_eq!(sample["latency_us.p99"], 95.5);
        assert!(!sample.contains_key(SERVER_BUSY));
        assert!(!sample.contains_key(SYSCALLS_PER_MSG));
        let tungstenite =
            parse_report("{\"msgs_per_sec\": 9, \"msgs_per_server_cpu_sec\": 10, \"mismatches\": 2}").unwrap();
        let sample = extract(&tungstenite, echo.metrics(Client::TungsteniteLoad)).unwrap();
        assert_eq!(sample[crate::scenario::MISMATCHES], 2.0);
        let busy = parse_report("{\"server_cpu_seconds\": 0.5, \"duration_s\": 2.0}").unwrap();
        assert_eq!(lookup(&busy, SERVER_BUSY), Some(25.0));
    }

    #[test]
    fn missing_headline_metric_or_json_is_an_error() {
        let report = parse_report("{\"handshakes_per_sec\": 10}").unwrap();
        let err = extract(&report, Workload::Churn { conns: 1 }.metrics(Client::Loadgen)).unwrap_err();
        assert!(err.contains("handshakes_per_server_cpu_sec"), "{err}");
        assert!(parse_report("not json\n").is_err());
        let stalled = parse_report("{\"messages\": 0, \"errors\": {}, \"conns_established\": 100}").unwrap();
        let err = require_echoes(&stalled).unwrap_err();
        assert!(
            err.contains("no message echoed") && err.contains("established: 100"),
            "{err}"
        );
        assert!(require_echoes(&parse_report("{\"messages\": 5}").unwrap()).is_ok());
        assert!(parse_report("\n").is_err());
    }
}
