//! A connection's outbound queue: shared pre-encoded frames plus a coalescing tail buffer.
//!
//! Broadcast frames are encoded once and queued here as cloned `Bytes`; frames encoded for this
//! connection alone (echo replies, pongs) are appended to one tail buffer so several small frames
//! go out in one iovec. A flush writes everything queued with vectored `sendmsg` calls.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use bytes::{Buf, Bytes, BytesMut};

use super::sys::send_vectored_nonblocking;
use crate::proto::frame::{encode_frame, OpCode};

/// Result of a flush attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued has been written.
    Done,
    /// The socket buffer is full; wait for writability and flush again.
    Blocked,
}

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
        if !self.tail.is_empty() {
            self.frames.push_back(self.tail.split().freeze());
        }
        self.queued_bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Encodes an unmasked final frame for this connection into the coalescing tail.
    pub fn push_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let before = self.tail.len();
        encode_frame(&mut self.tail, true, opcode, payload, None);
        self.queued_bytes += self.tail.len() - before;
    }

    /// Writes as much as the socket takes. The owner drops a drained queue (see
    /// `ConnState::flush`), so an idle connection holds no write buffer.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<Flush> {
        while self.queued_bytes > 0 {
            let chunks = self
                .frames
                .iter()
                .map(|b| b.as_ref())
                .chain(std::iter::once(self.tail.as_ref()));
            let written = send_vectored_nonblocking(fd, chunks)?;
            if written == 0 {
                return Ok(Flush::Blocked);
            }
            self.consume(written);
        }
        Ok(Flush::Done)
    }

    fn consume(&mut self, mut written: usize) {
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
