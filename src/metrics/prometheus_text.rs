//! Prometheus histograms written from HdrHistograms.
//!
//! The `metrics` crate builds histograms from individual observations; ours are recorded by
//! the cores into HdrHistograms, so their `_bucket`, `_sum` and `_count` lines are written here
//! in the text format, from the copies the cores publish. A bucket counts the observations in
//! the HdrHistogram buckets up to the one holding its bound (2 significant digits: exact below
//! 256 ns, within 1% above).

use std::fmt::Write;

use super::latency::{LatencyMetric, Recorded};

/// What one core's histogram contributes to the text: cumulative counts at each bound, the
/// count and the sum. Taken while the core's publication slot is locked (one pass over the
/// histogram's counts, no copy of it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BucketCounts {
    cumulative: Vec<u64>,
    count: u64,
    sum_seconds: f64,
}

impl BucketCounts {
    /// The counts of `recorded` at `metric`'s bounds.
    pub fn of(metric: LatencyMetric, recorded: &Recorded) -> BucketCounts {
        let histogram = &recorded.histogram;
        let mut below = 0u64;
        let mut next_low = 0u64;
        let cumulative = metric
            .buckets()
            .iter()
            .map(|&bound| {
                let bound_ns = (bound * 1e9).round() as u64;
                if bound_ns >= next_low {
                    below += histogram.count_between(next_low, bound_ns);
                    next_low = histogram.highest_equivalent(bound_ns) + 1;
                }
                below
            })
            .collect();
        BucketCounts {
            cumulative,
            count: histogram.len(),
            sum_seconds: recorded.sum_ns as f64 / 1e9,
        }
    }
}

/// Writes the family of `metric`: one series per core, labelled `core`.
pub(crate) fn write_histogram(out: &mut String, metric: LatencyMetric, per_core: &[BucketCounts]) {
    let name = metric.prometheus_name();
    let _ = write!(out, "# HELP {name} {}\n# TYPE {name} histogram\n", metric.help());
    for (core, counts) in per_core.iter().enumerate() {
        for (bound, below) in metric.buckets().iter().zip(&counts.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{core=\"{core}\",le=\"{bound}\"}} {below}");
        }
        let count = counts.count;
        let _ = writeln!(out, "{name}_bucket{{core=\"{core}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{core=\"{core}\"}} {}", counts.sum_seconds);
        let _ = writeln!(out, "{name}_count{{core=\"{core}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LatencyHistograms;

    #[test]
    fn buckets_are_cumulative_with_sum_and_count() {
        let mut core0 = LatencyHistograms::new();
        for us in [5, 20, 20, 900, 3_000_000] {
            core0.record_n(LatencyMetric::HandshakeDuration, us * 1000, 1);
        }
        let core1 = LatencyHistograms::new();
        let mut out = String::new();
        let metric = LatencyMetric::HandshakeDuration;
        let per_core = [
            BucketCounts::of(metric, core0.get(metric)),
            BucketCounts::of(metric, core1.get(metric)),
        ];
        write_histogram(&mut out, metric, &per_core);
        let value = |series: &str| -> f64 {
            let line = out
                .lines()
                .find(|l| l.starts_with(series))
                .unwrap_or_else(|| panic!("{series} in {out}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let name = "ringcast_handshake_duration_seconds";
        assert!(out.starts_with(&format!("# HELP {name} ")));
        assert!(out.contains(&format!("# TYPE {name} histogram\n")));
        assert_eq!(value(&format!("{name}_bucket{{core=\"0\",le=\"0.00001\"}}")), 1.0);
        assert_eq!(value(&format!("{name}_bucket{{core=\"0\",le=\"0.000025\"}}")), 3.0);
        assert_eq!(value(&format!("{name}_bucket{{core=\"0\",le=\"0.001\"}}")), 4.0);
        assert_eq!(value(&format!("{name}_bucket{{core=\"0\",le=\"2.5\"}}")), 4.0);
        assert_eq!(value(&format!("{name}_bucket{{core=\"0\",le=\"5\"}}")), 5.0);
        assert_eq!(value(&format!("{name}_bucket{{core=\"0\",le=\"+Inf\"}}")), 5.0);
        assert_eq!(value(&format!("{name}_count{{core=\"0\"}}")), 5.0);
        assert!((value(&format!("{name}_sum{{core=\"0\"}}")) - 3.000945).abs() < 1e-9);
        assert_eq!(value(&format!("{name}_count{{core=\"1\"}}")), 0.0);
        assert_eq!(value(&format!("{name}_bucket{{core=\"1\",le=\"+Inf\"}}")), 0.0);
    }
}
