//! Open-loop pacing: a per-core [`Schedule`] of intended send times, each event handed on when
//! it is due (echo: round-robin to the core's connections).
//!
//! monoio's timer wheel has a 1 ms resolution, which would add up to a millisecond of
//! artificial latency to every message measured from its intended send time. On io_uring the
//! pacer therefore sleeps on a `timerfd` (nanosecond resolution) read through the ring; on the
//! epoll fallback driver it uses the timer wheel.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::Instant;

use crate::engine::Engine;

/// Sleeps until an instant with the best precision the driver offers.
pub struct PaceClock {
    timerfd: Option<monoio::fs::File>,
    scratch: Option<Vec<u8>>,
}

impl PaceClock {
    /// A timerfd clock on io_uring, the timer wheel otherwise.
    pub fn new() -> PaceClock {
        let timerfd = (!monoio::utils::is_legacy()).then(make_timerfd).flatten();
        PaceClock {
            timerfd,
            scratch: Some(Vec::with_capacity(8)),
        }
    }

    /// Returns at (or just after) `deadline`.
    pub async fn sleep_until(&mut self, deadline: Instant) {
        let Some(wait) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            return;
        };
        let Some(file) = &self.timerfd else {
            monoio::time::sleep(wait).await;
            return;
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a timerfd we own and a valid itimerspec.
        if unsafe { libc::timerfd_settime(file.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            monoio::time::sleep(wait).await;
            return;
        }
        let buf = self.scratch.take().unwrap_or_else(|| Vec::with_capacity(8));
        let (res, buf) = file.read_at(buf, 0).await;
        self.scratch = Some(buf);
        if res.is_err() {
            // Never spin: fall back to the coarse timer for the rest of the run.
            self.timerfd = None;
            monoio::time::sleep_until(monoio::time::Instant::from_std(deadline)).await;
        }
    }
}

fn make_timerfd() -> Option<monoio::fs::File> {
    // SAFETY: plain syscall; the descriptor is owned by the File below.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    monoio::fs::File::from_std(unsafe { File::from_raw_fd(fd) }).ok()
}

/// An open-loop schedule in engine stamps: event `j` is due at `first + j * interval_ns`, and
/// events due at or after `end` are not sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// When event 0 is due.
    pub first: u64,
    /// Nanoseconds between two events.
    pub interval_ns: f64,
    /// No event is due at or after this.
    pub end: u64,
}

impl Schedule {
    /// When event `j` is due.
    pub fn at(&self, j: u64) -> u64 {
        self.first + (j as f64 * self.interval_ns) as u64
    }
}

/// Calls `fire(j, due)` for every event of `schedule` once it is due (late events at once, in
/// order) until the schedule ends or `fire` returns false.
pub async fn pace(engine: &Engine, schedule: Schedule, mut fire: impl FnMut(u64, u64) -> bool) {
    let mut clock = PaceClock::new();
    let mut next = 0u64;
    loop {
        let now = engine.now();
        while schedule.at(next) <= now {
            if schedule.at(next) >= schedule.end || !fire(next, schedule.at(next)) {
                return;
            }
            next += 1;
        }
        if schedule.at(next) >= schedule.end {
            return;
        }
        clock.sleep_until(engine.instant(schedule.at(next))).await;
    }
}

/// Sends `rate_total * (this core's share of connections)` messages per second from the start
/// of the load until the window ends; message `j` goes to the `j`-th live connection.
pub async fn run(engine: Rc<Engine>, rate_total: f64) {
    let plan = &engine.plan;
    let share = engine.lane.conn_count(plan.conns_total) as f64 / plan.conns_total.max(1) as f64;
    let rate = rate_total * share;
    if rate <= 0.0 {
        return;
    }
    let timeline = engine.timeline();
    let schedule = Schedule {
        first: engine.stamp(timeline.go),
        interval_ns: 1e9 / rate,
        end: engine.stamp(timeline.window_end),
    };
    pace(&engine, schedule, |j, due| engine.dispatch(j, due)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sleeps_with_sub_millisecond_precision_on_io_uring() {
        if !monoio::utils::detect_uring() {
            return;
        }
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut clock = PaceClock::new();
            assert!(clock.timerfd.is_some());
            let start = Instant::now();
            for i in 1..=20u32 {
                clock.sleep_until(start + Duration::from_micros(150) * i).await;
            }
            // Never early; a correct timerfd read takes ~3 ms, the timer wheel would take 20 ms.
            assert!(start.elapsed() >= Duration::from_micros(3000));
            assert!(clock.timerfd.is_some());
        });
    }
}
