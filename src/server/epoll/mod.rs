//! The epoll data path (the fallback where io_uring lacks what the native path needs, or with
//! `--io epoll`): one task per core waits on the core's readiness set and services connections
//! as they become readable or writable, or ask for service (a handler queued a frame for them,
//! the timer pass queued a ping or closed them, shutdown began). Servicing is synchronous:
//! flush what is queued, read what arrived, hand it to the session, repeat; a connection whose
//! open phase ends leaves the set and goes to the closing phase.

mod poller;

use std::future::Future;
use std::rc::Rc;

use super::closing::end_open_phase;
use super::conn::{ConnState, IoFlags};
use super::core::CoreCtx;
use super::ending::{Ending, TransportError};
use super::input::begin;
use super::sched::{either, yield_now};
use super::socket::{flush, read_once, Flush, ReadResult};
use crate::api::ConnId;
use crate::handler::Handler;
use poller::{Poller, Readiness, EVENTS_PER_DRAIN};

/// The token of the core's inbox eventfd in the readiness set.
const INBOX_TOKEN: u64 = u64::MAX;

/// The epoll token of a connection: its slab key and the low bits of its generation.
fn token(id: ConnId) -> u64 {
    ((id.key() as u64) << 32) | (id.generation() as u32 as u64)
}

/// Reads one connection may do per turn (up to 64 KiB each, so at most 1 MiB) before the
/// others get theirs: the byte budget that keeps one sender from holding the core.
const READS_PER_TURN: usize = 16;

/// Sets up the core's readiness set; the returned future then runs the core's open
/// connections until the runtime stops. Each round drains the readiness set once and services
/// what asked for it; a round that leaves work behind yields to the core's other tasks
/// (accept, handshakes, timers) before the next.
pub(crate) fn start<H: Handler>(core: Rc<CoreCtx<H>>) -> std::io::Result<impl Future<Output = ()>> {
    let poller = Poller::new()?;
    let inbox_fd = core.inbox().eventfd();
    poller.register(inbox_fd, INBOX_TOKEN)?;
    Ok(serve(core, poller))
}

async fn serve<H: Handler>(core: Rc<CoreCtx<H>>, poller: Poller) {
    let inbox = core.inbox();
    let mut ready = Vec::with_capacity(EVENTS_PER_DRAIN);
    let mut pending = Vec::new();
    let mut opened = Vec::new();
    let mut deliveries = Vec::new();
    loop {
        let wait_began = if core.conns.has_pending() {
            yield_now().await;
            None
        } else {
            let began = std::time::Instant::now();
            either(poller.wait(), core.conns.service_requested()).await;
            Some(began)
        };
        core.observer.turn_began(wait_began);
        ready.clear();
        if let Err(error) = poller.drain(&mut ready) {
            tracing::error!(event = "poller_error", core = core.index, %error);
        }
        for readiness in &ready {
            if readiness.token == INBOX_TOKEN {
                inbox.clear_eventfd();
                inbox.take(&mut deliveries);
                core.deliver(&mut deliveries);
            } else {
                on_readiness(&core, &poller, readiness);
            }
        }
        core.take_opened(&mut opened);
        for (id, mut early) in opened.drain(..) {
            open(&core, &poller, id, &mut early);
        }
        core.conns.take_pending(&mut pending);
        for id in pending.drain(..) {
            service(&core, &poller, id);
        }
        core.observer.writes_submitted();
        core.outbox.flush(&core.shared.inboxes, false, |_, _| {});
    }
}

fn on_readiness<H: Handler>(core: &Rc<CoreCtx<H>>, poller: &Poller, readiness: &Readiness) {
    let Some(id) = core
        .conns
        .by_slot((readiness.token >> 32) as usize, readiness.token as u32)
    else {
        return;
    };
    core.conns.with(id, |c| {
        if readiness.readable {
            c.io.set(IoFlags::READ_READY, true);
        }
        if readiness.peer_shut {
            c.io.set(IoFlags::PEER_SHUT, true);
        }
        if readiness.writable {
            c.io.set(IoFlags::WRITE_BLOCKED, false);
        }
    });
    service(core, poller, id);
}

/// Starts the open phase of a freshly upgraded connection: `on_open` and the early frames,
/// then registration for readiness and a first service (flushing whatever the handler queued).
fn open<H: Handler>(core: &Rc<CoreCtx<H>>, poller: &Poller, id: ConnId, early: &mut [u8]) {
    if let Err(violation) = begin(core, id, early) {
        return end_open_phase(core, id, violation.into());
    }
    let Some(fd) = core.conns.with(id, |c| c.fd()) else {
        return;
    };
    if let Err(error) = poller.register(fd, token(id)) {
        tracing::warn!(event = "register_failed", conn = %id, core = core.index, %error);
        return end_open_phase(core, id, Ending::Transport(TransportError::Read));
    }
    service(core, poller, id);
}

/// What a connection needs next.
enum Step {
    /// Nothing until the next readiness edge or service request.
    Idle,
    /// Read what arrived.
    Read,
    /// The open phase is over.
    End(Ending),
}

/// Flushes, reads and dispatches until the connection has nothing to do, its open phase ends,
/// or it has had its [`READS_PER_TURN`]; then it queues itself behind the others.
fn service<H: Handler>(core: &Rc<CoreCtx<H>>, poller: &Poller, id: ConnId) {
    for _ in 0..READS_PER_TURN {
        match core.conns.with(id, next_step) {
            None | Some(Step::Idle) => return,
            Some(Step::End(ending)) => return hand_off(core, poller, id, ending),
            Some(Step::Read) => {}
        }
        let Some(fd) = core.conns.with(id, |c| c.fd()) else {
            return;
        };
        match read_once(core, id, fd) {
            ReadResult::More | ReadResult::Paused => {}
            ReadResult::Drained => {
                // A short read emptied the receive queue; a later arrival raises a new edge.
                // After the peer's FIN no edge comes, so read on until the end of the stream.
                core.conns.with(id, |c| {
                    let shut = c.io.has(IoFlags::PEER_SHUT);
                    c.io.set(IoFlags::READ_READY, shut);
                });
            }
            ReadResult::Ended(failure) => return hand_off(core, poller, id, Ending::Transport(failure)),
            ReadResult::Broken(error) => return hand_off(core, poller, id, error.into()),
        }
    }
    core.conns.with(id, |c| c.request_service());
}

fn next_step(c: &mut ConnState) -> Step {
    if c.io.has(IoFlags::HANDED_OFF) {
        return Step::Idle;
    }
    if !c.io.has(IoFlags::WRITE_BLOCKED) {
        match flush(c) {
            Ok(Flush::Done) => {}
            Ok(Flush::Blocked) => c.io.set(IoFlags::WRITE_BLOCKED, true),
            Err(error) => return Step::End(Ending::Transport(TransportError::from_write(&error))),
        }
    }
    if let Some(ending) = Ending::of(c) {
        return Step::End(ending);
    }
    if c.io.has(IoFlags::READ_READY) && !c.io.has(IoFlags::WRITE_BLOCKED) {
        Step::Read
    } else {
        Step::Idle
    }
}

/// Ends the open phase: the socket leaves the readiness set, then the closing phase takes it.
fn hand_off<H: Handler>(core: &Rc<CoreCtx<H>>, poller: &Poller, id: ConnId, ending: Ending) {
    if let Some(fd) = core.conns.with(id, |c| c.fd()) {
        poller.deregister(fd);
    }
    end_open_phase(core, id, ending);
}
