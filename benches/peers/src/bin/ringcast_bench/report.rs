//! Medians, per-scenario tables and ratio lines.

use std::fmt::Write as _;

use crate::measure::Sample;
use crate::scenario::{Better, Metric, Role, Scenario, Variant};

/// Every repetition of one variant within a scenario.
pub struct Outcome {
    /// The server configuration.
    pub variant: Variant,
    /// Samples of the successful repetitions.
    pub samples: Vec<Sample>,
    /// `(repetition, error)` for the failed ones.
    pub failures: Vec<(u32, String)>,
}

impl Outcome {
    /// An outcome with no repetitions yet.
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            samples: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Median of `key` over the successful repetitions that reported it.
    pub fn median(&self, key: &str) -> Option<f64> {
        median(
            self.samples
                .iter()
                .filter_map(|sample| sample.get(key).copied())
                .collect(),
        )
    }
}

/// Median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

/// The table for one scenario: one row per variant with the median of every metric.
pub fn table(scenario: &Scenario, outcomes: &[Outcome], reps: u32) -> String {
    let metrics = scenario.workload.metrics();
    let mut header = vec!["server".to_owned(), "ok".to_owned()];
    header.extend(metrics.iter().map(|metric| metric.label.to_owned()));
    let mut rows = vec![header];
    for outcome in outcomes {
        let mut row = vec![outcome.variant.label(), format!("{}/{reps}", outcome.samples.len())];
        row.extend(
            metrics
                .iter()
                .map(|metric| outcome.median(metric.key).map_or_else(|| "-".to_owned(), format_value)),
        );
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|col| rows.iter().map(|row| row[col].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(col, (cell, width))| {
                if col == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    for outcome in outcomes {
        for (rep, error) in &outcome.failures {
            let _ = writeln!(out, "  ! {} rep {rep} failed: {error}", outcome.variant.label());
        }
    }
    out
}

/// Ratio lines: ringcast against the best peer for each headline metric, and against its
/// baseline configuration where the scenario has one.
pub fn ratios(scenario: &Scenario, outcomes: &[Outcome]) -> Vec<String> {
    let Some(subject) = outcomes.iter().find(|o| o.variant.role == Role::Subject) else {
        return Vec::new();
    };
    let headline: Vec<&Metric> = scenario
        .workload
        .metrics()
        .iter()
        .filter(|metric| metric.headline)
        .collect();
    let peers: Vec<&Outcome> = outcomes.iter().filter(|o| o.variant.role == Role::Peer).collect();
    let vs_peers: Vec<String> = headline
        .iter()
        .map(|metric| match (subject.median(metric.key), best_peer(&peers, metric)) {
            (Some(ours), Some((theirs, peer))) => {
                format!(
                    "{} {} vs {} ({})",
                    metric.label,
                    format_ratio(ours, theirs),
                    peer.variant.label(),
                    direction(metric)
                )
            }
            _ => format!("{} n/a", metric.label),
        })
        .collect();
    let mut lines = vec![format!(
        "{} / best peer: {}",
        subject.variant.label(),
        vs_peers.join("; ")
    )];
    if let Some(baseline) = outcomes.iter().find(|o| o.variant.role == Role::Baseline) {
        let vs_baseline: Vec<String> = headline
            .iter()
            .map(
                |metric| match (subject.median(metric.key), baseline.median(metric.key)) {
                    (Some(ours), Some(base)) => format!("{} {}", metric.label, format_ratio(ours, base)),
                    _ => format!("{} n/a", metric.label),
                },
            )
            .collect();
        lines.push(format!(
            "{} / {}: {}",
            subject.variant.label(),
            baseline.variant.label(),
            vs_baseline.join("; ")
        ));
    }
    lines
}

/// The peer with the best median of `metric`, with that median.
fn best_peer<'a>(peers: &[&'a Outcome], metric: &Metric) -> Option<(f64, &'a Outcome)> {
    let candidates = peers
        .iter()
        .filter_map(|peer| peer.median(metric.key).map(|value| (value, *peer)));
    match metric.better {
        Better::Higher => candidates.max_by(|a, b| a.0.total_cmp(&b.0)),
        Better::Lower => candidates.min_by(|a, b| a.0.total_cmp(&b.0)),
    }
}

/// How to read a ratio of `metric`.
fn direction(metric: &Metric) -> &'static str {
    match metric.better {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
    }
}

/// `ours / theirs` as `1.23x`, or `n/a` when the denominator is not positive.
fn format_ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}x", ours / theirs)
    } else {
        "n/a".to_owned()
    }
}

/// Whole numbers from 100 up, one decimal from 10, two below.
fn format_value(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 || value.fract() == 0.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::all;

    fn outcome(variant: Variant, values: &[(&'static str, f64)]) -> Outcome {
        Outcome {
            variant,
            samples: vec![values.iter().copied().collect()],
            failures: Vec::new(),
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn ratio_uses_the_best_peer_per_metric() {
        let scenario = all().into_iter().find(|s| s.name == "echo-100x20B-inflight1").unwrap();
        let [ringcast, fws, tt] = [0, 1, 2].map(|i| scenario.variants[i]);
        let outcomes = [
            outcome(ringcast, &[("msgs_per_sec", 300.0), ("msgs_per_server_cpu_sec", 600.0)]),
            outcome(fws, &[("msgs_per_sec", 200.0), ("msgs_per_server_cpu_sec", 100.0)]),
            outcome(tt, &[("msgs_per_sec", 100.0), ("msgs_per_server_cpu_sec", 400.0)]),
        ];
        let lines = ratios(&scenario, &outcomes);
        assert_eq!(
            lines,
            [
                "ringcast / best peer: msgs/s 1.50x vs fastwebsockets (higher is better); \
              msgs/server-cpu-s 1.50x vs tokio-tungstenite (higher is better)"
            ]
        );
        let table = table(&scenario, &outcomes, 1);
        assert!(table.contains("ringcast"), "{table}");
        assert!(table.lines().nth(1).unwrap().contains("300"), "{table}");
    }

    #[test]
    fn lower_is_better_picks_the_smallest_peer_and_baseline_line_appears() {
        let idle = all().into_iter().find(|s| s.name.starts_with("idle")).unwrap();
        let [ringcast, fws, tt] = [0, 1, 2].map(|i| idle.variants[i]);
        let outcomes = [
            outcome(ringcast, &[("rss_bytes_per_conn", 1000.0)]),
            outcome(fws, &[("rss_bytes_per_conn", 4000.0)]),
            outcome(tt, &[("rss_bytes_per_conn", 9000.0)]),
        ];
        assert_eq!(
            ratios(&idle, &outcomes),
            ["ringcast / best peer: RSS bytes/conn 0.25x vs fastwebsockets (lower is better)"]
        );

        let scaling = all().into_iter().find(|s| s.name.starts_with("two-core")).unwrap();
        let outcomes: Vec<Outcome> = scaling
            .variants
            .iter()
            .zip([400.0, 100.0, 100.0, 250.0])
            .map(|(variant, rate)| outcome(*variant, &[("msgs_per_sec", rate), ("msgs_per_server_cpu_sec", rate)]))
            .collect();
        let lines = ratios(&scaling, &outcomes);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1],
            "ringcast x2 / ringcast x1: msgs/s 1.60x; msgs/server-cpu-s 1.60x"
        );
    }
}
