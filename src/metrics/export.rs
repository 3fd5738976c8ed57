//! Renders `/metrics` in the Prometheus text format at scrape time: the per-core counters
//! (process-wide totals, and per-core series for the few that show balance between cores), the
//! published latency histograms, build and process information, and extra sources.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::latency::LatencyMetric;
use super::process::ProcessSample;
use super::prometheus_text::{write_histogram, BucketCounts};
use super::{Counter, Registry};

/// Metrics an application or a subsystem outside the cores (a broker link) adds to `/metrics`:
/// `record` runs at scrape time, with the scrape's recorder installed, so it reports through
/// the `metrics` macros (`metrics::gauge!(...).set(...)`).
pub trait MetricSource: Send + Sync {
    /// Describes the source's metrics (`metrics::describe_gauge!(...)` and the like: the
    /// exporter writes them as `# HELP` lines). Called once, with the recorder installed.
    fn describe(&self) {}

    /// Records the source's current values.
    fn record(&self);
}

/// What `ringcast_build_info` reports: the version, the io driver and data path the cores
/// run, and the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate version.
    pub version: &'static str,
    /// monoio's driver: `io_uring` or `legacy` (epoll).
    pub io_driver: &'static str,
    /// The open connections' data path: `io_uring` or `epoll`.
    pub data_path: &'static str,
    /// The kernel release (`uname -r`).
    pub kernel: String,
}

/// The per-core series exported besides the totals, with their names (per-core balance:
/// SO_REUSEPORT spreads connections, and traffic follows them).
const PER_CORE_COUNTERS: [(Counter, &str, &str); 3] = [
    (
        Counter::MessagesIn,
        "ringcast_core_messages_received_total",
        "WebSocket messages received, per core.",
    ),
    (
        Counter::MessagesOut,
        "ringcast_core_messages_sent_total",
        "WebSocket messages queued for sending, per core.",
    ),
    (
        Counter::Upgrades,
        "ringcast_core_upgrades_total",
        "WebSocket upgrades completed, per core.",
    ),
];

/// Renders `/metrics`.
///
/// It uses its own recorder rather than the global one, so several engines (tests) can live in
/// one process and an application keeps the global recorder for itself.
pub struct PrometheusExport {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    build: BuildInfo,
    sources: Vec<Arc<dyn MetricSource>>,
    /// How long the previous render took, in nanoseconds (reported by the next scrape).
    last_render_ns: AtomicU64,
}

impl PrometheusExport {
    /// An exporter for a server built as `build`, with extra `sources`.
    pub fn new(build: BuildInfo, sources: Vec<Arc<dyn MetricSource>>) -> PrometheusExport {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for counter in Counter::ALL {
                metrics::describe_counter!(counter.name_and_label().0, counter.help());
            }
            for (_, name, help) in PER_CORE_COUNTERS {
                metrics::describe_counter!(name, help);
            }
            metrics::describe_gauge!("ringcast_connections_open", "Open WebSocket connections.");
            metrics::describe_gauge!(
                "ringcast_core_connections_open",
                "Open WebSocket connections, per core."
            );
            metrics::describe_gauge!("ringcast_cores", "Cores serving connections.");
            metrics::describe_gauge!(
                "ringcast_build_info",
                "Always 1; the labels tell the version, io driver, data path and kernel."
            );
            metrics::describe_gauge!(
                "ringcast_metrics_render_seconds",
                "How long rendering the previous scrape took, on the core that served it."
            );
            metrics::describe_counter!(
                "ringcast_log_lines_dropped_total",
                "Log lines dropped because the log writer fell behind."
            );
            sources.iter().for_each(|source| source.describe());
        });
        PrometheusExport {
            recorder,
            handle,
            build,
            sources,
            last_render_ns: AtomicU64::new(0),
        }
    }

    /// The Prometheus text for the current state of `registry`.
    pub fn render(&self, registry: &Registry) -> String {
        let began = Instant::now();
        let cores = registry.core_count();
        metrics::with_local_recorder(&self.recorder, || {
            for counter in Counter::ALL {
                let total = registry.total(counter);
                match counter.name_and_label() {
                    (name, Some((key, value))) => metrics::counter!(name, key => value).absolute(total),
                    (name, None) => metrics::counter!(name).absolute(total),
                }
            }
            for core in 0..cores {
                let label = core.to_string();
                for (counter, name, _) in PER_CORE_COUNTERS {
                    metrics::counter!(name, "core" => label.clone()).absolute(registry.core(core).get(counter));
                }
                metrics::gauge!("ringcast_core_connections_open", "core" => label)
                    .set(registry.open_connections_of(core) as f64);
            }
            metrics::gauge!("ringcast_connections_open").set(registry.open_connections() as f64);
            metrics::gauge!("ringcast_cores").set(cores as f64);
            let build = &self.build;
            metrics::gauge!(
                "ringcast_build_info",
                "version" => build.version,
                "io_driver" => build.io_driver,
                "data_path" => build.data_path,
                "kernel" => build.kernel.clone()
            )
            .set(1.0);
            metrics::counter!("ringcast_log_lines_dropped_total").absolute(crate::logging::lines_dropped());
            let previous = self.last_render_ns.load(Ordering::Relaxed);
            metrics::gauge!("ringcast_metrics_render_seconds").set(previous as f64 / 1e9);
            self.sources.iter().for_each(|source| source.record());
        });
        let mut out = self.handle.render();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let per_core: Vec<Vec<BucketCounts>> = (0..cores)
            .map(|core| {
                let published = registry.published(core);
                LatencyMetric::ALL
                    .map(|m| BucketCounts::of(m, published.totals.get(m)))
                    .to_vec()
            })
            .collect();
        for metric in LatencyMetric::ALL {
            let counts: Vec<_> = per_core.iter().map(|c| c[metric as usize].clone()).collect();
            write_histogram(&mut out, metric, &counts);
        }
        ProcessSample::now().write_text(&mut out);
        self.last_render_ns
            .store(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl BuildInfo {
    /// This build, on this kernel, with the given driver names.
    pub fn current(io_driver: &'static str, data_path: &'static str) -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            io_driver,
            data_path,
            kernel: kernel_release(),
        }
    }
}

/// `uname -r`, or `unknown`.
fn kernel_release() -> String {
    // SAFETY: uname fills the struct we own; its fields are NUL-terminated.
    unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) != 0 {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(name.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}
