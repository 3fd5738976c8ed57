//! The dashboard's stats frame: open connections, and per core its connections, message rates
//! and last-interval latency quantiles, read from what the cores published.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::metrics::{LatencyMetric, Quantiles, Registry};
use crate::proto::frame::{server_frame, OpCode};

/// The quantiles the page shows for each core.
const SHOWN: [LatencyMetric; 4] = [
    LatencyMetric::HandlerDuration,
    LatencyMetric::LoopLag,
    LatencyMetric::FanoutLatency,
    LatencyMetric::HandshakeDuration,
];

/// The stats JSON as one encoded text frame (the same bytes for every dashboard of a core).
pub(crate) fn stats_frame(registry: &Registry, uptime: Duration) -> Bytes {
    server_frame(OpCode::Text, stats_json(registry, uptime).to_string().as_bytes())
}

fn stats_json(registry: &Registry, uptime: Duration) -> Value {
    let cores: Vec<Value> = (0..registry.core_count())
        .map(|core| {
            let interval = registry.published(core).interval;
            let latency: Map<String, Value> = SHOWN
                .iter()
                .map(|&m| (m.short_name().to_owned(), quantiles_us(interval.latency[m as usize])))
                .collect();
            json!({
                "core": core,
                "connections_open": registry.open_connections_of(core),
                "messages_received_per_s": round(interval.messages_received_per_s),
                "messages_sent_per_s": round(interval.messages_sent_per_s),
                "latency_us": latency,
            })
        })
        .collect();
    json!({
        "type": "stats",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_ms": uptime.as_millis() as u64,
        "interval_ms": crate::server::observer::PUBLISH_INTERVAL.as_millis() as u64,
        "connections_open": registry.open_connections(),
        "cores": cores,
    })
}

/// Quantiles in microseconds (to 0.1 µs).
fn quantiles_us(q: Quantiles) -> Value {
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    json!({"count": q.count, "p50": us(q.p50_ns), "p99": us(q.p99_ns)})
}

fn round(rate: f64) -> f64 {
    (rate * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Counter, IntervalSummary};

    #[test]
    fn reports_connections_rates_and_quantiles_per_core() {
        let registry = Registry::new(2);
        registry.core(1).set_open_connections(3);
        registry.core(0).set_open_connections(1);
        registry.core(0).inc(Counter::MessagesIn);
        let mut latency = [Quantiles::default(); LatencyMetric::ALL.len()];
        latency[LatencyMetric::LoopLag as usize] = Quantiles {
            count: 7,
            p50_ns: 1_250,
            p99_ns: 40_000,
        };
        registry.published(1).interval = IntervalSummary {
            length: Duration::from_secs(1),
            messages_received_per_s: 12.345,
            messages_sent_per_s: 2.0,
            latency,
        };
        let stats = stats_json(&registry, Duration::from_millis(1500));
        assert_eq!(stats["type"], "stats");
        assert_eq!(stats["connections_open"], 4);
        assert_eq!(stats["uptime_ms"], 1500);
        let core1 = &stats["cores"][1];
        assert_eq!(
            (core1["core"].as_u64(), core1["connections_open"].as_u64()),
            (Some(1), Some(3))
        );
        assert_eq!(core1["messages_received_per_s"], 12.3);
        assert_eq!(
            core1["latency_us"]["loop_lag"],
            json!({"count": 7, "p50": 1.3, "p99": 40.0})
        );
        assert_eq!(
            core1["latency_us"]["fanout_latency"],
            json!({"count": 0, "p50": 0.0, "p99": 0.0})
        );
        assert_eq!(stats["cores"][0]["connections_open"], 1);
    }
}
