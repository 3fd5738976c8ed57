//! `tungstenite-load`: a closed-loop WebSocket echo client on tokio (current_thread) and
//! tokio-tungstenite, independent of ringcast's own code, used by `ringcast-bench` as a second
//! client next to `ringcast-loadgen`. See benches/README.md.
//!
//! Timeline: open every connection (at most [`CONNECT_PARALLEL`] attempts at once), then all
//! start sending together; `--warmup`, then the measured window of `--duration`, then no new
//! messages while outstanding echoes are collected, then a closing handshake per connection.
//! A message counts when it was sent inside the window and its echo carries exactly its payload.
//! The last (only) stdout line is a JSON report; exit status 1 when anything failed or mismatched.

mod cli;
mod conn;

use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::task::LocalSet;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::http::Uri;

use crate::cli::Args;
use crate::conn::{Load, Totals, Window, CLOSE_TIMEOUT, CONNECT_TIMEOUT, DRAIN_TIMEOUT};

/// The same allocator as the servers, so the client's allocator is not a variable either.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Connection attempts in progress at once.
const CONNECT_PARALLEL: usize = 256;
/// Slack on top of every phase's own bound before the watchdog ends the process.
const WATCHDOG_SLACK: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            println!("{report}");
            let failed = report["errors_total"].as_u64() != Some(0) || report["mismatches"].as_u64() != Some(0);
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("tungstenite-load: {err}");
            ExitCode::from(2)
        }
    }
}

/// Runs the whole load on a current_thread runtime and returns the JSON report.
fn run(args: &Args) -> Result<Value, String> {
    if args.duration.is_zero() {
        return Err("--duration must be positive".to_owned());
    }
    let addr = socket_addr(&args.url)?;
    start_watchdog(args);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot build the tokio runtime: {err}"))?;
    LocalSet::new().block_on(&runtime, load(args, addr))
}

/// Connects, runs the window and collects every connection's counters.
async fn load(args: &Args, addr: String) -> Result<Value, String> {
    let totals = Rc::new(RefCell::new(Totals::new()));
    let ramp_start = Instant::now();
    let attempts = futures_util::stream::iter(0..args.conns)
        .map(|_| conn::connect(&addr, &args.url))
        .buffered(CONNECT_PARALLEL)
        .collect::<Vec<_>>()
        .await;
    let ramp = ramp_start.elapsed();
    let mut established = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        match attempt {
            Ok(ws) => established.push(ws),
            Err(reason) => totals.borrow_mut().error(reason),
        }
    }
    let conns_established = established.len();
    let start = Instant::now() + args.warmup;
    let window = Window {
        start,
        end: start + args.duration,
    };
    let load = Load {
        in_flight: args.in_flight,
        size: args.size as usize,
    };
    let tasks: Vec<_> = established
        .into_iter()
        .zip(0u32..)
        .map(|(ws, id)| tokio::task::spawn_local(conn::echo(id, ws, load, window, Rc::clone(&totals))))
        .collect();
    sleep_until(window.start).await;
    let cpu_before = args.server_pid.map(server_cpu_seconds).transpose()?;
    sleep_until(window.end).await;
    let cpu_after = args.server_pid.map(server_cpu_seconds).transpose()?;
    for task in tasks {
        task.await.map_err(|err| format!("a connection task failed: {err}"))?;
    }
    let totals = totals.borrow();
    let duration_s = args.duration.as_secs_f64();
    let server_cpu_seconds = cpu_before.zip(cpu_after).map(|(before, after)| after - before);
    let msgs_per_server_cpu_sec = server_cpu_seconds
        .filter(|cpu| *cpu > 0.0)
        .map(|cpu| totals.messages as f64 / cpu);
    let latency = &totals.latency_us;
    Ok(json!({
        "client": "tungstenite-load",
        "url": args.url,
        "conns_target": args.conns,
        "conns_established": conns_established,
        "in_flight": args.in_flight,
        "size": args.size,
        "ramp_s": ramp.as_secs_f64(),
        "warmup_s": args.warmup.as_secs_f64(),
        "duration_s": duration_s,
        "messages": totals.messages,
        "msgs_per_sec": totals.messages as f64 / duration_s,
        "mismatches": totals.mismatches,
        "errors_total": totals.errors.values().sum::<u64>(),
        "errors": totals.errors,
        "latency_us": {
            "p50": latency.value_at_quantile(0.5),
            "p90": latency.value_at_quantile(0.9),
            "p99": latency.value_at_quantile(0.99),
            "max": latency.max(),
            "mean": latency.mean(),
        },
        "server_cpu_seconds": server_cpu_seconds,
        "msgs_per_server_cpu_sec": msgs_per_server_cpu_sec,
    }))
}

/// `HOST:PORT` of a `ws://` URL (port 80 when absent).
fn socket_addr(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|err| format!("bad --url {url:?}: {err}"))?;
    if uri.scheme_str() != Some("ws") {
        return Err(format!("--url must be ws://HOST:PORT/PATH, got {url:?}"));
    }
    let host = uri.host().ok_or_else(|| format!("--url {url:?} has no host"))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

/// Ends the process with status 3 if it outlives the sum of every phase's bound.
fn start_watchdog(args: &Args) {
    let batches = u32::try_from(
        usize::try_from(args.conns)
            .unwrap_or(usize::MAX)
            .div_ceil(CONNECT_PARALLEL),
    )
    .unwrap_or(u32::MAX);
    let bound =
        CONNECT_TIMEOUT * batches + args.warmup + args.duration + DRAIN_TIMEOUT + CLOSE_TIMEOUT + WATCHDOG_SLACK;
    thread::spawn(move || {
        thread::sleep(bound);
        eprintln!("tungstenite-load: watchdog: still running after {bound:?}");
        std::process::exit(3);
    });
}

/// User plus system CPU time of process `pid` so far, seconds (/proc/PID/stat).
fn server_cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| format!("cannot parse {path}: {stat}"))?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / per_second.max(1) as f64)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line; the command name in parentheses
/// may itself contain spaces and parentheses, so fields are counted after the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_address_of_a_ws_url() {
        assert_eq!(socket_addr("ws://127.0.0.1:9001/").unwrap(), "127.0.0.1:9001");
        assert_eq!(socket_addr("ws://localhost/chat").unwrap(), "localhost:80");
        assert!(socket_addr("wss://127.0.0.1:9001/").is_err());
        assert!(socket_addr("127.0.0.1:9001").is_err());
    }

    #[test]
    fn cpu_ticks_after_the_command_name() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 1 0 99 1000 10";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(server_cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }
}
