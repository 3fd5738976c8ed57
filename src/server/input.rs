//! What both data paths do with the bytes a connection sends: decrypt them (over TLS), feed them
//! to its session and act on each event (messages to the handler, pings answered, a close frame
//! recorded and answered). All protocol decisions belong to `proto` (and TLS to `tls`); this
//! file moves decoded events between the session, the handler and the connection's state.

use super::conn::{ConnRole, OpenParts, PeerClose};
use super::core::CoreCtx;
use crate::api::{ConnId, Message};
use crate::handler::Handler;
use crate::metrics::Counter;
use crate::proto::close::CloseCode;
use crate::proto::session::{Event, MessageKind, ProtocolError};

/// Why a connection's input ended its open phase.
#[derive(Debug)]
pub(crate) enum InputError {
    /// The peer broke RFC 6455 (answered with the violation's close code).
    Protocol(ProtocolError),
    /// A TLS record could not be read (logged where found; the connection is closed without
    /// a close frame).
    Tls,
    /// The peer ended TLS (close_notify) without a WebSocket close frame.
    TlsClosed,
}

/// Starts the open phase of a freshly upgraded connection: `on_open`, then the frames that came
/// with the request. The driver registers the socket afterwards.
pub(crate) fn begin<H: Handler>(core: &CoreCtx<H>, id: ConnId, early: &mut [u8]) -> Result<(), InputError> {
    let Some(Some(mut parts)) = core.conns.with(id, |c| c.parts.take()) else {
        return Ok(());
    };
    match parts.role {
        ConnRole::Application => {
            core.call_handler(id, |handler| handler.on_open(&mut core.context(id, &parts.meta)));
        }
        ConnRole::Dashboard => core.dashboard_opened(id),
    }
    let result = if early.is_empty() {
        Ok(())
    } else {
        decode(core, id, &mut parts, early, std::time::Instant::now()).map_err(InputError::Protocol)
    };
    core.conns.with(id, |c| c.parts = Some(parts));
    result
}

/// Feeds bytes the connection sent (read by the driver) to its session, decrypted first over
/// TLS, and acts on every event; also moves the connection's "last heard" tick and records its
/// loop lag. Data after our close frame is dropped.
pub(crate) fn receive<H: Handler>(core: &CoreCtx<H>, id: ConnId, bytes: &mut [u8]) -> Result<(), InputError> {
    let began = core.observer.read_began();
    let now = core.now_tick();
    let Some(Some((mut parts, tls))) = core.conns.with(id, |c| {
        c.last_rx_tick = now;
        let parts = c.parts.take()?;
        Some((parts, c.tls.take()))
    }) else {
        return Ok(());
    };
    let result = match tls {
        None => decode(core, id, &mut parts, bytes, began).map_err(InputError::Protocol),
        Some(mut tls) => {
            let (mut plaintext, mut transmit) = (Vec::new(), Vec::new());
            let read = tls.read(bytes, &mut plaintext, &mut transmit);
            core.conns.with(id, |c| {
                c.tls = Some(tls);
                if !transmit.is_empty() {
                    c.queue_tls_records(transmit);
                }
            });
            match read {
                Err(error) => {
                    tracing::info!(event = "tls_error", conn = %id, core = core.index, reason = error.reason(), %error);
                    Err(InputError::Tls)
                }
                Ok(outcome) => {
                    let decoded = decode(core, id, &mut parts, &mut plaintext, began).map_err(InputError::Protocol);
                    match decoded {
                        Ok(()) if outcome.peer_closed && !parts.session.close_received() => Err(InputError::TlsClosed),
                        decoded => decoded,
                    }
                }
            }
        }
    };
    core.conns.with(id, |c| c.parts = Some(parts));
    result
}

/// Decodes `bytes` with the connection's session (lent out of its slab entry, so that the
/// handler can reach the slab meanwhile). A panicking handler is contained by
/// [`CoreCtx::call_handler`]: the connection is then closed with 1011 and the rest of the
/// input is dropped. The messages handled are timed from `began`.
pub(crate) fn decode<H: Handler>(
    core: &CoreCtx<H>,
    id: ConnId,
    parts: &mut OpenParts,
    bytes: &mut [u8],
    began: std::time::Instant,
) -> Result<(), ProtocolError> {
    let conns = &core.conns;
    let counters = core.counters();
    let OpenParts {
        session,
        meta,
        peer_close,
        role,
    } = parts;
    let to_handler = *role == ConnRole::Application;
    let mut handled = 0;
    let decoded = core.call_handler(id, |handler| {
        session.feed(bytes, &mut |event| match event {
            Event::Message { kind, payload } => {
                let open = conns.with(id, |c| {
                    let open = !c.close_sent();
                    if open {
                        c.count_in(payload.len());
                    }
                    open
                });
                if open == Some(true) && to_handler {
                    counters.inc(Counter::MessagesIn);
                    counters.add(Counter::BytesIn, payload.len() as u64);
                    let message = match kind {
                        // SAFETY: the session validated this payload as UTF-8 before reporting it as text.
                        MessageKind::Text => Message::Text(unsafe { std::str::from_utf8_unchecked(payload) }),
                        MessageKind::Binary => Message::Binary(payload),
                    };
                    handler.on_message(&mut core.context(id, meta), message);
                    handled += 1;
                }
            }
            Event::Ping(payload) => {
                conns.with(id, |c| c.send_pong(payload));
            }
            Event::Pong(_) => {}
            Event::Close(frame) => {
                *peer_close = Some(Box::new(PeerClose {
                    code: Some(frame.code.unwrap_or(CloseCode::NO_STATUS)),
                    reason: frame.reason.to_owned(),
                }));
                conns.with(id, |c| c.close(frame.reply_code(), ""));
            }
        })
    });
    core.observer.read_handled(began, handled);
    decoded.unwrap_or(Ok(()))
}
