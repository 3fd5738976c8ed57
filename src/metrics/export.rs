//! Publishes the per-core counters in the Prometheus text format at scrape time.

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::{Counter, Registry};

/// Metrics an application or a subsystem outside the cores (a broker link) adds to `/metrics`:
/// `record` runs at scrape time, with the scrape's recorder installed, so it reports through
/// the `metrics` macros (`metrics::gauge!(...).set(...)`).
pub trait MetricSource: Send + Sync {
    /// Records the source's current values.
    fn record(&self);
}

/// Renders `/metrics`: sums the per-core counters into a Prometheus recorder, adds the
/// process-wide ones (log lines dropped) and those of the extra sources, then renders it.
///
/// It uses its own recorder rather than the global one, so several engines (tests) can live in
/// one process and an application keeps the global recorder for itself.
pub struct PrometheusExport {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl PrometheusExport {
    /// A fresh exporter.
    pub fn new() -> PrometheusExport {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        PrometheusExport { recorder, handle }
    }

    /// The Prometheus text for the current totals of `registry`.
    pub fn render(&self, registry: &Registry, sources: &[Arc<dyn MetricSource>]) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            for counter in Counter::ALL {
                let total = registry.total(counter);
                match counter.name_and_label() {
                    (name, Some((key, value))) => metrics::counter!(name, key => value).absolute(total),
                    (name, None) => metrics::counter!(name).absolute(total),
                }
            }
            metrics::gauge!("ringcast_connections_open").set(registry.open_connections() as f64);
            metrics::gauge!("ringcast_cores").set(registry.core_count() as f64);
            metrics::counter!("ringcast_log_lines_dropped_total").absolute(crate::logging::lines_dropped());
            sources.iter().for_each(|source| source.record());
        });
        self.handle.render()
    }
}

impl Default for PrometheusExport {
    fn default() -> Self {
        PrometheusExport::new()
    }
}
