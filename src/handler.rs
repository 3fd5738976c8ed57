//! The application API: a [`Handler`] per core, called on the connection's own core.
//!
//! Each core builds its own handler instance from a factory, so handlers need no locks. The
//! [`Context`] passed to every callback sends to the current connection or to any other
//! connection on the same core, closes connections, and reads connection metadata.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::proto::close::CloseCode;
use crate::server::conn_state::Connections;

pub use crate::server::conn_state::{CloseInfo, ClosedBy, ConnId, ConnStats};

/// A complete data message received from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (already validated as UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes, whatever the kind.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }
}

/// What the engine knows about a connection from its upgrade request.
///
/// Stored compactly (it lives as long as the connection): the request target in one
/// allocation, the subprotocol and kept headers only when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnMeta {
    peer: SocketAddr,
    target: Box<str>,
    path_len: u32,
    protocol: Option<Box<str>>,
    headers: Box<[(Box<str>, Box<str>)]>,
}

impl ConnMeta {
    /// Metadata for a connection from `peer` that requested `path` (and `query`).
    pub fn new(
        peer: SocketAddr,
        path: &str,
        query: Option<&str>,
        protocol: Option<String>,
        headers: Vec<(String, String)>,
    ) -> ConnMeta {
        let target = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        ConnMeta {
            peer,
            target: target.into_boxed_str(),
            path_len: path.len() as u32,
            protocol: protocol.map(String::into_boxed_str),
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The request path (without the query).
    pub fn path(&self) -> &str {
        &self.target[..self.path_len as usize]
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&str> {
        let path_len = self.path_len as usize;
        (self.target.len() > path_len).then(|| &self.target[path_len + 1..])
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The kept header `name` (case-insensitive; see the `keep_headers` setting).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection has sent its close frame (or is gone); nothing may follow a close frame.
    #[error("connection {0} is closing or closed")]
    Closed(ConnId),
    /// The connection's outbound queue is over `max_queued_bytes`: it was closed with 1008.
    #[error("connection {0} is too slow to drain its queue and was closed")]
    SlowConsumer(ConnId),
    /// The connection lives on another core. Cross-core delivery goes through the engine's
    /// inter-core channels (see the push server), not through a handler's context.
    #[error("connection {0} lives on another core")]
    OtherCore(ConnId),
}

/// Application callbacks. One instance runs per core; all calls for a connection happen on
/// that connection's core, in order: `on_open`, any number of `on_message`, `on_close`.
pub trait Handler: 'static {
    /// A connection completed its upgrade.
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// A complete message arrived.
    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>);

    /// The connection ended; `info` says who closed it, with which codes, and its counters.
    fn on_close(&mut self, cx: &mut Context<'_>, info: &CloseInfo) {
        let _ = (cx, info);
    }
}

/// The built-in `echo` handler: every message goes back to its sender unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoHandler;

impl Handler for EchoHandler {
    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>) {
        // The sender is open while its own message is being handled, so this cannot fail.
        let _ = cx.send(message);
    }
}

/// The handler's view of the engine during a callback.
pub struct Context<'a> {
    pub(crate) conns: &'a Connections,
    pub(crate) id: ConnId,
    pub(crate) meta: &'a ConnMeta,
}

impl<'a> Context<'a> {
    /// The current connection's id (unique in the process, never reused).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The index of the core this callback runs on.
    pub fn core(&self) -> usize {
        self.id.core()
    }

    /// The current connection's metadata.
    pub fn meta(&self) -> &ConnMeta {
        self.meta
    }

    /// Sends a message to the current connection (encoded into its coalescing buffer).
    pub fn send(&mut self, message: Message<'_>) -> Result<(), SendError> {
        self.conns.send_message(self.id, message)
    }

    /// Queues a pre-encoded frame (see [`crate::proto::frame::server_frame`]) to the current
    /// connection. Encode a broadcast once and pass clones: the bytes are shared, not copied.
    pub fn send_frame(&mut self, frame: Bytes) -> Result<(), SendError> {
        self.conns.send_frame(self.id, frame)
    }

    /// Queues a pre-encoded frame to another connection on this core.
    pub fn send_frame_to(&mut self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        if id.core() != self.core() {
            return Err(SendError::OtherCore(id));
        }
        self.conns.send_frame(id, frame)
    }

    /// Ids of every open connection on this core (for per-core fan-out).
    pub fn connections_on_core(&self) -> Vec<ConnId> {
        self.conns.ids()
    }

    /// Starts the close handshake on the current connection with `code` and `reason` (cut to
    /// fit a control frame). Messages queued before it are delivered first.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.conns.with(self.id, |c| c.close(code, reason));
    }

    /// The current connection's message and byte counters so far.
    pub fn stats(&self) -> ConnStats {
        self.conns.with(self.id, |c| c.stats()).unwrap_or_default()
    }
}
