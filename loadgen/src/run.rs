//! Runs one process's lanes: starts the cores, waits for them to ramp up, gives the go
//! signal, marks the measured window (with server CPU readings) and collects the reports.

use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cpu::{own_cpu_seconds, Mark, Span};
use crate::engine::{self, Driver, Rendezvous, Timeline};
use crate::plan::{Lane, Plan};
use crate::progress::{ProgressMode, Snapshot, Ticker};
use crate::stats::{CoreReport, Live};
use ringcast::config::IoMode;

/// Extra time allowed past every bound before the process gives up on a stuck core.
const WATCHDOG_SLACK: Duration = Duration::from_secs(10);

/// What one process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Process number (0 without --procs).
    pub proc: usize,
    /// The monoio driver used.
    pub driver: String,
    /// One report per core.
    pub cores: Vec<CoreReport>,
    /// From the first connection attempt until every core was ready.
    pub ramp: Span,
    /// The measured window (echo, churn) or the hold (connect).
    pub window: Span,
    /// This process's own CPU seconds (utime+stime) inside `window`; `None` without /proc.
    pub client_cpu_seconds: Option<f64>,
}

/// How the go signal is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// As soon as this process's cores are ready.
    Alone,
    /// After printing `ready` on stdout and reading `go` on stdin (a --procs worker).
    AfterParent,
}

/// How this process runs its lanes.
#[derive(Debug, Clone, Copy)]
pub struct ProcessOptions {
    /// Server process to read CPU time from.
    pub server_pid: Option<u32>,
    /// Where progress goes.
    pub progress: ProgressMode,
    /// How the go signal is given.
    pub start: Start,
    /// Driver choice.
    pub io: IoMode,
}

/// Runs `lanes` of `plan` in this process.
pub fn run_process(
    plan: Arc<Plan>,
    lanes: &[Lane],
    proc: usize,
    options: &ProcessOptions,
) -> Result<ProcessReport, String> {
    let ProcessOptions {
        server_pid,
        progress,
        start,
        io,
    } = *options;
    let driver = Driver::choose(io)?;
    let rendezvous = Arc::new(Rendezvous::default());
    let lives: Vec<Arc<Live>> = lanes.iter().map(|_| Arc::new(Live::default())).collect();
    let conns: u64 = lanes.iter().map(|l| l.conn_count(plan.conns_total)).sum();
    let mut ticker = Ticker::new(progress, conns);
    let snapshot = || {
        lives.iter().fold(Snapshot::default(), |acc, live| {
            let (open, messages, errors) = live.read();
            acc + Snapshot { open, messages, errors }
        })
    };

    let ramp_start = Mark::take(server_pid);
    let mut handles = Vec::with_capacity(lanes.len());
    for (lane, live) in lanes.iter().zip(&lives) {
        let handle = engine::spawn(plan.clone(), *lane, proc, driver, rendezvous.clone(), live.clone())
            .map_err(|e| format!("cannot start a core thread: {e}"))?;
        handles.push(handle);
    }
    let any_exited = || handles.iter().any(|h| h.is_finished());
    let ramp_deadline = Instant::now() + ramp_bound(&plan, lanes);
    let all_ready = || rendezvous.ready.load(Ordering::SeqCst) == lanes.len();
    if !wait_until(ramp_deadline, || all_ready() || any_exited(), &mut ticker, &snapshot) {
        fail_hard("the ramp-up did not finish in time (a core is stuck)");
    }
    if !all_ready() {
        return Err(join_error(handles));
    }
    let ramp = Span {
        start: ramp_start,
        end: Mark::take(server_pid),
    };
    if start == Start::AfterParent {
        await_parent()?;
    }
    let go = Instant::now();
    rendezvous.go.set(go).expect("go is given once");
    let timeline = Timeline::new(go, &plan);
    wait_until(timeline.window_start, || false, &mut ticker, &snapshot);
    let window_start = Mark::take(server_pid);
    let own_start = own_cpu_seconds();
    wait_until(timeline.window_end, || false, &mut ticker, &snapshot);
    let window = Span {
        start: window_start,
        end: Mark::take(server_pid),
    };
    let client_cpu_seconds = own_cpu_seconds()
        .zip(own_start)
        .map(|(end, start)| (end - start).max(0.0));
    let finished = || handles.iter().all(|h| h.is_finished());
    // A churn loop may have begun an attempt just before the window ended.
    let last_attempt = plan.timeouts.connect + plan.timeouts.handshake;
    if !wait_until(
        timeline.close_by + last_attempt + WATCHDOG_SLACK,
        finished,
        &mut ticker,
        &snapshot,
    ) {
        fail_hard("cores did not finish closing their connections in time");
    }
    let mut cores = Vec::with_capacity(handles.len());
    for handle in handles {
        cores.push(handle.join().map_err(|_| "a core thread panicked".to_string())??);
    }
    Ok(ProcessReport {
        proc,
        driver: driver.name().to_string(),
        cores,
        ramp,
        window,
        client_cpu_seconds,
    })
}

/// The longest a ramp may take: the paced time plus every batch of attempts timing out.
fn ramp_bound(plan: &Plan, lanes: &[Lane]) -> Duration {
    let per_lane = lanes.iter().map(|l| l.conn_count(plan.conns_total)).max().unwrap_or(0);
    let paced = if plan.ramp_rate > 0.0 {
        Duration::from_secs_f64(plan.conns_total as f64 / plan.ramp_rate)
    } else {
        Duration::ZERO
    };
    let attempt = plan.timeouts.connect + plan.timeouts.handshake;
    let batches = per_lane / plan.max_pending as u64 + 1;
    paced + attempt * batches.min(u32::MAX as u64) as u32 + WATCHDOG_SLACK
}

/// Sleeps in small steps, ticking progress, until `done()` or `deadline`; true if done.
fn wait_until(
    deadline: Instant,
    done: impl Fn() -> bool,
    ticker: &mut Ticker,
    snapshot: &impl Fn() -> Snapshot,
) -> bool {
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        ticker.tick(snapshot);
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
}

fn join_error(handles: Vec<std::thread::JoinHandle<Result<CoreReport, String>>>) -> String {
    for handle in handles.into_iter().filter(|h| h.is_finished()) {
        match handle.join() {
            Err(_) => return "a core thread panicked".into(),
            Ok(Err(e)) => return e,
            Ok(Ok(_)) => {}
        }
    }
    "a core stopped before the load started".into()
}

/// Tells the parent this worker is ready and waits for its go.
fn await_parent() -> Result<(), String> {
    crate::procs::send_line("ready");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the go signal: {e}"))?;
    if line.trim() != "go" {
        return Err("the parent process went away before the go signal".into());
    }
    Ok(())
}

/// Last resort when a bound was overrun: the process must always end by itself.
fn fail_hard(why: &str) -> ! {
    eprintln!("ringcast-loadgen: {why}; giving up");
    std::process::exit(3);
}
