//! What every publisher shares: the run's publish schedule split into units, the payload of a
//! publish, and the publish counters.
//!
//! Publish `n` of the run (over every process) is due `n / rate` seconds after the go signal
//! and goes to topic `n mod topics`; unit `u` of `U` sends publishes `u, u + U, u + 2U, ...`,
//! so the units together keep to the rate and to the round-robin over topics.

use std::time::Instant;

use super::{clock, payload};
use crate::engine::Engine;
use crate::pacer::{self, Schedule};

/// One publish: its topic and its intended send time (an engine stamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// Topic number.
    pub topic: u32,
    /// When it was meant to be sent.
    pub due: u64,
}

/// Unit `index` of `count`: one share of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// This unit's number.
    pub index: u64,
    /// How many units the run has.
    pub count: u64,
}

impl Unit {
    /// The run-wide number of this unit's `j`-th publish.
    pub fn publish_number(&self, j: u64) -> u64 {
        j * self.count + self.index
    }

    /// This unit's share of a run publishing `rate` per second from stamp `go` until `end`.
    pub fn schedule(&self, rate: f64, go: u64, end: u64) -> Schedule {
        let interval_ns = 1e9 / rate;
        Schedule {
            first: go + (self.index as f64 * interval_ns) as u64,
            interval_ns: self.count as f64 * interval_ns,
            end,
        }
    }
}

/// Paces `unit`'s publishes from the go signal until the window ends, handing each to
/// `deliver` when it is due; one the pacer only reaches after the window (a starved core)
/// fails as not sent.
pub async fn pace(engine: &Engine, unit: Unit, mut deliver: impl FnMut(Publish)) {
    let push = engine.plan.push.as_ref().expect("a push run");
    let timeline = engine.timeline();
    let schedule = unit.schedule(push.rate, engine.stamp(timeline.go), engine.stamp(timeline.window_end));
    let topics = u64::from(push.topics);
    pacer::pace(engine, schedule, |j, due| {
        let n = unit.publish_number(j);
        engine.push_counts().scheduled += 1;
        if open(engine) {
            deliver(Publish {
                topic: (n % topics) as u32,
                due,
            });
        } else {
            failed(engine, "publish_not_sent", 1);
        }
        true
    })
    .await;
}

/// Whether publishes may still be written: nothing is sent once the window has ended, so the
/// drain only collects what is already on its way.
pub fn open(engine: &Engine) -> bool {
    Instant::now() < engine.timeline().window_end
}

/// Appends the payload of `publish` to `out`.
pub fn encode(engine: &Engine, publish: &Publish, out: &mut Vec<u8>) {
    let sent_ns = clock::unix_ns(engine.instant(publish.due));
    payload::encode(sent_ns, &engine.plan.traffic.payload, out);
}

/// `count` publishes were written to the server.
pub fn written(engine: &Engine, count: u64) {
    engine.push_counts().sent += count;
}

/// The server acknowledged a publish to `topic`.
pub fn acked(engine: &Engine, topic: u32) {
    engine.push_counts().acked[topic as usize] += 1;
}

/// `count` publishes failed for `reason`.
pub fn failed(engine: &Engine, reason: &str, count: u64) {
    if count > 0 {
        engine.push_counts().failed += count;
        engine.error_count(reason.to_string(), count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_together_keep_to_the_run_schedule() {
        // 1000/s for 10 ms split over 3 units: publish n is due at n ms, each exactly once.
        let mut all: Vec<(u64, u64)> = (0..3)
            .flat_map(|index| {
                let unit = Unit { index, count: 3 };
                let schedule = unit.schedule(1000.0, 5, 5 + 10_000_000);
                (0..)
                    .map(move |j| (unit.publish_number(j), schedule.at(j)))
                    .take_while(move |&(_, at)| at < schedule.end)
            })
            .collect();
        all.sort_unstable();
        let expected: Vec<(u64, u64)> = (0..10).map(|n| (n, 5 + n * 1_000_000)).collect();
        assert_eq!(all, expected);
    }
}
