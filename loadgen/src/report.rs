//! The run summary: built from the process reports, printed for humans, written as JSON and
//! `.hgrm` files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cpu::Span;
use crate::plan::{Pacing, Plan, Scenario};
use crate::push::counts::PushCounts;
use crate::push::summary::PushSummary;
use crate::run::ProcessReport;
use crate::stats::{new_histogram, CoreReport, Percentiles, Reasons};
use ringcast::metrics::hgrm;

/// One core's line in the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreSummary {
    /// Worker process.
    pub proc: usize,
    /// CPU number.
    pub core: usize,
    /// Echoes (push: deliveries) measured on this core.
    pub messages: u64,
    /// Their latency.
    pub latency_us: Percentiles,
}

/// The settings that shaped the numbers, so two summaries can be compared knowingly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// monoio driver (`io_uring` or `epoll`).
    pub driver: String,
    /// Client cores over all processes.
    pub cores: usize,
    /// Closed loop: messages in flight per connection.
    pub in_flight: Option<u32>,
    /// Open loop: target messages per second (push: publishes per second).
    pub rate: Option<f64>,
    /// Payload bytes per message.
    pub size: usize,
    /// Binary (true) or text messages.
    pub binary: bool,
    /// Warmup seconds.
    pub warmup_s: f64,
}

/// Everything a run measured. Field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `connect`, `echo`, `churn` or `push`.
    pub scenario: String,
    /// The server URL.
    pub url: String,
    /// Connections (or churn loops) asked for.
    pub conns_target: u64,
    /// Upgrades that succeeded over the whole run.
    pub conns_established: u64,
    /// Failed connection attempts by reason.
    pub connect_failures: Reasons,
    /// Failures of established connections by reason.
    pub errors: Reasons,
    /// All failures: connect failures plus errors.
    pub errors_total: u64,
    /// The measured window in seconds (connect: the ramp).
    pub duration_s: f64,
    /// Seconds from the first attempt until every connection was up or had failed.
    pub ramp_s: f64,
    /// Echoes of messages sent inside the window (push: deliveries of publishes whose intended
    /// time was inside the window).
    pub messages: u64,
    /// `messages / duration_s` (push: deliveries per second).
    pub msgs_per_sec: f64,
    /// Echoed (push: delivered) payload bytes per second.
    pub bytes_per_sec: f64,
    /// Upgrades counted (churn: inside the window; otherwise all).
    pub handshakes: u64,
    /// Handshakes per second of the ramp (churn: of the window).
    pub handshakes_per_sec: f64,
    /// Churn: loops whose close handshake completed inside the window.
    pub loops_completed: Option<u64>,
    /// Churn: completed connection lifecycles per second.
    pub conns_per_sec: Option<f64>,
    /// Long-lived scenarios: connections still open when the load phase ended.
    pub conns_open_at_end: Option<u64>,
    /// Connect: seconds the connections were held idle.
    pub hold_s: Option<f64>,
    /// Connect: server CPU seconds during the hold.
    pub hold_server_cpu_seconds: Option<f64>,
    /// Message round-trip latency (push: from the intended publish time to receipt).
    pub latency_us: Percentiles,
    /// Connection setup latency: TCP connect, the TLS handshake (wss://) and the upgrade.
    pub handshake_latency_us: Percentiles,
    /// Client CPU seconds (utime+stime of every loadgen process) inside the load window
    /// (connect: the hold); null when /proc is unreadable.
    pub client_cpu_seconds: Option<f64>,
    /// Server CPU seconds (utime+stime) inside the measured window; null without --server-pid.
    pub server_cpu_seconds: Option<f64>,
    /// Messages per server CPU second.
    pub msgs_per_server_cpu_sec: Option<f64>,
    /// Handshakes per server CPU second (connect, churn).
    pub handshakes_per_server_cpu_sec: Option<f64>,
    /// Push: publishes, deliveries and faults.
    pub push: Option<PushSummary>,
    /// Per-core breakdown.
    pub per_core: Vec<CoreSummary>,
    /// Worker processes.
    pub procs: usize,
    /// Settings of the run.
    pub config: RunConfig,
}

/// Histograms merged over every core, kept for the .hgrm files.
pub struct Merged {
    /// The summary.
    pub summary: Summary,
    /// Message latency over all cores.
    pub latency: Histogram<u64>,
    /// Handshake latency over all cores.
    pub handshake_latency: Histogram<u64>,
    /// (proc, core, latency) per core.
    pub per_core: Vec<(usize, usize, Histogram<u64>)>,
}

fn per(count: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        count / secs
    } else {
        0.0
    }
}

fn per_cpu(count: u64, cpu: Option<f64>) -> Option<f64> {
    cpu.filter(|&c| c > 0.0).map(|c| count as f64 / c)
}

fn add_reasons(into: &mut Reasons, from: &Reasons) {
    for (reason, count) in from {
        *into.entry(reason.clone()).or_default() += count;
    }
}

impl Merged {
    /// Merges the reports of every process of a run of `plan`.
    pub fn build(plan: &Plan, reports: &[ProcessReport]) -> Merged {
        let cores: Vec<&CoreReport> = reports.iter().flat_map(|r| &r.cores).collect();
        let mut latency = new_histogram();
        let mut handshake_latency = new_histogram();
        let mut per_core = Vec::new();
        let (mut connect_failures, mut errors) = (BTreeMap::new(), BTreeMap::new());
        for core in &cores {
            let hist = core.latency.to_histogram();
            latency.add(&hist).expect("same histogram bounds");
            core.handshake_latency.add_to(&mut handshake_latency);
            per_core.push((core.proc, core.core, hist));
            add_reasons(&mut connect_failures, &core.connect_failures);
            add_reasons(&mut errors, &core.errors);
        }
        let sum = |f: fn(&CoreReport) -> u64| cores.iter().map(|c| f(c)).sum::<u64>();
        let ramp = Span::union(reports.iter().map(|r| r.ramp)).expect("at least one process");
        let window = Span::union(reports.iter().map(|r| r.window)).expect("at least one process");
        let (messages, bytes, handshakes) = (sum(|c| c.messages), sum(|c| c.bytes), sum(|c| c.handshakes));
        let loops = sum(|c| c.loops_completed);
        let errors_total = connect_failures.values().chain(errors.values()).sum();
        let scenario = plan.scenario;
        // The measured window: the ramp for connect (handshakes), the load window otherwise.
        let measured = if scenario == Scenario::Connect { ramp } else { window };
        let duration_s = measured.secs();
        let handshake_secs = if scenario == Scenario::Churn {
            duration_s
        } else {
            ramp.secs()
        };
        let server_cpu = measured.cpu();
        let (in_flight, rate) = match plan.traffic.pacing {
            Pacing::ClosedLoop(k) => (Some(k), None),
            Pacing::OpenLoop(r) => (None, Some(r)),
            Pacing::Idle => (None, plan.push.as_ref().map(|p| p.rate)),
        };
        let push = plan.push.as_ref().map(|p| {
            let mut counts = PushCounts::new(p.topics);
            for core in cores.iter().filter_map(|c| c.push.as_ref()) {
                counts.add(core);
            }
            PushSummary::build(p, &counts)
        });
        let summary = Summary {
            scenario: scenario.name().to_string(),
            url: plan.url_text.clone(),
            conns_target: plan.conns_total,
            conns_established: sum(|c| c.conns_established),
            connect_failures,
            errors,
            errors_total,
            duration_s: round3(duration_s),
            ramp_s: round3(ramp.secs()),
            messages,
            msgs_per_sec: round3(per(messages as f64, duration_s)),
            bytes_per_sec: round3(per(bytes as f64, duration_s)),
            handshakes,
            handshakes_per_sec: round3(per(handshakes as f64, handshake_secs)),
            loops_completed: (scenario == Scenario::Churn).then_some(loops),
            conns_per_sec: (scenario == Scenario::Churn).then(|| round3(per(loops as f64, duration_s))),
            conns_open_at_end: scenario.long_lived().then(|| sum(|c| c.conns_open_at_end)),
            hold_s: (scenario == Scenario::Connect).then(|| round3(window.secs())),
            hold_server_cpu_seconds: if scenario == Scenario::Connect {
                window.cpu().map(round3)
            } else {
                None
            },
            latency_us: Percentiles::of(&latency),
            handshake_latency_us: Percentiles::of(&handshake_latency),
            client_cpu_seconds: reports
                .iter()
                .map(|r| r.client_cpu_seconds)
                .sum::<Option<f64>>()
                .map(round3),
            server_cpu_seconds: server_cpu.map(round3),
            msgs_per_server_cpu_sec: if scenario == Scenario::Connect {
                None
            } else {
                per_cpu(messages, server_cpu).map(round3)
            },
            handshakes_per_server_cpu_sec: if scenario == Scenario::Echo {
                None
            } else {
                per_cpu(handshakes, server_cpu).map(round3)
            },
            push,
            per_core: per_core
                .iter()
                .zip(&cores)
                .map(|((proc, core, hist), report)| CoreSummary {
                    proc: *proc,
                    core: *core,
                    messages: report.messages,
                    latency_us: Percentiles::of(hist),
                })
                .collect(),
            procs: reports.len(),
            config: RunConfig {
                driver: reports[0].driver.clone(),
                cores: cores.len(),
                in_flight,
                rate,
                size: plan.traffic.payload.len(),
                binary: plan.traffic.binary,
                warmup_s: plan.warmup.as_secs_f64(),
            },
        };
        Merged {
            summary,
            latency,
            handshake_latency,
            per_core,
        }
    }

    /// Writes summary.json and the .hgrm files into `dir` (created if needed).
    pub fn write_to(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        let json = serde_json::to_string_pretty(&self.summary).expect("the summary serializes");
        write("summary.json", json + "\n")?;
        // Push latency is publish to receive, not a round trip: its files say so.
        let latency = if self.summary.push.is_some() {
            "push-latency"
        } else {
            "latency"
        };
        write(&format!("{latency}.hgrm"), hgrm::render(&self.latency))?;
        write("handshake_latency.hgrm", hgrm::render(&self.handshake_latency))?;
        for (proc, core, hist) in &self.per_core {
            let name = if self.summary.procs > 1 {
                format!("{latency}_p{proc}_core{core}.hgrm")
            } else {
                format!("{latency}_core{core}.hgrm")
            };
            write(&name, hgrm::render(hist))?;
        }
        Ok(())
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Formats a percentile set on one line.
pub fn percentile_line(p: &Percentiles) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.1}",
        p.p50, p.p90, p.p99, p.p999, p.max, p.mean
    )
}

/// The human-readable summary.
pub fn human(s: &Summary) -> String {
    let mut out = String::new();
    let c = &s.config;
    let _ = writeln!(
        out,
        "{} {}: {} procs x {} cores total ({})",
        s.scenario, s.url, s.procs, c.cores, c.driver
    );
    let established = if s.loops_completed.is_some() {
        format!(
            "{} established by {} concurrent loops",
            s.conns_established, s.conns_target
        )
    } else {
        format!("{}/{} established", s.conns_established, s.conns_target)
    };
    let _ = writeln!(
        out,
        "  connections   {established}, ramp {:.3} s{}",
        s.ramp_s,
        s.conns_open_at_end
            .map_or(String::new(), |n| format!(", {n} open at end of load")),
    );
    if let Some(hold) = s.hold_s {
        let _ = writeln!(out, "  hold          {hold:.3} s");
    }
    if let Some(push) = &s.push {
        push.human(&mut out);
    }
    if s.scenario != "connect" {
        let (label, unit) = if s.push.is_some() {
            ("in window", "deliveries/s")
        } else {
            ("messages", "msg/s")
        };
        let _ = writeln!(
            out,
            "  {label:<13} {} in {:.3} s = {:.0} {unit}, {:.0} B/s ({} B {})",
            s.messages,
            s.duration_s,
            s.msgs_per_sec,
            s.bytes_per_sec,
            c.size,
            if c.binary { "binary" } else { "text" }
        );
        let _ = writeln!(out, "  latency us    {}", percentile_line(&s.latency_us));
    }
    let _ = writeln!(out, "  handshakes    {} = {:.0}/s", s.handshakes, s.handshakes_per_sec);
    let setup = if s.url.starts_with("wss://") {
        "TCP + TLS + upgrade"
    } else {
        "TCP + upgrade"
    };
    let _ = writeln!(
        out,
        "  handshake us  {} ({setup})",
        percentile_line(&s.handshake_latency_us)
    );
    if let (Some(loops), Some(rate)) = (s.loops_completed, s.conns_per_sec) {
        let _ = writeln!(out, "  churn loops   {loops} completed = {rate:.0} connections/s");
    }
    if let Some(cpu) = s.client_cpu_seconds {
        let _ = writeln!(out, "  client cpu    {cpu:.3} s");
    }
    if let Some(cpu) = s.server_cpu_seconds {
        let mut line = format!("  server cpu    {cpu:.3} s");
        if let Some(m) = s.msgs_per_server_cpu_sec {
            let _ = write!(line, ", {m:.0} msgs per server CPU second");
        }
        if let Some(h) = s.handshakes_per_server_cpu_sec {
            let _ = write!(line, ", {h:.0} handshakes per server CPU second");
        }
        if let Some(hold) = s.hold_server_cpu_seconds {
            let _ = write!(line, ", {hold:.3} s during the hold");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "  errors        {}", s.errors_total);
    for (reason, count) in s.connect_failures.iter().chain(&s.errors) {
        let _ = writeln!(out, "    {reason:<24} {count}");
    }
    if s.scenario != "connect" {
        for core in &s.per_core {
            let _ = writeln!(
                out,
                "  proc {} core {:<3} {} msgs  {}",
                core.proc,
                core.core,
                core.messages,
                percentile_line(&core.latency_us)
            );
        }
    }
    out
}
