//! Reading a connection and acting on what the session decodes: shared by the reactor (open
//! phase) and the closing task. All protocol decisions belong to `proto`; this file moves bytes
//! between the socket, the session and the handler.

use std::os::fd::RawFd;

use super::closing::TransportError;
use super::conn_state::{ConnId, OpenParts};
use super::core::CoreCtx;
use super::sys::{recv_nonblocking, ReadOutcome};
use crate::handler::{Context, Handler, Message};
use crate::metrics::Counter;
use crate::proto::close::CloseCode;
use crate::proto::session::{Event, MessageKind, ProtocolError};

/// Once this much output is queued, reading stops until it is flushed: input is consumed no
/// faster than the peer drains our replies (TCP pushes back on a client that does not read).
pub(crate) const FLUSH_BEFORE_READING: usize = 64 * 1024;

/// How a read of everything available ended.
pub(crate) enum ReadResult {
    /// The socket had nothing more.
    Drained,
    /// Replies reached [`FLUSH_BEFORE_READING`] (or the peer's close arrived): flush first; the
    /// socket may still hold unread bytes.
    Paused,
    /// The peer closed or reset the TCP connection.
    Ended(TransportError),
    /// The peer broke the protocol.
    Violation(ProtocolError),
}

/// Reads what the socket has into the core's scratch buffer and dispatches it.
pub(crate) fn read_available<H: Handler>(
    core: &CoreCtx<H>,
    id: ConnId,
    fd: RawFd,
    parts: &mut OpenParts,
) -> ReadResult {
    core.with_scratch(|scratch| loop {
        match recv_nonblocking(fd, scratch) {
            Ok(ReadOutcome::Data(n)) => {
                let now = core.now_tick();
                core.conns.with(id, |c| c.last_rx_tick = now);
                if let Err(violation) = dispatch(core, id, parts, &mut scratch[..n]) {
                    return ReadResult::Violation(violation);
                }
                if parts.session.close_received() {
                    return ReadResult::Paused;
                }
                if core.conns.with(id, |c| c.queued_bytes()).unwrap_or(0) >= FLUSH_BEFORE_READING {
                    return ReadResult::Paused;
                }
                // A short read on a stream socket emptied its receive queue; any later data
                // raises a new readiness edge.
                if n < scratch.len() {
                    return ReadResult::Drained;
                }
            }
            Ok(ReadOutcome::WouldBlock) => return ReadResult::Drained,
            Ok(ReadOutcome::Eof) => return ReadResult::Ended(TransportError::Eof),
            Err(e) => return ReadResult::Ended(TransportError::from_read(&e)),
        }
    })
}

/// Feeds bytes to the session and acts on each event: messages go to the handler, pings are
/// answered, a close frame is recorded and answered. Data after our close frame is dropped.
pub(crate) fn dispatch<H: Handler>(
    core: &CoreCtx<H>,
    id: ConnId,
    parts: &mut OpenParts,
    bytes: &mut [u8],
) -> Result<(), ProtocolError> {
    let conns = &core.conns;
    let before = conns.with(id, |c| c.stats()).unwrap_or_default();
    let mut handler = core.handler.borrow_mut();
    let OpenParts {
        session,
        meta,
        peer_close,
    } = parts;
    let result = session.feed(bytes, &mut |event| match event {
        Event::Message { kind, payload } => {
            let open = conns.with(id, |c| {
                let open = !c.close_sent();
                if open {
                    c.count_in(payload.len());
                }
                open
            });
            if open == Some(true) {
                let message = match kind {
                    // SAFETY: the session validated this payload as UTF-8 before reporting it as text.
                    MessageKind::Text => Message::Text(unsafe { std::str::from_utf8_unchecked(payload) }),
                    MessageKind::Binary => Message::Binary(payload),
                };
                handler.on_message(&mut Context { conns, id, meta }, message);
            }
        }
        Event::Ping(payload) => {
            conns.with(id, |c| c.send_pong(payload));
        }
        Event::Pong(_) => {}
        Event::Close(frame) => {
            peer_close.code = Some(frame.code.unwrap_or(CloseCode::NO_STATUS));
            peer_close.reason = frame.reason.to_owned();
            conns.with(id, |c| c.close(frame.reply_code(), ""));
        }
    });
    let after = conns.with(id, |c| c.stats()).unwrap_or_default();
    let counters = core.counters();
    counters.add(Counter::MessagesIn, after.messages_in - before.messages_in);
    counters.add(Counter::BytesIn, after.bytes_in - before.bytes_in);
    counters.add(Counter::MessagesOut, after.messages_out - before.messages_out);
    counters.add(Counter::BytesOut, after.bytes_out - before.bytes_out);
    result
}
