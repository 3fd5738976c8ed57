//! What every core of a server shares: the configuration, the access rules, the counters, the
//! routers, the inboxes, and the process-wide connection limits (touched on connect and close
//! only).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::inbox::Inboxes;
use super::listener::{ListenerRole, Placement};
use super::router::Router;
use super::SubscriptionTopics;
use crate::access::Access;
use crate::config::Config;
use crate::metrics::Registry;

/// State shared by all cores (read-mostly; touched on connect and close, never per message).
pub(crate) struct Shared {
    pub config: Config,
    /// The access rules (and the handshake rate table).
    pub access: Access,
    /// The TLS configuration of the WebSocket listeners, when they speak TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub registry: Registry,
    /// The routes of each listener role, by [`ListenerRole::ALL`] index.
    routers: [Router; 3],
    /// Which role serves the endpoints that can move off the WebSocket port.
    placement: Placement,
    /// The topics an upgrade asks to subscribe to, checked against its token's grants.
    pub subscription_topics: Option<SubscriptionTopics>,
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
        access: Access,
        registry: Registry,
        routers: [Router; 3],
        inboxes: Arc<Inboxes>,
        shutdown: Arc<AtomicBool>,
    ) -> Shared {
        Shared {
            placement: Placement::of(&config),
            config,
            access,
            tls: None,
            registry,
            routers,
            subscription_topics: None,
            inboxes,
            open_connections: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// The routes a listener with `role` serves.
    pub fn router(&self, role: ListenerRole) -> &Router {
        &self.routers[role as usize]
    }

    /// Whether a listener with `role` serves the observability endpoints (the dashboard and
    /// its stream among them).
    pub fn serves_observability(&self, role: ListenerRole) -> bool {
        self.placement.observability == role
    }

    /// Whether a listener with `role` hands plain requests to the application's handler.
    pub fn serves_application_http(&self, role: ListenerRole) -> bool {
        self.placement.application == role
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
