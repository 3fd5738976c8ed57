//! Per-core timers (heartbeats, handshake and idle timeouts) on a hierarchical timing wheel.
//!
//! The wheel is single-threaded and deterministic: it never reads a clock. Time is a `u64` tick
//! count that the caller passes in; the tick length lives outside (see [`duration_to_ticks`] and
//! [`ticks_elapsed`]).
//!
//! # Data structure
//!
//! [`TimerWheel`] has 11 levels of 64 slots. A timer goes to level `l` when the highest bit in which
//! its deadline differs from the wheel's current tick lies in bits `6l..6l+6`, and to slot `s` = those
//! six bits of the deadline; so level 0 holds the current 64-tick block one tick per slot, level 1
//! the current 4096-tick block 64 ticks per slot, and so on. 11 × 6 bits cover the whole `u64`
//! range, so **every deadline has a slot**: there is no span to overflow, no clamping and no
//! "rounds" counter to re-check. A slot never starts after the deadlines of the timers in it.
//!
//! - Timer entries live in one `Vec` and are reused when freed. A slot is a bucket of entry indices
//!   kept in pooled 64-byte chunks of 15; an entry records its bucket position. Nothing is
//!   allocated once the entry arena and chunk pool have reached their peak (about 32 + 4.3 bytes per
//!   timer for an 8-byte payload); [`TimerWheel::with_capacity`] reserves both up front.
//! - [`arm`](TimerWheel::arm), [`rearm`](TimerWheel::rearm) and [`cancel`](TimerWheel::cancel) are
//!   O(1): removal moves the bucket's last index into the hole. Moving a deadline *later* is lazy:
//!   only the entry's deadline changes, and the timer is re-filed when its old slot comes up.
//! - The expiry pass ([`TimerWheel::advance`]) finds the next non-empty slot with one `u64` bitmap
//!   per level (`trailing_zeros`), so its cost does not depend on how many ticks elapsed: a stall of
//!   a million ticks costs the same as one tick if nothing is due in between. Reaching a slot
//!   *cascades* its timers one level or more down, or into the due bucket once their tick has come.
//!   A timer armed `d` ticks ahead is re-filed at most ⌊log64 d⌋ + 2 times, each O(1) (30 s at 1 ms
//!   ticks: at most 4), plus once for each slot it was lazily moved later out of.
//! - Timers fire in deadline order, each exactly at its deadline tick; timers due at the same tick
//!   come out in an unspecified but deterministic order.
//! - One pass can be bounded ([`TimerWheel::advance_into_bounded`]): it hands out at most a given
//!   number of timers and says whether more are due; the next pass continues with those first.
//!
//! # Spreading
//!
//! [`spread_first_check`] gives each connection its own delay for its first liveness check, so
//! that connections opened in one tick are not checked (and pinged) in one tick ever after.
//!
//! # Keys
//!
//! [`TimerKey`] is an entry index plus a generation bumped each time the entry is freed, so a key
//! whose timer fired or was cancelled never touches a later timer that reuses the entry (the
//! generation is 32 bits; it would take 2³² reuses of one entry to alias). `Option<TimerKey>` is 8
//! bytes.

mod buckets;
mod spread;
mod store;
#[cfg(test)]
mod tests;
mod wheel;

use std::num::NonZeroU32;
use std::time::Duration;

pub use spread::spread_first_check;
pub use wheel::TimerWheel;

/// Handle to an armed timer, returned by [`TimerWheel::arm`]. Valid until the timer fires or is
/// cancelled; afterwards every operation on it is a no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: NonZeroU32,
}

/// Number of ticks of length `tick` covering `duration`, rounded up and at least 1: use it to turn a
/// timeout into a deadline (`now + duration_to_ticks(timeout, tick)`). With `now` from
/// [`ticks_elapsed`] the timer fires between `duration - tick` and `duration + tick` after arming,
/// depending on where in the current tick it was armed. Saturates at `u64::MAX`.
///
/// # Panics
///
/// If `tick` is zero.
pub fn duration_to_ticks(duration: Duration, tick: Duration) -> u64 {
    let tick = nonzero_nanos(tick);
    let ticks = duration.as_nanos().div_ceil(tick).max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Number of whole ticks of length `tick` in `elapsed`, rounded down: the current tick, given the time
/// elapsed since the wheel's tick 0. Saturates at `u64::MAX`.
///
/// # Panics
///
/// If `tick` is zero.
pub fn ticks_elapsed(elapsed: Duration, tick: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos() / nonzero_nanos(tick)).unwrap_or(u64::MAX)
}

/// `tick` in nanoseconds, rejecting zero.
fn nonzero_nanos(tick: Duration) -> u128 {
    let nanos = tick.as_nanos();
    assert!(nanos > 0, "timer tick length must be positive");
    nanos
}
