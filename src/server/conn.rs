//! One connection's I/O task: read the upgrade request, answer it, then run the WebSocket
//! until it closes. All protocol decisions are delegated to the sans-io `proto` module; this
//! file only moves bytes and waits.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use monoio::net::TcpStream;

use super::conn_state::EngineClose;
use super::conn_state::{CloseInfo, ClosedBy, ConnShared};
use super::core::CoreCtx;
use super::outbound::Flush;
use super::sys::{recv_nonblocking, send_nonblocking, shutdown_write, ReadOutcome};
use super::LimitHit;
use crate::handler::{ConnMeta, Context, Handler, Message};
use crate::metrics::Counter;
use crate::proto::close::CloseCode;
use crate::proto::handshake::{parse_request, upgrade_response, validate_upgrade, HttpError, Request};
use crate::proto::session::{Event, MessageKind, ProtocolError, Role, Session};

/// Serves one accepted TCP connection from handshake to close.
pub(crate) async fn serve<H: Handler>(core: Rc<CoreCtx<H>>, stream: TcpStream, peer: SocketAddr) {
    let accepted_at = Instant::now();
    let fd = stream.as_raw_fd();
    let _ = stream.set_nodelay(true);
    let (request, mut buffer) = match read_request(&core, &stream, fd).await {
        Ok(found) => found,
        Err(HeadFailure::Http(error)) => return reject(&core, &stream, fd, peer, &error).await,
        Err(HeadFailure::Timeout) => {
            core.counters().inc(Counter::HandshakeTimeouts);
            tracing::info!(event = "handshake_timeout", core = core.index, peer = %peer, "no complete upgrade request in time");
            return;
        }
        Err(HeadFailure::Aborted) => {
            core.counters().inc(Counter::HandshakeAborted);
            return;
        }
    };
    if !request.wants_websocket() {
        core.counters().inc(Counter::HttpRequests);
        let response = core.shared.router.respond(&request, &core.shared.config);
        if write_all(&stream, fd, &response).await.is_ok() {
            linger_close(&core, &stream, fd).await;
        }
        return;
    }
    let config = &core.shared.config;
    let upgrade = if config.accepts_ws_path(&request.path) {
        validate_upgrade(&request, &config.subprotocols)
    } else {
        Err(HttpError::new(404, "no WebSocket endpoint at this path"))
    };
    let upgrade = match upgrade {
        Ok(_) if core.shutdown.is_fired() => {
            let closing = HttpError::new(503, "server is shutting down").with_header("Retry-After", "1");
            return reject(&core, &stream, fd, peer, &closing).await;
        }
        Ok(upgrade) => match core.shared.try_open_connection(peer.ip()) {
            Ok(()) => upgrade,
            Err(LimitHit::Total) => {
                let full = HttpError::new(503, "connection limit reached").with_header("Retry-After", "1");
                return reject(&core, &stream, fd, peer, &full).await;
            }
            Err(LimitHit::PerIp) => {
                let full =
                    HttpError::new(429, "too many connections from this address").with_header("Retry-After", "1");
                return reject(&core, &stream, fd, peer, &full).await;
            }
        },
        Err(error) => return reject(&core, &stream, fd, peer, &error).await,
    };
    if write_all(&stream, fd, &upgrade_response(&upgrade)).await.is_err() {
        core.shared.close_connection(peer.ip());
        core.counters().inc(Counter::HandshakeAborted);
        return;
    }
    let meta = connection_meta(&request, peer, upgrade.protocol, &config.keep_headers);
    let conn = core.conns.insert(meta, fd, config.max_queued_bytes, core.now_tick());
    core.arm_liveness(&conn);
    core.counters().inc(Counter::Upgrades);
    core.counters().set_open_connections(core.conns.len());
    let opened_at = Instant::now();
    tracing::info!(
        event = "open", conn = %conn.id, core = core.index, peer = %peer, path = %conn.meta.path,
        protocol = conn.meta.protocol.as_deref().unwrap_or(""),
        handshake_us = opened_at.duration_since(accepted_at).as_micros() as u64,
    );
    core.handler.borrow_mut().on_open(&mut Context {
        conns: &core.conns,
        conn: &conn,
    });
    // The request and its buffer die here: an open connection keeps only the early frames
    // (usually none) until its task has fed them to the session.
    let early = buffer.split_off(request.head_len);
    drop((request, buffer));
    monoio::spawn(run_connection(core, conn, stream, early, opened_at));
}

/// The long-lived task of an upgraded connection. It is spawned separately from the handshake
/// so that its future (which every open connection keeps) holds only what the open phase needs.
async fn run_connection<H: Handler>(
    core: Rc<CoreCtx<H>>,
    conn: Rc<ConnShared>,
    stream: TcpStream,
    early: Vec<u8>,
    opened_at: Instant,
) {
    let fd = stream.as_raw_fd();
    let mut session = Session::new(Role::Server, core.shared.config.max_message_size);
    let mut peer_close = PeerClose::default();
    let ending = run_websocket(&core, &conn, &stream, fd, early, &mut session, &mut peer_close).await;
    // The closing phase is boxed: its state is allocated only when a connection closes.
    let closing = finish(
        &core,
        &conn,
        &stream,
        fd,
        ending,
        &mut session,
        &mut peer_close,
        opened_at,
    );
    let info = Box::pin(closing).await;
    core.forget(&conn);
    core.shared.close_connection(conn.meta.peer.ip());
    core.handler.borrow_mut().on_close(
        &mut Context {
            conns: &core.conns,
            conn: &conn,
        },
        &info,
    );
}

/// Why the upgrade request could not be read.
enum HeadFailure {
    Http(HttpError),
    Timeout,
    Aborted,
}

/// Reads until a full request head has arrived; returns it with the buffer (early frames included).
async fn read_request<H>(core: &CoreCtx<H>, stream: &TcpStream, fd: RawFd) -> Result<(Request, Vec<u8>), HeadFailure> {
    let max_head = core.shared.config.max_request_head;
    let read = async {
        let mut head = Vec::new();
        loop {
            stream.readable(false).await.map_err(|_| HeadFailure::Aborted)?;
            let outcome = core.with_scratch(|scratch| {
                let outcome = recv_nonblocking(fd, scratch);
                if let Ok(ReadOutcome::Data(n)) = outcome {
                    head.extend_from_slice(&scratch[..n]);
                }
                outcome
            });
            match outcome {
                Ok(ReadOutcome::Data(_)) => {}
                Ok(ReadOutcome::WouldBlock) => continue,
                Ok(ReadOutcome::Eof) | Err(_) => return Err(HeadFailure::Aborted),
            }
            if let Some(request) = parse_request(&head, max_head).map_err(HeadFailure::Http)? {
                return Ok((request, head));
            }
        }
    };
    monoio::time::timeout(core.shared.config.handshake_timeout, read)
        .await
        .map_err(|_| HeadFailure::Timeout)?
}

/// Answers a bad request with its status and a one-line reason, counts it, logs it, closes.
async fn reject<H>(core: &CoreCtx<H>, stream: &TcpStream, fd: RawFd, peer: SocketAddr, error: &HttpError) {
    core.counters().inc(Counter::for_rejection(error.status));
    tracing::info!(event = "rejected", core = core.index, peer = %peer, status = error.status, reason = error.reason);
    if write_all(stream, fd, &error.to_response()).await.is_ok() {
        linger_close(core, stream, fd).await;
    }
}

fn connection_meta(request: &Request, peer: SocketAddr, protocol: Option<String>, keep: &[String]) -> ConnMeta {
    let headers = keep
        .iter()
        .filter_map(|name| {
            let value = request.header(name)?;
            Some((name.to_ascii_lowercase(), String::from_utf8_lossy(value).into_owned()))
        })
        .collect();
    ConnMeta {
        peer,
        path: request.path.clone(),
        query: request.query.clone(),
        protocol,
        headers,
    }
}

/// How the open phase of a WebSocket ended.
enum Ending {
    /// The client sent a valid close frame.
    ClientClose,
    /// A handler queued a close frame.
    ServerClose,
    /// The engine closed it (heartbeat, idle, slow consumer, shutdown).
    Engine(EngineClose),
    /// The client broke the protocol.
    Violation(ProtocolError),
    /// The socket ended or failed without a close handshake.
    Transport(TransportError),
}

/// A socket that ended without a close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportError {
    /// The peer closed TCP without a close frame (1006 from its side).
    Eof,
    /// The peer reset the connection.
    Reset,
    /// Another read failure.
    Read,
    /// A write failed.
    Write,
}

impl TransportError {
    fn from_read(error: &io::Error) -> TransportError {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => TransportError::Reset,
            _ => TransportError::Read,
        }
    }

    fn from_write(error: &io::Error) -> TransportError {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => TransportError::Reset,
            _ => TransportError::Write,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            TransportError::Eof => "eof_without_close",
            TransportError::Reset => "reset",
            TransportError::Read => "read_error",
            TransportError::Write => "write_error",
        }
    }
}

/// What the peer told us in its close frame.
#[derive(Default)]
struct PeerClose {
    code: Option<CloseCode>,
    reason: String,
}

/// The open phase: read, decode, dispatch, flush, until someone closes.
async fn run_websocket<H: Handler>(
    core: &CoreCtx<H>,
    conn: &ConnShared,
    stream: &TcpStream,
    fd: RawFd,
    mut early: Vec<u8>,
    session: &mut Session,
    peer_close: &mut PeerClose,
) -> Ending {
    if !early.is_empty() {
        if let Err(violation) = dispatch(core, conn, session, &mut early, peer_close) {
            return Ending::Violation(violation);
        }
    }
    drop(early);
    loop {
        let blocked = match conn.outbound().flush(fd) {
            Ok(Flush::Done) => false,
            Ok(Flush::Blocked) => true,
            Err(e) => return Ending::Transport(TransportError::from_write(&e)),
        };
        if session.close_received() {
            return Ending::ClientClose;
        }
        if let Some(why) = conn.engine_close() {
            return Ending::Engine(why);
        }
        if conn.close_sent() {
            return Ending::ServerClose;
        }
        conn.clear_wake();
        match wait_io(stream, conn, blocked).await {
            Wakeup::Readable(Err(e)) => return Ending::Transport(TransportError::from_read(&e)),
            Wakeup::Readable(Ok(())) => {}
            Wakeup::Writable | Wakeup::Woken => continue,
        }
        match read_and_dispatch(core, conn, session, fd, peer_close) {
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
async fn wait_io(stream: &TcpStream, conn: &ConnShared, write_blocked: bool) -> Wakeup {
    let mut woken = pin!(conn.woken());
    if write_blocked {
        let mut writable = pin!(stream.writable(false));
        poll_fn(|cx| {
            if writable.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wakeup::Writable);
            }
            woken.as_mut().poll(cx).map(|()| Wakeup::Woken)
        })
        .await
    } else {
        let mut readable = pin!(stream.readable(false));
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
fn read_and_dispatch<H: Handler>(
    core: &CoreCtx<H>,
    conn: &ConnShared,
    session: &mut Session,
    fd: RawFd,
    peer_close: &mut PeerClose,
) -> Result<Option<TransportError>, ProtocolError> {
    core.with_scratch(|scratch| loop {
        match recv_nonblocking(fd, scratch) {
            Ok(ReadOutcome::Data(n)) => {
                conn.last_rx_tick.set(core.now_tick());
                dispatch(core, conn, session, &mut scratch[..n], peer_close)?;
                if n < scratch.len() || session.close_received() {
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
/// answered, a close frame is recorded. Nothing but a pong or close reply follows our close.
fn dispatch<H: Handler>(
    core: &CoreCtx<H>,
    conn: &ConnShared,
    session: &mut Session,
    bytes: &mut [u8],
    peer_close: &mut PeerClose,
) -> Result<(), ProtocolError> {
    let counters = core.counters();
    let mut handler = core.handler.borrow_mut();
    let sent_before = conn.stats.get();
    let result = session.feed(bytes, &mut |event| match event {
        Event::Message { kind, payload } => {
            if conn.close_sent() {
                return;
            }
            conn.count_in(payload.len());
            let message = match kind {
                // SAFETY: the session validated this payload as UTF-8 before reporting it as text.
                MessageKind::Text => Message::Text(unsafe { std::str::from_utf8_unchecked(payload) }),
                MessageKind::Binary => Message::Binary(payload),
            };
            handler.on_message(
                &mut Context {
                    conns: &core.conns,
                    conn,
                },
                message,
            );
        }
        Event::Ping(payload) => conn.send_pong(payload),
        Event::Pong(_) => {}
        Event::Close(frame) => {
            peer_close.code = Some(frame.code.unwrap_or(CloseCode::NO_STATUS));
            peer_close.reason = frame.reason.to_owned();
            conn.close(frame.reply_code(), "");
        }
    });
    let after = conn.stats.get();
    counters.add(Counter::MessagesIn, after.messages_in - sent_before.messages_in);
    counters.add(Counter::BytesIn, after.bytes_in - sent_before.bytes_in);
    counters.add(Counter::MessagesOut, after.messages_out - sent_before.messages_out);
    counters.add(Counter::BytesOut, after.bytes_out - sent_before.bytes_out);
    result
}

/// The closing phase: make sure our close frame is out, wait (bounded) for the peer's close
/// where we started the handshake, then let TCP close. Returns what the close callback gets.
async fn finish<H: Handler>(
    core: &CoreCtx<H>,
    conn: &ConnShared,
    stream: &TcpStream,
    fd: RawFd,
    ending: Ending,
    session: &mut Session,
    peer_close: &mut PeerClose,
    opened_at: Instant,
) -> CloseInfo {
    let counters = core.counters();
    let (closed_by, mut error) = match &ending {
        Ending::ClientClose => (ClosedBy::Client, None),
        Ending::ServerClose => (ClosedBy::Server, None),
        Ending::Engine(EngineClose::Heartbeat) => (ClosedBy::Heartbeat, Some("heartbeat_timeout")),
        Ending::Engine(EngineClose::Idle) => (ClosedBy::Heartbeat, Some("idle_timeout")),
        Ending::Engine(EngineClose::Shutdown) => (ClosedBy::Shutdown, None),
        Ending::Engine(EngineClose::SlowConsumer) => {
            counters.inc(Counter::SlowConsumers);
            (ClosedBy::Error, Some("slow_consumer"))
        }
        Ending::Violation(violation) => {
            counters.inc(match violation.code {
                CloseCode::INVALID_PAYLOAD => Counter::Close1007,
                CloseCode::TOO_BIG => Counter::Close1009,
                _ => Counter::Close1002,
            });
            tracing::info!(event = "protocol_error", conn = %conn.id, core = core.index, code = violation.code.0, reason = violation.reason);
            conn.close(violation.code, violation.reason);
            (ClosedBy::Error, Some("protocol_error"))
        }
        Ending::Transport(failure) => {
            match failure {
                TransportError::Write => counters.inc(Counter::WriteErrors),
                TransportError::Reset => counters.inc(Counter::ResetByPeer),
                TransportError::Eof | TransportError::Read => {}
            }
            (ClosedBy::Error, Some(failure.as_str()))
        }
    };
    if !matches!(ending, Ending::Transport(_)) {
        let close = closing_handshake(core, conn, stream, fd, session, peer_close, &ending);
        if monoio::time::timeout(core.shared.config.close_timeout, close)
            .await
            .is_err()
        {
            counters.inc(Counter::CloseTimeouts);
            error = error.or(Some("close_timeout"));
        }
    }
    counters.inc(match closed_by {
        ClosedBy::Client => Counter::ClosedByClient,
        ClosedBy::Server => Counter::ClosedByServer,
        ClosedBy::Heartbeat => Counter::ClosedByHeartbeat,
        ClosedBy::Error => Counter::ClosedByError,
        ClosedBy::Shutdown => Counter::ClosedByShutdown,
    });
    let (code_sent, reason_sent) = conn.sent_close().map_or((None, String::new()), |(c, r)| (Some(c), r));
    let info = CloseInfo {
        closed_by,
        code_sent,
        reason_sent,
        code_received: peer_close.code,
        reason_received: std::mem::take(&mut peer_close.reason),
        error,
        duration: opened_at.elapsed(),
        stats: conn.stats.get(),
    };
    tracing::info!(
        event = "close", conn = %conn.id, core = core.index, closed_by = info.closed_by.as_str(),
        error = info.error.unwrap_or(""), code_sent = info.code_sent.map_or(0, |c| c.0),
        reason_sent = %info.reason_sent, code_received = info.code_received.map_or(0, |c| c.0),
        reason_received = %info.reason_received, duration_ms = info.duration.as_millis() as u64,
        messages_in = info.stats.messages_in, messages_out = info.stats.messages_out,
        bytes_in = info.stats.bytes_in, bytes_out = info.stats.bytes_out,
    );
    info
}

/// Flushes our close frame, then: after a client's close or a dead peer (heartbeat), nothing
/// more (the server closes TCP first); after a protocol violation, half-close and discard input
/// until the peer closes; after our own close, keep decoding (dropping data) until the peer's
/// close frame arrives.
async fn closing_handshake<H: Handler>(
    core: &CoreCtx<H>,
    conn: &ConnShared,
    stream: &TcpStream,
    fd: RawFd,
    session: &mut Session,
    peer_close: &mut PeerClose,
    ending: &Ending,
) {
    loop {
        match conn.outbound().flush(fd) {
            Ok(Flush::Done) => break,
            Ok(Flush::Blocked) => {
                let _ = stream.writable(false).await;
            }
            Err(_) => return,
        }
    }
    match ending {
        Ending::ClientClose | Ending::Transport(_) | Ending::Engine(EngineClose::Heartbeat | EngineClose::Idle) => {
            discard_pending(core, fd)
        }
        Ending::Violation(_) => linger_close(core, stream, fd).await,
        Ending::ServerClose | Ending::Engine(EngineClose::Shutdown | EngineClose::SlowConsumer) => {
            while !session.close_received() {
                if stream.readable(false).await.is_err() {
                    return;
                }
                match read_and_dispatch(core, conn, session, fd, peer_close) {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => return,
                }
            }
        }
    }
}

/// Half-closes, then discards input until the peer closes (bounded by the close timeout), so
/// the kernel does not answer unread bytes with a reset that could destroy our last response.
async fn linger_close<H>(core: &CoreCtx<H>, stream: &TcpStream, fd: RawFd) {
    shutdown_write(fd);
    let drain = async {
        loop {
            if stream.readable(false).await.is_err() {
                return;
            }
            match core.with_scratch(|scratch| recv_nonblocking(fd, scratch)) {
                Ok(ReadOutcome::Data(_)) | Ok(ReadOutcome::WouldBlock) => {}
                Ok(ReadOutcome::Eof) | Err(_) => return,
            }
        }
    };
    let _ = monoio::time::timeout(core.shared.config.close_timeout, drain).await;
}

/// Reads and drops whatever has already arrived, without waiting.
fn discard_pending<H>(core: &CoreCtx<H>, fd: RawFd) {
    core.with_scratch(|scratch| while let Ok(ReadOutcome::Data(_)) = recv_nonblocking(fd, scratch) {});
}

/// Writes all of `data`, waiting for writability as needed (bounded by the close timeout).
async fn write_all(stream: &TcpStream, fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let written = send_nonblocking(fd, data)?;
        if written == 0 {
            stream.writable(false).await?;
        }
        data = &data[written..];
    }
    Ok(())
}
