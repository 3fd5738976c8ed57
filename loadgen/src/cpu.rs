//! Time marks on the system-wide monotonic clock, with the server's CPU time at each mark.

use std::io;

use serde::{Deserialize, Serialize};

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes on one machine.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// utime + stime of process `pid` in seconds, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// utime + stime of this process (every thread) in seconds; `None` when /proc is unreadable.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id()).ok()
}

/// utime + stime in clock ticks. Fields are counted after the `)` closing the command name,
/// which may itself contain spaces and parentheses.
fn parse_stat(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After ")": state(3) ppid(4) ... utime is field 14, stime field 15 (1-based over the line).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A moment, and the server's CPU time then (when a server pid was given and readable).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// [`mono_ns`] at the mark.
    pub at_ns: u64,
    /// Server CPU seconds at the mark.
    pub cpu_s: Option<f64>,
}

impl Mark {
    /// Takes a mark now, reading the CPU time of `server_pid` if given.
    pub fn take(server_pid: Option<u32>) -> Mark {
        let cpu_s = server_pid.and_then(|pid| match cpu_seconds(pid) {
            Ok(secs) => Some(secs),
            Err(e) => {
                eprintln!("ringcast-loadgen: cannot read CPU time of server pid {pid}: {e}");
                None
            }
        });
        Mark {
            at_ns: mono_ns(),
            cpu_s,
        }
    }
}

/// An interval between two marks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Where it starts.
    pub start: Mark,
    /// Where it ends.
    pub end: Mark,
}

impl Span {
    /// Length in seconds.
    pub fn secs(&self) -> f64 {
        self.end.at_ns.saturating_sub(self.start.at_ns) as f64 / 1e9
    }

    /// Server CPU seconds spent inside the span.
    pub fn cpu(&self) -> Option<f64> {
        Some((self.end.cpu_s? - self.start.cpu_s?).max(0.0))
    }

    /// The smallest span covering all of `spans` (the CPU clock only grows, so the earliest
    /// reading is the smallest and the latest the largest).
    pub fn union(spans: impl IntoIterator<Item = Span>) -> Option<Span> {
        spans.into_iter().reduce(|a, b| Span {
            start: Mark {
                at_ns: a.start.at_ns.min(b.start.at_ns),
                cpu_s: min_opt(a.start.cpu_s, b.start.cpu_s),
            },
            end: Mark {
                at_ns: a.end.at_ns.max(b.end.at_ns),
                cpu_s: max_opt(a.end.cpu_s, b.end.cpu_s),
            },
        })
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a?.min(b?))
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a?.max(b?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "1234 (we ird) (name) S 1 2 3 4 5 6 7 8 9 10 250 70 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(320));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_own_cpu_time_and_merges_spans() {
        let pid = std::process::id();
        let busy: u64 = (0..2_000_000u64).fold(0, |a, b| a ^ b.wrapping_mul(31));
        assert!(busy != 1);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(own_cpu_seconds().unwrap() >= 0.0);
        let mark = |at_ns, cpu| Mark {
            at_ns,
            cpu_s: Some(cpu),
        };
        let a = Span {
            start: mark(10, 1.0),
            end: mark(20, 2.0),
        };
        let b = Span {
            start: mark(12, 1.5),
            end: mark(25, 3.0),
        };
        let u = Span::union([a, b]).unwrap();
        assert_eq!((u.start.at_ns, u.end.at_ns), (10, 25));
        assert_eq!(u.cpu(), Some(2.0));
        assert_eq!(
            Span {
                start: Mark { at_ns: 0, cpu_s: None },
                end: u.end
            }
            .cpu(),
            None
        );
    }
}
