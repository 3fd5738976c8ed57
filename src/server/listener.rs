//! Listening sockets: one `SO_REUSEPORT` listener per core per address, so the kernel spreads
//! new connections over the cores and no accept lock is shared.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerRole {
    /// The WebSocket port: upgrades, the handler's HTTP, the routes (and the observability
    /// endpoints unless `metrics_listen` is set).
    WebSocket,
    /// `metrics_listen`: the observability endpoints, `/healthz` and `/readyz` only.
    Metrics,
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
