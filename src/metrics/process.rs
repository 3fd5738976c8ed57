//! The standard process metrics (`process_open_fds`, `process_max_fds`,
//! `process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_start_time_seconds`),
//! read from `/proc/self` at scrape time.
//!
//! The open-descriptor count comes from the size `stat` reports for `/proc/self/fd` (Linux 6.2
//! and later: microseconds even at 20,000 descriptors); older kernels report 0 there, and the
//! directory is counted instead (milliseconds at that size).

use std::fmt::Write;

/// A sample of the process' resources. A field is `None` where `/proc` could not tell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcessSample {
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub resident_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessSample {
    /// Reads the current values.
    pub fn now() -> ProcessSample {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().and_then(stat_fields);
        // SAFETY: sysconf with valid names has no preconditions.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let per_tick = (ticks > 0).then(|| 1.0 / ticks as f64);
        ProcessSample {
            open_fds: open_fds(),
            max_fds: max_fds(),
            resident_bytes: fields
                .and_then(|f| f.rss_pages.checked_mul(page.max(0) as u64))
                .filter(|_| page > 0),
            cpu_seconds: fields.zip(per_tick).map(|(f, t)| f.cpu_ticks as f64 * t),
            start_time_seconds: fields
                .zip(per_tick)
                .zip(boot_time())
                .map(|((f, t), boot)| boot as f64 + f.start_ticks as f64 * t),
        }
    }

    /// Writes the sample in the Prometheus text format (a field `/proc` could not tell is left
    /// out).
    pub fn write_text(&self, out: &mut String) {
        let series = [
            (
                "process_open_fds",
                "gauge",
                "Open file descriptors.",
                self.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "gauge",
                "The open-file limit (RLIMIT_NOFILE soft limit).",
                self.max_fds.map(|v| v as f64),
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory.",
                self.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
                self.cpu_seconds,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                self.start_time_seconds,
            ),
        ];
        for (name, kind, help, value) in series {
            if let Some(value) = value {
                let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
            }
        }
    }
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
    cpu_ticks: u64,
    start_ticks: u64,
    rss_pages: u64,
}

/// Parses `/proc/self/stat` (the command name, field 2, may hold spaces and parentheses: the
/// fields after it are counted from its last `)`).
fn stat_fields(stat: &str) -> Option<StatFields> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): field N is at index N - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatFields {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        rss_pages: field(24)?,
    })
}

/// Seconds since the epoch at boot (`btime` in `/proc/stat`), read once.
fn boot_time() -> Option<u64> {
    static BOOT_TIME: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BOOT_TIME.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn open_fds() -> Option<u64> {
    match std::fs::metadata("/proc/self/fd").map(|m| m.len()) {
        Ok(size) if size > 0 => Some(size),
        _ => std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as u64),
    }
}

fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let line = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23";
        // Fields 14, 15 (utime, stime) are 11, 12; field 22 (starttime) is 19; field 24 (rss) 21.
        assert_eq!(
            stat_fields(line),
            Some(StatFields {
                cpu_ticks: 23,
                start_ticks: 19,
                rss_pages: 21
            })
        );
        assert_eq!(stat_fields("garbage"), None);
    }

    #[test]
    fn samples_this_process() {
        let _file = std::fs::File::open("/proc/self/stat").unwrap();
        let after = ProcessSample::now();
        assert!(
            after.open_fds.unwrap() >= 4,
            "stdin, stdout, stderr and the file: {after:?}"
        );
        assert!(after.max_fds.unwrap() >= after.open_fds.unwrap());
        assert!(after.resident_bytes.unwrap() > 1 << 20);
        assert!(after.cpu_seconds.unwrap() >= 0.0);
        assert!(after.start_time_seconds.unwrap() > 1.6e9);
        let mut text = String::new();
        after.write_text(&mut text);
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 5, "{text}");
    }
}
