//! Timer entries in one `Vec`, with generation-checked keys and reuse of freed entries.
//!
//! Freed entries form a free list (through their `pos` field) and are reused LIFO. Each entry keeps a
//! generation that is bumped on every free, so a [`TimerKey`] from before the reuse no longer
//! resolves. (The `slab` crate cannot be used here: it drops a vacant entry's contents, so the
//! generation would be lost.)

use std::num::NonZeroU32;

use super::TimerKey;

/// "No entry" in the free list.
const NIL: u32 = u32::MAX;
/// Bucket id of an entry that is not armed (on the free list).
const VACANT: u16 = u16::MAX;

/// One timer entry. `payload` and `deadline` of a vacant entry are stale and never read.
struct Node<T> {
    deadline: u64,
    payload: T,
    generation: NonZeroU32,
    /// Position in its bucket while armed; next free entry while vacant.
    pos: u32,
    bucket: u16,
}

/// The arena of timer entries. Where an entry is placed (bucket and position) is recorded here but
/// managed by the wheel.
pub(super) struct Store<T> {
    nodes: Vec<Node<T>>,
    free: u32,
    len: usize,
}

impl<T: Copy> Store<T> {
    /// An empty store with room for `capacity` entries before it reallocates.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Store {
            nodes: Vec::with_capacity(capacity),
            free: NIL,
            len: 0,
        }
    }

    /// Number of armed entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Allocates an entry, reusing a freed one if any, and returns its index. The caller must
    /// [`place`](Self::place) it before handing out its [`key`](Self::key).
    pub(super) fn insert(&mut self, deadline: u64, payload: T) -> u32 {
        self.len += 1;
        if self.free != NIL {
            let index = self.free;
            let node = &mut self.nodes[index as usize];
            self.free = node.pos;
            node.deadline = deadline;
            node.payload = payload;
            return index;
        }
        let index = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("timer wheel holds at most u32::MAX - 1 timers");
        let generation = NonZeroU32::MIN;
        self.nodes.push(Node {
            deadline,
            payload,
            generation,
            pos: NIL,
            bucket: VACANT,
        });
        index
    }

    /// The key naming entry `index` as it is now.
    pub(super) fn key(&self, index: u32) -> TimerKey {
        TimerKey {
            index,
            generation: self.nodes[index as usize].generation,
        }
    }

    /// The index of the armed entry `key` names, or `None` if it fired, was cancelled, or never existed.
    pub(super) fn resolve(&self, key: TimerKey) -> Option<u32> {
        let node = self.nodes.get(key.index as usize)?;
        (node.generation == key.generation && node.bucket != VACANT).then_some(key.index)
    }

    /// Deadline stored for entry `index`.
    pub(super) fn deadline(&self, index: u32) -> u64 {
        self.nodes[index as usize].deadline
    }

    /// Replaces the deadline stored for entry `index`.
    pub(super) fn set_deadline(&mut self, index: u32, deadline: u64) {
        self.nodes[index as usize].deadline = deadline;
    }

    /// Bucket and position of the armed entry `index`.
    pub(super) fn placement(&self, index: u32) -> (u16, u32) {
        let node = &self.nodes[index as usize];
        (node.bucket, node.pos)
    }

    /// Records that entry `index` now sits in `bucket` at `pos`.
    pub(super) fn place(&mut self, index: u32, bucket: u16, pos: u32) {
        let node = &mut self.nodes[index as usize];
        node.bucket = bucket;
        node.pos = pos;
    }

    /// Records that entry `index` moved to `pos` within its bucket.
    pub(super) fn set_pos(&mut self, index: u32, pos: u32) {
        self.nodes[index as usize].pos = pos;
    }

    /// Frees entry `index` (already taken out of its bucket), invalidating its key, and returns its
    /// payload.
    pub(super) fn release(&mut self, index: u32) -> T {
        let node = &mut self.nodes[index as usize];
        node.bucket = VACANT;
        node.generation = node.generation.checked_add(1).unwrap_or(NonZeroU32::MIN);
        node.pos = self.free;
        self.free = index;
        self.len -= 1;
        node.payload
    }
}
