//! The engine's observability surface over HTTP: the live dashboard page and its WebSocket
//! stats stream, and `/debug/latency` (one core's HdrHistogram as an `.hgrm` distribution).
//! `/metrics` itself is rendered by [`crate::metrics::PrometheusExport`].
//!
//! These live on the WebSocket addresses, or only on `metrics_listen` when that is set.

mod latency_route;
mod stats;

pub(crate) use latency_route::debug_latency;
pub(crate) use stats::stats_frame;

use crate::api::Response;

/// The dashboard page.
pub const DASHBOARD_PATH: &str = "/dashboard";
/// The dashboard's WebSocket stats stream: a JSON text frame on connect, then one a second.
pub const STATS_STREAM_PATH: &str = "/dashboard/stream";
/// One core's latency histogram as an `.hgrm` percentile distribution.
pub const DEBUG_LATENCY_PATH: &str = "/debug/latency";

/// The page, embedded in the binary: no CDN, nothing fetched but its own stats stream.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// `GET /dashboard`.
pub(crate) fn dashboard_page() -> Response {
    Response {
        status: 200,
        content_type: "text/html; charset=utf-8".into(),
        body: DASHBOARD_HTML.as_bytes().to_vec(),
    }
}
