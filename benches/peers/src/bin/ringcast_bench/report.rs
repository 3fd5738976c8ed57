//! Medians, per-scenario tables and ratio lines.

use std::fmt::Write as _;

use crate::measure::Sample;
use crate::scenario::{Better, Client, Metric, Role, Scenario, Variant, SYSCALLS_PER_MSG};

/// Every repetition of one variant under one client within a scenario.
pub struct Outcome {
    /// The client that applied the load.
    pub client: Client,
    /// The server configuration.
    pub variant: Variant,
    /// Samples of the successful repetitions.
    pub samples: Vec<Sample>,
    /// `(repetition, error)` for the failed ones.
    pub failures: Vec<(u32, String)>,
    /// Server syscalls per echoed message from the syscall-counting run, if one was made.
    pub syscalls: Option<Result<f64, String>>,
}

impl Outcome {
    /// An outcome with no repetitions yet.
    pub fn new(client: Client, variant: Variant) -> Self {
        Self {
            client,
            variant,
            samples: Vec::new(),
            failures: Vec::new(),
            syscalls: None,
        }
    }

    /// Median of `key` over the successful repetitions that reported it; for
    /// [`SYSCALLS_PER_MSG`], the syscall-counting run's figure.
    pub fn median(&self, key: &str) -> Option<f64> {
        if key == SYSCALLS_PER_MSG {
            return self.syscalls.as_ref().and_then(|result| result.as_ref().ok()).copied();
        }
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

/// The table of one scenario and client (`outcomes` are that client's): one row per variant
/// with the median of every metric.
pub fn table(scenario: &Scenario, client: Client, outcomes: &[&Outcome], reps: u32) -> String {
    let metrics = scenario.workload.metrics(client);
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
        if let Some(Err(error)) = &outcome.syscalls {
            let _ = writeln!(out, "  ! {} syscall count failed: {error}", outcome.variant.label());
        }
    }
    out
}

/// Ratio lines of one scenario and client: ringcast against the best peer for each headline
/// metric, then against each of its baseline configurations (epoll, one core), where syscalls
/// per message are compared too when both were counted.
pub fn ratios(scenario: &Scenario, client: Client, outcomes: &[&Outcome]) -> Vec<String> {
    let Some(subject) = outcomes.iter().find(|o| o.variant.role == Role::Subject) else {
        return Vec::new();
    };
    let headline: Vec<&Metric> = scenario
        .workload
        .metrics(client)
        .iter()
        .filter(|metric| metric.headline)
        .collect();
    let peers: Vec<&Outcome> = outcomes
        .iter()
        .copied()
        .filter(|o| o.variant.role == Role::Peer)
        .collect();
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
    let syscalls = scenario
        .workload
        .metrics(client)
        .iter()
        .find(|metric| metric.key == SYSCALLS_PER_MSG);
    for baseline in outcomes.iter().filter(|o| o.variant.role == Role::Baseline) {
        let mut vs_baseline: Vec<String> = headline
            .iter()
            .map(
                |metric| match (subject.median(metric.key), baseline.median(metric.key)) {
                    (Some(ours), Some(base)) => format!("{} {}", metric.label, format_ratio(ours, base)),
                    _ => format!("{} n/a", metric.label),
                },
            )
            .collect();
        if let Some(metric) = syscalls {
            if let (Some(ours), Some(base)) = (subject.median(metric.key), baseline.median(metric.key)) {
                vs_baseline.push(format!("{} {}", metric.label, format_ratio(ours, base)));
            }
        }
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
    use crate::scenario::{all, ExtraServer};

    fn outcome(variant: &Variant, values: &[(&'static str, f64)]) -> Outcome {
        Outcome {
            samples: vec![values.iter().copied().collect()],
            ..Outcome::new(Client::Loadgen, variant.clone())
        }
    }

    fn rates(variant: &Variant, per_sec: f64, per_cpu_sec: f64) -> Outcome {
        outcome(
            variant,
            &[("msgs_per_sec", per_sec), ("msgs_per_server_cpu_sec", per_cpu_sec)],
        )
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn ratio_uses_the_best_peer_per_metric_never_ringcast_epoll() {
        let extra = ExtraServer::parse("uws=./EchoServer {port}").unwrap();
        let scenario = all(&[extra])
            .into_iter()
            .find(|s| s.name == "echo-100x20B-inflight1")
            .unwrap();
        let labels: Vec<String> = scenario.variants.iter().map(Variant::label).collect();
        assert_eq!(
            labels,
            [
                "ringcast",
                "ringcast-epoll",
                "fastwebsockets",
                "tokio-tungstenite",
                "uws"
            ]
        );
        let v = &scenario.variants;
        let mut outcomes = [
            rates(&v[0], 300.0, 600.0),
            rates(&v[1], 1000.0, 1000.0),
            rates(&v[2], 200.0, 100.0),
            rates(&v[3], 100.0, 400.0),
            rates(&v[4], 150.0, 300.0),
        ];
        outcomes[0].syscalls = Some(Ok(0.25));
        outcomes[1].syscalls = Some(Ok(0.5));
        outcomes[2].syscalls = Some(Err("perf exited".to_owned()));
        let outcomes: Vec<&Outcome> = outcomes.iter().collect();
        let lines = ratios(&scenario, Client::Loadgen, &outcomes);
        assert_eq!(
            lines,
            [
                "ringcast / best peer: msgs/s 1.50x vs fastwebsockets (higher is better); \
                 msgs/server-cpu-s 1.50x vs tokio-tungstenite (higher is better)",
                "ringcast / ringcast-epoll: msgs/s 0.30x; msgs/server-cpu-s 0.60x; syscalls/msg 0.50x",
            ]
        );
        let table = table(&scenario, Client::Loadgen, &outcomes, 1);
        let rows: Vec<&str> = table.lines().collect();
        assert!(rows[0].contains("syscalls/msg"), "{table}");
        assert!(
            rows[1].starts_with("  ringcast ") && rows[1].contains(" 300 ") && rows[1].contains(" 0.25 "),
            "{table}"
        );
        assert!(rows[5].starts_with("  uws "), "{table}");
        assert!(
            table.contains("! fastwebsockets syscall count failed: perf exited"),
            "{table}"
        );
    }

    #[test]
    fn lower_is_better_picks_the_smallest_peer_and_every_baseline_gets_a_line() {
        let idle = all(&[]).into_iter().find(|s| s.name.starts_with("idle")).unwrap();
        let outcomes: Vec<Outcome> = idle
            .variants
            .iter()
            .zip([1000.0, 900.0, 4000.0, 9000.0])
            .map(|(variant, bytes)| outcome(variant, &[("rss_bytes_per_conn", bytes)]))
            .collect();
        let outcomes: Vec<&Outcome> = outcomes.iter().collect();
        assert_eq!(
            ratios(&idle, Client::Loadgen, &outcomes),
            [
                "ringcast / best peer: RSS bytes/conn 0.25x vs fastwebsockets (lower is better)",
                "ringcast / ringcast-epoll: RSS bytes/conn 1.11x",
            ]
        );

        let scaling = all(&[]).into_iter().find(|s| s.name.starts_with("two-core")).unwrap();
        let outcomes: Vec<Outcome> = scaling
            .variants
            .iter()
            .zip([400.0, 320.0, 100.0, 100.0, 250.0])
            .map(|(variant, rate)| rates(variant, rate, rate))
            .collect();
        let outcomes: Vec<&Outcome> = outcomes.iter().collect();
        let lines = ratios(&scaling, Client::TungsteniteLoad, &outcomes);
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            "ringcast x2 / ringcast-epoll x2: msgs/s 1.25x; msgs/server-cpu-s 1.25x"
        );
        assert_eq!(
            lines[2],
            "ringcast x2 / ringcast x1: msgs/s 1.60x; msgs/server-cpu-s 1.60x"
        );
    }
}
