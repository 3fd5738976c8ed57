//! Setting up a core's raw io_uring and probing, once at start-up, that the kernel has what the
//! io_uring data path needs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::bufring::{BufRing, GROUP};

/// Most submission queue entries of a core's raw ring (fewer when the completion queue is
/// smaller, as the kernel requires); more submissions in one turn wait in a backlog.
const SQ_ENTRIES: u32 = 4096;

/// Builds a raw ring: single issuer (only the core thread submits), cooperative task running
/// (no inter-processor interrupt per completion; completions are posted at the core's next
/// system call or wait, and a sleeping core is still woken), and a completion queue of
/// `cq_entries` (the kernel keeps overflowing completions instead of dropping them).
pub(crate) fn build(cq_entries: u32) -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_submit_all()
        .setup_cqsize(cq_entries)
        .build(SQ_ENTRIES.min(cq_entries))
}

/// Checks that this kernel runs the io_uring data path: the ring flags, a provided-buffer ring,
/// the opcodes it submits, and a multishot recv that actually delivers (Linux 6.0+). Returns
/// what is missing, for the one start-up log line that announces the epoll fallback.
pub fn probe() -> Result<(), String> {
    let mut ring = build(64).map_err(|e| format!("cannot set up an io_uring with the needed flags: {e}"))?;
    let mut supported = Probe::new();
    ring.submitter()
        .register_probe(&mut supported)
        .map_err(|e| format!("cannot probe io_uring opcodes: {e}"))?;
    let needed = [
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::SendMsg::CODE, "sendmsg"),
        (opcode::AsyncCancel::CODE, "async cancel"),
        (opcode::PollAdd::CODE, "poll"),
        (opcode::MsgRingData::CODE, "msg_ring"),
    ];
    if let Some((_, name)) = needed.iter().find(|(code, _)| !supported.is_supported(*code)) {
        return Err(format!("io_uring lacks the {name} operation"));
    }
    let mut buffers = BufRing::register(&ring.submitter(), 2, 64)
        .map_err(|e| format!("cannot register a provided-buffer ring: {e}"))?;
    let (ours, theirs) = socket_pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    let recv = opcode::RecvMulti::new(types::Fd(ours.as_raw_fd()), GROUP)
        .build()
        .user_data(1);
    // SAFETY: the SQE refers to a descriptor and a buffer group that outlive the ring's use.
    unsafe { ring.submission().push(&recv) }.map_err(|_| "io_uring submission queue full".to_owned())?;
    // SAFETY: writes one byte from a static buffer to our own socket.
    if unsafe { libc::send(theirs.as_raw_fd(), b"x".as_ptr().cast(), 1, libc::MSG_NOSIGNAL) } != 1 {
        return Err(format!("cannot write to a socket pair: {}", io::Error::last_os_error()));
    }
    ring.submit_and_wait(1)
        .map_err(|e| format!("cannot submit to io_uring: {e}"))?;
    let cqe = ring.completion().next().ok_or("io_uring posted no completion")?;
    match (
        cqe.result(),
        cqueue::buffer_select(cqe.flags()),
        cqueue::more(cqe.flags()),
    ) {
        (1, Some(bid), true) => {
            buffers.filled(bid, 1);
            Ok(())
        }
        (result, _, _) if result < 0 => Err(format!(
            "multishot recv failed: {} (needs Linux 6.0 or later)",
            io::Error::from_raw_os_error(-result)
        )),
        (result, bid, more) => Err(format!(
            "multishot recv misbehaved (result {result}, buffer {bid:?}, more {more}; needs Linux 6.0 or later)"
        )),
    }
}

/// Sets the byte limit of a multishot recv: the kernel ends it (a last completion without
/// `IORING_CQE_F_MORE`) once it has received `limit` bytes. The limit lives in the entry's
/// `optlen` field, which the `io-uring` crate's builder does not expose.
pub(crate) fn with_byte_limit(mut entry: squeue::Entry, limit: u32) -> squeue::Entry {
    /// Offset of `optlen` (a union with `file_index`) in the kernel's 64-byte SQE.
    const OPTLEN: usize = 44;
    const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
    // SAFETY: `Entry` is `#[repr(C)]` around the kernel's `io_uring_sqe` (64 bytes, checked
    // above), whose bytes 44..48 are the `optlen` union member.
    unsafe {
        (&mut entry as *mut squeue::Entry)
            .cast::<u8>()
            .add(OPTLEN)
            .cast::<u32>()
            .write_unaligned(limit)
    };
    entry
}

/// Whether this kernel ends a multishot recv after a byte limit (`optlen`, added in 2025; 6.18
/// has it; a kernel without it refuses or ignores the limit, and either way the probe says
/// no). Probed once per process, on a ring of its own.
pub(crate) fn recv_byte_limit_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| probe_byte_limit().unwrap_or(false))
}

/// Arms a multishot recv limited to 1 byte on a socket pair, writes 2 bytes: the limit works
/// if the recv delivers them and ends (without the limit it stays armed, or is refused).
fn probe_byte_limit() -> io::Result<bool> {
    let mut ring = build(8)?;
    let mut buffers = BufRing::register(&ring.submitter(), 2, 64)?;
    let (ours, theirs) = socket_pair()?;
    let recv = opcode::RecvMulti::new(types::Fd(ours.as_raw_fd()), GROUP)
        .build()
        .user_data(1);
    // SAFETY: the SQE refers to a descriptor and a buffer group that outlive the ring's use.
    unsafe { ring.submission().push(&with_byte_limit(recv, 1)) }
        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
    // SAFETY: writes two bytes from a static buffer to our own socket.
    if unsafe { libc::send(theirs.as_raw_fd(), b"xy".as_ptr().cast(), 2, libc::MSG_NOSIGNAL) } != 2 {
        return Err(io::Error::last_os_error());
    }
    ring.submit_and_wait(1)?;
    let Some(cqe) = ring.completion().next() else {
        return Ok(false);
    };
    if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
        buffers.filled(bid, 1);
    }
    // The last recv may take more than the limit left (a whole buffer): the kernel counts
    // the limit down and ends the recv once it is used up.
    Ok(cqe.result() > 0 && !cqueue::more(cqe.flags()))
}

/// A connected pair of non-blocking Unix stream sockets.
fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned from here on.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
