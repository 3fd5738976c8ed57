//! The engine's latency histograms: which ones there are, their Prometheus names and buckets,
//! and one core's set of them ([`LatencyHistograms`], HdrHistograms in nanoseconds).

use std::time::Duration;

use hdrhistogram::Histogram;

/// A latency the engine measures on every core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum LatencyMetric {
    /// From accept to the `101` written.
    HandshakeDuration,
    /// How long a readable connection waited before it was served (an upper bound: from the
    /// start of the loop turn before the one that read it, or from the wake-up if the loop was
    /// idle).
    LoopLag,
    /// Decoding and handler time per message, averaged over the messages of one read.
    HandlerDuration,
    /// From a publish reaching this node's hub to this core having submitted the writes of
    /// every local copy (push mode; one observation per publish per core).
    FanoutLatency,
    /// From the upgrade to the end of the connection.
    ConnectionLifetime,
    /// One pass of the core's timer wheel (heartbeats, timeouts).
    TimerPassDuration,
}

/// Bucket bounds (seconds) for durations from microseconds to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Bucket bounds (seconds) for connection lifetimes, from a millisecond to a day.
const LIFETIME_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

/// Significant digits every histogram keeps (1% precision, 30-45 KiB per histogram).
const SIGFIG: u8 = 2;

impl LatencyMetric {
    /// Every metric, in index order.
    pub const ALL: [LatencyMetric; 6] = [
        LatencyMetric::HandshakeDuration,
        LatencyMetric::LoopLag,
        LatencyMetric::HandlerDuration,
        LatencyMetric::FanoutLatency,
        LatencyMetric::ConnectionLifetime,
        LatencyMetric::TimerPassDuration,
    ];

    /// The short name used by `/debug/latency?metric=` and the stats stream.
    pub fn short_name(self) -> &'static str {
        match self {
            LatencyMetric::HandshakeDuration => "handshake_duration",
            LatencyMetric::LoopLag => "loop_lag",
            LatencyMetric::HandlerDuration => "handler_duration",
            LatencyMetric::FanoutLatency => "fanout_latency",
            LatencyMetric::ConnectionLifetime => "connection_lifetime",
            LatencyMetric::TimerPassDuration => "timer_pass_duration",
        }
    }

    /// The metric named `name` (its short name).
    pub fn from_short_name(name: &str) -> Option<LatencyMetric> {
        LatencyMetric::ALL.into_iter().find(|m| m.short_name() == name)
    }

    /// The Prometheus histogram family (in seconds).
    pub fn prometheus_name(self) -> &'static str {
        match self {
            LatencyMetric::HandshakeDuration => "ringcast_handshake_duration_seconds",
            LatencyMetric::LoopLag => "ringcast_loop_lag_seconds",
            LatencyMetric::HandlerDuration => "ringcast_handler_duration_seconds",
            LatencyMetric::FanoutLatency => "ringcast_fanout_latency_seconds",
            LatencyMetric::ConnectionLifetime => "ringcast_connection_lifetime_seconds",
            LatencyMetric::TimerPassDuration => "ringcast_timer_pass_duration_seconds",
        }
    }

    /// The family's help text.
    pub fn help(self) -> &'static str {
        match self {
            LatencyMetric::HandshakeDuration => "Time from accept to the 101 response written, per core.",
            LatencyMetric::LoopLag => {
                "Time a readable connection waited before its core served it (upper bound), per core."
            }
            LatencyMetric::HandlerDuration => {
                "Decoding and handler time per message, averaged over the messages of one read, per core."
            }
            LatencyMetric::FanoutLatency => {
                "Time from a publish reaching this node to this core having written every local copy, per core."
            }
            LatencyMetric::ConnectionLifetime => "Time from the upgrade to the end of a connection, per core.",
            LatencyMetric::TimerPassDuration => "Duration of one pass of the core's timer wheel, per core.",
        }
    }

    /// The `le` bounds of the Prometheus buckets, in seconds (`+Inf` comes on top).
    pub fn buckets(self) -> &'static [f64] {
        match self {
            LatencyMetric::ConnectionLifetime => LIFETIME_BUCKETS,
            _ => LATENCY_BUCKETS,
        }
    }

    /// The longest value tracked, in nanoseconds (longer ones count as this).
    fn max_ns(self) -> u64 {
        match self {
            LatencyMetric::ConnectionLifetime => 30 * 86_400 * 1_000_000_000,
            _ => 60 * 1_000_000_000,
        }
    }
}

/// One histogram and the exact sum of what it recorded (HdrHistogram keeps no exact sum, and
/// Prometheus' `_sum` needs one).
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The distribution, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// The sum of every recorded value, in nanoseconds.
    pub sum_ns: u128,
}

impl Recorded {
    fn new(metric: LatencyMetric) -> Recorded {
        Recorded {
            histogram: Histogram::new_with_bounds(1, metric.max_ns(), SIGFIG).expect("valid histogram bounds"),
            sum_ns: 0,
        }
    }
}

/// One core's latency histograms. Written only by that core; copied out for scrapes.
#[derive(Debug, Clone)]
pub struct LatencyHistograms {
    metrics: [Recorded; LatencyMetric::ALL.len()],
}

impl LatencyHistograms {
    /// Empty histograms.
    pub fn new() -> LatencyHistograms {
        LatencyHistograms {
            metrics: LatencyMetric::ALL.map(Recorded::new),
        }
    }

    /// Records one `elapsed`.
    #[inline]
    pub fn record(&mut self, metric: LatencyMetric, elapsed: Duration) {
        self.record_n(metric, elapsed.as_nanos() as u64, 1);
    }

    /// Records `count` observations of `ns` nanoseconds each.
    #[inline]
    pub fn record_n(&mut self, metric: LatencyMetric, ns: u64, count: u64) {
        let recorded = &mut self.metrics[metric as usize];
        recorded.histogram.saturating_record_n(ns, count);
        recorded.sum_ns += u128::from(ns) * u128::from(count);
    }

    /// The histogram of `metric`.
    pub fn get(&self, metric: LatencyMetric) -> &Recorded {
        &self.metrics[metric as usize]
    }

    /// Makes this a copy of `other` without allocating.
    pub fn copy_from(&mut self, other: &LatencyHistograms) {
        for (mine, theirs) in self.metrics.iter_mut().zip(&other.metrics) {
            mine.histogram.set_to(&theirs.histogram).expect("same bounds");
            mine.sum_ns = theirs.sum_ns;
        }
    }

    /// Adds `other`'s observations (merging cores).
    pub fn add(&mut self, other: &LatencyHistograms) {
        for (mine, theirs) in self.metrics.iter_mut().zip(&other.metrics) {
            mine.histogram.add(&theirs.histogram).expect("same bounds");
            mine.sum_ns += theirs.sum_ns;
        }
    }

    /// Removes `earlier`'s observations, where `earlier` is an earlier copy of these
    /// histograms (what was recorded since).
    pub fn subtract(&mut self, earlier: &LatencyHistograms) {
        for (mine, theirs) in self.metrics.iter_mut().zip(&earlier.metrics) {
            mine.histogram
                .subtract(&theirs.histogram)
                .expect("an earlier copy holds less");
            mine.sum_ns -= theirs.sum_ns;
        }
    }
}

impl Default for LatencyHistograms {
    fn default() -> Self {
        LatencyHistograms::new()
    }
}

/// Count, median and 99th percentile of one histogram, in nanoseconds (0 when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quantiles {
    /// Observations.
    pub count: u64,
    /// The median.
    pub p50_ns: u64,
    /// The 99th percentile.
    pub p99_ns: u64,
}

impl Quantiles {
    /// The percentiles of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Quantiles {
        if histogram.is_empty() {
            return Quantiles::default();
        }
        Quantiles {
            count: histogram.len(),
            p50_ns: histogram.value_at_quantile(0.5),
            p99_ns: histogram.value_at_quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_follow_prometheus_conventions() {
        for (i, metric) in LatencyMetric::ALL.into_iter().enumerate() {
            assert_eq!(metric as usize, i, "ALL is in index order");
            assert_eq!(LatencyMetric::from_short_name(metric.short_name()), Some(metric));
            let name = metric.prometheus_name();
            assert!(name.starts_with("ringcast_") && name.ends_with("_seconds"), "{name}");
            assert!(
                metric.buckets().windows(2).all(|w| w[0] < w[1]),
                "{name} buckets ascend"
            );
        }
        assert_eq!(LatencyMetric::from_short_name("nope"), None);
    }

    #[test]
    fn records_counts_sums_and_saturates() {
        let mut hists = LatencyHistograms::new();
        hists.record(LatencyMetric::HandshakeDuration, Duration::from_micros(250));
        hists.record_n(LatencyMetric::HandlerDuration, 4, 10);
        hists.record(LatencyMetric::LoopLag, Duration::from_secs(3600));
        let handler = hists.get(LatencyMetric::HandlerDuration);
        assert_eq!((handler.histogram.len(), handler.sum_ns), (10, 40));
        let lag = &hists.get(LatencyMetric::LoopLag).histogram;
        assert_eq!(lag.len(), 1);
        assert!(
            lag.max() >= 60_000_000_000 && lag.max() < 61_000_000_000,
            "saturated at the max"
        );
        let mut merged = LatencyHistograms::new();
        merged.copy_from(&hists);
        merged.add(&hists);
        assert_eq!(merged.get(LatencyMetric::HandlerDuration).sum_ns, 80);
        assert_eq!(merged.get(LatencyMetric::HandshakeDuration).histogram.len(), 2);
        let p = Quantiles::of(&merged.get(LatencyMetric::HandlerDuration).histogram);
        assert_eq!((p.count, p.p50_ns, p.p99_ns), (20, 4, 4));
        merged.subtract(&hists);
        assert_eq!(merged.get(LatencyMetric::HandlerDuration).sum_ns, 40);
        assert_eq!(merged.get(LatencyMetric::HandshakeDuration).histogram.len(), 1);
        assert_eq!(
            Quantiles::of(&LatencyHistograms::new().get(LatencyMetric::LoopLag).histogram),
            Quantiles::default()
        );
    }
}
