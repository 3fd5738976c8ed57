//! Synchronous socket work on a connection's descriptor, between readiness waits: used by the
//! epoll data path, the closing phase and the handshake.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use monoio::net::TcpStream;

use super::conn::ConnState;
use super::core::CoreCtx;
use super::ending::TransportError;
use super::input::{receive, InputError};
use super::sys::{recv_nonblocking, send_nonblocking, send_vectored_nonblocking, shutdown_write, ReadOutcome};
use crate::api::ConnId;
use crate::handler::Handler;
use crate::metrics::Counter;

/// Once this much output is queued, reading stops until it is flushed: input is consumed no
/// faster than the peer drains our replies (TCP pushes back on a client that does not read).
pub(crate) const FLUSH_BEFORE_READING: usize = 64 * 1024;

/// Result of a flush attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Everything queued has been written.
    Done,
    /// The socket buffer is full; wait for writability and flush again.
    Blocked,
}

/// Writes what the connection has queued with vectored `sendmsg` calls, as far as the socket
/// takes it now.
pub(crate) fn flush(conn: &mut ConnState) -> io::Result<Flush> {
    let fd = conn.fd();
    while let Some(outbound) = conn.outbound_to_write() {
        let written = send_vectored_nonblocking(fd, outbound.chunks())?;
        if written == 0 {
            return Ok(Flush::Blocked);
        }
        conn.written(written);
    }
    Ok(Flush::Done)
}

/// How one read of a connection ended.
pub(crate) enum ReadResult {
    /// The socket's receive queue is empty (a short read on a stream socket).
    Drained,
    /// The read filled the scratch buffer: more may be waiting.
    More,
    /// Replies reached [`FLUSH_BEFORE_READING`] (or the peer's close arrived): flush first; the
    /// socket may still hold unread bytes.
    Paused,
    /// The peer closed or reset the TCP connection.
    Ended(TransportError),
    /// The peer broke the protocol (or its TLS).
    Broken(InputError),
}

/// Reads once (at most the core's 64 KiB scratch buffer) and hands what came to the session.
pub(crate) fn read_once<H: Handler>(core: &CoreCtx<H>, id: ConnId, fd: RawFd) -> ReadResult {
    core.with_scratch(|scratch| match recv_nonblocking(fd, scratch) {
        Ok(ReadOutcome::Data(n)) => {
            if let Err(error) = receive(core, id, &mut scratch[..n]) {
                return ReadResult::Broken(error);
            }
            let (closed, queued) = core
                .conns
                .with(id, |c| {
                    let closed = c.parts.as_ref().is_none_or(|p| p.session.close_received());
                    (closed, c.queued_bytes())
                })
                .unwrap_or((true, 0));
            if closed || queued >= FLUSH_BEFORE_READING {
                ReadResult::Paused
            } else if n < scratch.len() {
                ReadResult::Drained
            } else {
                ReadResult::More
            }
        }
        Ok(ReadOutcome::WouldBlock) => ReadResult::Drained,
        Ok(ReadOutcome::Eof) => ReadResult::Ended(TransportError::Eof),
        Err(e) => ReadResult::Ended(TransportError::from_read(&e)),
    })
}

/// Writes all of `data`, waiting for writability as needed.
pub(crate) async fn write_all(stream: &TcpStream, fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let written = send_nonblocking(fd, data)?;
        if written == 0 {
            stream.writable(false).await?;
        }
        data = &data[written..];
    }
    Ok(())
}

/// Writes a plain-HTTP response, giving up after the handshake timeout: a client that does
/// not read its response must not hold its connection (and the response) forever. Counted
/// and logged as a handshake timeout.
pub(crate) async fn write_response<H>(
    core: &CoreCtx<H>,
    stream: &TcpStream,
    fd: RawFd,
    peer: SocketAddr,
    data: &[u8],
) -> io::Result<()> {
    match monoio::time::timeout(core.shared.config.handshake_timeout, write_all(stream, fd, data)).await {
        Ok(written) => written,
        Err(_) => {
            core.counters().inc(Counter::HandshakeTimeouts);
            tracing::info!(event = "handshake_timeout", core = core.index, peer = %peer, "response not read in time");
            Err(io::ErrorKind::TimedOut.into())
        }
    }
}

/// Half-closes, then discards input until the peer closes (bounded by the close timeout), so
/// the kernel does not answer unread bytes with a reset that could destroy our last response.
pub(crate) async fn linger_close<H>(core: &CoreCtx<H>, stream: &TcpStream, fd: RawFd) {
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
pub(crate) fn discard_pending<H>(core: &CoreCtx<H>, fd: RawFd) {
    core.with_scratch(|scratch| while let Ok(ReadOutcome::Data(_)) = recv_nonblocking(fd, scratch) {});
}
