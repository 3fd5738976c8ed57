//! What every core of a server shares: the configuration, the counters, the router, the
//! inboxes, and the process-wide connection limits (touched on connect and close only).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::inbox::Inboxes;
use super::listener::ListenerRole;
use super::router::Router;
use crate::config::Config;
use crate::metrics::Registry;

/// State shared by all cores (read-mostly; touched on connect and close, never per message).
pub(crate) struct Shared {
    pub config: Config,
    pub registry: Registry,
    /// The routes of the WebSocket addresses.
    pub router: Router,
    /// The routes of `metrics_listen`, when it is set.
    pub metrics_router: Option<Router>,
    /// Every core's inbox for frames sent from elsewhere.
    pub inboxes: Arc<Inboxes>,
    open_connections: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    shutdown: Arc<AtomicBool>,
}

/// Which connection limit refused an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    /// `max_connections` for the whole process (503).
    Total,
    /// `max_connections_per_ip` (429).
    PerIp,
}

impl Shared {
    /// The state for a server about to start its cores.
    pub fn new(
        config: Config,
        registry: Registry,
        router: Router,
        metrics_router: Option<Router>,
        inboxes: Arc<Inboxes>,
        shutdown: Arc<AtomicBool>,
    ) -> Shared {
        Shared {
            config,
            registry,
            router,
            metrics_router,
            inboxes,
            open_connections: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// The routes a listener with `role` serves.
    pub fn router(&self, role: ListenerRole) -> &Router {
        match (role, &self.metrics_router) {
            (ListenerRole::Metrics, Some(router)) => router,
            _ => &self.router,
        }
    }

    /// Whether a listener with `role` serves the observability endpoints (the dashboard and
    /// its stream among them).
    pub fn serves_observability(&self, role: ListenerRole) -> bool {
        role == ListenerRole::Metrics || self.metrics_router.is_none()
    }

    /// Reserves a slot under `max_connections` and `max_connections_per_ip`.
    pub fn try_open_connection(&self, ip: IpAddr) -> Result<(), LimitHit> {
        let before = self.open_connections.fetch_add(1, Ordering::Relaxed);
        if before >= self.config.max_connections {
            self.open_connections.fetch_sub(1, Ordering::Relaxed);
            return Err(LimitHit::Total);
        }
        if self.config.max_connections_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= self.config.max_connections_per_ip {
                drop(per_ip);
                self.open_connections.fetch_sub(1, Ordering::Relaxed);
                return Err(LimitHit::PerIp);
            }
            *count += 1;
        }
        Ok(())
    }

    /// Releases a slot taken by `try_open_connection`.
    pub fn close_connection(&self, ip: IpAddr) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
        if self.config.max_connections_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }

    /// Whether a graceful shutdown has been requested.
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}
