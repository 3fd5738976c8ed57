//! Per-core connection state: the slab of open connections, reached by the connections' I/O
//! tasks, the timer pass and the handlers on the same core.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::os::fd::RawFd;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use slab::Slab;

use super::outbound::{Flush, Outbound};
use super::sys::send_nonblocking;
use crate::handler::{ConnMeta, Message, SendError};
use crate::proto::close::{close_payload, CloseCode};
use crate::proto::frame::OpCode;
use crate::proto::session::Session;
use crate::timer::TimerKey;

/// A connection's identity: its core, its slab key there, and a per-core generation so that a
/// reused slot is never mistaken for the connection that held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    core: u16,
    key: u32,
    generation: u64,
}

impl ConnId {
    /// The core the connection lives on.
    pub fn core(self) -> usize {
        self.core as usize
    }

    /// The slab key within its core.
    pub fn key(self) -> usize {
        self.key as usize
    }

    /// The per-core generation that tells reused slots apart.
    pub(crate) fn generation(self) -> u64 {
        self.generation
    }

    /// A process-wide unique number: core in the top 16 bits, generation below.
    pub fn as_u64(self) -> u64 {
        ((self.core as u64) << 48) | (self.generation & ((1 << 48) - 1))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u64())
    }
}

/// Messages and bytes a connection has received and sent (payload bytes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    /// Data messages received.
    pub messages_in: u64,
    /// Data messages queued for sending.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes queued for sending.
    pub bytes_out: u64,
}

/// Who or what ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The client sent a close frame.
    Client,
    /// The application (a handler) closed it.
    Server,
    /// It stopped answering heartbeats, or was idle past the idle timeout.
    Heartbeat,
    /// The peer broke the protocol, the socket failed, or a timeout fired.
    Error,
    /// The server is shutting down.
    Shutdown,
}

impl ClosedBy {
    /// The lower-case name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedBy::Client => "client",
            ClosedBy::Server => "server",
            ClosedBy::Heartbeat => "heartbeat",
            ClosedBy::Error => "error",
            ClosedBy::Shutdown => "shutdown",
        }
    }
}

/// Everything known about a connection when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// Who ended it.
    pub closed_by: ClosedBy,
    /// The close code we sent, if we sent a close frame.
    pub code_sent: Option<CloseCode>,
    /// The reason we sent.
    pub reason_sent: String,
    /// The close code the peer sent (`Some(1005)` for a close frame without a code).
    pub code_received: Option<CloseCode>,
    /// The reason the peer sent.
    pub reason_received: String,
    /// The error class (`protocol_error`, `reset`, `close_timeout`, ...) when `closed_by` is `Error`.
    pub error: Option<&'static str>,
    /// How long the connection was open.
    pub duration: Duration,
    /// Its counters.
    pub stats: ConnStats,
}

/// Why the engine itself (not the peer, not a handler) ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineClose {
    /// Silent past ping_interval + pong_timeout.
    Heartbeat,
    /// Silent past idle_timeout.
    Idle,
    /// Its outbound queue went over max_queued_bytes.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
}

/// An empty ping, the heartbeat probe.
const PING_FRAME: &[u8] = &[0x89, 0x00];

/// What the peer told us in its close frame.
#[derive(Debug, Default)]
pub(crate) struct PeerClose {
    pub code: Option<CloseCode>,
    pub reason: String,
}

/// What only the code reading a connection needs: the decoder, the metadata handlers see, and
/// the peer's close. Kept boxed in the slab entry and lent out while the connection is read, so
/// that handlers called meanwhile can still reach the slab.
#[derive(Debug)]
pub(crate) struct OpenParts {
    pub session: Session,
    pub meta: ConnMeta,
    pub peer_close: PeerClose,
}

/// The close frame we queued.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SentClose {
    code: CloseCode,
    reason: String,
}

/// One open connection's state, stored inline in its core's slab. The reactor, the closing
/// task and the handlers reach it through [`Connections::with`]; nothing here is shared across
/// cores.
///
/// It is kept small on purpose: queues, close details and unfinished frames are boxed and
/// exist only while in use, so an idle connection costs its slab entry and its boxed decoder.
#[derive(Debug)]
pub struct ConnState {
    id: ConnId,
    stats: ConnStats,
    /// The core's timer tick at which the peer last sent anything.
    pub(crate) last_rx_tick: u64,
    /// The heartbeat/idle timer, while armed.
    pub(crate) timer: Option<TimerKey>,
    fd: RawFd,
    /// The socket may have unread bytes (an edge was seen and not yet read to the end).
    pub(crate) read_ready: bool,
    /// The last flush hit a full socket buffer; wait for writability before reading more.
    pub(crate) write_blocked: bool,
    /// The open phase is over; the closing task owns the socket now.
    pub(crate) handed_off: bool,
    needs_service: bool,
    listed: bool,
    engine_close: Option<EngineClose>,
    sent_close: Option<Box<SentClose>>,
    outbound: Option<Box<Outbound>>,
    /// Lent out while the connection is being read; `None` after the hand-off.
    pub(crate) parts: Option<Box<OpenParts>>,
    pub(crate) opened_at: Instant,
}

impl ConnState {
    /// Whether our close frame has been queued (no data frame may follow it).
    pub fn close_sent(&self) -> bool {
        self.sent_close.is_some()
    }

    /// The close code and reason we queued, if any.
    pub fn sent_close(&self) -> Option<(CloseCode, String)> {
        self.sent_close.as_ref().map(|c| (c.code, c.reason.clone()))
    }

    /// The connection's counters.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.outbound.as_ref().map_or(0, |o| o.queued_bytes())
    }

    /// Why the engine ended this connection, if it did.
    pub(crate) fn engine_close(&self) -> Option<EngineClose> {
        self.engine_close
    }

    /// Encodes and queues a data message (`max_queued` is the slow-consumer cap).
    pub fn send_message(&mut self, message: Message<'_>, max_queued: usize) -> Result<(), SendError> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        self.admit(payload.len(), max_queued)?;
        self.queue().push_frame(opcode, payload);
        self.count_out(payload.len());
        Ok(())
    }

    /// Queues a pre-encoded data frame (shared, not copied) and asks the reactor to flush it.
    pub fn send_frame(&mut self, frame: Bytes, max_queued: usize) -> Result<(), SendError> {
        let len = frame.len();
        self.admit(len, max_queued)?;
        self.queue().push_shared(frame);
        self.count_out(len);
        self.request_service();
        Ok(())
    }

    /// Queues a pong answering a ping (allowed until our close frame is queued).
    pub(crate) fn send_pong(&mut self, payload: &[u8]) {
        if !self.close_sent() {
            self.queue().push_frame(OpCode::Pong, payload);
        }
    }

    /// Queues our close frame once (after what is already queued); later calls are ignored.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.close_sent() {
            return;
        }
        self.queue().push_frame(OpCode::Close, &close_payload(code, reason));
        self.sent_close = Some(Box::new(SentClose {
            code,
            reason: reason.to_owned(),
        }));
        self.request_service();
    }

    /// Ends the connection for an engine reason: queues the close frame and records why.
    pub(crate) fn close_by_engine(&mut self, why: EngineClose, code: CloseCode, reason: &str) {
        if self.engine_close.is_none() && !self.close_sent() {
            self.engine_close = Some(why);
        }
        self.close(code, reason);
    }

    /// Sends a heartbeat ping. With nothing else queued it is written straight from the timer
    /// pass (no task wake-up); otherwise it is queued behind the pending frames.
    pub(crate) fn send_ping(&mut self) {
        if self.close_sent() {
            return;
        }
        let idle = self.outbound.is_none();
        let written = if idle {
            send_nonblocking(self.fd, PING_FRAME).unwrap_or(0)
        } else {
            0
        };
        if written < PING_FRAME.len() {
            self.queue().push_shared(Bytes::from_static(&PING_FRAME[written..]));
            self.request_service();
        }
    }

    /// Records a received data message.
    pub(crate) fn count_in(&mut self, len: usize) {
        self.stats.messages_in += 1;
        self.stats.bytes_in += len as u64;
    }

    /// Writes what is queued; the queue's memory is released once it is drained.
    pub(crate) fn flush(&mut self) -> std::io::Result<Flush> {
        let Some(outbound) = self.outbound.as_mut() else {
            return Ok(Flush::Done);
        };
        let result = outbound.flush(self.fd);
        if outbound.is_empty() {
            self.outbound = None;
        }
        result
    }

    /// The socket descriptor.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    fn queue(&mut self) -> &mut Outbound {
        self.outbound.get_or_insert_with(Box::default)
    }

    /// Asks the core's reactor to service this connection (flush, close, read on) soon.
    pub(crate) fn request_service(&mut self) {
        self.needs_service = true;
    }

    fn count_out(&mut self, len: usize) {
        self.stats.messages_out += 1;
        self.stats.bytes_out += len as u64;
    }

    /// Refuses sends after our close frame, and closes a connection whose queue would go over
    /// `max_queued` (a consumer too slow to drain it) with 1008 instead of growing.
    fn admit(&mut self, len: usize, max_queued: usize) -> Result<(), SendError> {
        if self.close_sent() {
            return Err(SendError::Closed(self.id));
        }
        if self.queued_bytes() + len > max_queued {
            self.close_by_engine(
                EngineClose::SlowConsumer,
                CloseCode::POLICY,
                "slow consumer: outbound queue over limit",
            );
            return Err(SendError::SlowConsumer(self.id));
        }
        Ok(())
    }
}

/// The slot of `id`, if it still holds that connection (not a later one reusing the slot).
fn find(slab: &mut Slab<ConnState>, id: ConnId) -> Option<&mut ConnState> {
    slab.get_mut(id.key()).filter(|c| c.id == id)
}

/// The open connections of one core, keyed by slab index.
pub struct Connections {
    core: u16,
    max_queued_bytes: usize,
    slab: RefCell<Slab<ConnState>>,
    next_generation: Cell<u64>,
    /// Connections that asked for service since the reactor last looked.
    pending: RefCell<Vec<ConnId>>,
    reactor: RefCell<Option<Waker>>,
}

impl Connections {
    /// An empty table for core `core`, with room reserved for `expected` connections (the
    /// reservation is virtual memory; pages are touched only as connections arrive).
    pub fn new(core: usize, max_queued_bytes: usize, expected: usize) -> Connections {
        Connections {
            core: core as u16,
            max_queued_bytes,
            slab: RefCell::new(Slab::with_capacity(expected)),
            next_generation: Cell::new(1),
            pending: RefCell::new(Vec::new()),
            reactor: RefCell::new(None),
        }
    }

    /// Registers a new connection on socket `fd` (owned by the engine from here on).
    pub(crate) fn insert(&self, fd: RawFd, now_tick: u64, parts: Box<OpenParts>) -> ConnId {
        let mut slab = self.slab.borrow_mut();
        let entry = slab.vacant_entry();
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let id = ConnId {
            core: self.core,
            key: entry.key() as u32,
            generation,
        };
        entry.insert(ConnState {
            id,
            stats: ConnStats::default(),
            last_rx_tick: now_tick,
            timer: None,
            fd,
            read_ready: false,
            write_blocked: false,
            handed_off: false,
            needs_service: false,
            listed: false,
            engine_close: None,
            sent_close: None,
            outbound: None,
            parts: Some(parts),
            opened_at: Instant::now(),
        });
        id
    }

    /// Removes a connection (its id is never valid again) and returns its final state.
    pub fn remove(&self, id: ConnId) -> Option<ConnState> {
        let mut slab = self.slab.borrow_mut();
        find(&mut slab, id)?;
        Some(slab.remove(id.key()))
    }

    /// Runs `f` on the connection with this id, if it is still open on this core. The slab is
    /// borrowed for the duration of `f`: never call back into handlers from inside it.
    pub fn with<R>(&self, id: ConnId, f: impl FnOnce(&mut ConnState) -> R) -> Option<R> {
        let mut slab = self.slab.borrow_mut();
        let state = find(&mut slab, id)?;
        let result = f(state);
        if std::mem::take(&mut state.needs_service) && !std::mem::replace(&mut state.listed, true) {
            self.pending.borrow_mut().push(id);
            if let Some(reactor) = self.reactor.borrow().as_ref() {
                reactor.wake_by_ref();
            }
        }
        Some(result)
    }

    /// The connection registered under an epoll token, if it is still the same connection.
    pub(crate) fn by_token(&self, token: u64) -> Option<ConnId> {
        let slab = self.slab.borrow();
        let state = slab.get((token >> 32) as usize)?;
        (state.id.generation as u32 == token as u32).then_some(state.id)
    }

    /// Whether some connection is waiting for service.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.borrow().is_empty()
    }

    /// Takes the connections that asked for service; each may ask again from then on.
    pub(crate) fn take_pending(&self, into: &mut Vec<ConnId>) {
        std::mem::swap(&mut *self.pending.borrow_mut(), into);
        let mut slab = self.slab.borrow_mut();
        for &id in into.iter() {
            if let Some(state) = find(&mut slab, id) {
                state.listed = false;
            }
        }
    }

    /// Resolves when some connection asked for service (registering the reactor's waker).
    pub(crate) fn service_requested(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.has_pending() {
                return Poll::Ready(());
            }
            let mut reactor = self.reactor.borrow_mut();
            if reactor.is_none() {
                *reactor = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Queues a data message to a connection.
    pub fn send_message(&self, id: ConnId, message: Message<'_>) -> Result<(), SendError> {
        self.with(id, |c| c.send_message(message, self.max_queued_bytes))
            .unwrap_or(Err(SendError::Closed(id)))
    }

    /// Queues a pre-encoded frame to a connection.
    pub fn send_frame(&self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        self.with(id, |c| c.send_frame(frame, self.max_queued_bytes))
            .unwrap_or(Err(SendError::Closed(id)))
    }

    /// Ids of every open connection.
    pub fn ids(&self) -> Vec<ConnId> {
        self.slab.borrow().iter().map(|(_, c)| c.id).collect()
    }

    /// How many connections are open on this core.
    pub fn len(&self) -> usize {
        self.slab.borrow().len()
    }

    /// Whether no connection is open on this core.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::session::Role;

    fn parts() -> Box<OpenParts> {
        let meta = ConnMeta::new("127.0.0.1:1".parse().unwrap(), "/", None, None, Vec::new());
        Box::new(OpenParts {
            session: Session::new(Role::Server, 1024),
            meta,
            peer_close: PeerClose::default(),
        })
    }

    #[test]
    fn a_reused_slot_never_matches_the_old_id() {
        let conns = Connections::new(3, 1024, 0);
        let first = conns.insert(-1, 0, parts());
        conns.remove(first).unwrap();
        let second = conns.insert(-1, 0, parts());
        assert_eq!(first.key(), second.key());
        assert_ne!(first, second);
        assert!(conns.with(first, |_| ()).is_none());
        assert!(conns.with(second, |_| ()).is_some());
        assert_eq!(
            conns.send_message(first, Message::Text("x")),
            Err(SendError::Closed(first))
        );
        assert_eq!(second.core(), 3);
        assert_ne!(first.as_u64(), second.as_u64());
    }

    #[test]
    fn a_full_queue_closes_the_slow_consumer_with_1008() {
        let conns = Connections::new(0, 64, 0);
        let id = conns.insert(-1, 0, parts());
        conns.send_message(id, Message::Binary(&[0; 40])).unwrap();
        assert_eq!(
            conns.send_message(id, Message::Binary(&[0; 40])),
            Err(SendError::SlowConsumer(id))
        );
        let (why, code) = conns
            .with(id, |c| (c.engine_close(), c.sent_close().map(|(code, _)| code)))
            .unwrap();
        assert_eq!((why, code), (Some(EngineClose::SlowConsumer), Some(CloseCode::POLICY)));
        assert_eq!(
            conns.send_message(id, Message::Binary(&[0])),
            Err(SendError::Closed(id))
        );
    }

    #[test]
    fn nothing_is_queued_after_close() {
        let conns = Connections::new(0, 1024, 0);
        let id = conns.insert(-1, 0, parts());
        conns.send_message(id, Message::Text("a")).unwrap();
        conns.with(id, |c| c.close(CloseCode::NORMAL, "bye"));
        assert_eq!(conns.send_message(id, Message::Text("b")), Err(SendError::Closed(id)));
        assert_eq!(
            conns.send_frame(id, Bytes::from_static(b"x")),
            Err(SendError::Closed(id))
        );
        let state = conns.remove(id).unwrap();
        assert_eq!(state.sent_close(), Some((CloseCode::NORMAL, "bye".to_owned())));
        assert_eq!(state.stats().messages_out, 1);
    }

    #[test]
    fn a_connection_asks_the_reactor_once_until_serviced() {
        let conns = Connections::new(0, 1024, 0);
        let id = conns.insert(-1, 0, parts());
        conns.send_frame(id, Bytes::from_static(b"a")).unwrap();
        conns.send_frame(id, Bytes::from_static(b"b")).unwrap();
        let mut pending = Vec::new();
        conns.take_pending(&mut pending);
        assert_eq!(pending, vec![id], "listed once for two sends");
        pending.clear();
        conns.send_frame(id, Bytes::from_static(b"c")).unwrap();
        conns.take_pending(&mut pending);
        assert_eq!(pending, vec![id], "listed again after being taken");
        let other = conns.insert(-1, 0, parts());
        assert_eq!(conns.by_token(crate::server::reactor::token(other)), Some(other));
        conns.remove(other);
        assert_eq!(conns.by_token(crate::server::reactor::token(other)), None);
    }

    #[test]
    fn an_idle_connection_holds_no_queue() {
        let conns = Connections::new(0, 1024, 0);
        let id = conns.insert(-1, 0, parts());
        assert!(conns
            .with(id, |c| c.outbound.is_none() && c.sent_close.is_none())
            .unwrap());
        assert!(
            std::mem::size_of::<ConnState>() <= 128,
            "ConnState grew to {}",
            std::mem::size_of::<ConnState>()
        );
    }
}
