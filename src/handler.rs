//! The application API: a [`Handler`] per core, called on the connection's own core.
//!
//! Each core builds its own handler instance from a factory, so handlers need no locks. The
//! [`Context`] passed to every connection callback sends to the current connection or to any
//! connection on any core (across cores through the engine's inboxes), closes connections, and
//! reads connection metadata; the [`CoreContext`] passed to the other callbacks does the same
//! for the core as a whole.

use bytes::Bytes;

use crate::proto::close::CloseCode;
use crate::proto::handshake::{HttpError, Request};
use crate::server::conn::Connections;
use crate::server::http::HttpReplies;
use crate::server::inbox::Outbox;
use crate::server::observer::CoreObserver;

pub use crate::api::{
    CloseInfo, ClosedBy, ConnId, ConnMeta, ConnStats, HttpReply, HttpToken, Message, Post, PostError, Response,
    SendError,
};

/// Application callbacks. One instance runs per core; all calls for a connection happen on
/// that connection's core, in order: `on_open`, any number of `on_message`, `on_close`.
pub trait Handler: 'static {
    /// A valid upgrade request arrived; an error refuses it with that status and reason
    /// (before the `101`, counted and logged as a rejection). Runs before the connection
    /// limits are taken.
    fn check_upgrade(&mut self, request: &Request) -> Result<(), HttpError> {
        let _ = request;
        Ok(())
    }

    /// A plain HTTP request (its body read whole, up to `max_http_body`). Return `None` to let
    /// the router answer it (`/healthz`, `/readyz`, `/metrics`, routes added with
    /// [`crate::server::Server::route`]).
    fn on_http(&mut self, cx: &mut CoreContext<'_>, request: &Request, body: &[u8]) -> Option<HttpReply> {
        let _ = (cx, request, body);
        None
    }

    /// An item posted to this core (see [`Post`]).
    fn on_post(&mut self, cx: &mut CoreContext<'_>, post: &Post) {
        let _ = (cx, post);
    }

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

/// The handler's view of the engine during a callback that concerns the core as a whole (an
/// HTTP request, a post): send to, and close, any connection.
pub struct CoreContext<'a> {
    pub(crate) conns: &'a Connections,
    pub(crate) outbox: &'a Outbox,
    pub(crate) http: &'a HttpReplies,
    pub(crate) observer: &'a CoreObserver,
    pub(crate) core: usize,
}

impl<'a> CoreContext<'a> {
    /// The index of the core this callback runs on.
    pub fn core(&self) -> usize {
        self.core
    }

    /// Tells the engine that this callback queued the copies of a fan-out published at
    /// `published_at` (the moment it was accepted, e.g. by a hub): once this core has
    /// submitted the writes of every connection with something queued, the time since then is
    /// recorded in this core's `ringcast_fanout_latency_seconds` (one observation per call).
    pub fn note_fanout(&mut self, published_at: std::time::Instant) {
        self.observer.fanout_queued(published_at);
    }

    /// Queues a pre-encoded frame (see [`crate::proto::frame::server_frame`]) to connection
    /// `id` on any core. On this core it is queued at once (errors are immediate); for another
    /// core it is handed over at the end of this core's loop turn, together with everything
    /// else sent there this turn (one wake-up), and `Ok` means handed over: a closed or too
    /// slow recipient drops it and is counted in `ringcast_cross_core_undeliverable_total`.
    /// Frames from one core to one connection arrive in the order they were sent.
    pub fn send_to(&mut self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        if id.core() == self.core {
            return self.conns.send_frame(id, frame);
        }
        self.outbox.send(id, frame)?;
        self.conns.wake_driver();
        Ok(())
    }

    /// Queues one pre-encoded frame to each of `ids`, all on this core (a local fan-out: one
    /// pass over the connection table; ids of other cores or of closed connections are
    /// skipped, slow consumers closed). Returns how many got it.
    pub fn send_to_each(&mut self, ids: impl IntoIterator<Item = ConnId>, frame: &Bytes) -> usize {
        let core = self.core;
        self.conns
            .send_frame_to_each(ids.into_iter().filter(|id| id.core() == core), frame)
    }

    /// Queues a pre-encoded frame to connection `id` on this core that is shed instead of
    /// closing the connection when it falls behind: when its queue would go over
    /// `max_queued_bytes`, its oldest sheddable frames are dropped (this one last) until the
    /// queue fits, and `notices` turns their `shed_key`s (nonzero, chosen by the caller) into
    /// frames queued where the dropped ones stood (gap notices). Returns how many frames were
    /// shed (counted in `ringcast_messages_shed_total`).
    pub fn send_sheddable(
        &mut self,
        id: ConnId,
        frame: Bytes,
        shed_key: u64,
        notices: impl FnOnce(&[u64]) -> Vec<Bytes>,
    ) -> Result<usize, SendError> {
        if id.core() != self.core {
            return Err(SendError::NoSuchCore(id));
        }
        self.conns.send_sheddable(id, frame, shed_key, notices)
    }

    /// Hands `post` to the handler of `core` (this one included) after this loop turn.
    pub fn post(&mut self, core: usize, post: Post) -> Result<(), PostError> {
        self.outbox.post(core, post)?;
        self.conns.wake_driver();
        Ok(())
    }

    /// Starts the close handshake on connection `id` of this core (see [`Context::close`]).
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        self.conns.with(id, |c| c.close(code, reason));
    }

    /// Promises a response to an HTTP request later (return [`HttpReply::Pending`] with it).
    pub fn defer_http(&mut self) -> HttpToken {
        self.http.defer()
    }

    /// Sends the response promised with `token`; false if that request is gone (timed out,
    /// or its client left).
    pub fn complete_http(&mut self, token: HttpToken, response: Response) -> bool {
        self.http.complete(token, response)
    }

    /// Ids of every open connection on this core (for per-core fan-out).
    pub fn connections_on_core(&self) -> Vec<ConnId> {
        self.conns.ids()
    }

    /// This core's counters (engine subsystems count their own events here).
    pub(crate) fn counters(&self) -> &crate::metrics::CoreCounters {
        self.conns.counters()
    }
}

/// The handler's view of the engine during a callback about one connection.
pub struct Context<'a> {
    pub(crate) engine: CoreContext<'a>,
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

    /// The core-wide view: send to, close or post to anything on this core or another.
    pub fn engine(&mut self) -> &mut CoreContext<'a> {
        &mut self.engine
    }

    /// Sends a message to the current connection (encoded into its coalescing buffer).
    pub fn send(&mut self, message: Message<'_>) -> Result<(), SendError> {
        self.engine.conns.send_message(self.id, message)
    }

    /// Queues a pre-encoded frame (see [`crate::proto::frame::server_frame`]) to the current
    /// connection. Encode a broadcast once and pass clones: the bytes are shared, not copied.
    pub fn send_frame(&mut self, frame: Bytes) -> Result<(), SendError> {
        self.engine.conns.send_frame(self.id, frame)
    }

    /// Queues a pre-encoded frame to connection `id` on any core (see
    /// [`CoreContext::send_to`]).
    pub fn send_to(&mut self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        self.engine.send_to(id, frame)
    }

    /// Ids of every open connection on this core (for per-core fan-out).
    pub fn connections_on_core(&self) -> Vec<ConnId> {
        self.engine.connections_on_core()
    }

    /// Starts the close handshake on the current connection with `code` and `reason` (cut to
    /// fit a control frame). Messages queued before it are delivered first.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.engine.close(self.id, code, reason);
    }

    /// The current connection's message and byte counters so far.
    pub fn stats(&self) -> ConnStats {
        self.engine.conns.with(self.id, |c| c.stats()).unwrap_or_default()
    }
}
