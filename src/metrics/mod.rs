//! Per-core counters and latency histograms, written only by their own core and read when
//! scraped.
//!
//! Each core owns one cache-padded block of counters. Its thread bumps them with a relaxed
//! load and store (no locked read-modify-write, no sharing of cache lines between cores); a
//! scrape sums the blocks and publishes the totals through `metrics-exporter-prometheus`.
//!
//! Each core also owns its latency HdrHistograms ([`LatencyHistograms`]) and records into them
//! without any synchronisation; once a second it copies them, with a summary of the last
//! second, into its slot of the registry ([`CorePublished`]). Scrapes, `/debug/latency` and the
//! dashboard read those copies, so nothing on the message path is shared or locked.

mod export;
pub mod hgrm;
mod latency;
mod process;
mod prometheus_text;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_utils::CachePadded;

pub use export::{BuildInfo, MetricSource, PrometheusExport};
pub use latency::{LatencyHistograms, LatencyMetric, Quantiles, Recorded};

/// Every counter the engine keeps, with its Prometheus name and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
#[allow(missing_docs)]
pub enum Counter {
    Accepted,
    AcceptEmfile,
    Upgrades,
    HttpRequests,
    Rejected400,
    Rejected404,
    Rejected405,
    Rejected426,
    Rejected431,
    Rejected503,
    HandshakeTimeouts,
    HandshakeAborted,
    MessagesIn,
    MessagesOut,
    BytesIn,
    BytesOut,
    ClosedByClient,
    ClosedByServer,
    ClosedByError,
    ClosedByShutdown,
    Close1002,
    Close1007,
    Close1009,
    CloseTimeouts,
    ResetByPeer,
    WriteErrors,
    Rejected429,
    HeartbeatTimeouts,
    IdleTimeouts,
    SlowConsumers,
    PingsSent,
    ClosedByHeartbeat,
    HandlerPanics,
    CrossCoreDelivered,
    CrossCoreUndeliverable,
    UringBuffersExhausted,
    UringCqOverflows,
    MessagesShed,
    PushPublishes,
    PushPublishesRefused,
    PushDeliveries,
    PushGapNotices,
    PushCommandErrors,
    AcceptEnfile,
    AcceptEnobufs,
    AcceptEnomem,
    AcceptEconnaborted,
    AcceptOther,
    Rejected401,
    Rejected403,
    RefusedOrigin,
    RefusedTokenMissing,
    RefusedTokenInvalid,
    RefusedTokenExpired,
    RefusedTopic,
    RefusedAdminToken,
    RefusedRateLimit,
    TokenExpiredCloses,
    TlsHandshakeFailures,
    TlsErrors,
}

impl Counter {
    /// All counters, in index order.
    pub const ALL: [Counter; 60] = [
        Counter::Accepted,
        Counter::AcceptEmfile,
        Counter::Upgrades,
        Counter::HttpRequests,
        Counter::Rejected400,
        Counter::Rejected404,
        Counter::Rejected405,
        Counter::Rejected426,
        Counter::Rejected431,
        Counter::Rejected503,
        Counter::HandshakeTimeouts,
        Counter::HandshakeAborted,
        Counter::MessagesIn,
        Counter::MessagesOut,
        Counter::BytesIn,
        Counter::BytesOut,
        Counter::ClosedByClient,
        Counter::ClosedByServer,
        Counter::ClosedByError,
        Counter::ClosedByShutdown,
        Counter::Close1002,
        Counter::Close1007,
        Counter::Close1009,
        Counter::CloseTimeouts,
        Counter::ResetByPeer,
        Counter::WriteErrors,
        Counter::Rejected429,
        Counter::HeartbeatTimeouts,
        Counter::IdleTimeouts,
        Counter::SlowConsumers,
        Counter::PingsSent,
        Counter::ClosedByHeartbeat,
        Counter::HandlerPanics,
        Counter::CrossCoreDelivered,
        Counter::CrossCoreUndeliverable,
        Counter::UringBuffersExhausted,
        Counter::UringCqOverflows,
        Counter::MessagesShed,
        Counter::PushPublishes,
        Counter::PushPublishesRefused,
        Counter::PushDeliveries,
        Counter::PushGapNotices,
        Counter::PushCommandErrors,
        Counter::AcceptEnfile,
        Counter::AcceptEnobufs,
        Counter::AcceptEnomem,
        Counter::AcceptEconnaborted,
        Counter::AcceptOther,
        Counter::Rejected401,
        Counter::Rejected403,
        Counter::RefusedOrigin,
        Counter::RefusedTokenMissing,
        Counter::RefusedTokenInvalid,
        Counter::RefusedTokenExpired,
        Counter::RefusedTopic,
        Counter::RefusedAdminToken,
        Counter::RefusedRateLimit,
        Counter::TokenExpiredCloses,
        Counter::TlsHandshakeFailures,
        Counter::TlsErrors,
    ];

    /// The Prometheus metric name and its label (if any).
    pub fn name_and_label(self) -> (&'static str, Option<(&'static str, &'static str)>) {
        use Counter::*;
        match self {
            Accepted => ("ringcast_tcp_accepted_total", None),
            AcceptEmfile => ("ringcast_accept_errors_total", Some(("errno", "EMFILE"))),
            AcceptEnfile => ("ringcast_accept_errors_total", Some(("errno", "ENFILE"))),
            AcceptEnobufs => ("ringcast_accept_errors_total", Some(("errno", "ENOBUFS"))),
            AcceptEnomem => ("ringcast_accept_errors_total", Some(("errno", "ENOMEM"))),
            AcceptEconnaborted => ("ringcast_accept_errors_total", Some(("errno", "ECONNABORTED"))),
            AcceptOther => ("ringcast_accept_errors_total", Some(("errno", "other"))),
            Upgrades => ("ringcast_upgrades_total", None),
            HttpRequests => ("ringcast_http_requests_total", None),
            Rejected400 => ("ringcast_handshake_rejected_total", Some(("status", "400"))),
            Rejected404 => ("ringcast_handshake_rejected_total", Some(("status", "404"))),
            Rejected405 => ("ringcast_handshake_rejected_total", Some(("status", "405"))),
            Rejected426 => ("ringcast_handshake_rejected_total", Some(("status", "426"))),
            Rejected431 => ("ringcast_handshake_rejected_total", Some(("status", "431"))),
            Rejected503 => ("ringcast_handshake_rejected_total", Some(("status", "503"))),
            Rejected401 => ("ringcast_handshake_rejected_total", Some(("status", "401"))),
            Rejected403 => ("ringcast_handshake_rejected_total", Some(("status", "403"))),
            RefusedOrigin => ("ringcast_access_refused_total", Some(("reason", "origin"))),
            RefusedTokenMissing => ("ringcast_access_refused_total", Some(("reason", "token_missing"))),
            RefusedTokenInvalid => ("ringcast_access_refused_total", Some(("reason", "token_invalid"))),
            RefusedTokenExpired => ("ringcast_access_refused_total", Some(("reason", "token_expired"))),
            RefusedTopic => ("ringcast_access_refused_total", Some(("reason", "topic"))),
            RefusedAdminToken => ("ringcast_access_refused_total", Some(("reason", "admin_token"))),
            RefusedRateLimit => ("ringcast_access_refused_total", Some(("reason", "rate_limit"))),
            TokenExpiredCloses => ("ringcast_token_expired_closes_total", None),
            TlsHandshakeFailures => ("ringcast_tls_handshake_failures_total", None),
            TlsErrors => ("ringcast_tls_errors_total", None),
            HandshakeTimeouts => ("ringcast_handshake_timeouts_total", None),
            HandshakeAborted => ("ringcast_handshake_aborted_total", None),
            MessagesIn => ("ringcast_messages_received_total", None),
            MessagesOut => ("ringcast_messages_sent_total", None),
            BytesIn => ("ringcast_payload_bytes_received_total", None),
            BytesOut => ("ringcast_payload_bytes_sent_total", None),
            ClosedByClient => ("ringcast_connections_closed_total", Some(("by", "client"))),
            ClosedByServer => ("ringcast_connections_closed_total", Some(("by", "server"))),
            ClosedByError => ("ringcast_connections_closed_total", Some(("by", "error"))),
            ClosedByShutdown => ("ringcast_connections_closed_total", Some(("by", "shutdown"))),
            Close1002 => ("ringcast_protocol_errors_total", Some(("code", "1002"))),
            Close1007 => ("ringcast_protocol_errors_total", Some(("code", "1007"))),
            Close1009 => ("ringcast_protocol_errors_total", Some(("code", "1009"))),
            CloseTimeouts => ("ringcast_close_timeouts_total", None),
            ResetByPeer => ("ringcast_reset_by_peer_total", None),
            WriteErrors => ("ringcast_write_errors_total", None),
            Rejected429 => ("ringcast_handshake_rejected_total", Some(("status", "429"))),
            HeartbeatTimeouts => ("ringcast_heartbeat_timeouts_total", None),
            IdleTimeouts => ("ringcast_idle_timeouts_total", None),
            SlowConsumers => ("ringcast_slow_consumers_total", None),
            PingsSent => ("ringcast_heartbeat_pings_total", None),
            ClosedByHeartbeat => ("ringcast_connections_closed_total", Some(("by", "heartbeat"))),
            HandlerPanics => ("ringcast_handler_panics_total", None),
            CrossCoreDelivered => ("ringcast_cross_core_delivered_total", None),
            CrossCoreUndeliverable => ("ringcast_cross_core_undeliverable_total", None),
            UringBuffersExhausted => ("ringcast_uring_buffers_exhausted_total", None),
            UringCqOverflows => ("ringcast_uring_cq_overflows_total", None),
            MessagesShed => ("ringcast_messages_shed_total", None),
            PushPublishes => ("ringcast_push_publishes_total", None),
            PushPublishesRefused => ("ringcast_push_publishes_refused_total", None),
            PushDeliveries => ("ringcast_push_deliveries_total", None),
            PushGapNotices => ("ringcast_push_gap_notices_total", None),
            PushCommandErrors => ("ringcast_push_command_errors_total", None),
        }
    }

    /// The help text of the counter's Prometheus family.
    pub fn help(self) -> &'static str {
        use Counter::*;
        match self {
            Accepted => "TCP connections accepted.",
            AcceptEmfile | AcceptEnfile | AcceptEnobufs | AcceptEnomem | AcceptEconnaborted | AcceptOther => {
                "Failed accepts, by errno (EMFILE: the process is at its open-file limit)."
            }
            Upgrades => "WebSocket upgrades completed (101 sent).",
            HttpRequests => "Plain HTTP requests served.",
            Rejected400 | Rejected401 | Rejected403 | Rejected404 | Rejected405 | Rejected426 | Rejected429
            | Rejected431 | Rejected503 => "Requests refused before the upgrade, by HTTP status.",
            RefusedOrigin | RefusedTokenMissing | RefusedTokenInvalid | RefusedTokenExpired | RefusedTopic
            | RefusedAdminToken | RefusedRateLimit => {
                "Requests, subscriptions and publishes refused by access control, by reason."
            }
            TokenExpiredCloses => "Connections closed with 4001 because their token expired.",
            TlsHandshakeFailures => {
                "TLS failures before the upgrade: failed handshakes (the peer's alert, a protocol error, no shared version or suite) and bad records in a request."
            }
            TlsErrors => {
                "Open TLS connections ended by a record that could not be read or made (closed without a close frame)."
            }
            HandshakeTimeouts => "Connections that sent no complete request within handshake_timeout.",
            HandshakeAborted => "Connections that went away during the handshake.",
            MessagesIn => "WebSocket messages received.",
            MessagesOut => "WebSocket messages queued for sending.",
            BytesIn => "Payload bytes of the messages received.",
            BytesOut => "Payload bytes of the messages queued for sending.",
            ClosedByClient | ClosedByServer | ClosedByError | ClosedByShutdown | ClosedByHeartbeat => {
                "Connections closed, by who ended them."
            }
            Close1002 | Close1007 | Close1009 => "Connections closed for a protocol violation, by close code.",
            CloseTimeouts => "Closing handshakes that did not finish within close_timeout.",
            ResetByPeer => "Connections reset by the peer.",
            WriteErrors => "Connections ended by a failed write.",
            HeartbeatTimeouts => "Connections closed because pings went unanswered.",
            IdleTimeouts => "Connections closed after idle_timeout of silence.",
            SlowConsumers => "Connections closed because their outbound queue exceeded max_queued_bytes.",
            PingsSent => "Heartbeat pings sent.",
            HandlerPanics => "Handler panics contained (the connection is closed with 1011).",
            CrossCoreDelivered => "Frames delivered from another core or thread.",
            CrossCoreUndeliverable => "Frames from another core or thread whose recipient was gone or too slow.",
            UringBuffersExhausted => "Times the io_uring provided-buffer ring ran empty (ENOBUFS).",
            UringCqOverflows => "Times the io_uring completion queue overflowed.",
            MessagesShed => "Queued messages dropped for slow consumers under the drop policy.",
            PushPublishes => "Messages published (push mode).",
            PushPublishesRefused => "Publishes refused (push mode).",
            PushDeliveries => "Message copies delivered to subscribers (push mode).",
            PushGapNotices => "Gap notices sent to subscribers (push mode).",
            PushCommandErrors => "Bad subscriber commands answered with an error notice (push mode).",
        }
    }

    /// The counter for a failed accept.
    pub fn for_accept_error(error: &std::io::Error) -> Counter {
        match error.raw_os_error() {
            Some(libc::EMFILE) => Counter::AcceptEmfile,
            Some(libc::ENFILE) => Counter::AcceptEnfile,
            Some(libc::ENOBUFS) => Counter::AcceptEnobufs,
            Some(libc::ENOMEM) => Counter::AcceptEnomem,
            Some(libc::ECONNABORTED) => Counter::AcceptEconnaborted,
            _ => Counter::AcceptOther,
        }
    }

    /// The rejection counter for an HTTP status sent before the upgrade.
    pub fn for_rejection(status: u16) -> Counter {
        match status {
            401 => Counter::Rejected401,
            403 => Counter::Rejected403,
            404 => Counter::Rejected404,
            405 => Counter::Rejected405,
            426 => Counter::Rejected426,
            429 => Counter::Rejected429,
            431 => Counter::Rejected431,
            503 => Counter::Rejected503,
            _ => Counter::Rejected400,
        }
    }
}

const COUNTERS: usize = Counter::ALL.len();

/// One core's counters (plus its open-connection gauge).
#[derive(Debug)]
pub struct CoreCounters {
    values: [AtomicU64; COUNTERS],
    open_connections: AtomicU64,
}

impl CoreCounters {
    fn new() -> CoreCounters {
        CoreCounters {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
            open_connections: AtomicU64::new(0),
        }
    }

    /// Adds `n`; call only from the owning core's thread (single writer, so no atomic RMW).
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        let slot = &self.values[counter as usize];
        slot.store(slot.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Sets this core's open-connection gauge.
    pub fn set_open_connections(&self, n: usize) {
        self.open_connections.store(n as u64, Ordering::Relaxed);
    }

    /// The current value (for scrapes and tests).
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize].load(Ordering::Relaxed)
    }
}

/// What one core last published (once a second): its histograms since it started, and a
/// summary of the last interval for the dashboard.
#[derive(Debug, Clone, Default)]
pub struct CorePublished {
    /// Every observation since the core started.
    pub totals: LatencyHistograms,
    /// The interval before the publication.
    pub interval: IntervalSummary,
}

/// One core's last interval: its length, message rates and latency quantiles.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntervalSummary {
    /// How long the interval was (zero before the first publication).
    pub length: Duration,
    /// Messages received per second over the interval.
    pub messages_received_per_s: f64,
    /// Messages sent per second over the interval.
    pub messages_sent_per_s: f64,
    /// Quantiles of what each histogram recorded during the interval, by [`LatencyMetric`].
    pub latency: [Quantiles; LatencyMetric::ALL.len()],
}

/// The counters of every core and their published histograms, shared with the scrape path.
#[derive(Debug, Clone)]
pub struct Registry {
    cores: Arc<[CachePadded<CoreCounters>]>,
    published: Arc<[CachePadded<Mutex<CorePublished>>]>,
}

impl Registry {
    /// Counters for `cores` cores.
    pub fn new(cores: usize) -> Registry {
        Registry {
            cores: (0..cores).map(|_| CachePadded::new(CoreCounters::new())).collect(),
            published: (0..cores).map(|_| CachePadded::new(Mutex::default())).collect(),
        }
    }

    /// Core `index`'s publication slot (locked by that core once a second, and by readers
    /// just long enough to copy it).
    pub fn published(&self, index: usize) -> std::sync::MutexGuard<'_, CorePublished> {
        self.published[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of what core `index` last published.
    pub fn published_copy(&self, index: usize) -> CorePublished {
        self.published(index).clone()
    }

    /// Core `index`'s open connections.
    pub fn open_connections_of(&self, index: usize) -> u64 {
        self.cores[index].open_connections.load(Ordering::Relaxed)
    }

    /// The block owned by core `index`.
    pub fn core(&self, index: usize) -> &CoreCounters {
        &self.cores[index]
    }

    /// The sum over all cores.
    pub fn total(&self, counter: Counter) -> u64 {
        self.cores.iter().map(|c| c.get(counter)).sum()
    }

    /// Open connections over all cores.
    pub fn open_connections(&self) -> u64 {
        self.cores
            .iter()
            .map(|c| c.open_connections.load(Ordering::Relaxed))
            .sum()
    }

    /// How many cores report here.
    pub fn core_count(&self) -> usize {
        self.cores.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_the_cores() {
        let registry = Registry::new(2);
        registry.core(0).inc(Counter::MessagesIn);
        registry.core(1).add(Counter::MessagesIn, 4);
        assert_eq!(registry.total(Counter::MessagesIn), 5);
        assert_eq!(registry.total(Counter::MessagesOut), 0);
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, i, "Counter::ALL must be in index order");
        }
    }
}
