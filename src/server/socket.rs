//! Small async socket helpers shared by the handshake and closing phases.

use std::io;
use std::os::fd::RawFd;

use monoio::net::TcpStream;

use super::core::CoreCtx;
use super::sys::{recv_nonblocking, send_nonblocking, shutdown_write, ReadOutcome};

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
