//! The open phase of a connection's I/O task: read into the core's scratch buffer, let the
//! sans-io session decode, hand messages to the handler, flush what was queued, wait. All
//! protocol decisions belong to `proto`; this file only moves bytes and waits.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use monoio::net::TcpStream;

use super::closing::{finish, Ending, PeerClose, TransportError};
use super::conn_state::{ConnId, ConnState};
use super::core::CoreCtx;
use super::outbound::Flush;
use super::sys::{recv_nonblocking, ReadOutcome};
use crate::handler::{ConnMeta, Context, Handler, Message};
use crate::metrics::Counter;
use crate::proto::close::CloseCode;
use crate::proto::session::{Event, MessageKind, ProtocolError, Role, Session};

/// Once this much output is queued, the task flushes before it reads more: input is consumed
/// no faster than the peer drains our replies (TCP pushes back on a client that does not read).
const FLUSH_BEFORE_READING: usize = 64 * 1024;

/// What every step of a connection's I/O task works with.
pub(crate) struct ConnIo<'a, H> {
    pub core: &'a CoreCtx<H>,
    pub id: ConnId,
    pub meta: &'a ConnMeta,
    pub stream: &'a TcpStream,
    pub fd: RawFd,
}

impl<H> ConnIo<'_, H> {
    /// Runs `f` on this connection's slab state, which lives exactly as long as its task.
    pub fn state<R>(&self, f: impl FnOnce(&mut ConnState) -> R) -> R {
        self.core
            .conns
            .with(self.id, f)
            .expect("a connection's state lives as long as its task")
    }

    /// The handler context for this connection.
    pub fn context(&self) -> Context<'_> {
        Context {
            conns: &self.core.conns,
            id: self.id,
            meta: self.meta,
        }
    }
}

/// The long-lived task of an upgraded connection. It is spawned apart from the handshake task
/// so that its future, which every open connection keeps, holds only what the open phase needs;
/// the closing phase is boxed and allocated only when the connection ends.
pub(crate) async fn run_connection<H: Handler>(
    core: Rc<CoreCtx<H>>,
    id: ConnId,
    meta: ConnMeta,
    stream: TcpStream,
    early: Vec<u8>,
    opened_at: Instant,
) {
    let io = ConnIo {
        core: &core,
        id,
        meta: &meta,
        stream: &stream,
        fd: stream.as_raw_fd(),
    };
    core.handler.borrow_mut().on_open(&mut io.context());
    let mut session = Session::new(Role::Server, core.shared.config.max_message_size);
    let mut peer_close = PeerClose::default();
    let ending = run_websocket(&io, early, &mut session, &mut peer_close).await;
    let info = Box::pin(finish(&io, ending, &mut session, &mut peer_close, opened_at)).await;
    core.forget(id);
    core.shared.close_connection(meta.peer().ip());
    core.handler.borrow_mut().on_close(&mut io.context(), &info);
}

/// The open phase: dispatch, flush, wait, read, until someone closes.
async fn run_websocket<H: Handler>(
    io: &ConnIo<'_, H>,
    mut early: Vec<u8>,
    session: &mut Session,
    peer_close: &mut PeerClose,
) -> Ending {
    if !early.is_empty() {
        if let Err(violation) = dispatch(io, session, &mut early, peer_close) {
            return Ending::Violation(violation);
        }
    }
    drop(early);
    loop {
        let blocked = match io.state(|c| c.flush()) {
            Ok(Flush::Done) => false,
            Ok(Flush::Blocked) => true,
            Err(e) => return Ending::Transport(TransportError::from_write(&e)),
        };
        if session.close_received() {
            return Ending::ClientClose;
        }
        let (engine_close, close_sent) = io.state(|c| {
            c.clear_wake();
            (c.engine_close(), c.close_sent())
        });
        if let Some(why) = engine_close {
            return Ending::Engine(why);
        }
        if close_sent {
            return Ending::ServerClose;
        }
        match wait_io(io, blocked).await {
            Wakeup::Readable(Err(e)) => return Ending::Transport(TransportError::from_read(&e)),
            Wakeup::Readable(Ok(())) => {}
            Wakeup::Writable | Wakeup::Woken => continue,
        }
        match read_and_dispatch(io, session, peer_close) {
            Ok(None) => {}
            Ok(Some(transport)) => return Ending::Transport(transport),
            Err(violation) => return Ending::Violation(violation),
        }
    }
}

enum Wakeup {
    Readable(io::Result<()>),
    Writable,
    Woken,
}

/// Waits until a handler queued something for this connection, or until the socket is
/// readable, or, while a flush is blocked, writable. A blocked connection is not read from:
/// TCP flow control then slows the sender instead of our queue growing.
async fn wait_io<H>(io: &ConnIo<'_, H>, write_blocked: bool) -> Wakeup {
    let mut woken = pin!(io.core.conns.woken(io.id));
    if write_blocked {
        let mut writable = pin!(io.stream.writable(false));
        poll_fn(|cx| {
            if writable.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wakeup::Writable);
            }
            woken.as_mut().poll(cx).map(|()| Wakeup::Woken)
        })
        .await
    } else {
        let mut readable = pin!(io.stream.readable(false));
        poll_fn(|cx| {
            if let Poll::Ready(result) = readable.as_mut().poll(cx) {
                return Poll::Ready(Wakeup::Readable(result));
            }
            woken.as_mut().poll(cx).map(|()| Wakeup::Woken)
        })
        .await
    }
}

/// Reads everything available into the core's scratch buffer and feeds it to the session.
/// Returns a transport ending (EOF, reset) or a protocol violation.
pub(crate) fn read_and_dispatch<H: Handler>(
    io: &ConnIo<'_, H>,
    session: &mut Session,
    peer_close: &mut PeerClose,
) -> Result<Option<TransportError>, ProtocolError> {
    io.core.with_scratch(|scratch| loop {
        match recv_nonblocking(io.fd, scratch) {
            Ok(ReadOutcome::Data(n)) => {
                let now = io.core.now_tick();
                io.state(|c| c.last_rx_tick = now);
                dispatch(io, session, &mut scratch[..n], peer_close)?;
                let replies_waiting = io.state(|c| c.queued_bytes()) >= FLUSH_BEFORE_READING;
                if n < scratch.len() || session.close_received() || replies_waiting {
                    return Ok(None);
                }
            }
            Ok(ReadOutcome::WouldBlock) => return Ok(None),
            Ok(ReadOutcome::Eof) => return Ok(Some(TransportError::Eof)),
            Err(e) => return Ok(Some(TransportError::from_read(&e))),
        }
    })
}

/// Feeds bytes to the session and acts on each event: messages go to the handler, pings are
/// answered, a close frame is recorded and answered. Data after our close frame is dropped.
fn dispatch<H: Handler>(
    io: &ConnIo<'_, H>,
    session: &mut Session,
    bytes: &mut [u8],
    peer_close: &mut PeerClose,
) -> Result<(), ProtocolError> {
    let before = io.state(|c| c.stats());
    let mut handler = io.core.handler.borrow_mut();
    let result = session.feed(bytes, &mut |event| match event {
        Event::Message { kind, payload } => {
            let open = io.state(|c| {
                let open = !c.close_sent();
                if open {
                    c.count_in(payload.len());
                }
                open
            });
            if open {
                let message = match kind {
                    // SAFETY: the session validated this payload as UTF-8 before reporting it as text.
                    MessageKind::Text => Message::Text(unsafe { std::str::from_utf8_unchecked(payload) }),
                    MessageKind::Binary => Message::Binary(payload),
                };
                handler.on_message(&mut io.context(), message);
            }
        }
        Event::Ping(payload) => io.state(|c| c.send_pong(payload)),
        Event::Pong(_) => {}
        Event::Close(frame) => {
            peer_close.code = Some(frame.code.unwrap_or(CloseCode::NO_STATUS));
            peer_close.reason = frame.reason.to_owned();
            io.state(|c| c.close(frame.reply_code(), ""));
        }
    });
    let after = io.state(|c| c.stats());
    let counters = io.core.counters();
    counters.add(Counter::MessagesIn, after.messages_in - before.messages_in);
    counters.add(Counter::BytesIn, after.bytes_in - before.bytes_in);
    counters.add(Counter::MessagesOut, after.messages_out - before.messages_out);
    counters.add(Counter::BytesOut, after.bytes_out - before.bytes_out);
    result
}
