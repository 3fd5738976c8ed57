//! The closing phase of a connection, in a task of its own: how the open phase ended, the close
//! handshake that follows, and the record handed to `on_close` and the `close` log event.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;

use monoio::net::TcpStream;

use super::conn::{ConnRole, ConnState, EngineClose, IoFlags, OpenParts};
use super::core::CoreCtx;
use super::ending::{Ending, TransportError};
use super::socket::{discard_pending, flush, linger_close, read_once, Flush, ReadResult};
use super::sys::shutdown_both;
use crate::api::{CloseInfo, ClosedBy, ConnId};
use crate::handler::Handler;
use crate::metrics::Counter;
use crate::proto::close::CloseCode;

/// What the closing task works with.
struct ConnIo<'a, H> {
    core: &'a CoreCtx<H>,
    id: ConnId,
    stream: &'a TcpStream,
    fd: RawFd,
}

impl<H> ConnIo<'_, H> {
    /// Runs `f` on this connection's slab state, which lives until the closing task ends.
    fn state<R>(&self, f: impl FnOnce(&mut ConnState) -> R) -> R {
        self.core
            .conns
            .with(self.id, f)
            .expect("a connection's state lives until its closing task ends")
    }
}

/// Ends the open phase of a connection whose socket no data path uses any more (the driver
/// has deregistered it, or its io_uring operations have all completed): closes it on the spot
/// when nothing needs waiting for, or else moves it into a closing task that runs the close
/// handshake. The connection's state stays in the slab until the close is finished.
pub(crate) fn end_open_phase<H: Handler>(core: &Rc<CoreCtx<H>>, id: ConnId, ending: Ending) {
    let Some(fd) = core.conns.with(id, |c| {
        c.io.set(IoFlags::HANDED_OFF, true);
        c.fd()
    }) else {
        return;
    };
    let Some(ending) = close_without_waiting(core, id, fd, ending) else {
        return;
    };
    // SAFETY: the connection owned `fd` exclusively during its open phase; ownership moves to
    // the stream here and nothing else uses the descriptor afterwards.
    let stream = TcpStream::from_std(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    monoio::spawn(run_closing(core.clone(), id, stream, ending));
}

/// The closing task: runs the close handshake, frees the connection's slot and limits, and
/// calls `on_close`.
async fn run_closing<H: Handler>(core: Rc<CoreCtx<H>>, id: ConnId, stream: io::Result<TcpStream>, mut ending: Ending) {
    if let Err(error) = &stream {
        tracing::warn!(event = "handoff_failed", conn = %id, core = core.index, %error);
        ending = Ending::Transport(TransportError::Read);
    }
    let (closed_by, error) = classify(&core, id, &ending);
    let mut timed_out = false;
    let socket_failed = matches!(ending, Ending::Transport(failure) if failure != TransportError::Eof);
    if let (Ok(stream), false) = (&stream, socket_failed) {
        let io = ConnIo {
            core: &core,
            id,
            stream,
            fd: stream.as_raw_fd(),
        };
        let close = closing_handshake(&io, &ending);
        timed_out = monoio::time::timeout(core.shared.config.close_timeout, close)
            .await
            .is_err();
    }
    drop(stream);
    finish(&core, id, closed_by, error, timed_out);
}

/// Ends, on the spot, a connection whose close needs no waiting: the peer closed first (its
/// close is answered and TCP closed), the peer only shut its sending side (what is queued for
/// it still goes out), the peer is gone (heartbeat or idle timeout), or the socket failed.
/// Gives the ending back when a closing task is needed after all: another kind of ending, or
/// a reply that does not fit in the socket buffer right now.
fn close_without_waiting<H: Handler>(core: &CoreCtx<H>, id: ConnId, fd: RawFd, ending: Ending) -> Option<Ending> {
    let answer_and_close = matches!(
        ending,
        Ending::ClientClose
            | Ending::Transport(TransportError::Eof)
            | Ending::Engine(EngineClose::Heartbeat | EngineClose::Idle)
    );
    let broken = matches!(ending, Ending::Transport(_) | Ending::Engine(EngineClose::TlsFailed));
    if !answer_and_close && !broken {
        return Some(ending);
    }
    if matches!(ending, Ending::Transport(TransportError::Tls)) {
        // The alert the TLS session made for the peer, as far as the socket takes it now.
        let _ = core.conns.with(id, flush);
    }
    if answer_and_close {
        if let Some(Ok(Flush::Blocked)) = core.conns.with(id, flush) {
            return Some(ending);
        }
        discard_pending(core, fd);
    }
    // SAFETY: the connection owns `fd`; no data path uses it any more and nothing does after.
    unsafe { libc::close(fd) };
    let (closed_by, error) = classify(core, id, &ending);
    finish(core, id, closed_by, error, false);
    None
}

/// Ends a connection still open when the shutdown timeout has run out: its close is recorded
/// (closed by shutdown, error `shutdown_timeout`) and the handler told, like any other close;
/// its socket is closed here in its open phase, or with its closing task, which the runtime
/// drops as it stops.
pub(crate) fn abandon_at_shutdown<H: Handler>(core: &CoreCtx<H>, id: ConnId) {
    let Some((fd, handed_off)) = core.conns.with(id, |c| {
        if c.io.has(IoFlags::SEND_IN_FLIGHT) {
            c.abandon_outbound();
        }
        (c.fd(), c.io.has(IoFlags::HANDED_OFF))
    }) else {
        return;
    };
    finish(core, id, ClosedBy::Shutdown, Some("shutdown_timeout"), false);
    if !handed_off {
        // Shut first, so that operations still queued on the ring end at once.
        shutdown_both(fd);
        // SAFETY: in its open phase the connection owns `fd`; its state is gone, so nothing
        // of ours uses the descriptor again.
        unsafe { libc::close(fd) };
    }
}

/// Records the finished close, frees the connection's slot, timer and limits, then tells the
/// handler.
fn finish<H: Handler>(
    core: &CoreCtx<H>,
    id: ConnId,
    closed_by: ClosedBy,
    error: Option<&'static str>,
    timed_out: bool,
) {
    let Some((Some(mut parts), opened_ms)) = core.conns.with(id, |c| (c.parts.take(), c.opened_ms)) else {
        return;
    };
    let lifetime = std::time::Duration::from_millis(core.now_ms().saturating_sub(opened_ms));
    let info = record(core, id, closed_by, error, timed_out, &mut parts, lifetime);
    core.observer
        .record(crate::metrics::LatencyMetric::ConnectionLifetime, lifetime);
    core.forget(id);
    core.shared.close_connection(parts.meta.peer().ip());
    match parts.role {
        ConnRole::Application => {
            core.call_handler(id, |handler| {
                handler.on_close(&mut core.context(id, &parts.meta), &info)
            });
        }
        ConnRole::Dashboard => core.dashboard_closed(id),
    }
}

/// Classifies how the open phase ended, counts and logs it at once (a protocol violation is
/// counted when it happens, not when the peer finally closes), and queues the close frame a
/// violation calls for.
fn classify<H>(core: &CoreCtx<H>, id: ConnId, ending: &Ending) -> (ClosedBy, Option<&'static str>) {
    let counters = core.counters();
    match ending {
        Ending::ClientClose => (ClosedBy::Client, None),
        Ending::ServerClose => (ClosedBy::Server, None),
        Ending::Engine(EngineClose::Heartbeat) => (ClosedBy::Heartbeat, Some("heartbeat_timeout")),
        Ending::Engine(EngineClose::Idle) => (ClosedBy::Heartbeat, Some("idle_timeout")),
        Ending::Engine(EngineClose::Shutdown) => (ClosedBy::Shutdown, None),
        Ending::Engine(EngineClose::HandlerPanic) => (ClosedBy::Error, Some("handler_panic")),
        Ending::Engine(EngineClose::SlowConsumer) => (ClosedBy::Error, Some("slow_consumer")),
        Ending::Engine(EngineClose::TlsFailed) => {
            counters.inc(Counter::TlsErrors);
            (ClosedBy::Error, Some("tls_error"))
        }
        Ending::Violation(violation) => {
            counters.inc(match violation.code {
                CloseCode::INVALID_PAYLOAD => Counter::Close1007,
                CloseCode::TOO_BIG => Counter::Close1009,
                _ => Counter::Close1002,
            });
            tracing::info!(event = "protocol_error", conn = %id, core = core.index, code = violation.code.0, reason = violation.reason);
            core.conns.with(id, |c| c.close(violation.code, violation.reason));
            (ClosedBy::Error, Some("protocol_error"))
        }
        Ending::Transport(failure) => {
            match failure {
                TransportError::Write => counters.inc(Counter::WriteErrors),
                TransportError::Tls => counters.inc(Counter::TlsErrors),
                TransportError::Reset => counters.inc(Counter::ResetByPeer),
                TransportError::Eof | TransportError::Read => {}
            }
            (ClosedBy::Error, Some(failure.as_str()))
        }
    }
}

/// Counts and logs the finished close and returns what the close callback gets.
fn record<H>(
    core: &CoreCtx<H>,
    id: ConnId,
    closed_by: ClosedBy,
    mut error: Option<&'static str>,
    close_timed_out: bool,
    parts: &mut OpenParts,
    lifetime: std::time::Duration,
) -> CloseInfo {
    let counters = core.counters();
    if close_timed_out {
        counters.inc(Counter::CloseTimeouts);
        error = error.or(Some("close_timeout"));
    }
    counters.inc(match closed_by {
        ClosedBy::Client => Counter::ClosedByClient,
        ClosedBy::Server => Counter::ClosedByServer,
        ClosedBy::Heartbeat => Counter::ClosedByHeartbeat,
        ClosedBy::Error => Counter::ClosedByError,
        ClosedBy::Shutdown => Counter::ClosedByShutdown,
    });
    let (sent, stats) = core.conns.with(id, |c| (c.sent_close(), c.stats())).unwrap_or_default();
    let (code_sent, reason_sent) = sent.map_or((None, String::new()), |(code, reason)| (Some(code), reason));
    let info = CloseInfo {
        closed_by,
        code_sent,
        reason_sent,
        code_received: parts.peer_close.as_ref().and_then(|p| p.code),
        reason_received: parts.peer_close.take().map(|p| p.reason).unwrap_or_default(),
        error,
        duration: lifetime,
        stats,
    };
    tracing::info!(
        event = "close", conn = %id, core = core.index, closed_by = info.closed_by.as_str(),
        error = info.error.unwrap_or(""), code_sent = info.code_sent.map_or(0, |c| c.0),
        reason_sent = %info.reason_sent, code_received = info.code_received.map_or(0, |c| c.0),
        reason_received = %info.reason_received, duration_ms = info.duration.as_millis() as u64,
        messages_in = info.stats.messages_in, messages_out = info.stats.messages_out,
        bytes_in = info.stats.bytes_in, bytes_out = info.stats.bytes_out,
    );
    info
}

/// Decodes (dropping data) until the peer's close frame arrives or the socket ends.
async fn await_peer_close<H: Handler>(io: &ConnIo<'_, H>) {
    loop {
        if io.stream.readable(false).await.is_err() {
            return;
        }
        loop {
            match read_once(io.core, io.id, io.fd) {
                ReadResult::More => continue,
                ReadResult::Drained => break,
                ReadResult::Paused | ReadResult::Ended(_) | ReadResult::Broken(_) => return,
            }
        }
    }
}

/// Flushes our close frame, then: after a client's close or a dead peer (heartbeat), nothing
/// more (the server closes TCP first); after a protocol violation, half-close and discard input
/// until the peer closes; after our own close, keep decoding (dropping data) until the peer's
/// close frame arrives.
async fn closing_handshake<H: Handler>(io: &ConnIo<'_, H>, ending: &Ending) {
    loop {
        match io.state(flush) {
            Ok(Flush::Done) => break,
            Ok(Flush::Blocked) => {
                let _ = io.stream.writable(false).await;
            }
            Err(_) => return,
        }
    }
    match ending {
        Ending::ClientClose
        | Ending::Transport(_)
        | Ending::Engine(EngineClose::Heartbeat | EngineClose::Idle | EngineClose::TlsFailed) => {
            discard_pending(io.core, io.fd)
        }
        Ending::Violation(_) | Ending::Engine(EngineClose::HandlerPanic) => {
            linger_close(io.core, io.stream, io.fd).await
        }
        Ending::ServerClose | Ending::Engine(EngineClose::Shutdown | EngineClose::SlowConsumer) => {
            await_peer_close(io).await
        }
    }
}
