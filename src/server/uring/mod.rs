//! The io_uring data path: per core, one raw ring (the `io-uring` crate, next to monoio's own
//! ring, which keeps accept, handshakes, timers and the closing phase) owns the I/O of every
//! upgraded connection.
//!
//! - **Receiving**: one multishot recv per connection, armed once for its whole open phase,
//!   draws from the core's shared provided-buffer ring ([`bufring`]). Each completion's bytes
//!   are decoded straight from the buffer, which goes back to the kernel at once; only an
//!   unfinished frame is copied (into the session's pending state). An idle connection holds
//!   an armed recv and no buffer.
//! - **Sending**: everything queued for a connection during a loop turn goes out in one
//!   vectored `sendmsg` submission (at most one in flight per connection, its iovecs pointing
//!   at the queued frames, which stay put until the completion); all the turn's submissions
//!   go to the kernel in one `io_uring_enter`, which also collects the completions.
//! - **Backpressure**: with 64 KiB of replies pending the recv is cancelled, and re-armed once
//!   they are written, so a client that does not read is slowed by TCP, not by our memory.
//!   Where the kernel can (probed at start; 6.18 can), each recv ends after [`RECV_LIMIT`] bytes and is
//!   re-armed at the connection's next service: otherwise one recv takes all the bytes its
//!   socket holds, up to the whole buffer pool, in one go, and what arrives after the pause
//!   decision is held for that connection (up to the pool's size, for a client that sends
//!   without reading; one log line at start-up says when the limit is missing).
//! - **Ending**: the recv (and a send in flight) are cancelled; once their last completions
//!   are in, the socket goes to the closing phase. Completions name their connection by slab
//!   key and generation, so a stale one never reaches the slot's next occupant.
//! - **Waking**: the driver task awaits the ring's descriptor through monoio (no multishot
//!   operation ever goes on monoio's ring) together with the core's service requests; other
//!   cores wake it with `MSG_RING`, other threads through an eventfd polled on this ring.

mod bufring;
mod ring;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::closing::end_open_phase;
use super::conn::{IoFlags, GENERATION_BITS};
use super::core::CoreCtx;
use super::ending::{Ending, TransportError};
use super::inbox::Inbox;
use super::input::{begin, receive};
use super::sched::{either, yield_now};
use super::socket::FLUSH_BEFORE_READING;
use super::sys::MAX_IOVECS;
use crate::api::ConnId;
use crate::handler::Handler;
use crate::metrics::Counter;
use bufring::{BufRing, GROUP};
pub use ring::probe;

/// What a completion is for: the top four bits of its user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// A connection's multishot recv.
    Recv = 1,
    /// A connection's send.
    Send = 2,
    /// A cancellation (its own result is not needed: the cancelled operation reports).
    Cancel = 3,
    /// A wake-up: `MSG_RING` from another core, or the inbox eventfd's multishot poll.
    Wake = 4,
    /// A failed `MSG_RING` of ours (successes post nothing); the low bits name the core.
    MsgRing = 5,
}

const TAG_SHIFT: u32 = 60;
const WAKE_BY_EVENTFD: u64 = 1;

/// Most completions handled per loop turn before the core's other tasks get a turn.
const CQES_PER_TURN: usize = 4096;

/// Loop turns with work left that follow each other at once before the driver yields to the
/// core's other tasks (each yield costs a trip through monoio's ring).
const BUSY_TURNS_BEFORE_YIELD: u32 = 8;

/// Most connections serviced (sends submitted) per loop turn. A fan-out to many subscribers
/// is written over several turns, with the core's other tasks (accepts, handshakes, HTTP
/// publishes) getting a turn in between: a turn of sends costs the kernel a few microseconds
/// each, so an unbounded one would hold them back for the whole fan-out.
const SERVICES_PER_TURN: usize = 1024;

fn user_data(tag: Tag, low: u64) -> u64 {
    ((tag as u64) << TAG_SHIFT) | low
}

/// A connection's user data: tag, generation (low bits) and slab key.
fn conn_data(tag: Tag, id: ConnId) -> u64 {
    let generation = id.generation() & ((1 << GENERATION_BITS) - 1);
    user_data(tag, (generation << 32) | id.key() as u64)
}

fn tag_of(data: u64) -> Option<Tag> {
    Some(match data >> TAG_SHIFT {
        1 => Tag::Recv,
        2 => Tag::Send,
        3 => Tag::Cancel,
        4 => Tag::Wake,
        5 => Tag::MsgRing,
        _ => return None,
    })
}

/// Sizes of a core's ring and buffer pool (from the configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingSizes {
    /// Completion queue entries.
    pub cq_entries: u32,
    /// Provided buffers (a power of two).
    pub buffers: u16,
    /// Bytes per provided buffer.
    pub buffer_size: u32,
}

/// A send in flight: its header and iovecs stay put until its completion.
struct SendOp {
    msg: libc::msghdr,
    iov: [libc::iovec; MAX_IOVECS],
}

impl SendOp {
    fn new() -> Box<SendOp> {
        Box::new(SendOp {
            // SAFETY: an all-zero msghdr is a valid empty header.
            msg: unsafe { std::mem::zeroed() },
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOVECS],
        })
    }
}

/// Input held back from decoding while a connection's replies are pending.
#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    /// How much of `bytes` has been decoded.
    decoded: usize,
}

/// Held input is decoded this much at a time, re-checking the replies queue in between.
const HELD_CHUNK: usize = 64 * 1024;

/// Bytes one multishot recv receives before it ends and is re-armed (where the kernel limits
/// recvs; its last buffer may go past it): about what a connection can hold beyond the pause
/// decision, as with the epoll data path's 64 KiB reads.
const RECV_LIMIT: u32 = FLUSH_BEFORE_READING as u32;

/// One core's io_uring data path.
struct Uring<H> {
    core: Rc<CoreCtx<H>>,
    /// Declared before `buffers`: the ring (and its registration) goes first.
    ring: IoUring,
    buffers: BufRing,
    /// The send in flight per slab key.
    sends: Vec<Option<Box<SendOp>>>,
    /// Finished send headers kept for reuse; boxed because a header must not move while its
    /// send is in flight, and the boxes move between this list and `sends`.
    #[allow(clippy::vec_box)]
    spare_sends: Vec<Box<SendOp>>,
    /// Connections whose open phase is over, waiting for their last completions.
    endings: HashMap<ConnId, Ending>,
    /// Bytes received after a connection's replies reached [`FLUSH_BEFORE_READING`] (those
    /// already in flight when its recv was paused), decoded once the replies are written.
    held: HashMap<ConnId, Held>,
    completions: Vec<cqueue::Entry>,
    /// Submissions waiting for room in the submission queue.
    backlog: VecDeque<squeue::Entry>,
    /// Whether recvs end after [`RECV_LIMIT`] bytes.
    recv_limit: bool,
}

/// Sets up the core's ring and buffer pool; the returned future then runs the core's open
/// connections on io_uring until the runtime stops. Must be called on the core's thread (the
/// ring accepts submissions from its creator only).
pub(crate) fn start<H: Handler>(core: Rc<CoreCtx<H>>, sizes: RingSizes) -> io::Result<impl Future<Output = ()>> {
    let ring = ring::build(sizes.cq_entries)?;
    let buffers = BufRing::register(&ring.submitter(), sizes.buffers, sizes.buffer_size)?;
    let recv_limit = ring::recv_byte_limit_supported();
    if !recv_limit && core.index == 0 {
        tracing::info!(
            event = "uring_recv_unlimited", core = core.index,
            "this kernel cannot limit a multishot recv (newer kernels can): a client that sends without reading holds up to the buffer pool of input"
        );
    }
    // SAFETY: `dup` returns a fresh descriptor that nothing else owns.
    let dup = unsafe { libc::fcntl(ring.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // The ring's descriptor polls readable when completions wait; wrapped as a monoio stream
    // only for its `readable()` wait (monoio has no readiness wait for arbitrary descriptors).
    // SAFETY: `dup` is owned by the stream from here on.
    let waiter = monoio::net::UnixStream::from_std(unsafe { std::os::unix::net::UnixStream::from_raw_fd(dup) })?;
    let mut driver = Uring {
        core,
        ring,
        buffers,
        sends: Vec::new(),
        spare_sends: Vec::new(),
        endings: HashMap::new(),
        held: HashMap::new(),
        completions: Vec::with_capacity(256),
        backlog: VecDeque::new(),
        recv_limit,
    };
    let core = driver.core.clone();
    let inbox = core.inbox();
    driver.arm_wake_poll(inbox);
    inbox.set_ring_fd(driver.ring.as_raw_fd());
    Ok(async move {
        let inbox = core.inbox();
        if let Err(error) = driver.serve(inbox, &waiter).await {
            tracing::error!(event = "uring_failed", core = core.index, %error, "the io_uring data path stopped");
        }
        inbox.set_ring_fd(-1);
    })
}

impl<H: Handler> Uring<H> {
    /// The loop: start new connections, service those that asked, hand other cores their
    /// batches, submit everything and collect completions in one `enter`, handle them; wait
    /// through monoio only when nothing is left to do.
    async fn serve(&mut self, inbox: &Inbox, waiter: &monoio::net::UnixStream) -> io::Result<()> {
        let core = self.core.clone();
        let mut opened = Vec::new();
        let (mut pending, mut asked) = (VecDeque::new(), Vec::new());
        let mut busy_turns = 0;
        let mut wait_began = None;
        loop {
            core.observer.turn_began(wait_began.take());
            core.take_opened(&mut opened);
            for (id, mut early) in opened.drain(..) {
                self.open(id, &mut early);
            }
            core.conns.take_pending(&mut asked);
            pending.extend(asked.drain(..));
            let serviced = pending.len().min(SERVICES_PER_TURN);
            for id in pending.drain(..serviced) {
                self.service(id);
            }
            core.outbox.flush(&core.shared.inboxes, true, |target, ring_fd| {
                self.post_wake(target, ring_fd)
            });
            self.buffers.publish();
            self.submit()?;
            if pending.is_empty() {
                core.observer.writes_submitted();
            }
            let handled = self.handle_completions(inbox);
            let idle = handled == 0
                && self.backlog.is_empty()
                && pending.is_empty()
                && !core.conns.has_pending()
                && !self.ring.submission().taskrun();
            if idle {
                wait_began = Some(std::time::Instant::now());
                either(waiter.readable(false), core.conns.service_requested()).await;
                busy_turns = 0;
            } else if busy_turns < BUSY_TURNS_BEFORE_YIELD && handled < CQES_PER_TURN && serviced < SERVICES_PER_TURN {
                // More work is already here: go round again without a trip through monoio.
                busy_turns += 1;
            } else {
                // The core's other tasks (accepts, handshakes, timers, closes) get their turn.
                yield_now().await;
                busy_turns = 0;
            }
        }
    }

    /// Submits what is queued and collects completions (one `io_uring_enter`, skipped when
    /// there is nothing to submit and no completion work is pending).
    fn submit(&mut self) -> io::Result<()> {
        loop {
            self.refill();
            let sq = self.ring.submission();
            let needed = !sq.is_empty() || sq.taskrun() || sq.cq_overflow();
            if sq.cq_overflow() {
                self.core.counters().inc(Counter::UringCqOverflows);
            }
            drop(sq);
            if !needed {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) if !self.backlog.is_empty() => continue,
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // Completions are overflowing: handle them first; the rest goes next turn.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues one submission. When the submission queue is full, what it holds is submitted
    /// and the entry waits in the backlog, in order, for the next free room.
    fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: every entry pushed refers to memory that outlives its operation: socket
        // descriptors owned by live connections, send headers kept in `sends` until their
        // completion, and the core's inbox eventfd.
        if self.backlog.is_empty() && unsafe { self.ring.submission().push(&entry) }.is_ok() {
            return;
        }
        self.backlog.push_back(entry);
        if let Err(error) = self.ring.submit() {
            if error.raw_os_error() != Some(libc::EBUSY) {
                tracing::error!(event = "uring_submit_failed", core = self.core.index, %error);
            }
        }
        self.refill();
    }

    /// Moves backlogged entries into the submission queue while it has room.
    fn refill(&mut self) {
        let mut sq = self.ring.submission();
        while let Some(entry) = self.backlog.front() {
            // SAFETY: as in `push`.
            if unsafe { sq.push(entry) }.is_err() {
                break;
            }
            self.backlog.pop_front();
        }
    }

    /// Handles up to [`CQES_PER_TURN`] completions; returns how many.
    fn handle_completions(&mut self, inbox: &Inbox) -> usize {
        let mut handled = 0;
        while handled < CQES_PER_TURN {
            let mut batch = std::mem::take(&mut self.completions);
            batch.extend(self.ring.completion().take(256));
            if batch.is_empty() {
                self.completions = batch;
                break;
            }
            handled += batch.len();
            for cqe in batch.drain(..) {
                self.on_completion(inbox, cqe.user_data(), cqe.result(), cqe.flags());
            }
            self.completions = batch;
        }
        handled
    }

    fn on_completion(&mut self, inbox: &Inbox, data: u64, result: i32, flags: u32) {
        let conn = || {
            self.core
                .conns
                .by_slot((data & 0xffff_ffff) as usize, ((data >> 32) & 0x0fff_ffff) as u32)
        };
        match tag_of(data) {
            Some(Tag::Recv) => {
                let id = conn();
                self.on_recv(id, result, flags)
            }
            Some(Tag::Send) => {
                let (key, id) = ((data & 0xffff_ffff) as usize, conn());
                self.on_send(key, id, result)
            }
            Some(Tag::Wake) => self.on_wake(inbox, data, flags),
            Some(Tag::MsgRing) => {
                // The destination could not take the completion (its queue overflowed):
                // wake it through its eventfd instead.
                if let Some(target) = self.core.shared.inboxes.get((data & 0xffff) as usize) {
                    target.signal();
                }
            }
            Some(Tag::Cancel) | None => {}
        }
    }

    /// A recv completion: decode its bytes, give its buffer back, and when the multishot has
    /// ended, find out why (end of stream, error, no buffer left, our cancellation).
    fn on_recv(&mut self, id: Option<ConnId>, result: i32, flags: u32) {
        if let Some(bid) = cqueue::buffer_select(flags) {
            if let (Some(id), true) = (id, result > 0) {
                self.receive(id, bid, result as usize);
            }
            self.buffers.give_back(bid);
        }
        let Some(id) = id else {
            return;
        };
        if cqueue::more(flags) {
            return;
        }
        self.core.conns.with(id, |c| {
            c.io.set(IoFlags::RECV_ARMED, false);
            c.io.set(IoFlags::RECV_CANCELLED, false);
            c.request_service();
        });
        match result {
            0 => self.end(id, Ending::Transport(TransportError::Eof)),
            e if e == -libc::ENOBUFS => self.core.counters().inc(Counter::UringBuffersExhausted),
            e if e == -libc::ECANCELED || e > 0 => {}
            e => {
                let error = io::Error::from_raw_os_error(-e);
                self.end(id, Ending::Transport(TransportError::from_read(&error)));
            }
        }
        self.try_finish(id);
    }

    /// Hands `len` received bytes in buffer `bid` to the connection's session. While the
    /// connection is ending they are still decoded (the peer's close frame may be among
    /// them), unless the session can no longer be trusted (after a violation or a panic).
    /// Once its replies reach [`FLUSH_BEFORE_READING`], its recv is paused and what still
    /// arrives is held, undecoded, until the replies are written.
    fn receive(&mut self, id: ConnId, bid: u16, len: usize) {
        let ending = self.endings.get(&id);
        if ending.is_some_and(Ending::input_untrusted) {
            return;
        }
        if let Some(held) = self.held.get_mut(&id) {
            held.bytes.extend_from_slice(self.buffers.filled(bid, len));
            return;
        }
        let ending = ending.is_some();
        let result = receive(&self.core, id, self.buffers.filled(bid, len));
        match result {
            Err(error) if !ending => self.end(id, error.into()),
            _ if !ending && self.replies_pending(id) => {
                self.held.insert(id, Held::default());
                if self.core.conns.with(id, |c| c.io.has(IoFlags::RECV_CANCELLED)) == Some(false) {
                    self.cancel_recv(id);
                }
            }
            _ => {}
        }
    }

    /// Whether the connection has [`FLUSH_BEFORE_READING`] of replies waiting.
    fn replies_pending(&self, id: ConnId) -> bool {
        self.core
            .conns
            .with(id, |c| c.queued_bytes() >= FLUSH_BEFORE_READING)
            .unwrap_or(false)
    }

    /// Decodes held input (all of it when `all`, else until replies are pending again).
    /// Returns whether input is still held.
    fn decode_held(&mut self, id: ConnId, all: bool) -> bool {
        let Some(mut held) = self.held.remove(&id) else {
            return false;
        };
        while held.decoded < held.bytes.len() && (all || !self.replies_pending(id)) {
            let end = (held.decoded + HELD_CHUNK).min(held.bytes.len());
            let result = receive(&self.core, id, &mut held.bytes[held.decoded..end]);
            held.decoded = end;
            if let Err(error) = result {
                if !all {
                    self.end(id, error.into());
                }
                return false;
            }
        }
        let more = held.decoded < held.bytes.len() || self.replies_pending(id);
        if more {
            self.held.insert(id, held);
        }
        more
    }

    /// A send completion: drop what was written from the queue; the rest (a partial send, or
    /// frames queued meanwhile) goes out at the connection's next service.
    fn on_send(&mut self, key: usize, id: Option<ConnId>, result: i32) {
        if let Some(op) = self.sends.get_mut(key).and_then(Option::take) {
            self.spare_sends.push(op);
        }
        let Some(id) = id else {
            return;
        };
        let held = self.held.contains_key(&id);
        self.core.conns.with(id, |c| {
            c.io.set(IoFlags::SEND_IN_FLIGHT, false);
            if result > 0 {
                c.written(result as usize);
            }
            // Service is needed only for more to send, or to resume reading.
            if c.queued_bytes() > 0 || !c.io.has(IoFlags::RECV_ARMED) || held {
                c.request_service();
            }
        });
        if result < 0 && result != -libc::ECANCELED {
            let error = io::Error::from_raw_os_error(-result);
            self.end(id, Ending::Transport(TransportError::from_write(&error)));
        }
        self.try_finish(id);
    }

    /// A wake-up: take what other cores and threads delivered to this core's connections.
    fn on_wake(&mut self, inbox: &Inbox, data: u64, flags: u32) {
        if data & WAKE_BY_EVENTFD != 0 {
            inbox.clear_eventfd();
            if !cqueue::more(flags) {
                self.arm_wake_poll(inbox);
            }
        }
        let mut deliveries = Vec::new();
        inbox.take(&mut deliveries);
        self.core.deliver(&mut deliveries);
    }

    /// Starts a freshly upgraded connection: `on_open` and its early frames, then its recv.
    fn open(&mut self, id: ConnId, early: &mut [u8]) {
        if let Err(violation) = begin(&self.core, id, early) {
            return end_open_phase(&self.core, id, violation.into());
        }
        self.service(id);
    }

    /// Brings a connection's operations in line with its state: its open phase ended, a send
    /// to submit, a recv to arm (or to pause while replies are pending).
    fn service(&mut self, id: ConnId) {
        if self.endings.contains_key(&id) {
            return self.try_finish(id);
        }
        let held = self.held.contains_key(&id) && self.decode_held(id, false);
        if self.endings.contains_key(&id) {
            return;
        }
        let Some(step) = self.core.conns.with(id, |c| {
            if c.io.has(IoFlags::HANDED_OFF) {
                return None;
            }
            if let Some(ending) = Ending::of(c) {
                return Some(Err(ending));
            }
            let queued = c.queued_bytes();
            let reading = queued < FLUSH_BEFORE_READING;
            let armed = c.io.has(IoFlags::RECV_ARMED);
            Some(Ok((
                queued > 0 && !c.io.has(IoFlags::SEND_IN_FLIGHT),
                reading && !held && !armed,
                !reading && armed && !c.io.has(IoFlags::RECV_CANCELLED),
            )))
        }) else {
            return;
        };
        match step {
            None => {}
            Some(Err(ending)) => self.end(id, ending),
            Some(Ok((send, arm, pause))) => {
                if send {
                    self.submit_send(id);
                }
                if arm {
                    self.arm_recv(id);
                }
                if pause {
                    self.cancel_recv(id);
                }
            }
        }
    }

    /// Queues one vectored send carrying everything queued for the connection.
    fn submit_send(&mut self, id: ConnId) {
        let mut op = self.spare_sends.pop().unwrap_or_else(SendOp::new);
        let Some(Some(fd)) = self.core.conns.with(id, |c| {
            let fd = c.fd();
            let outbound = c.outbound_to_write()?;
            outbound.seal();
            let (count, _) = outbound.fill_iovecs(&mut op.iov);
            outbound.pin(count);
            op.msg.msg_iov = op.iov.as_mut_ptr();
            op.msg.msg_iovlen = count as _;
            c.io.set(IoFlags::SEND_IN_FLIGHT, true);
            Some(fd)
        }) else {
            self.spare_sends.push(op);
            return;
        };
        let entry = opcode::SendMsg::new(types::Fd(fd), &op.msg)
            .flags((libc::MSG_NOSIGNAL | libc::MSG_WAITALL) as u32)
            .build()
            .user_data(conn_data(Tag::Send, id));
        if self.sends.len() <= id.key() {
            self.sends.resize_with(id.key() + 1, || None);
        }
        self.sends[id.key()] = Some(op);
        self.push(entry);
    }

    fn arm_recv(&mut self, id: ConnId) {
        let Some(fd) = self.core.conns.with(id, |c| {
            c.io.set(IoFlags::RECV_ARMED, true);
            c.fd()
        }) else {
            return;
        };
        let mut entry = opcode::RecvMulti::new(types::Fd(fd), GROUP)
            .build()
            .user_data(conn_data(Tag::Recv, id));
        if self.recv_limit {
            entry = ring::with_byte_limit(entry, RECV_LIMIT);
        }
        self.push(entry);
    }

    fn cancel_recv(&mut self, id: ConnId) {
        self.core.conns.with(id, |c| c.io.set(IoFlags::RECV_CANCELLED, true));
        self.cancel(conn_data(Tag::Recv, id));
    }

    fn cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(Tag::Cancel, 0))
            .flags(squeue::Flags::SKIP_SUCCESS);
        self.push(entry);
    }

    /// Ends the open phase (the first ending wins): cancels the recv and any send in flight,
    /// then waits for their last completions before the socket changes hands.
    fn end(&mut self, id: ConnId, ending: Ending) {
        if self.endings.contains_key(&id) {
            return;
        }
        let Some((recv, send)) = self.core.conns.with(id, |c| {
            (
                c.io.has(IoFlags::RECV_ARMED) && !c.io.has(IoFlags::RECV_CANCELLED),
                c.io.has(IoFlags::SEND_IN_FLIGHT),
            )
        }) else {
            return;
        };
        if recv {
            self.cancel_recv(id);
        }
        if send {
            self.cancel(conn_data(Tag::Send, id));
        }
        if !ending.input_untrusted() {
            // Held input may hold the peer's close frame.
            self.decode_held(id, true);
        }
        self.held.remove(&id);
        self.endings.insert(id, ending);
        self.try_finish(id);
    }

    /// Hands an ending connection to the closing phase once no operation of ours uses it.
    fn try_finish(&mut self, id: ConnId) {
        let quiet = self.core.conns.with(id, |c| {
            !c.io.has(IoFlags::RECV_ARMED) && !c.io.has(IoFlags::SEND_IN_FLIGHT)
        });
        if quiet == Some(true) {
            if let Some(ending) = self.endings.remove(&id) {
                end_open_phase(&self.core, id, ending);
            }
        }
    }

    /// Polls the inbox eventfd (multishot) so that other threads can wake this core.
    fn arm_wake_poll(&mut self, inbox: &Inbox) {
        let entry = opcode::PollAdd::new(types::Fd(inbox.eventfd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(Tag::Wake, WAKE_BY_EVENTFD));
        self.push(entry);
    }

    /// Wakes another core's ring (it drains its inbox on the completion).
    fn post_wake(&mut self, target: usize, ring_fd: i32) {
        let entry = opcode::MsgRingData::new(types::Fd(ring_fd), 0, user_data(Tag::Wake, 0), None)
            .build()
            .user_data(user_data(Tag::MsgRing, target as u64))
            .flags(squeue::Flags::SKIP_SUCCESS);
        self.push(entry);
    }
}
