//! Non-blocking socket syscalls used between readiness waits.
//!
//! The engine waits for readiness through monoio (a poll op on io_uring, epoll on the legacy
//! driver) and then reads into the per-core scratch buffer with one `recv`, so an idle
//! connection owns no read buffer. `MSG_DONTWAIT` makes each call non-blocking whatever the
//! file's own flags are, which keeps both drivers correct.

use std::io;
use std::os::fd::RawFd;

/// Most iovecs handed to one `sendmsg` (well under the kernel's IOV_MAX of 1024).
pub const MAX_IOVECS: usize = 64;

/// Outcome of a non-blocking read.
#[derive(Debug)]
pub enum ReadOutcome {
    /// This many bytes were read.
    Data(usize),
    /// The peer closed its sending side.
    Eof,
    /// Nothing to read right now.
    WouldBlock,
}

/// Reads what is available into `buf` without blocking.
pub fn recv_nonblocking(fd: RawFd, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes for the whole call.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            return Ok(ReadOutcome::Data(n as usize));
        }
        if n == 0 {
            return Ok(ReadOutcome::Eof);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(ReadOutcome::WouldBlock),
            _ => return Err(err),
        }
    }
}

/// Writes as much of `chunks` (in order) as the socket takes now with one vectored `sendmsg`.
///
/// Returns the number of bytes written; 0 means the socket buffer is full.
pub fn send_vectored_nonblocking<'a>(fd: RawFd, chunks: impl Iterator<Item = &'a [u8]>) -> io::Result<usize> {
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    let mut count = 0;
    for chunk in chunks.filter(|c| !c.is_empty()).take(MAX_IOVECS) {
        iovecs[count] = libc::iovec {
            iov_base: chunk.as_ptr() as *mut _,
            iov_len: chunk.len(),
        };
        count += 1;
    }
    if count == 0 {
        return Ok(0);
    }
    // SAFETY: an all-zero msghdr is a valid empty header; we then point it at `count` iovecs that
    // borrow live slices for the duration of the call (the kernel only reads them).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iovecs.as_mut_ptr();
    msg.msg_iovlen = count as _;
    loop {
        // SAFETY: `msg` is fully initialised above and outlives the call.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// Writes all of `data` or as much as fits now; convenience for handshake responses.
pub fn send_nonblocking(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    send_vectored_nonblocking(fd, std::iter::once(data))
}

/// Shuts down the sending side so the peer sees FIN after everything queued (lingering close).
pub fn shutdown_write(fd: RawFd) {
    shutdown(fd, libc::SHUT_WR);
}

/// Shuts down both directions: operations waiting on the socket end at once.
pub fn shutdown_both(fd: RawFd) {
    shutdown(fd, libc::SHUT_RDWR);
}

fn shutdown(fd: RawFd, how: libc::c_int) {
    // SAFETY: plain syscall on a descriptor we own; errors (already closed) are irrelevant here.
    unsafe {
        libc::shutdown(fd, how);
    }
}

/// Takes one connection already waiting in a listener's backlog, without waiting (`None`:
/// the backlog is empty). The socket comes back non-blocking, like the ring's accepts.
pub fn accept_nonblocking(listener: RawFd) -> io::Result<Option<(std::net::TcpStream, std::net::SocketAddr)>> {
    use std::os::fd::FromRawFd;
    // SAFETY: `listener` is a listening socket the caller owns for the duration of this call;
    // ManuallyDrop keeps this borrowed view from closing it.
    let view = std::mem::ManuallyDrop::new(unsafe { std::net::TcpListener::from_raw_fd(listener) });
    match view.accept() {
        Ok((stream, peer)) => {
            stream.set_nonblocking(true)?;
            Ok(Some((stream, peer)))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}
