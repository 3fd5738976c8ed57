//! Per-core connection state: the slab of open connections and what each one shares between
//! its I/O task and the handlers that send to it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use slab::Slab;

use super::outbound::Outbound;
use super::sys::send_nonblocking;
use crate::handler::{ConnMeta, Message, SendError};
use crate::proto::close::{close_payload, CloseCode};
use crate::proto::frame::OpCode;
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

/// A one-shot "something to do" signal from handlers to a connection's I/O task.
#[derive(Default)]
struct Wake {
    pending: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Wake {
    fn notify(&self) {
        self.pending.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// What a connection's I/O task and the handlers on its core share.
pub struct ConnShared {
    pub(crate) id: ConnId,
    pub(crate) meta: ConnMeta,
    pub(crate) stats: Cell<ConnStats>,
    /// The core's timer tick at which the peer last sent anything.
    pub(crate) last_rx_tick: Cell<u64>,
    /// The heartbeat/idle timer, while armed.
    pub(crate) timer: Cell<Option<TimerKey>>,
    fd: RawFd,
    max_queued_bytes: usize,
    engine_close: Cell<Option<EngineClose>>,
    outbound: RefCell<Outbound>,
    close_sent: RefCell<Option<(CloseCode, String)>>,
    wake: Wake,
}

impl ConnShared {
    /// Whether a close frame has been queued (no data frame may follow it).
    pub fn close_sent(&self) -> bool {
        self.close_sent.borrow().is_some()
    }

    /// The close code and reason we queued, if any.
    pub fn sent_close(&self) -> Option<(CloseCode, String)> {
        self.close_sent.borrow().clone()
    }

    /// Encodes and queues a data message.
    pub fn send_message(&self, message: Message<'_>) -> Result<(), SendError> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        self.admit(payload.len())?;
        self.outbound.borrow_mut().push_frame(opcode, payload);
        self.count_out(payload.len());
        Ok(())
    }

    /// Queues a pre-encoded data frame.
    pub fn send_frame(&self, frame: Bytes) -> Result<(), SendError> {
        let len = frame.len();
        self.admit(len)?;
        self.outbound.borrow_mut().push_shared(frame);
        self.count_out(len);
        self.wake.notify();
        Ok(())
    }

    /// Queues a pong answering a ping (allowed until our close frame is queued).
    pub fn send_pong(&self, payload: &[u8]) {
        if !self.close_sent() {
            self.outbound.borrow_mut().push_frame(OpCode::Pong, payload);
        }
    }

    /// Queues our close frame once; later calls are ignored.
    pub fn close(&self, code: CloseCode, reason: &str) {
        if self.close_sent() {
            return;
        }
        self.outbound
            .borrow_mut()
            .push_frame(OpCode::Close, &close_payload(code, reason));
        *self.close_sent.borrow_mut() = Some((code, reason.to_owned()));
        self.wake.notify();
    }

    /// Mutable access to the outbound queue for the I/O task's flush.
    pub(crate) fn outbound(&self) -> std::cell::RefMut<'_, Outbound> {
        self.outbound.borrow_mut()
    }

    /// Records a received data message.
    pub(crate) fn count_in(&self, len: usize) {
        let mut stats = self.stats.get();
        stats.messages_in += 1;
        stats.bytes_in += len as u64;
        self.stats.set(stats);
    }

    fn count_out(&self, len: usize) {
        let mut stats = self.stats.get();
        stats.messages_out += 1;
        stats.bytes_out += len as u64;
        self.stats.set(stats);
    }

    /// Refuses sends after our close frame, and closes a connection whose queue would go over
    /// `max_queued_bytes` (a consumer too slow to drain it) with 1008 instead of growing.
    fn admit(&self, len: usize) -> Result<(), SendError> {
        if self.close_sent() {
            return Err(SendError::Closed(self.id));
        }
        if self.outbound.borrow().queued_bytes() + len > self.max_queued_bytes {
            self.close_by_engine(
                EngineClose::SlowConsumer,
                CloseCode::POLICY,
                "slow consumer: outbound queue over limit",
            );
            return Err(SendError::SlowConsumer(self.id));
        }
        Ok(())
    }

    /// Ends the connection for an engine reason: queues the close frame (after what is already
    /// queued) and records why.
    pub(crate) fn close_by_engine(&self, why: EngineClose, code: CloseCode, reason: &str) {
        if self.engine_close.get().is_none() && !self.close_sent() {
            self.engine_close.set(Some(why));
        }
        self.close(code, reason);
    }

    /// Why the engine ended this connection, if it did.
    pub(crate) fn engine_close(&self) -> Option<EngineClose> {
        self.engine_close.get()
    }

    /// Sends a heartbeat ping. With nothing else queued it is written straight from the timer
    /// pass (no task wake-up); otherwise it is queued behind the pending frames.
    pub(crate) fn send_ping(&self) {
        if self.close_sent() {
            return;
        }
        let mut outbound = self.outbound.borrow_mut();
        let written = if outbound.is_empty() {
            send_nonblocking(self.fd, PING_FRAME).unwrap_or(0)
        } else {
            0
        };
        if written < PING_FRAME.len() {
            outbound.push_shared(Bytes::from_static(&PING_FRAME[written..]));
            drop(outbound);
            self.wake.notify();
        }
    }

    /// Clears the pending signal; the I/O task calls this after it has flushed and looked at
    /// the close state, just before it waits.
    pub(crate) fn clear_wake(&self) {
        self.wake.pending.set(false);
    }

    /// Resolves when a handler queued something or asked to close since `clear_wake`.
    pub(crate) fn woken(&self) -> Woken<'_> {
        Woken { wake: &self.wake }
    }
}

/// Future returned by [`ConnShared::woken`].
pub(crate) struct Woken<'a> {
    wake: &'a Wake,
}

impl Future for Woken<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.wake.pending.replace(false) {
            return Poll::Ready(());
        }
        self.wake.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// The open connections of one core, keyed by slab index.
pub struct Connections {
    core: u16,
    slab: RefCell<Slab<Rc<ConnShared>>>,
    next_generation: Cell<u64>,
}

impl Connections {
    /// An empty table for core `core`.
    pub fn new(core: usize) -> Connections {
        Connections {
            core: core as u16,
            slab: RefCell::new(Slab::new()),
            next_generation: Cell::new(1),
        }
    }

    /// Registers a new connection on socket `fd` and returns its shared state.
    pub fn insert(&self, meta: ConnMeta, fd: RawFd, max_queued_bytes: usize, now_tick: u64) -> Rc<ConnShared> {
        let mut slab = self.slab.borrow_mut();
        let entry = slab.vacant_entry();
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let id = ConnId {
            core: self.core,
            key: entry.key() as u32,
            generation,
        };
        let conn = Rc::new(ConnShared {
            id,
            meta,
            stats: Cell::new(ConnStats::default()),
            last_rx_tick: Cell::new(now_tick),
            timer: Cell::new(None),
            fd,
            max_queued_bytes,
            engine_close: Cell::new(None),
            outbound: RefCell::new(Outbound::default()),
            close_sent: RefCell::new(None),
            wake: Wake::default(),
        });
        entry.insert(conn.clone());
        conn
    }

    /// Removes a connection (its id is never valid again).
    pub fn remove(&self, id: ConnId) {
        let mut slab = self.slab.borrow_mut();
        if slab.get(id.key()).is_some_and(|c| c.id == id) {
            slab.remove(id.key());
        }
    }

    /// The connection with this id, if it is still open on this core.
    pub fn get(&self, id: ConnId) -> Option<Rc<ConnShared>> {
        self.slab.borrow().get(id.key()).filter(|c| c.id == id).cloned()
    }

    /// Ids of every open connection.
    pub fn ids(&self) -> Vec<ConnId> {
        self.slab.borrow().iter().map(|(_, c)| c.id).collect()
    }

    /// Every open connection (a snapshot, so callers may close them while iterating).
    pub fn all(&self) -> Vec<Rc<ConnShared>> {
        self.slab.borrow().iter().map(|(_, c)| c.clone()).collect()
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

    fn meta() -> ConnMeta {
        ConnMeta {
            peer: "127.0.0.1:1".parse().unwrap(),
            path: "/".into(),
            query: None,
            protocol: None,
            headers: vec![],
        }
    }

    #[test]
    fn a_reused_slot_never_matches_the_old_id() {
        let conns = Connections::new(3);
        let first = conns.insert(meta(), -1, 1024, 0).id;
        conns.remove(first);
        let second = conns.insert(meta(), -1, 1024, 0).id;
        assert_eq!(first.key(), second.key());
        assert_ne!(first, second);
        assert!(conns.get(first).is_none());
        assert!(conns.get(second).is_some());
        assert_eq!(second.core(), 3);
        assert_ne!(first.as_u64(), second.as_u64());
    }

    #[test]
    fn a_full_queue_closes_the_slow_consumer_with_1008() {
        let conns = Connections::new(0);
        let conn = conns.insert(meta(), -1, 64, 0);
        conn.send_message(Message::Binary(&[0; 40])).unwrap();
        assert_eq!(
            conn.send_message(Message::Binary(&[0; 40])),
            Err(SendError::SlowConsumer(conn.id))
        );
        assert_eq!(conn.engine_close(), Some(EngineClose::SlowConsumer));
        assert_eq!(conn.sent_close().map(|(code, _)| code), Some(CloseCode::POLICY));
        assert_eq!(
            conn.send_message(Message::Binary(&[0])),
            Err(SendError::Closed(conn.id))
        );
    }

    #[test]
    fn nothing_is_queued_after_close() {
        let conns = Connections::new(0);
        let conn = conns.insert(meta(), -1, 1024, 0);
        conn.send_message(Message::Text("a")).unwrap();
        conn.close(CloseCode::NORMAL, "bye");
        assert_eq!(conn.send_message(Message::Text("b")), Err(SendError::Closed(conn.id)));
        assert_eq!(
            conn.send_frame(Bytes::from_static(b"x")),
            Err(SendError::Closed(conn.id))
        );
        assert_eq!(conn.sent_close(), Some((CloseCode::NORMAL, "bye".to_owned())));
        assert_eq!(conn.stats.get().messages_out, 1);
    }
}
