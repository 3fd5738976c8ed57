//! Unordered bags of `u32` items stored in pooled 64-byte chunks, with O(1) push, pop and removal by
//! position.
//!
//! All chunks live in one `Vec<u32>`: a chunk is 16 words, 15 items and a link to the next chunk of
//! the same bucket (or of the free pool). A bucket is a stack of chunks whose head is the only one
//! that may be partly filled. An item's position is its word index, so removal moves the bucket's
//! top item into the hole in O(1). Emptied chunks go back to the pool, so memory stays proportional
//! to the peak number of items, and nothing is allocated once the pool has reached that peak.
//!
//! Reading a bucket chunk by chunk gives 15 independent item values per cache miss; a linked list
//! per item would give one, and serialise every miss behind the previous one.

/// Items per chunk.
pub(super) const CHUNK: usize = 15;
/// Words per chunk: the items plus the link word.
const STRIDE: usize = CHUNK + 1;
/// "No chunk" in links and bucket heads.
const NIL: u32 = u32::MAX;

/// One bucket: its head chunk and item count.
#[derive(Clone, Copy)]
struct Bucket {
    head: u32,
    len: u32,
}

const EMPTY: Bucket = Bucket { head: NIL, len: 0 };

/// The chunks of a bucket detached by [`Buckets::detach`], read back with [`Buckets::drain_chunk`].
pub(super) struct Detached {
    chunk: u32,
    len: u32,
}

/// A fixed number of buckets, identified by `u16`, sharing one chunk pool.
pub(super) struct Buckets {
    words: Vec<u32>,
    free: u32,
    buckets: Box<[Bucket]>,
}

impl Buckets {
    /// `count` empty buckets with room for `items` items before the pool allocates.
    pub(super) fn new(count: usize, items: usize) -> Self {
        let chunks = items.div_ceil(CHUNK) + count;
        Buckets {
            words: Vec::with_capacity(chunks * STRIDE),
            free: NIL,
            buckets: vec![EMPTY; count].into(),
        }
    }

    /// Whether bucket `b` holds no item.
    pub(super) fn is_empty(&self, b: u16) -> bool {
        self.buckets[usize::from(b)].len == 0
    }

    /// Adds `item` to bucket `b` and returns its position.
    pub(super) fn push(&mut self, b: u16, item: u32) -> u32 {
        let Bucket { head, len } = self.buckets[usize::from(b)];
        let fill = len as usize % CHUNK;
        let head = if fill == 0 {
            let chunk = self.alloc_chunk();
            self.words[chunk as usize * STRIDE + CHUNK] = head;
            chunk
        } else {
            head
        };
        self.buckets[usize::from(b)] = Bucket { head, len: len + 1 };
        let pos = head as usize * STRIDE + fill;
        self.words[pos] = item;
        pos as u32
    }

    /// Removes and returns the most recently placed item of bucket `b`, if any.
    pub(super) fn pop(&mut self, b: u16) -> Option<u32> {
        let Bucket { head, len } = self.buckets[usize::from(b)];
        let len = len.checked_sub(1)?;
        let item = self.words[head as usize * STRIDE + len as usize % CHUNK];
        let head = if len as usize % CHUNK == 0 {
            self.free_chunk(head)
        } else {
            head
        };
        self.buckets[usize::from(b)] = Bucket { head, len };
        Some(item)
    }

    /// Removes the item at `pos` from bucket `b`. If another item moved into `pos` to fill the hole,
    /// returns that item (whose position is now `pos`).
    pub(super) fn remove(&mut self, b: u16, pos: u32) -> Option<u32> {
        let Bucket { head, len } = self.buckets[usize::from(b)];
        debug_assert!(len > 0, "removing from empty bucket {b}");
        let top = head as usize * STRIDE + (len as usize - 1) % CHUNK;
        let last = self.pop(b)?;
        (top != pos as usize).then(|| {
            self.words[pos as usize] = last;
            last
        })
    }

    /// Empties bucket `b`, handing its items over to be read with [`drain_chunk`](Self::drain_chunk).
    pub(super) fn detach(&mut self, b: u16) -> Detached {
        let Bucket { head, len } = std::mem::replace(&mut self.buckets[usize::from(b)], EMPTY);
        Detached { chunk: head, len }
    }

    /// Copies out the next chunk of `detached` (its items and their count), returning the chunk to
    /// the pool; `None` once all are read. Buckets may be changed between calls.
    pub(super) fn drain_chunk(&mut self, detached: &mut Detached) -> Option<([u32; CHUNK], usize)> {
        if detached.chunk == NIL {
            return None;
        }
        let count = (detached.len as usize - 1) % CHUNK + 1;
        let start = detached.chunk as usize * STRIDE;
        let mut items = [0; CHUNK];
        // A fixed-size copy compiles to a few vector moves; words past `count` are stale and unused.
        items.copy_from_slice(&self.words[start..start + CHUNK]);
        detached.len -= count as u32;
        detached.chunk = self.free_chunk(detached.chunk);
        Some((items, count))
    }

    /// Takes a chunk from the pool, growing it if empty.
    fn alloc_chunk(&mut self) -> u32 {
        if self.free != NIL {
            let chunk = self.free;
            self.free = self.words[chunk as usize * STRIDE + CHUNK];
            return chunk;
        }
        let chunk = self.words.len() / STRIDE;
        assert!(chunk < (NIL as usize) / STRIDE, "timer wheel bucket pool is full");
        self.words.resize(self.words.len() + STRIDE, NIL);
        chunk as u32
    }

    /// Returns `chunk` to the pool and returns the chunk it linked to.
    fn free_chunk(&mut self, chunk: u32) -> u32 {
        let link = &mut self.words[chunk as usize * STRIDE + CHUNK];
        let next = std::mem::replace(link, self.free);
        self.free = chunk;
        next
    }
}
