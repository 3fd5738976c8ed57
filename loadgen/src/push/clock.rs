//! Publish times on a clock every process of a run shares: nanoseconds since the UNIX epoch.
//!
//! The wall clock is read once per process, as an anchor; every later time is the anchor plus
//! the monotonic time since, so a wall-clock step during a run cannot move a measurement.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Reads of the two clocks tried for the anchor; the pair read closest together wins.
const ANCHOR_TRIES: usize = 8;

struct Anchor {
    at: Instant,
    unix_ns: u64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let (_, at, wall) = (0..ANCHOR_TRIES)
            .map(|_| {
                let before = Instant::now();
                let wall = SystemTime::now();
                let spread = before.elapsed();
                (spread, before + spread / 2, wall)
            })
            .min_by_key(|&(spread, _, _)| spread)
            .expect("at least one try");
        let unix_ns = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Anchor { at, unix_ns }
    })
}

/// `at` in nanoseconds since the UNIX epoch.
pub fn unix_ns(at: Instant) -> u64 {
    let a = anchor();
    match at.checked_duration_since(a.at) {
        Some(after) => a.unix_ns + after.as_nanos() as u64,
        None => a.unix_ns.saturating_sub(a.at.duration_since(at).as_nanos() as u64),
    }
}

/// The instant `unix_ns` nanoseconds after the UNIX epoch (the anchor itself when that is not
/// representable).
pub fn instant(unix_ns: u64) -> Instant {
    let a = anchor();
    let moved = if unix_ns >= a.unix_ns {
        a.at.checked_add(Duration::from_nanos(unix_ns - a.unix_ns))
    } else {
        a.at.checked_sub(Duration::from_nanos(a.unix_ns - unix_ns))
    };
    moved.unwrap_or(a.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_wall_clock_and_round_trips() {
        let now = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(unix_ns(now).abs_diff(wall) < 50_000_000, "{} vs {wall}", unix_ns(now));
        for at in [now, now + Duration::from_millis(1500)] {
            assert_eq!(instant(unix_ns(at)), at);
        }
        let earlier = unix_ns(now) - 1_000_000;
        assert_eq!(unix_ns(instant(earlier)), earlier);
    }
}
