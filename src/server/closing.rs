//! The closing phase of a connection: how the open phase ended, the close handshake that
//! follows, and the record handed to `on_close` and the `close` log event.

use std::io;
use std::time::Instant;

use super::conn::{read_and_dispatch, ConnIo};
use super::conn_state::{CloseInfo, ClosedBy, EngineClose};
use super::outbound::Flush;
use super::socket::{discard_pending, linger_close};
use crate::handler::Handler;
use crate::metrics::Counter;
use crate::proto::close::CloseCode;
use crate::proto::session::{ProtocolError, Session};

/// How the open phase of a WebSocket ended.
pub(crate) enum Ending {
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
pub(crate) enum TransportError {
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
    pub fn from_read(error: &io::Error) -> TransportError {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => TransportError::Reset,
            _ => TransportError::Read,
        }
    }

    pub fn from_write(error: &io::Error) -> TransportError {
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
pub(crate) struct PeerClose {
    pub code: Option<CloseCode>,
    pub reason: String,
}

/// Classifies the ending, runs the close handshake (bounded by the close timeout), counts and
/// logs the close, and returns what the close callback gets.
pub(crate) async fn finish<H: Handler>(
    io: &ConnIo<'_, H>,
    ending: Ending,
    session: &mut Session,
    peer_close: &mut PeerClose,
    opened_at: Instant,
) -> CloseInfo {
    let counters = io.core.counters();
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
            tracing::info!(event = "protocol_error", conn = %io.id, core = io.core.index, code = violation.code.0, reason = violation.reason);
            io.state(|c| c.close(violation.code, violation.reason));
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
        let close = closing_handshake(io, session, peer_close, &ending);
        if monoio::time::timeout(io.core.shared.config.close_timeout, close)
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
    let (sent, stats) = io.state(|c| (c.sent_close(), c.stats()));
    let (code_sent, reason_sent) = sent.map_or((None, String::new()), |(code, reason)| (Some(code), reason));
    let info = CloseInfo {
        closed_by,
        code_sent,
        reason_sent,
        code_received: peer_close.code,
        reason_received: std::mem::take(&mut peer_close.reason),
        error,
        duration: opened_at.elapsed(),
        stats,
    };
    tracing::info!(
        event = "close", conn = %io.id, core = io.core.index, closed_by = info.closed_by.as_str(),
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
    io: &ConnIo<'_, H>,
    session: &mut Session,
    peer_close: &mut PeerClose,
    ending: &Ending,
) {
    loop {
        match io.state(|c| c.flush()) {
            Ok(Flush::Done) => break,
            Ok(Flush::Blocked) => {
                let _ = io.stream.writable(false).await;
            }
            Err(_) => return,
        }
    }
    match ending {
        Ending::ClientClose | Ending::Transport(_) | Ending::Engine(EngineClose::Heartbeat | EngineClose::Idle) => {
            discard_pending(io.core, io.fd)
        }
        Ending::Violation(_) => linger_close(io.core, io.stream, io.fd).await,
        Ending::ServerClose | Ending::Engine(EngineClose::Shutdown | EngineClose::SlowConsumer) => {
            while !session.close_received() {
                if io.stream.readable(false).await.is_err() {
                    return;
                }
                match read_and_dispatch(io, session, peer_close) {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => return,
                }
            }
        }
    }
}
