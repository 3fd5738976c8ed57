//! Timer entries in one `Vec`, threaded onto intrusive doubly linked lists by index.
//!
//! Every entry sits in exactly one list (a wheel slot or the due list) while armed. Freed entries
//! form a singly linked free list through the same `next` field and are reused LIFO; each keeps a
//! generation that is bumped on every free, so a [`TimerKey`] from before the reuse no longer
//! resolves. (The `slab` crate cannot be used here: it drops a vacant entry's contents, so the
//! generation would be lost.)

use std::num::NonZeroU32;

use super::TimerKey;

/// Index meaning "no entry" in every link field.
const NIL: u32 = u32::MAX;
/// List id of an entry that is not armed (on the free list).
const VACANT: u16 = u16::MAX;

/// One timer entry. `payload` and `deadline` of a vacant entry are stale and never read.
struct Node<T> {
    deadline: u64,
    payload: T,
    next: u32,
    prev: u32,
    generation: NonZeroU32,
    list: u16,
}

/// Head and tail of one list (both `NIL` when empty).
#[derive(Clone, Copy)]
struct Ends {
    head: u32,
    tail: u32,
}

const EMPTY: Ends = Ends { head: NIL, tail: NIL };

/// Entry arena plus a fixed number of FIFO lists over it, identified by `u16` list ids.
pub(super) struct Store<T> {
    nodes: Vec<Node<T>>,
    lists: Box<[Ends]>,
    free: u32,
    len: usize,
}

impl<T: Copy> Store<T> {
    /// An empty store with `lists` lists and room for `capacity` entries before it reallocates.
    pub(super) fn new(lists: usize, capacity: usize) -> Self {
        assert!(lists < usize::from(VACANT), "too many lists: {lists}");
        Store {
            nodes: Vec::with_capacity(capacity),
            lists: vec![EMPTY; lists].into_boxed_slice(),
            free: NIL,
            len: 0,
        }
    }

    /// Number of armed entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Allocates an entry (reusing a freed one if any) and appends it to `list`.
    pub(super) fn insert(&mut self, deadline: u64, payload: T, list: u16) -> TimerKey {
        let index = if self.free != NIL {
            let index = self.free;
            let node = &mut self.nodes[index as usize];
            self.free = node.next;
            node.deadline = deadline;
            node.payload = payload;
            index
        } else {
            let index = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel holds at most u32::MAX - 1 timers");
            let generation = NonZeroU32::MIN;
            self.nodes.push(Node {
                deadline,
                payload,
                next: NIL,
                prev: NIL,
                generation,
                list: VACANT,
            });
            index
        };
        self.len += 1;
        self.push_back(index, list);
        TimerKey {
            index,
            generation: self.nodes[index as usize].generation,
        }
    }

    /// The index of the armed entry `key` names, or `None` if it fired, was cancelled, or never existed.
    pub(super) fn resolve(&self, key: TimerKey) -> Option<u32> {
        let node = self.nodes.get(key.index as usize)?;
        (node.generation == key.generation && node.list != VACANT).then_some(key.index)
    }

    /// Deadline stored for entry `index`.
    pub(super) fn deadline(&self, index: u32) -> u64 {
        self.nodes[index as usize].deadline
    }

    /// Replaces the deadline of entry `index` (the caller relinks it).
    pub(super) fn set_deadline(&mut self, index: u32, deadline: u64) {
        self.nodes[index as usize].deadline = deadline;
    }

    /// Whether `list` holds no entry.
    pub(super) fn is_empty(&self, list: u16) -> bool {
        self.lists[usize::from(list)].head == NIL
    }

    /// Appends the unlinked entry `index` to `list`.
    pub(super) fn push_back(&mut self, index: u32, list: u16) {
        let ends = &mut self.lists[usize::from(list)];
        let old_tail = ends.tail;
        ends.tail = index;
        if old_tail == NIL {
            ends.head = index;
        } else {
            self.nodes[old_tail as usize].next = index;
        }
        let node = &mut self.nodes[index as usize];
        node.prev = old_tail;
        node.next = NIL;
        node.list = list;
    }

    /// Removes entry `index` from its list and returns that list's id. The entry stays allocated.
    pub(super) fn unlink(&mut self, index: u32) -> u16 {
        let Node { prev, next, list, .. } = self.nodes[index as usize];
        debug_assert_ne!(list, VACANT, "unlinking a free entry");
        let ends = &mut self.lists[usize::from(list)];
        if prev == NIL {
            ends.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            ends.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        list
    }

    /// Unlinks and returns the first entry of `list`, if any. The entry stays allocated.
    pub(super) fn pop_front(&mut self, list: u16) -> Option<u32> {
        let head = self.lists[usize::from(list)].head;
        (head != NIL).then(|| {
            self.unlink(head);
            head
        })
    }

    /// Frees the unlinked entry `index`, invalidating its key, and returns its payload.
    pub(super) fn release(&mut self, index: u32) -> T {
        let node = &mut self.nodes[index as usize];
        node.list = VACANT;
        node.generation = node.generation.checked_add(1).unwrap_or(NonZeroU32::MIN);
        node.next = self.free;
        self.free = index;
        self.len -= 1;
        node.payload
    }
}
