//! The open phase of every connection on a core: one task waits on the core's readiness set
//! and services connections as they become readable or writable, or ask for service (a handler
//! queued a frame for them, the timer pass closed them, shutdown began). Servicing is
//! synchronous: flush what is queued, read what arrived, dispatch it, repeat; a connection whose
//! open phase ends is handed to its own closing task.

use std::future::{poll_fn, Future};
use std::os::fd::{FromRawFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use monoio::net::TcpStream;

use super::closing::{close_without_waiting, run_closing, Ending, TransportError};
use super::conn_state::{ConnId, ConnState};
use super::core::CoreCtx;
use super::dispatch::{dispatch, read_available, ReadResult};
use super::outbound::Flush;
use super::poller::{Readiness, EVENTS_PER_DRAIN};
use crate::handler::{Context, Handler};

/// The epoll token of a connection: its slab key and the low bits of its generation.
pub(crate) fn token(id: ConnId) -> u64 {
    ((id.key() as u64) << 32) | (id.generation() as u32 as u64)
}

/// Reads one connection may do per turn (up to 64 KiB each) before the others get theirs.
const READS_PER_TURN: usize = 16;

/// Runs the core's open connections until the runtime stops. Each round drains the readiness
/// set once and services what asked for it; a round that leaves work behind yields to the
/// core's other tasks (accept, handshakes, timers) before the next.
pub(crate) async fn run_reactor<H: Handler>(core: Rc<CoreCtx<H>>) {
    let mut ready = Vec::with_capacity(EVENTS_PER_DRAIN);
    let mut pending = Vec::new();
    loop {
        if core.conns.has_pending() {
            yield_now().await;
        } else {
            let mut events = pin!(core.poller().wait());
            let mut requested = pin!(core.conns.service_requested());
            poll_fn(|cx| {
                let woke = events.as_mut().poll(cx).is_ready() | requested.as_mut().poll(cx).is_ready();
                if woke {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        ready.clear();
        if let Err(error) = core.poller().drain(&mut ready) {
            tracing::error!(event = "poller_error", core = core.index, %error);
        }
        for readiness in &ready {
            on_readiness(&core, readiness);
        }
        core.conns.take_pending(&mut pending);
        for id in pending.drain(..) {
            service(&core, id);
        }
    }
}

/// Lets the runtime run its other ready tasks once.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

fn on_readiness<H: Handler>(core: &Rc<CoreCtx<H>>, readiness: &Readiness) {
    let Some(id) = core.conns.by_token(readiness.token) else {
        return;
    };
    core.conns.with(id, |c| {
        c.read_ready |= readiness.readable;
        if readiness.writable {
            c.write_blocked = false;
        }
    });
    service(core, id);
}

/// Starts the open phase of a freshly upgraded connection: `on_open`, then the frames that came
/// with the request, then registration for readiness and a first service (flushing whatever
/// the handler queued).
pub(crate) fn open_connection<H: Handler>(core: &Rc<CoreCtx<H>>, id: ConnId, fd: RawFd, mut early: Vec<u8>) {
    let Some(Some(mut parts)) = core.conns.with(id, |c| c.parts.take()) else {
        return;
    };
    core.handler.borrow_mut().on_open(&mut Context {
        conns: &core.conns,
        id,
        meta: &parts.meta,
    });
    let early_result = if early.is_empty() {
        Ok(())
    } else {
        dispatch(core, id, &mut parts, &mut early)
    };
    core.conns.with(id, |c| c.parts = Some(parts));
    if let Err(violation) = early_result {
        return hand_off(core, id, Ending::Violation(violation));
    }
    if let Err(error) = core.poller().register(fd, token(id)) {
        tracing::warn!(event = "register_failed", conn = %id, core = core.index, %error);
        return hand_off(core, id, Ending::Transport(TransportError::Read));
    }
    service(core, id);
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
fn service<H: Handler>(core: &Rc<CoreCtx<H>>, id: ConnId) {
    for _ in 0..=READS_PER_TURN {
        match core.conns.with(id, next_step) {
            None | Some(Step::Idle) => return,
            Some(Step::End(ending)) => return hand_off(core, id, ending),
            Some(Step::Read) => {}
        }
        let Some((fd, Some(mut parts))) = core.conns.with(id, |c| (c.fd(), c.parts.take())) else {
            return;
        };
        let result = read_available(core, id, fd, &mut parts);
        core.conns.with(id, |c| {
            c.parts = Some(parts);
            if matches!(result, ReadResult::Drained) {
                c.read_ready = false;
            }
        });
        match result {
            ReadResult::Drained | ReadResult::Paused => {}
            ReadResult::Ended(failure) => return hand_off(core, id, Ending::Transport(failure)),
            ReadResult::Violation(violation) => return hand_off(core, id, Ending::Violation(violation)),
        }
    }
    core.conns.with(id, |c| c.request_service());
}

fn next_step(c: &mut ConnState) -> Step {
    if c.handed_off {
        return Step::Idle;
    }
    if !c.write_blocked {
        match c.flush() {
            Ok(Flush::Done) => {}
            Ok(Flush::Blocked) => c.write_blocked = true,
            Err(error) => return Step::End(Ending::Transport(TransportError::from_write(&error))),
        }
    }
    if c.parts.as_ref().is_some_and(|p| p.session.close_received()) {
        return Step::End(Ending::ClientClose);
    }
    if let Some(why) = c.engine_close() {
        return Step::End(Ending::Engine(why));
    }
    if c.close_sent() {
        return Step::End(Ending::ServerClose);
    }
    if c.read_ready && !c.write_blocked {
        Step::Read
    } else {
        Step::Idle
    }
}

/// Ends the open phase: the socket leaves the readiness set and is closed at once when nothing
/// needs waiting for, or moves, with the decoder and metadata, into a closing task that runs
/// the close handshake.
fn hand_off<H: Handler>(core: &Rc<CoreCtx<H>>, id: ConnId, ending: Ending) {
    let Some((fd, Some(parts))) = core.conns.with(id, |c| {
        c.handed_off = true;
        (c.fd(), c.parts.take())
    }) else {
        return;
    };
    core.poller().deregister(fd);
    let Some((parts, ending)) = close_without_waiting(core, id, fd, parts, ending) else {
        return;
    };
    // SAFETY: the connection owned `fd` exclusively during its open phase; ownership moves to
    // the stream here and nothing else uses the descriptor afterwards.
    let stream = TcpStream::from_std(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    monoio::spawn(run_closing(core.clone(), id, stream, parts, ending));
}
