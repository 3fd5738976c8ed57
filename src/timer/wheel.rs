//! The hierarchical timing wheel itself: level/slot placement, cascading and the expiry pass.

use super::buckets::{Buckets, CHUNK};
use super::store::Store;
use super::TimerKey;

/// log2 of the number of slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level; one `u64` occupancy bitmap covers a level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels needed so that any `u64` deadline has a slot: 11 × 6 bits ≥ 64 bits (the top level uses 4).
const LEVELS: usize = 64_usize.div_ceil(SLOT_BITS as usize);
/// Bucket id of the due bucket: timers whose deadline has been reached, waiting to be handed out.
/// Wheel slot `s` of level `l` is bucket `l * SLOTS + s`.
const DUE: u16 = (LEVELS * SLOTS) as u16;

/// A single-threaded hierarchical timing wheel over ticks, with a small `Copy` payload per timer.
///
/// See the [module documentation](super) for the data structure and costs. All methods are O(1)
/// except [`pop_expired`](Self::pop_expired) and the `advance*` methods, which cost O(1) per timer
/// handed out or cascaded plus O(levels) per non-empty slot reached;
/// [`advance_into_bounded`](Self::advance_into_bounded) bounds the timers one pass hands out.
pub struct TimerWheel<T> {
    store: Store<T>,
    buckets: Buckets,
    /// Bit `s` of `occupied[l]` is set iff slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    /// Wheel time: every timer with a deadline at or before it has fired or sits in the due bucket.
    now: u64,
}

impl<T: Copy> TimerWheel<T> {
    /// An empty wheel whose time starts at tick `now`.
    pub fn new(now: u64) -> Self {
        Self::with_capacity(now, 0)
    }

    /// An empty wheel at tick `now` with room for `capacity` timers before it allocates.
    pub fn with_capacity(now: u64, capacity: usize) -> Self {
        TimerWheel {
            store: Store::with_capacity(capacity),
            buckets: Buckets::new(LEVELS * SLOTS + 1, capacity),
            occupied: [0; LEVELS],
            now,
        }
    }

    /// The wheel's current tick: the largest `now` passed to an expiry pass that ran to completion
    /// (or the starting tick). While a [bounded pass](Self::advance_into_bounded) has left due
    /// timers behind, it is the tick the pass had reached, at most the `now` it was given.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of armed timers (including those due but not yet handed out).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// Arms a timer that fires once at tick `deadline`, carrying `payload`. A deadline at or before
    /// [`now`](Self::now) fires on the next expiry pass. The returned key stays valid until the timer
    /// fires or is cancelled.
    pub fn arm(&mut self, deadline: u64, payload: T) -> TimerKey {
        let index = self.store.insert(deadline, payload);
        self.link(index, deadline);
        self.store.key(index)
    }

    /// Moves the armed timer `key` to fire at `deadline` instead (earlier or later); the key stays
    /// valid. Returns `false`, changing nothing, if the timer already fired or was cancelled.
    ///
    /// Moving a pending deadline later only records the new deadline: the timer stays in its slot,
    /// which starts no later than the new deadline, and is re-filed when that slot is reached. So
    /// pushing back an idle timeout on every message costs one store to the entry.
    pub fn rearm(&mut self, key: TimerKey, deadline: u64) -> bool {
        let Some(index) = self.store.resolve(key) else {
            return false;
        };
        let (bucket, _) = self.store.placement(index);
        let later = deadline >= self.store.deadline(index);
        self.store.set_deadline(index, deadline);
        let stays = if bucket == DUE { deadline <= self.now } else { later };
        if !stays {
            self.unlink(index);
            self.link(index, deadline);
        }
        true
    }

    /// Disarms the timer `key` and returns its payload, or `None` if it already fired or was cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let index = self.store.resolve(key)?;
        self.unlink(index);
        Some(self.store.release(index))
    }

    /// Whether `key` names a timer that has neither fired nor been cancelled.
    pub fn is_armed(&self, key: TimerKey) -> bool {
        self.store.resolve(key).is_some()
    }

    /// The deadline the armed timer `key` was last (re)armed with, or `None` if it is not armed.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.store.resolve(key).map(|index| self.store.deadline(index))
    }

    /// A lower bound on the earliest pending deadline: no expiry pass with a `now` before it hands
    /// anything out. It is the start of the earliest non-empty slot: never after the earliest deadline,
    /// and equal to it when that timer is due within the current 64-tick block and was not moved later
    /// in place (see [`rearm`](Self::rearm)). `None` if no timer is armed.
    pub fn next_wake(&self) -> Option<u64> {
        if !self.buckets.is_empty(DUE) {
            return Some(self.now);
        }
        self.next_slot().map(|(_, _, start)| start)
    }

    /// Hands out the next timer due at or before tick `now`, or returns `None` (and moves the wheel's
    /// time to `now` if later) when none is left. The fired timer's key becomes invalid. Between
    /// calls the wheel may be changed freely, so a caller can re-arm from inside its expiry loop; a
    /// timer armed for a tick at or before `now` during the loop is handed out by the same loop.
    ///
    /// Order: by deadline tick (timers armed with a deadline already past count as due at the wheel's
    /// time when armed); timers due at the same tick come out in an unspecified but deterministic order.
    pub fn pop_expired(&mut self, now: u64) -> Option<T> {
        if !self.settle(now) {
            return None;
        }
        let index = self.buckets.pop(DUE).expect("settle found the due bucket non-empty");
        Some(self.store.release(index))
    }

    /// Runs the expiry pass up to tick `now`, calling `on_expire` with each fired payload in order.
    /// Allocates nothing. `on_expire` cannot touch the wheel; use [`pop_expired`](Self::pop_expired)
    /// or [`advance_into`](Self::advance_into) to re-arm while expiring.
    pub fn advance(&mut self, now: u64, mut on_expire: impl FnMut(T)) {
        while let Some(payload) = self.pop_expired(now) {
            on_expire(payload);
        }
    }

    /// Runs the expiry pass up to tick `now`, appending fired payloads to `out` in order (`out` is not
    /// cleared; reuse it across ticks to avoid allocating).
    pub fn advance_into(&mut self, now: u64, out: &mut Vec<T>) {
        self.advance(now, |payload| out.push(payload));
    }

    /// Runs at most `max` steps of the expiry pass up to tick `now`: appends up to `max` fired
    /// payloads to `out`, in order, and returns whether timers due at or before `now` remain.
    ///
    /// Use it to bound the work of one pass (say, the pings of a timer tick after a reconnect
    /// storm): when it returns `true`, call it again, with the same or a later `now`, after
    /// letting other work run. The timers left over are the earliest ones, so they come out
    /// first on the next call, and the order across calls is the order one unbounded pass
    /// would have used. Between calls the wheel may be changed freely; a timer armed meanwhile
    /// with a deadline at or before the wheel's time counts as due at that time, as with
    /// [`arm`](Self::arm). The wheel's [`now`](Self::now) reaches `now` only once nothing due
    /// remains, so it may lag behind the caller's tick while this returns `true`.
    ///
    /// `max` bounds the timers handed out, not the cascading: re-filing the timers of a slot
    /// the pass reaches costs O(1) per timer and is not counted (each timer is re-filed a
    /// bounded number of times, see the [module documentation](super)). With `max == 0` it
    /// hands out nothing and only reports whether anything is due.
    pub fn advance_into_bounded(&mut self, now: u64, max: usize, out: &mut Vec<T>) -> bool {
        for _ in 0..max {
            match self.pop_expired(now) {
                Some(payload) => out.push(payload),
                None => return false,
            }
        }
        self.settle(now)
    }

    /// Cascades the slots that start at or before `now` until the due bucket holds a timer
    /// (returns `true`) or no such slot is left (moves the wheel's time to `now` if later and
    /// returns `false`).
    fn settle(&mut self, now: u64) -> bool {
        loop {
            if !self.buckets.is_empty(DUE) {
                return true;
            }
            match self.next_slot() {
                Some((level, slot, start)) if start <= now => self.cascade(level, slot, start),
                _ => break,
            }
        }
        self.now = self.now.max(now);
        false
    }

    /// Empties slot `slot` of `level`, which starts at tick `start` (≤ the pass's `now`): moves the
    /// wheel's time to `start`, then re-files every timer of the slot relative to it, into the due
    /// bucket or a lower level (or anywhere, for a timer whose deadline was moved later in place).
    ///
    /// The deadlines of a chunk are all loaded before any is filed: those loads are independent
    /// cache misses the CPU overlaps, whereas filing stores to addresses that depend on them, and
    /// interleaving the two makes each miss wait for the previous one (measured: ~4× slower).
    fn cascade(&mut self, level: usize, slot: usize, start: u64) {
        self.now = start;
        self.occupied[level] &= !(1 << slot);
        let mut detached = self.buckets.detach((level * SLOTS + slot) as u16);
        while let Some((indices, count)) = self.buckets.drain_chunk(&mut detached) {
            let indices = &indices[..count];
            let mut deadlines = [0; CHUNK];
            for (deadline, &index) in deadlines.iter_mut().zip(indices) {
                *deadline = self.store.deadline(index);
            }
            for (&index, &deadline) in indices.iter().zip(&deadlines) {
                self.link(index, deadline);
            }
        }
    }

    /// The lowest non-empty level's first non-empty slot, as (level, slot, start tick). Every timer
    /// filed at level `l` shares the bits above level `l` with `now` and has a greater level-`l`
    /// digit, so the lowest non-empty level holds the earliest slots and its lowest set bit is the
    /// next one. A timer's slot never starts after its deadline.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let slot = self.occupied[level].trailing_zeros() as usize;
        let shift = level as u32 * SLOT_BITS;
        let above = self.now.checked_shr(shift + SLOT_BITS).unwrap_or(0);
        let start = above.checked_shl(shift + SLOT_BITS).unwrap_or(0) | (slot as u64) << shift;
        debug_assert!(
            start > self.now,
            "slot {level}/{slot} starts at {start}, not after {}",
            self.now
        );
        Some((level, slot, start))
    }

    /// The bucket a timer due at `deadline` belongs in, given the wheel's time: the due bucket if the
    /// deadline has passed, else the level of the highest bit where it differs from `now`.
    fn bucket_for(&self, deadline: u64) -> u16 {
        if deadline <= self.now {
            return DUE;
        }
        let level = (u64::BITS - 1 - (deadline ^ self.now).leading_zeros()) / SLOT_BITS;
        let slot = (deadline >> (level * SLOT_BITS)) as usize % SLOTS;
        (level as usize * SLOTS + slot) as u16
    }

    /// Files entry `index` (not in any bucket), whose stored deadline is `deadline`, in the bucket
    /// that deadline calls for.
    fn link(&mut self, index: u32, deadline: u64) {
        let bucket = self.bucket_for(deadline);
        let pos = self.buckets.push(bucket, index);
        self.store.place(index, bucket, pos);
        if bucket != DUE {
            self.occupied[usize::from(bucket) / SLOTS] |= 1 << (usize::from(bucket) % SLOTS);
        }
    }

    /// Takes entry `index` out of its bucket, clearing the slot's occupancy bit if it became empty.
    fn unlink(&mut self, index: u32) {
        let (bucket, pos) = self.store.placement(index);
        if let Some(moved) = self.buckets.remove(bucket, pos) {
            self.store.set_pos(moved, pos);
        }
        if bucket != DUE && self.buckets.is_empty(bucket) {
            self.occupied[usize::from(bucket) / SLOTS] &= !(1 << (usize::from(bucket) % SLOTS));
        }
    }
}
