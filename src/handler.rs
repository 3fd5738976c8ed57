//! The application API: a [`Handler`] per core, called on the connection's own core.
//!
//! Each core builds its own handler instance from a factory, so handlers need no locks. The
//! [`Context`] passed to every callback sends to the current connection or to any connection on
//! any core (across cores through the engine's inboxes), closes connections, and reads
//! connection metadata.

use bytes::Bytes;

use crate::proto::close::CloseCode;
use crate::server::conn::Connections;
use crate::server::inbox::Outbox;

pub use crate::api::{CloseInfo, ClosedBy, ConnId, ConnMeta, ConnStats, Message, SendError};

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
    pub(crate) outbox: &'a Outbox,
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

    /// Queues a pre-encoded frame to connection `id` on any core. On this core it is queued at
    /// once (errors are immediate); for another core it is handed over at the end of this
    /// core's loop turn, together with everything else sent there this turn (one wake-up), and
    /// `Ok` means handed over: a closed or too slow recipient drops it and is counted in
    /// `ringcast_cross_core_undeliverable_total`. Frames from one core to one connection
    /// arrive in the order they were sent.
    pub fn send_to(&mut self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        if id.core() == self.core() {
            return self.conns.send_frame(id, frame);
        }
        self.outbox.send(id, frame)?;
        self.conns.wake_driver();
        Ok(())
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
