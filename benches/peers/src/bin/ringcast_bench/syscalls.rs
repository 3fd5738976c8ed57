//! Server syscalls per echoed message, counted by `perf stat -e raw_syscalls:sys_enter -p PID`.
//!
//! perf prints the count every [`INTERVAL_MS`]; the harness knows, from the client's report,
//! when the client's measured window began (its ramp plus warm-up after it was started) and how
//! long it lasted, so it takes the syscall rate over the intervals well inside that window
//! ([`EDGE`] trimmed at both ends) and divides it by the client's echoed messages per second.
//!
//! The count runs in a separate, shorter run per server and client rather than in the measured
//! repetitions: while any `raw_syscalls` tracepoint is enabled the kernel sends every thread on
//! the machine (the client too) through the slow, traced syscall path, which would cost the
//! measured runs throughput and server CPU.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{run_bounded, Running};

/// The perf event counted.
const EVENT: &str = "raw_syscalls:sys_enter";
/// perf's print interval, milliseconds.
const INTERVAL_MS: u32 = 100;
/// Time perf gets to attach before the load starts.
const ATTACH: Duration = Duration::from_millis(300);
/// Trimmed off each end of the window: covers the client's start-up before its ramp, perf's
/// own start-up, and the ramp-down of the load.
const EDGE: f64 = 0.2;
/// How long perf gets to exit after SIGINT.
const PERF_EXIT: Duration = Duration::from_secs(5);

/// Checks that perf can count the event, returning why not.
pub fn probe() -> Result<(), String> {
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x", ",", "-e", EVENT, "--", "true"]);
    let finished = run_bounded("perf stat (probe)", &mut cmd, Duration::from_secs(10))?;
    if !finished.status.success() {
        return Err(format!(
            "`perf stat -e {EVENT}` failed ({}): {}",
            finished.status,
            finished.stderr_tail()
        ));
    }
    match finished.stderr.lines().find_map(parse_total) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`perf stat -e {EVENT}` counted nothing: {}",
            finished.stderr_tail()
        )),
    }
}

/// A perf stat attached to a server, printing its syscall count per interval.
pub struct Counter {
    perf: Running,
    started: Instant,
}

/// The client's measured window, in seconds after the client was started.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Start of the window.
    pub start_s: f64,
    /// Length of the window.
    pub len_s: f64,
}

impl Counter {
    /// Attaches perf to every thread of `pid`, perf itself running on `cores`.
    pub fn attach(pid: u32, cores: &str) -> Result<Self, String> {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", cores, "perf", "stat", "-x", ",", "-I"])
            .arg(INTERVAL_MS.to_string())
            .args(["-e", EVENT, "-p"])
            .arg(pid.to_string());
        let mut perf = Running::spawn("perf stat", &mut cmd)?;
        let started = Instant::now();
        thread::sleep(ATTACH);
        perf.check_alive()?;
        Ok(Self { perf, started })
    }

    /// Stops perf and returns the server's syscalls per second over `window`, the client having
    /// been started at `client_started`.
    pub fn rate(self, client_started: Instant, window: Window) -> Result<f64, String> {
        let offset = client_started.duration_since(self.started).as_secs_f64();
        self.perf.interrupt();
        let finished = self.perf.finish(PERF_EXIT)?;
        let intervals: Vec<(f64, u64)> = finished.stderr.lines().filter_map(parse_interval).collect();
        let (from, to) = (
            offset + window.start_s + EDGE,
            offset + window.start_s + window.len_s - EDGE,
        );
        rate_within(&intervals, from, to).ok_or_else(|| {
            format!(
                "perf printed no whole interval between {from:.2}s and {to:.2}s ({} intervals); stderr: {}",
                intervals.len(),
                finished.stderr_tail()
            )
        })
    }
}

/// `(end of interval in seconds since perf started, syscalls in the interval)` from a line of
/// `perf stat -x , -I`: `TIME,COUNT,UNIT,EVENT,...`; an uncounted interval counts zero.
fn parse_interval(line: &str) -> Option<(f64, u64)> {
    let mut fields = line.split(',');
    let time: f64 = fields.next()?.trim().parse().ok()?;
    let count = fields.next()?.trim();
    if fields.nth(1)? != EVENT {
        return None;
    }
    let count = if count.starts_with('<') { 0 } else { count.parse().ok()? };
    Some((time, count))
}

/// The count of a line of `perf stat -x ,` without intervals: `COUNT,UNIT,EVENT,...`.
fn parse_total(line: &str) -> Option<u64> {
    let mut fields = line.split(',');
    let count = fields.next()?.trim().parse().ok()?;
    (fields.nth(1)? == EVENT).then_some(count)
}

/// Events per second over the intervals that lie wholly inside `from..=to`; each interval ends
/// at its time stamp and starts at the previous one (the first at zero).
fn rate_within(intervals: &[(f64, u64)], from: f64, to: f64) -> Option<f64> {
    let mut previous = 0.0;
    let (mut events, mut seconds) = (0u64, 0.0);
    for &(end, count) in intervals {
        if previous >= from && end <= to {
            events += count;
            seconds += end - previous;
        }
        previous = end;
    }
    (seconds > 0.0).then(|| events as f64 / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interval_and_total_lines() {
        assert_eq!(
            parse_interval("     0.100184301,12345,,raw_syscalls:sys_enter,100151234,100.00,,"),
            Some((0.100184301, 12345))
        );
        assert_eq!(
            parse_interval("0.2,<not counted>,,raw_syscalls:sys_enter,0,100.00,,"),
            Some((0.2, 0))
        );
        assert_eq!(parse_interval("0.3,5,,cycles,1,100.00,,"), None);
        assert_eq!(parse_interval("# started on Mon"), None);
        assert_eq!(
            parse_total("33421,,raw_syscalls:sys_enter,527183529,100.00,,"),
            Some(33421)
        );
        assert_eq!(parse_total("0.1,33421,,raw_syscalls:sys_enter,5,100.00,,"), None);
    }

    #[test]
    fn rate_counts_only_whole_intervals_inside_the_window() {
        let intervals: Vec<(f64, u64)> = (1..=30u32).map(|i| (f64::from(i) * 0.1, 1000 * u64::from(i))).collect();
        // Intervals ending at 1.1 ..= 2.0 lie inside 1.0..=2.05: counts 11000 ..= 20000.
        let rate = rate_within(&intervals, 1.0, 2.05).unwrap();
        let expected = (11..=20).map(|i| 1000.0 * f64::from(i)).sum::<f64>() / 1.0;
        assert!((rate - expected).abs() < 1e-6 * expected, "{rate} vs {expected}");
        assert_eq!(rate_within(&intervals, 1.01, 1.09), None);
        assert_eq!(rate_within(&[], 0.0, 10.0), None);
    }

    #[test]
    fn rate_is_per_second() {
        let intervals = [(0.1, 50), (0.2, 50), (0.3, 50)];
        let rate = rate_within(&intervals, 0.0, 0.3).unwrap();
        assert!((rate - 500.0).abs() < 1e-9, "{rate}");
    }
}
