//! Listening sockets: one `SO_REUSEPORT` listener per core per address, so the kernel spreads
//! new connections over the cores and no accept lock is shared.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;

/// What a listener serves: each role has its own addresses, and [`Placement`] says which role
/// serves the endpoints that can move off the WebSocket port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerRole {
    /// `listen`: upgrades, `/healthz`, `/readyz` and the routes an application added, plus
    /// whatever [`Placement`] leaves here.
    WebSocket,
    /// `metrics_listen`: the observability endpoints, `/healthz` and `/readyz`.
    Metrics,
    /// `admin_listen`: the application's plain HTTP (`POST /publish`), the observability
    /// endpoints unless `metrics_listen` is set, `/healthz` and `/readyz`.
    Admin,
}

impl ListenerRole {
    /// Every role, in index order.
    pub const ALL: [ListenerRole; 3] = [ListenerRole::WebSocket, ListenerRole::Metrics, ListenerRole::Admin];

    /// The addresses configured for this role.
    pub fn addrs(self, config: &Config) -> &[SocketAddr] {
        match self {
            ListenerRole::WebSocket => &config.listen,
            ListenerRole::Metrics => &config.metrics_listen,
            ListenerRole::Admin => &config.admin_listen,
        }
    }
}

/// Which role serves each group of endpoints that can move off the WebSocket port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// `/metrics`, `/debug/latency`, `/dashboard` and its stream.
    pub observability: ListenerRole,
    /// The plain requests the application's handler answers (push mode: `POST /publish`).
    pub application: ListenerRole,
}

impl Placement {
    /// Observability on `metrics_listen` if set, else on `admin_listen` if set; the
    /// application's HTTP on `admin_listen` if set; the rest on the WebSocket port.
    pub fn of(config: &Config) -> Placement {
        let admin = match config.admin_listen.is_empty() {
            true => ListenerRole::WebSocket,
            false => ListenerRole::Admin,
        };
        Placement {
            observability: match config.metrics_listen.is_empty() {
                true => admin,
                false => ListenerRole::Metrics,
            },
            application: admin,
        }
    }
}

/// Accept backlog per listener.
pub const BACKLOG: i32 = 4096;

/// Binds `cores` listeners for each address. A port of 0 is resolved by the first bind and
/// reused by the others, so every core listens on the same port.
/// Returns the listeners per core and the addresses actually bound.
pub fn bind_all(addrs: &[SocketAddr], cores: usize) -> io::Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>)> {
    let mut per_core: Vec<Vec<TcpListener>> = (0..cores).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &addr in addrs {
        let first = bind_reuseport(addr)?;
        let actual = first.local_addr()?;
        bound.push(actual);
        per_core[0].push(first);
        for listeners in per_core.iter_mut().skip(1) {
            listeners.push(bind_reuseport(actual)?);
        }
    }
    Ok((per_core, bound))
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
