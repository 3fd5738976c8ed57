//! A connection's outbound queue: shared pre-encoded frames plus a coalescing tail buffer.
//!
//! Broadcast frames are encoded once and queued here as cloned `Bytes`; frames encoded for this
//! connection alone (echo replies, pongs) are appended to one tail buffer so several small frames
//! go out in one iovec. The queue makes no system call: a driver takes its chunks (as iovecs),
//! writes them its own way, and reports how many bytes the kernel took.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::proto::frame::{encode_frame, OpCode};

/// Frames waiting to be written to one connection.
#[derive(Debug, Default)]
pub struct Outbound {
    frames: VecDeque<Bytes>,
    tail: BytesMut,
    queued_bytes: usize,
}

impl Outbound {
    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queued_bytes == 0
    }

    /// Queues a pre-encoded frame (shared with other connections, not copied).
    pub fn push_shared(&mut self, frame: Bytes) {
        self.seal();
        self.queued_bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Encodes an unmasked final frame for this connection into the coalescing tail.
    pub fn push_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let before = self.tail.len();
        encode_frame(&mut self.tail, true, opcode, payload, None);
        self.queued_bytes += self.tail.len() - before;
    }

    /// The queued bytes in order, as slices (for a vectored write that completes at once).
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.frames
            .iter()
            .map(|b| b.as_ref())
            .chain(std::iter::once(self.tail.as_ref()))
            .filter(|c| !c.is_empty())
    }

    /// Moves the coalescing tail into the frame list, so that every queued byte sits in a
    /// buffer that never moves until consumed: what an asynchronous write needs while it is in
    /// flight (frames queued meanwhile go into a fresh tail).
    pub fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.frames.push_back(self.tail.split().freeze());
        }
    }

    /// Points `iovecs` at the queued bytes, in order (at most `iovecs.len()` chunks); returns
    /// how many were filled and the bytes they cover. Call [`Outbound::seal`] first when the
    /// write outlives this borrow.
    pub fn fill_iovecs(&self, iovecs: &mut [libc::iovec]) -> (usize, usize) {
        let mut bytes = 0;
        let mut count = 0;
        for (slot, chunk) in iovecs.iter_mut().zip(self.chunks()) {
            *slot = libc::iovec {
                iov_base: chunk.as_ptr() as *mut _,
                iov_len: chunk.len(),
            };
            bytes += chunk.len();
            count += 1;
        }
        (count, bytes)
    }

    /// Drops the first `written` bytes (what the kernel took).
    pub fn consume(&mut self, mut written: usize) {
        self.queued_bytes -= written;
        while written > 0 {
            match self.frames.front_mut() {
                Some(front) if front.len() <= written => {
                    written -= front.len();
                    self.frames.pop_front();
                }
                Some(front) => {
                    front.advance(written);
                    written = 0;
                }
                None => {
                    self.tail.advance(written);
                    written = 0;
                }
            }
        }
    }
}
