//! A connection's outbound queue: shared pre-encoded frames plus a coalescing tail buffer.
//!
//! Broadcast frames are encoded once and queued here as cloned `Bytes`; frames encoded for this
//! connection alone (echo replies, pongs) are appended to one tail buffer so several small frames
//! go out in one iovec. The queue makes no system call: a driver takes its chunks (as iovecs),
//! writes them its own way, and reports how many bytes the kernel took.
//!
//! A shared frame may be queued *sheddable*, with a nonzero key its sender chooses: a slow
//! consumer can then lose its oldest such frames instead of the connection
//! ([`Outbound::shed_oldest`]). Frames a write in flight points at ([`Outbound::pin`]) and a
//! frame already partly written are never shed.
//!
//! Over TLS the queue holds plaintext frames until the driver writes: then
//! [`Outbound::encrypt_queued`] turns every frame not yet encrypted into one run of records,
//! which stays at the front (encrypted, in the order the records were made) until written.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::proto::frame::{encode_frame, OpCode};

/// One queued frame and its shed key (0: never shed).
#[derive(Debug)]
struct Queued {
    bytes: Bytes,
    shed_key: u64,
}

/// Frames waiting to be written to one connection.
#[derive(Debug, Default)]
pub struct Outbound {
    frames: VecDeque<Queued>,
    tail: BytesMut,
    queued_bytes: usize,
    /// How many front frames the write in flight points at.
    pinned: usize,
    /// Whether the front frame has been partly written.
    front_partial: bool,
    /// How many front frames are TLS records (already encrypted; never shed or re-encrypted).
    encrypted: usize,
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
        self.push_sheddable(frame, 0);
    }

    /// Queues a pre-encoded frame that [`Outbound::shed_oldest`] may drop (`shed_key` nonzero;
    /// 0 queues it for good).
    pub fn push_sheddable(&mut self, frame: Bytes, shed_key: u64) {
        self.seal();
        self.queued_bytes += frame.len();
        self.frames.push_back(Queued { bytes: frame, shed_key });
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
            .map(|q| q.bytes.as_ref())
            .chain(std::iter::once(self.tail.as_ref()))
            .filter(|c| !c.is_empty())
    }

    /// Moves the coalescing tail into the frame list, so that every queued byte sits in a
    /// buffer that never moves until consumed: what an asynchronous write needs while it is in
    /// flight (frames queued meanwhile go into a fresh tail).
    pub fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.frames.push_back(Queued {
                bytes: self.tail.split().freeze(),
                shed_key: 0,
            });
        }
    }

    /// Points `iovecs` at the queued bytes, in order (at most `iovecs.len()` chunks); returns
    /// how many were filled and the bytes they cover. Call [`Outbound::seal`] first when the
    /// write outlives this borrow, and [`Outbound::pin`] with the count.
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

    /// Marks the first `frames` frames as pointed at by a write in flight: they are not shed
    /// until the write completes ([`Outbound::consume`]).
    pub fn pin(&mut self, frames: usize) {
        self.pinned = frames;
    }

    /// TLS: replaces every frame not yet encrypted (the tail included) with what `encrypt`
    /// makes of their bytes, in order (`None`: they cannot be sent and are dropped). Records
    /// made elsewhere in between keep their place.
    pub fn encrypt_queued(&mut self, encrypt: impl FnOnce(&[&[u8]]) -> Option<Vec<u8>>) {
        self.seal();
        if self.encrypted == self.frames.len() {
            return;
        }
        let plaintext: Vec<&[u8]> = self.frames.range(self.encrypted..).map(|q| q.bytes.as_ref()).collect();
        let records = encrypt(&plaintext);
        let plain_bytes: usize = plaintext.iter().map(|p| p.len()).sum();
        self.frames.truncate(self.encrypted);
        self.queued_bytes -= plain_bytes;
        if let Some(records) = records.filter(|r| !r.is_empty()) {
            self.push_encrypted(Bytes::from(records));
        }
    }

    /// TLS: queues records made outside the write path (a key update, an alert) after the
    /// records already made and before any plaintext frame.
    pub fn push_encrypted(&mut self, records: Bytes) {
        self.queued_bytes += records.len();
        self.frames.insert(
            self.encrypted,
            Queued {
                bytes: records,
                shed_key: 0,
            },
        );
        self.encrypted += 1;
    }

    /// Drops the first `written` bytes (what the kernel took) once a write has completed;
    /// nothing is pinned afterwards.
    pub fn consume(&mut self, mut written: usize) {
        self.queued_bytes -= written;
        self.pinned = 0;
        while written > 0 {
            match self.frames.front_mut() {
                Some(front) if front.bytes.len() <= written => {
                    written -= front.bytes.len();
                    self.frames.pop_front();
                    self.front_partial = false;
                    self.encrypted = self.encrypted.saturating_sub(1);
                }
                Some(front) => {
                    front.bytes.advance(written);
                    self.front_partial = true;
                    written = 0;
                }
                None => {
                    self.tail.advance(written);
                    written = 0;
                }
            }
        }
    }

    /// Drops the oldest sheddable frames, skipping pinned and partly written ones, until at
    /// least `bytes` are freed or none is left; their keys are appended to `shed` in queue
    /// order. Returns where the first dropped frame was, for [`Outbound::insert_notices`].
    pub fn shed_oldest(&mut self, bytes: usize, shed: &mut Vec<u64>) -> Option<usize> {
        let start = self
            .pinned
            .max(usize::from(self.front_partial))
            .max(self.encrypted)
            .min(self.frames.len());
        let mut freed = 0;
        let mut first = None;
        let rest: Vec<Queued> = self.frames.drain(start..).collect();
        for queued in rest {
            if freed < bytes && queued.shed_key != 0 {
                freed += queued.bytes.len();
                shed.push(queued.shed_key);
                first.get_or_insert(self.frames.len());
            } else {
                self.frames.push_back(queued);
            }
        }
        self.queued_bytes -= freed;
        first
    }

    /// Inserts `notices` (kept for good) at queue position `at`, in order; at the end with
    /// `None`.
    pub fn insert_notices(&mut self, at: Option<usize>, notices: impl IntoIterator<Item = Bytes>) {
        self.seal();
        let start = at.unwrap_or(self.frames.len()).clamp(self.encrypted, self.frames.len());
        for (at, notice) in (start..).zip(notices) {
            self.queued_bytes += notice.len();
            self.frames.insert(
                at,
                Queued {
                    bytes: notice,
                    shed_key: 0,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(keys: &[u64]) -> Outbound {
        let mut out = Outbound::default();
        for (i, &key) in keys.iter().enumerate() {
            out.push_sheddable(Bytes::from(vec![i as u8; 10]), key);
        }
        out
    }

    fn contents(out: &Outbound) -> Vec<u8> {
        out.chunks().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn shedding_drops_the_oldest_sheddable_frames_only() {
        let mut out = queue(&[0, 1, 2, 3]);
        let mut shed = Vec::new();
        assert_eq!(out.shed_oldest(15, &mut shed), Some(1));
        assert_eq!(shed, [1, 2], "two frames free 20 >= 15 bytes, oldest first");
        assert_eq!(out.queued_bytes(), 20);
        assert_eq!(contents(&out), [[0u8; 10], [3; 10]].concat());
        out.insert_notices(Some(1), [Bytes::from_static(b"gap")]);
        assert_eq!(contents(&out), [&[0u8; 10][..], b"gap", &[3; 10]].concat());
        assert_eq!(out.queued_bytes(), 23);
    }

    #[test]
    fn pinned_and_partly_written_frames_are_never_shed() {
        let mut out = queue(&[1, 2, 3]);
        out.pin(2);
        let mut shed = Vec::new();
        assert_eq!(out.shed_oldest(100, &mut shed), Some(2));
        assert_eq!(shed, [3], "the two frames in flight stay");
        out.consume(15);
        shed.clear();
        assert_eq!(out.shed_oldest(100, &mut shed), None, "the half-written frame stays");
        assert!(shed.is_empty());
        assert_eq!(contents(&out), [1u8; 5]);
        out.consume(5);
        assert!(out.is_empty());
    }

    #[test]
    fn encrypted_records_stay_in_front_in_order_and_are_never_shed() {
        let mut out = queue(&[1]);
        out.push_frame(OpCode::Text, b"t");
        let mut seen = Vec::new();
        out.encrypt_queued(|plain| {
            seen = plain.concat();
            Some(b"R1".to_vec())
        });
        assert_eq!(
            seen,
            [&[0u8; 10][..], &[0x81, 1, b't']].concat(),
            "the frames and the tail, in order"
        );
        out.push_sheddable(Bytes::from_static(b"plain"), 2);
        out.push_encrypted(Bytes::from_static(b"K"));
        assert_eq!(contents(&out), b"R1Kplain");
        assert_eq!(out.queued_bytes(), 8);
        let mut shed = Vec::new();
        out.shed_oldest(100, &mut shed);
        assert_eq!((shed.as_slice(), contents(&out)), (&[2][..], b"R1K".to_vec()));
        out.push_shared(Bytes::from_static(b"p2"));
        out.consume(2);
        out.encrypt_queued(|plain| Some(plain.concat().iter().map(u8::to_ascii_uppercase).collect()));
        assert_eq!(contents(&out), b"KP2");
        out.consume(3);
        assert!(out.is_empty());
        out.push_shared(Bytes::from_static(b"x"));
        out.encrypt_queued(|_| None);
        assert!(out.is_empty(), "what cannot be encrypted is dropped, never sent plain");
    }

    #[test]
    fn the_coalescing_tail_is_never_shed() {
        let mut out = queue(&[7]);
        out.push_frame(OpCode::Pong, b"p");
        let mut shed = Vec::new();
        out.shed_oldest(1000, &mut shed);
        assert_eq!(shed, [7]);
        assert_eq!(contents(&out), [0x8a, 1, b'p']);
        out.insert_notices(None, [Bytes::from_static(b"n")]);
        assert_eq!(
            contents(&out),
            [0x8a, 1, b'p', b'n'],
            "notices go after the sealed tail"
        );
    }
}
