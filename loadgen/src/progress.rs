//! The once-a-second progress line: on stderr, or, in a worker process, as a line on stdout
//! for the parent to add up.

use std::io::Write;
use std::time::{Duration, Instant};

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nowhere (--quiet).
    Quiet,
    /// A human line on stderr.
    Stderr,
    /// `progress OPEN MESSAGES ERRORS` on stdout, for the parent process.
    Pipe,
}

/// Counters summed over every core (and process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections open now.
    pub open: u64,
    /// Echoes received so far.
    pub messages: u64,
    /// Errors so far.
    pub errors: u64,
}

impl Snapshot {
    /// Parses the payload of a `progress` pipe line.
    pub fn parse(text: &str) -> Option<Snapshot> {
        let mut it = text.split_ascii_whitespace().map(str::parse::<u64>);
        Some(Snapshot {
            open: it.next()?.ok()?,
            messages: it.next()?.ok()?,
            errors: it.next()?.ok()?,
        })
    }
}

impl std::ops::Add for Snapshot {
    type Output = Snapshot;

    fn add(self, o: Snapshot) -> Snapshot {
        Snapshot {
            open: self.open + o.open,
            messages: self.messages + o.messages,
            errors: self.errors + o.errors,
        }
    }
}

/// Emits a progress line whenever a second has passed.
pub struct Ticker {
    mode: ProgressMode,
    conns_target: u64,
    start: Instant,
    next: Instant,
    last: Snapshot,
}

impl Ticker {
    /// A ticker starting now.
    pub fn new(mode: ProgressMode, conns_target: u64) -> Ticker {
        let now = Instant::now();
        Ticker {
            mode,
            conns_target,
            start: now,
            next: now + Duration::from_secs(1),
            last: Snapshot::default(),
        }
    }

    /// Prints a line if a second has passed since the last one; `read` is called only then.
    pub fn tick(&mut self, read: impl FnOnce() -> Snapshot) {
        let now = Instant::now();
        if self.mode == ProgressMode::Quiet || now < self.next {
            return;
        }
        let snap = read();
        match self.mode {
            ProgressMode::Stderr => eprintln!(
                "[{:>4}s] conns {}/{}  msgs/s {}  errors {}",
                now.duration_since(self.start).as_secs(),
                snap.open,
                self.conns_target,
                snap.messages.saturating_sub(self.last.messages),
                snap.errors
            ),
            ProgressMode::Pipe => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "progress {} {} {}", snap.open, snap.messages, snap.errors);
                let _ = out.flush();
            }
            ProgressMode::Quiet => {}
        }
        self.last = snap;
        while self.next <= now {
            self.next += Duration::from_secs(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_lines_round_trip_and_add_up() {
        let a = Snapshot::parse("3 100 1").unwrap();
        let b = Snapshot::parse("2 50 0").unwrap();
        assert_eq!(
            a + b,
            Snapshot {
                open: 5,
                messages: 150,
                errors: 1
            }
        );
        assert_eq!(Snapshot::parse("1 2"), None);
    }
}
