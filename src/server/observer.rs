//! What a core measures about itself: its latency histograms (written by the core alone, with
//! no lock and no system call: a clock read per read, per loop turn and per event), the
//! loop-lag reference point, the fan-outs waiting for their writes, and the once-a-second
//! publication of all of it into the registry.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use crate::metrics::{Counter, IntervalSummary, LatencyHistograms, LatencyMetric, Quantiles, Registry};

/// How often a core publishes its histograms (and the dashboards get a frame).
pub(crate) const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// A loop wait shorter than this returned at once: what it found was already there during the
/// turn before, so loop lag counts from that turn's start rather than from the wake-up.
const BLOCKED_WAIT: Duration = Duration::from_micros(50);

/// One core's measurements.
pub(crate) struct CoreObserver {
    live: RefCell<LatencyHistograms>,
    /// `live` as it was at the last publication (the interval summary is the difference).
    previous: RefCell<LatencyHistograms>,
    /// Scratch for that difference.
    interval: RefCell<LatencyHistograms>,
    /// Since when the connections read this turn may have been readable.
    lag_since: Cell<Instant>,
    turn_started: Cell<Instant>,
    /// Publish times of fan-outs queued on this core whose writes are not all submitted yet.
    fanouts: RefCell<Vec<Instant>>,
    last_publish: Cell<Instant>,
    /// Messages received and sent at the last publication.
    last_messages: Cell<(u64, u64)>,
}

impl CoreObserver {
    pub fn new() -> CoreObserver {
        let now = Instant::now();
        CoreObserver {
            live: RefCell::default(),
            previous: RefCell::default(),
            interval: RefCell::default(),
            lag_since: Cell::new(now),
            turn_started: Cell::new(now),
            fanouts: RefCell::default(),
            last_publish: Cell::new(now),
            last_messages: Cell::new((0, 0)),
        }
    }

    /// Records one observation of `metric`.
    #[inline]
    pub fn record(&self, metric: LatencyMetric, elapsed: Duration) {
        self.live.borrow_mut().record(metric, elapsed);
    }

    /// A loop turn of the data path begins; `waited` says whether the loop waited for work
    /// before it (and `wait_began` when that wait started). What this turn reads may have
    /// become readable at the wake-up, if the wait blocked, or else any time since the start
    /// of the previous turn.
    #[inline]
    pub fn turn_began(&self, wait_began: Option<Instant>) {
        let now = Instant::now();
        let blocked = wait_began.is_some_and(|began| now.duration_since(began) >= BLOCKED_WAIT);
        self.lag_since.set(if blocked { now } else { self.turn_started.get() });
        self.turn_started.set(now);
    }

    /// A read of a connection is about to be handled: records its loop lag and returns the
    /// clock reading that [`CoreObserver::read_handled`] measures from.
    #[inline]
    pub fn read_began(&self) -> Instant {
        let now = Instant::now();
        self.record(
            LatencyMetric::LoopLag,
            now.saturating_duration_since(self.lag_since.get()),
        );
        now
    }

    /// The read begun at `began` delivered `messages` messages to the handler: each is
    /// recorded with the read's average time.
    #[inline]
    pub fn read_handled(&self, began: Instant, messages: u64) {
        // No clock read for a read that handed the handler nothing (a pong, a partial frame).
        if messages == 0 {
            return;
        }
        let each = began.elapsed().as_nanos() as u64 / messages;
        self.live
            .borrow_mut()
            .record_n(LatencyMetric::HandlerDuration, each, messages);
    }

    /// A fan-out published at `published_at` was queued on this core's connections.
    pub fn fanout_queued(&self, published_at: Instant) {
        self.fanouts.borrow_mut().push(published_at);
    }

    /// The data path has submitted the writes of every connection that asked for service:
    /// the fan-outs queued before are written.
    #[inline]
    pub fn writes_submitted(&self) {
        let mut fanouts = self.fanouts.borrow_mut();
        if fanouts.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut live = self.live.borrow_mut();
        for published_at in fanouts.drain(..) {
            live.record(
                LatencyMetric::FanoutLatency,
                now.saturating_duration_since(published_at),
            );
        }
    }

    /// Publishes into `registry`'s slot for `core` if [`PUBLISH_INTERVAL`] has passed since the
    /// last time; returns whether it did.
    pub fn maybe_publish(&self, registry: &Registry, core: usize, now: Instant) -> bool {
        let length = now.saturating_duration_since(self.last_publish.get());
        if length < PUBLISH_INTERVAL {
            return false;
        }
        self.last_publish.set(now);
        let counters = registry.core(core);
        let messages = (counters.get(Counter::MessagesIn), counters.get(Counter::MessagesOut));
        let (received_before, sent_before) = self.last_messages.replace(messages);
        let per_s = |n: u64| n as f64 / length.as_secs_f64();
        let live = self.live.borrow();
        let mut previous = self.previous.borrow_mut();
        let mut interval = self.interval.borrow_mut();
        interval.copy_from(&live);
        interval.subtract(&previous);
        let summary = IntervalSummary {
            length,
            messages_received_per_s: per_s(messages.0.wrapping_sub(received_before)),
            messages_sent_per_s: per_s(messages.1.wrapping_sub(sent_before)),
            latency: LatencyMetric::ALL.map(|m| Quantiles::of(&interval.get(m).histogram)),
        };
        previous.copy_from(&live);
        let mut slot = registry.published(core);
        slot.totals.copy_from(&live);
        slot.interval = summary;
        true
    }
}
