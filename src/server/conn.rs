//! Per-core connection state: one [`ConnState`] per open connection, stored inline in the
//! core's slab ([`Connections`]). This is the per-connection state machine both data paths drive:
//! it holds the decoder, the outbound queue, the close decisions and the liveness tick, and
//! makes no system call; the drivers move bytes between it and the kernel.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::os::fd::RawFd;
use std::task::{Poll, Waker};

use bytes::Bytes;
use slab::Slab;

use super::outbound::Outbound;
use crate::api::{ConnId, ConnMeta, ConnStats, Message, SendError};
use crate::metrics::{Counter, Registry};
use crate::proto::close::{close_payload, CloseCode};
use crate::proto::frame::{decode_header, OpCode};
use crate::proto::session::Session;
use crate::timer::TimerKey;
use crate::tls::TlsSession;

/// Why the engine itself (not the peer, not a handler) ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineClose {
    /// A ping unanswered for pong_timeout (and silent past ping_interval + pong_timeout).
    Heartbeat,
    /// Silent past idle_timeout.
    Idle,
    /// Its outbound queue went over max_queued_bytes (closed with slow_consumer_close_code).
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// The handler panicked while handling this connection (closed with 1011).
    HandlerPanic,
    /// Its TLS session could not encrypt what was queued (closed without a close frame).
    TlsFailed,
}

/// How many low bits of a connection's generation the drivers' tokens carry.
pub(crate) const GENERATION_BITS: u32 = 28;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// A queue holding at most this many bytes counts as empty when a message is admitted: a few
/// pending control frames (pongs, a ping) never turn a large message into a slow consumer.
const CONTROL_SLACK: usize = 256;

/// An empty ping, the heartbeat probe.
const PING_FRAME: &[u8] = &[0x89, 0x00];

/// What the peer told us in its close frame.
#[derive(Debug, Default)]
pub(crate) struct PeerClose {
    pub code: Option<CloseCode>,
    pub reason: String,
}

/// What only the code reading a connection needs: the decoder, the metadata handlers see, and
/// the peer's close (boxed, as it exists only once a close frame arrived). Kept boxed in the
/// slab entry and lent out while the connection is read, so that handlers called meanwhile can
/// still reach the slab.
#[derive(Debug)]
pub(crate) struct OpenParts {
    pub session: Session,
    pub meta: ConnMeta,
    pub peer_close: Option<Box<PeerClose>>,
    pub role: ConnRole,
}

/// Who a connection's messages are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnRole {
    /// The application's handler.
    Application,
    /// The engine: a dashboard's stats stream (its messages are ignored, the handler never
    /// hears of it).
    Dashboard,
}

/// The close frame we queued.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SentClose {
    code: CloseCode,
    reason: String,
}

/// Per-connection flags the data path keeps (each driver uses its own subset).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IoFlags(u8);

impl IoFlags {
    /// epoll: the socket may have unread bytes (an edge was seen and not yet read to the end).
    pub const READ_READY: IoFlags = IoFlags(1);
    /// epoll: the last flush hit a full socket buffer; wait for writability.
    pub const WRITE_BLOCKED: IoFlags = IoFlags(2);
    /// epoll: the peer shut its sending side (EPOLLRDHUP): read on until end of stream.
    pub const PEER_SHUT: IoFlags = IoFlags(4);
    /// io_uring: a multishot recv is armed for this connection.
    pub const RECV_ARMED: IoFlags = IoFlags(8);
    /// io_uring: a send is in flight (its buffers must not move).
    pub const SEND_IN_FLIGHT: IoFlags = IoFlags(16);
    /// io_uring: the recv was cancelled to pause reading (replies pending) or to end.
    pub const RECV_CANCELLED: IoFlags = IoFlags(32);
    /// The open phase is over; the socket has been handed to the closing phase.
    pub const HANDED_OFF: IoFlags = IoFlags(64);
    /// The connection speaks TLS: nothing is written unless encrypted.
    pub const TLS: IoFlags = IoFlags(128);

    /// Whether every bit of `flag` is set.
    pub fn has(self, flag: IoFlags) -> bool {
        self.0 & flag.0 == flag.0
    }

    /// Sets or clears `flag`.
    pub fn set(&mut self, flag: IoFlags, on: bool) {
        if on {
            self.0 |= flag.0;
        } else {
            self.0 &= !flag.0;
        }
    }
}

/// One open connection's state, stored inline in its core's slab. The drivers, the closing
/// task, the timer pass and the handlers reach it through [`Connections::with`]; nothing here
/// is shared across cores.
///
/// It is kept small on purpose: queues, close details and unfinished frames are boxed and
/// exist only while in use, so an idle connection costs its slab entry and its boxed decoder.
#[derive(Debug)]
pub struct ConnState {
    /// The connection's generation (its core and slab key are where it is stored).
    generation: u64,
    stats: ConnStats,
    /// The core's timer tick at which the peer last sent anything.
    pub(crate) last_rx_tick: u64,
    /// The heartbeat/idle timer, while armed.
    pub(crate) timer: Option<TimerKey>,
    /// Whether the first (spread) liveness check has happened.
    pub(crate) liveness_primed: bool,
    /// The tick of the first heartbeat ping sent since the peer was last heard (it is
    /// unanswered while later than `last_rx_tick`).
    pub(crate) first_ping_tick: u64,
    fd: RawFd,
    /// The data path's view of the socket.
    pub(crate) io: IoFlags,
    needs_service: bool,
    listed: bool,
    engine_close: Option<EngineClose>,
    sent_close: Option<Box<SentClose>>,
    outbound: Option<Box<Outbound>>,
    /// Lent out while the connection is being read; `None` after the hand-off.
    pub(crate) parts: Option<Box<OpenParts>>,
    /// The TLS session of a `wss://` connection (lent out while its input is decrypted).
    pub(crate) tls: Option<Box<TlsSession>>,
    /// When the upgrade completed, in milliseconds on the core's clock.
    pub(crate) opened_ms: u64,
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

    /// Encodes and queues a data message to this connection, `id` (`max_queued` is the
    /// slow-consumer cap).
    fn send_message(&mut self, id: ConnId, message: Message<'_>, limits: QueueLimits) -> Result<usize, SendError> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        self.admit(id, payload.len(), limits)?;
        self.queue().push_frame(opcode, payload);
        self.count_out(payload.len());
        self.request_service();
        Ok(payload.len())
    }

    /// Queues a pre-encoded data frame (shared, not copied) whose payload is `payload` bytes,
    /// and asks the driver to flush it.
    fn send_frame(
        &mut self,
        id: ConnId,
        frame: Bytes,
        payload: usize,
        limits: QueueLimits,
    ) -> Result<usize, SendError> {
        self.admit(id, frame.len(), limits)?;
        self.queue().push_shared(frame);
        self.count_out(payload);
        self.request_service();
        Ok(payload)
    }

    /// Queues a pre-encoded data frame that may be shed (dropped while still queued) if the
    /// connection falls behind, instead of closing it: when the queue would go over
    /// `max_queued`, its oldest sheddable frames (this one last) are dropped until it fits,
    /// and `notices` turns the dropped frames' keys into frames queued where they were (gap
    /// notices). Returns the payload length queued (`None` if this frame was shed too) and how
    /// many frames were shed.
    fn send_sheddable(
        &mut self,
        id: ConnId,
        frame: Bytes,
        shed_key: u64,
        max_queued: usize,
        notices: impl FnOnce(&[u64]) -> Vec<Bytes>,
    ) -> Result<(Option<usize>, usize), SendError> {
        if self.close_sent() {
            return Err(SendError::Closed(id));
        }
        let payload = payload_len(&frame);
        if !self.would_overflow(frame.len(), max_queued) {
            self.queue().push_sheddable(frame, shed_key);
            self.count_out(payload);
            self.request_service();
            return Ok((Some(payload), 0));
        }
        let mut shed = Vec::new();
        let outbound = self.queue();
        let at = outbound.shed_oldest(outbound.queued_bytes() + frame.len() - max_queued, &mut shed);
        let fits = outbound.queued_bytes() + frame.len() <= max_queued;
        if fits {
            outbound.push_sheddable(frame, shed_key);
        } else {
            shed.push(shed_key);
        }
        outbound.insert_notices(at, notices(&shed));
        self.request_service();
        if !fits {
            return Ok((None, shed.len()));
        }
        self.count_out(payload);
        Ok((Some(payload), shed.len()))
    }

    /// Queues a pong answering a ping (allowed until our close frame is queued).
    pub(crate) fn send_pong(&mut self, payload: &[u8]) {
        if !self.close_sent() {
            self.queue().push_frame(OpCode::Pong, payload);
            self.request_service();
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

    /// Queues a heartbeat ping; the driver writes it with the turn's other sends.
    pub(crate) fn send_ping(&mut self) {
        if !self.close_sent() {
            self.queue().push_shared(Bytes::from_static(PING_FRAME));
            self.request_service();
        }
    }

    /// Records a received data message.
    pub(crate) fn count_in(&mut self, len: usize) {
        self.stats.messages_in += 1;
        self.stats.bytes_in += len as u64;
    }

    /// The outbound queue as it goes on the wire, if anything is queued: over TLS, what was
    /// queued since the last write is encrypted first (and after our close frame, the TLS
    /// close_notify). The driver writes from it and calls [`ConnState::written`] with what the
    /// kernel took.
    pub(crate) fn outbound_to_write(&mut self) -> Option<&mut Outbound> {
        if self.io.has(IoFlags::TLS) {
            // A session lent out to the reader encrypts nothing: the driver writes later.
            let tls = self.tls.as_deref_mut()?;
            let outbound = self.outbound.as_deref_mut()?;
            let closing = self.sent_close.is_some();
            let mut failed = false;
            outbound.encrypt_queued(|plaintext| {
                let mut records = Vec::new();
                let mut encrypted = tls.encrypt(plaintext, &mut records);
                if closing && encrypted.is_ok() {
                    encrypted = tls.close_notify(&mut records);
                }
                match encrypted {
                    Ok(()) => Some(records),
                    Err(error) => {
                        tracing::warn!(event = "tls_encrypt_failed", reason = error.reason(), %error);
                        failed = true;
                        None
                    }
                }
            });
            if failed {
                // Dropped frames leave a hole in the stream: the connection ends here.
                self.engine_close.get_or_insert(EngineClose::TlsFailed);
                self.request_service();
            }
            self.release_empty_queue();
        }
        self.outbound.as_deref_mut()
    }

    /// Gives up the outbound queue of a connection abandoned at the shutdown timeout while
    /// an io_uring send still points into it: the queue is leaked, not freed, so that the
    /// kernel never reads freed memory (the process is stopping; this happens once per
    /// connection still open then).
    pub(crate) fn abandon_outbound(&mut self) {
        if let Some(outbound) = self.outbound.take() {
            Box::leak(outbound);
        }
    }

    /// Queues TLS records the session made while reading (a key update, an alert), to go
    /// out before anything encrypted later.
    pub(crate) fn queue_tls_records(&mut self, records: Vec<u8>) {
        self.queue().push_encrypted(Bytes::from(records));
        self.request_service();
    }

    /// Drops `n` written bytes from the queue; the queue's memory is released once drained,
    /// so an idle connection holds no write buffer.
    pub(crate) fn written(&mut self, n: usize) {
        if let Some(outbound) = self.outbound.as_mut() {
            outbound.consume(n);
            self.release_empty_queue();
        }
    }

    /// Frees the queue once nothing is left in it (written, or dropped unencryptable), so an
    /// idle connection holds no write buffer.
    fn release_empty_queue(&mut self) {
        if self.outbound.as_ref().is_some_and(|o| o.is_empty()) {
            self.outbound = None;
        }
    }

    /// The socket descriptor.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    fn queue(&mut self) -> &mut Outbound {
        self.outbound.get_or_insert_with(Box::default)
    }

    /// Asks the core's driver to service this connection (flush, close, read on) soon.
    pub(crate) fn request_service(&mut self) {
        self.needs_service = true;
    }

    /// Takes a service request: true if the connection asked and is not listed yet (the
    /// caller lists it).
    fn take_service_request(&mut self) -> bool {
        std::mem::take(&mut self.needs_service) && !std::mem::replace(&mut self.listed, true)
    }

    fn count_out(&mut self, len: usize) {
        self.stats.messages_out += 1;
        self.stats.bytes_out += len as u64;
    }

    /// Whether queueing `len` more bytes would take the queue over `max_queued`. A queue of at
    /// most [`CONTROL_SLACK`] bytes counts as empty and admits anything.
    fn would_overflow(&self, len: usize, max_queued: usize) -> bool {
        let queued = self.queued_bytes();
        queued > CONTROL_SLACK && queued + len > max_queued
    }

    /// Refuses sends after our close frame, and closes a connection whose queue would go over
    /// `max_queued_bytes` (a consumer too slow to drain it) with the configured code instead of
    /// growing. An empty queue admits any message (its size is bounded by `max_message_size`
    /// or by the caller), so one large message is never mistaken for a slow consumer.
    fn admit(&mut self, id: ConnId, len: usize, limits: QueueLimits) -> Result<(), SendError> {
        if self.close_sent() {
            return Err(SendError::Closed(id));
        }
        if self.would_overflow(len, limits.max_queued_bytes) {
            self.close_by_engine(
                EngineClose::SlowConsumer,
                limits.close_code,
                "slow consumer: outbound queue over limit",
            );
            return Err(SendError::SlowConsumer(id));
        }
        Ok(())
    }
}

/// The payload length of a pre-encoded frame (the whole frame if it does not parse as one).
fn payload_len(frame: &[u8]) -> usize {
    match decode_header(frame) {
        Ok(Some((header, _))) => header.payload_len as usize,
        _ => frame.len(),
    }
}

/// A core's outbound queue limit and the code a slow consumer is closed with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    /// `max_queued_bytes`.
    pub max_queued_bytes: usize,
    /// `slow_consumer_close_code`.
    pub close_code: CloseCode,
}

/// The slot of `id`, if it still holds that connection (not a later one reusing the slot).
fn find(slab: &mut Slab<ConnState>, id: ConnId) -> Option<&mut ConnState> {
    slab.get_mut(id.key()).filter(|c| c.generation == id.generation())
}

/// The open connections of one core, keyed by slab index.
pub struct Connections {
    core: u16,
    limits: QueueLimits,
    slab: RefCell<Slab<ConnState>>,
    next_generation: Cell<u64>,
    /// Connections that asked for service since the driver last looked.
    pending: RefCell<Vec<ConnId>>,
    driver: RefCell<Option<Waker>>,
    /// Set by [`Connections::wake_driver`], consumed by [`Connections::service_requested`].
    woken: Cell<bool>,
    /// Where sends are counted (this core's block of counters).
    registry: Registry,
}

impl Connections {
    /// An empty table for core `core`, with room reserved for `expected` connections (the
    /// reservation is virtual memory; pages are touched only as connections arrive). Sends
    /// are counted in `registry`'s block for this core.
    pub(crate) fn new(core: usize, limits: QueueLimits, expected: usize, registry: Registry) -> Connections {
        Connections {
            core: core as u16,
            limits,
            slab: RefCell::new(Slab::with_capacity(expected)),
            next_generation: Cell::new(1),
            pending: RefCell::new(Vec::new()),
            driver: RefCell::new(None),
            woken: Cell::new(false),
            registry,
        }
    }

    /// Registers a new connection on socket `fd` (owned by the engine from here on).
    pub(crate) fn insert(
        &self,
        fd: RawFd,
        tls: Option<Box<TlsSession>>,
        now_tick: u64,
        now_ms: u64,
        parts: Box<OpenParts>,
    ) -> ConnId {
        let mut slab = self.slab.borrow_mut();
        let entry = slab.vacant_entry();
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let id = ConnId::new(self.core, entry.key() as u32, generation);
        entry.insert(ConnState {
            generation,
            stats: ConnStats::default(),
            last_rx_tick: now_tick,
            timer: None,
            liveness_primed: false,
            first_ping_tick: 0,
            fd,
            io: if tls.is_some() {
                IoFlags::TLS
            } else {
                IoFlags::default()
            },
            needs_service: false,
            listed: false,
            engine_close: None,
            sent_close: None,
            outbound: None,
            parts: Some(parts),
            tls,
            opened_ms: now_ms,
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
        if state.take_service_request() {
            self.pending.borrow_mut().push(id);
            self.wake_driver();
        }
        Some(result)
    }

    /// Queues one pre-encoded frame to each connection of `ids` on this core (a fan-out): one
    /// borrow of the table and one header parse for the whole batch, counted once. Closed ids
    /// are skipped; a slow consumer is closed as by [`Connections::send_frame`]. Returns how
    /// many connections got the frame.
    pub fn send_frame_to_each(&self, ids: impl IntoIterator<Item = ConnId>, frame: &Bytes) -> usize {
        let payload = payload_len(frame);
        let (mut sent, mut slow, mut listed) = (0, 0, false);
        {
            let mut slab = self.slab.borrow_mut();
            let mut pending = self.pending.borrow_mut();
            for id in ids {
                let Some(state) = find(&mut slab, id) else {
                    continue;
                };
                match state.send_frame(id, frame.clone(), payload, self.limits) {
                    Ok(_) => sent += 1,
                    Err(SendError::SlowConsumer(_)) => slow += 1,
                    Err(_) => {}
                }
                if state.take_service_request() {
                    pending.push(id);
                    listed = true;
                }
            }
        }
        if listed {
            self.wake_driver();
        }
        let counters = self.counters();
        counters.add(Counter::SlowConsumers, slow);
        counters.add(Counter::MessagesOut, sent as u64);
        counters.add(Counter::BytesOut, (sent * payload) as u64);
        sent
    }

    /// Wakes the core's driver task if it is waiting (new work was queued for it).
    pub(crate) fn wake_driver(&self) {
        self.woken.set(true);
        if let Some(driver) = self.driver.borrow().as_ref() {
            driver.wake_by_ref();
        }
    }

    /// The connection in slab slot `key`, if the low [`GENERATION_BITS`] of its generation
    /// are those of `generation` (how the drivers' tokens and completion tags name a
    /// connection, so that a stale one never reaches the slot's next occupant).
    pub(crate) fn by_slot(&self, key: usize, generation: u32) -> Option<ConnId> {
        let slab = self.slab.borrow();
        let state = slab.get(key)?;
        (state.generation as u32 & GENERATION_MASK == generation & GENERATION_MASK)
            .then(|| ConnId::new(self.core, key as u32, state.generation))
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

    /// Resolves when some connection asked for service or [`Connections::wake_driver`] was
    /// called since the last time (registering the driver's waker).
    pub(crate) fn service_requested(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.woken.take() || self.has_pending() {
                return Poll::Ready(());
            }
            let mut driver = self.driver.borrow_mut();
            match driver.as_ref() {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *driver = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }

    /// Queues a data message to a connection, counting it in the core's counters.
    pub fn send_message(&self, id: ConnId, message: Message<'_>) -> Result<(), SendError> {
        let sent = self.with(id, |c| c.send_message(id, message, self.limits));
        self.count_sent(sent.unwrap_or(Err(SendError::Closed(id))))
    }

    /// Queues a pre-encoded frame to a connection, counting it in the core's counters.
    pub fn send_frame(&self, id: ConnId, frame: Bytes) -> Result<(), SendError> {
        let payload = payload_len(&frame);
        let sent = self.with(id, |c| c.send_frame(id, frame, payload, self.limits));
        self.count_sent(sent.unwrap_or(Err(SendError::Closed(id))))
    }

    /// Queues a pre-encoded frame that is shed rather than closing a slow connection (see
    /// [`ConnState`]'s `send_sheddable`); counts what was queued and what was shed. Returns
    /// how many frames were shed (this one included if it did not fit).
    pub fn send_sheddable(
        &self,
        id: ConnId,
        frame: Bytes,
        shed_key: u64,
        notices: impl FnOnce(&[u64]) -> Vec<Bytes>,
    ) -> Result<usize, SendError> {
        let max = self.limits.max_queued_bytes;
        let sent = self.with(id, |c| c.send_sheddable(id, frame, shed_key, max, notices));
        let (len, shed) = sent.unwrap_or(Err(SendError::Closed(id)))?;
        let counters = self.registry.core(self.core as usize);
        if shed > 0 {
            counters.add(Counter::MessagesShed, shed as u64);
        }
        if let Some(len) = len {
            counters.inc(Counter::MessagesOut);
            counters.add(Counter::BytesOut, len as u64);
        }
        Ok(shed)
    }

    /// Counts a queued message, or a slow consumer the moment it is found (before its close
    /// frame can reach the peer).
    fn count_sent(&self, sent: Result<usize, SendError>) -> Result<(), SendError> {
        let counters = self.registry.core(self.core as usize);
        if let Err(SendError::SlowConsumer(_)) = sent {
            counters.inc(Counter::SlowConsumers);
        }
        let len = sent?;
        counters.inc(Counter::MessagesOut);
        counters.add(Counter::BytesOut, len as u64);
        Ok(())
    }

    /// This core's counters.
    pub(crate) fn counters(&self) -> &crate::metrics::CoreCounters {
        self.registry.core(self.core as usize)
    }

    /// Ids of every open connection.
    pub fn ids(&self) -> Vec<ConnId> {
        let slab = self.slab.borrow();
        slab.iter()
            .map(|(key, c)| ConnId::new(self.core, key as u32, c.generation))
            .collect()
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

    fn limits(max_queued_bytes: usize) -> QueueLimits {
        QueueLimits {
            max_queued_bytes,
            close_code: CloseCode::POLICY,
        }
    }

    fn parts() -> Box<OpenParts> {
        let meta = ConnMeta::new("127.0.0.1:1".parse().unwrap(), "/", None, None, Vec::new());
        Box::new(OpenParts {
            session: Session::new(Role::Server, 1024),
            meta,
            peer_close: None,
            role: crate::server::conn::ConnRole::Application,
        })
    }

    #[test]
    fn a_reused_slot_never_matches_the_old_id() {
        let conns = Connections::new(3, limits(1024), 0, Registry::new(4));
        let first = conns.insert(-1, None, 0, 0, parts());
        conns.remove(first).unwrap();
        let second = conns.insert(-1, None, 0, 0, parts());
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
        let conns = Connections::new(0, limits(1024), 0, Registry::new(1));
        let id = conns.insert(-1, None, 0, 0, parts());
        conns.send_message(id, Message::Binary(&[0; 300])).unwrap();
        assert_eq!(
            conns.send_message(id, Message::Binary(&[0; 800])),
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
    fn an_empty_queue_admits_a_message_larger_than_the_cap() {
        let registry = Registry::new(1);
        let conns = Connections::new(0, limits(1024), 0, registry.clone());
        let id = conns.insert(-1, None, 0, 0, parts());
        conns.with(id, |c| c.send_pong(b"pending control frame"));
        conns.send_message(id, Message::Binary(&[7; 4096])).unwrap();
        assert_eq!(conns.with(id, |c| c.engine_close()).unwrap(), None);
        assert_eq!(registry.total(Counter::MessagesOut), 1);
        assert_eq!(registry.total(Counter::BytesOut), 4096);
    }

    #[test]
    fn a_slow_connection_sheds_its_oldest_sheddable_frames_and_gets_notices_in_their_place() {
        let registry = Registry::new(1);
        let conns = Connections::new(0, limits(1024), 0, registry.clone());
        let id = conns.insert(-1, None, 0, 0, parts());
        let frame = |n: u8| Bytes::from(vec![n; 400]);
        conns.send_frame(id, frame(0)).unwrap();
        assert_eq!(conns.send_sheddable(id, frame(1), 11, |_| unreachable!()), Ok(0));
        let mut seen = Vec::new();
        let shed = conns.send_sheddable(id, frame(2), 12, |keys| {
            seen = keys.to_vec();
            vec![Bytes::from_static(b"notice")]
        });
        assert_eq!(shed, Ok(1), "the oldest sheddable frame made room");
        assert_eq!(seen, [11]);
        let queued: Vec<u8> = conns
            .with(id, |c| c.outbound_to_write().unwrap().chunks().map(|c| c[0]).collect())
            .unwrap();
        assert_eq!(queued, [0, b'n', 2], "the notice stands where the shed frame was");
        assert_eq!(conns.with(id, |c| c.engine_close()).unwrap(), None, "not closed");
        assert_eq!(registry.total(Counter::MessagesShed), 1);
        assert_eq!(registry.total(Counter::MessagesOut), 3);
    }

    #[test]
    fn a_fan_out_queues_once_per_open_connection_and_counts_once() {
        let registry = Registry::new(1);
        let conns = Connections::new(0, limits(1024), 0, registry.clone());
        let (a, b) = (
            conns.insert(-1, None, 0, 0, parts()),
            conns.insert(-1, None, 0, 0, parts()),
        );
        let gone = conns.insert(-1, None, 0, 0, parts());
        conns.remove(gone);
        let frame = crate::proto::frame::server_frame(OpCode::Text, b"hello");
        assert_eq!(conns.send_frame_to_each([a, gone, b], &frame), 2);
        let mut pending = Vec::new();
        conns.take_pending(&mut pending);
        assert_eq!(pending, [a, b]);
        assert_eq!(registry.total(Counter::MessagesOut), 2);
        assert_eq!(registry.total(Counter::BytesOut), 10, "payload bytes");
        assert_eq!(conns.with(b, |c| c.queued_bytes()), Some(frame.len()));
    }

    #[test]
    fn nothing_is_queued_after_close() {
        let conns = Connections::new(0, limits(1024), 0, Registry::new(1));
        let id = conns.insert(-1, None, 0, 0, parts());
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
    fn a_connection_asks_the_driver_once_until_serviced() {
        let conns = Connections::new(0, limits(1024), 0, Registry::new(1));
        let id = conns.insert(-1, None, 0, 0, parts());
        conns.send_frame(id, Bytes::from_static(b"a")).unwrap();
        conns.send_frame(id, Bytes::from_static(b"b")).unwrap();
        let mut pending = Vec::new();
        conns.take_pending(&mut pending);
        assert_eq!(pending, vec![id], "listed once for two sends");
        pending.clear();
        conns.send_frame(id, Bytes::from_static(b"c")).unwrap();
        conns.take_pending(&mut pending);
        assert_eq!(pending, vec![id], "listed again after being taken");
        let other = conns.insert(-1, None, 0, 0, parts());
        let slot = (other.key(), other.generation() as u32);
        assert_eq!(conns.by_slot(slot.0, slot.1), Some(other));
        conns.remove(other);
        assert_eq!(conns.by_slot(slot.0, slot.1), None);
    }

    #[test]
    fn an_idle_connection_holds_no_queue() {
        let conns = Connections::new(0, limits(1024), 0, Registry::new(1));
        let id = conns.insert(-1, None, 0, 0, parts());
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
