//! `compare A B`: two summaries side by side, with B relative to A.

use std::fmt::Write as _;
use std::path::Path;

use crate::push::summary::PushSummary;
use crate::report::{CoreSummary, Summary};
use crate::stats::Percentiles;

/// Reads one count off a push summary.
type PushField = fn(&PushSummary) -> u64;

/// Reads a summary.json.
pub fn load(path: &Path) -> Result<Summary, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a ringcast-loadgen summary: {e}", path.display()))
}

/// The side-by-side table.
pub fn table(a: &Summary, b: &Summary) -> String {
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut row = |name: &str, x: Option<f64>, y: Option<f64>| {
        let show = |v: Option<f64>| v.map_or("-".to_string(), fmt_num);
        let ratio = match (x, y) {
            (Some(x), Some(y)) if x != 0.0 => format!("{:.3}x", y / x),
            _ => "-".to_string(),
        };
        rows.push((name.to_string(), show(x), show(y), ratio));
    };
    let some = |v: f64| Some(v);
    let count = |v: u64| Some(v as f64);
    row("scenario", None, None);
    row(
        "conns_established",
        count(a.conns_established),
        count(b.conns_established),
    );
    row("errors_total", count(a.errors_total), count(b.errors_total));
    row("duration_s", some(a.duration_s), some(b.duration_s));
    row("messages", count(a.messages), count(b.messages));
    row("msgs_per_sec", some(a.msgs_per_sec), some(b.msgs_per_sec));
    row("bytes_per_sec", some(a.bytes_per_sec), some(b.bytes_per_sec));
    row(
        "handshakes_per_sec",
        some(a.handshakes_per_sec),
        some(b.handshakes_per_sec),
    );
    row("conns_per_sec", a.conns_per_sec, b.conns_per_sec);
    if a.push.is_some() || b.push.is_some() {
        let fields: [(&str, PushField); 7] = [
            ("push.publishes_acked", |p| p.publishes_acked),
            ("push.publishes_failed", |p| p.publishes_failed),
            ("push.deliveries_expected", |p| p.deliveries_expected),
            ("push.deliveries_received", |p| p.deliveries_received),
            ("push.lost", |p| p.lost),
            ("push.duplicated", |p| p.duplicated),
            ("push.out_of_order", |p| p.out_of_order),
        ];
        for (name, field) in fields {
            let get = |s: &Summary| s.push.as_ref().map(|p| field(p) as f64);
            row(name, get(a), get(b));
        }
    }
    latency_rows(&mut row, "latency_us", &a.latency_us, &b.latency_us);
    latency_rows(
        &mut row,
        "handshake_latency_us",
        &a.handshake_latency_us,
        &b.handshake_latency_us,
    );
    row("client_cpu_seconds", a.client_cpu_seconds, b.client_cpu_seconds);
    row("server_cpu_seconds", a.server_cpu_seconds, b.server_cpu_seconds);
    row(
        "msgs_per_server_cpu_sec",
        a.msgs_per_server_cpu_sec,
        b.msgs_per_server_cpu_sec,
    );
    row(
        "handshakes_per_server_cpu_sec",
        a.handshakes_per_server_cpu_sec,
        b.handshakes_per_server_cpu_sec,
    );
    let mut keys: Vec<(usize, usize)> = a.per_core.iter().chain(&b.per_core).map(|c| (c.proc, c.core)).collect();
    keys.sort_unstable();
    keys.dedup();
    for (proc, core) in keys {
        let find = |s: &Summary| s.per_core.iter().find(|c| (c.proc, c.core) == (proc, core)).cloned();
        let (x, y) = (find(a), find(b));
        let label = format!("proc {proc} core {core}");
        row(
            &format!("{label} messages"),
            x.as_ref().map(|c| c.messages as f64),
            y.as_ref().map(|c| c.messages as f64),
        );
        let pick = |c: &Option<CoreSummary>, i: usize| c.as_ref().map(|c| fields(&c.latency_us)[i].1);
        for (i, name) in [(0, "p50"), (2, "p99"), (3, "p99.9")] {
            row(&format!("{label} {name} us"), pick(&x, i), pick(&y, i));
        }
    }
    rows[0] = ("scenario".into(), a.scenario.clone(), b.scenario.clone(), String::new());
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:>16}  {:>16}  {:>9}", "metric", "A", "B", "B/A");
    for (name, x, y, ratio) in rows {
        let _ = writeln!(out, "{name:<width$}  {x:>16}  {y:>16}  {ratio:>9}");
    }
    out
}

fn latency_rows(row: &mut impl FnMut(&str, Option<f64>, Option<f64>), prefix: &str, a: &Percentiles, b: &Percentiles) {
    for ((name, x), (_, y)) in fields(a).into_iter().zip(fields(b)) {
        row(&format!("{prefix}.{name}"), Some(x), Some(y));
    }
}

/// The figures of a percentile set by name.
fn fields(p: &Percentiles) -> [(&'static str, f64); 6] {
    [
        ("p50", p.p50 as f64),
        ("p90", p.p90 as f64),
        ("p99", p.p99 as f64),
        ("p999", p.p999 as f64),
        ("max", p.max as f64),
        ("mean", p.mean),
    ]
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
