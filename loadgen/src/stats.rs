//! Per-core measurements: latency histograms, counters, failure reasons, and their wire form.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::push::counts::PushCounts;

/// Highest latency a histogram tracks, in microseconds (one hour); longer ones saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// A latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_max(MAX_LATENCY_US, SIGFIG).expect("valid histogram bounds")
}

/// A histogram as (value, count) pairs of its non-empty buckets; merging them back is exact.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistData(pub Vec<(u64, u64)>);

impl HistData {
    /// Captures the recorded buckets of `hist`.
    pub fn capture(hist: &Histogram<u64>) -> HistData {
        HistData(
            hist.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Adds these buckets into `hist`.
    pub fn add_to(&self, hist: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            hist.saturating_record_n(value, count);
        }
    }

    /// Rebuilds a histogram.
    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut hist = new_histogram();
        self.add_to(&mut hist);
        hist
    }
}

/// The summary figures of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Reads the figures off `hist` (all zero when it is empty).
    pub fn of(hist: &Histogram<u64>) -> Percentiles {
        if hist.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: hist.value_at_quantile(0.5),
            p90: hist.value_at_quantile(0.9),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            mean: (hist.mean() * 10.0).round() / 10.0,
        }
    }
}

/// Counts keyed by reason, e.g. `refused -> 3`.
pub type Reasons = BTreeMap<String, u64>;

/// What one core measured, in the form workers send to the parent process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoreReport {
    /// Worker process number.
    pub proc: usize,
    /// The CPU the core ran on.
    pub core: usize,
    /// Connections (or churn loops) this core was given.
    pub conns_target: u64,
    /// Successful upgrades over the whole run.
    pub conns_established: u64,
    /// Long-lived connections still open when the load phase ended.
    pub conns_open_at_end: u64,
    /// Echoes (push: deliveries) received for messages sent inside the window.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Upgrades that count toward the measurement (churn: inside the window; others: all).
    pub handshakes: u64,
    /// Churn loops whose close handshake completed inside the window.
    pub loops_completed: u64,
    /// Failed connection attempts by reason.
    pub connect_failures: Reasons,
    /// Failures of established connections by reason.
    pub errors: Reasons,
    /// Message round-trip latency (push: publish to receive).
    pub latency: HistData,
    /// Connect + upgrade latency.
    pub handshake_latency: HistData,
    /// Push: publishes, deliveries and sequence accounting.
    pub push: Option<PushCounts>,
}

/// A core's live accumulators; turned into a [`CoreReport`] at the end.
pub struct CoreStats {
    /// Counters and reasons (histograms are kept separately, below).
    pub report: CoreReport,
    /// Message round-trip latency in microseconds.
    pub latency: Histogram<u64>,
    /// Connect + upgrade latency in microseconds.
    pub handshake_latency: Histogram<u64>,
}

impl CoreStats {
    /// Empty stats for `core` of process `proc`.
    pub fn new(proc: usize, core: usize, conns_target: u64) -> CoreStats {
        CoreStats {
            report: CoreReport {
                proc,
                core,
                conns_target,
                ..CoreReport::default()
            },
            latency: new_histogram(),
            handshake_latency: new_histogram(),
        }
    }

    /// Freezes the stats into a report.
    pub fn finish(self) -> CoreReport {
        CoreReport {
            latency: HistData::capture(&self.latency),
            handshake_latency: HistData::capture(&self.handshake_latency),
            ..self.report
        }
    }
}

/// Counters a core bumps as it goes, read once a second for the progress line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Live {
    /// Connections open right now.
    pub open: AtomicU64,
    /// Echoes received so far (any phase).
    pub messages: AtomicU64,
    /// Errors and failed connection attempts so far.
    pub errors: AtomicU64,
}

impl Live {
    /// Adds one to `counter` (relaxed: progress figures only).
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// One less open connection.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A snapshot: (open, messages, errors).
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.open.load(Ordering::Relaxed),
            self.messages.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_through_their_wire_form() {
        let mut hist = new_histogram();
        for v in [1u64, 5, 5, 90, 1000, 123_456, 10_000_000_000] {
            hist.saturating_record(v);
        }
        let data = HistData::capture(&hist);
        let json = serde_json::to_string(&data).unwrap();
        let back: HistData = serde_json::from_str(&json).unwrap();
        let rebuilt = back.to_histogram();
        assert_eq!(rebuilt.len(), hist.len());
        assert_eq!(Percentiles::of(&rebuilt), Percentiles::of(&hist));
        assert_eq!(Percentiles::of(&hist).p50, 90);
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }
}
