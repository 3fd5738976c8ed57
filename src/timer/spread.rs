//! Spreading the first liveness check of connections that open together.
//!
//! Without it, connections opened in one tick (a reconnect storm after a restart or a network
//! blip) are first checked in one tick, pinged in one tick, and, since a silent connection's next
//! ping is one interval after its last, pinged together forever after: one expiry pass per
//! interval does the work of all of them. Giving each connection its own offset, derived from a
//! seed such as its id, spreads that work over half an interval from the start, and the spread
//! persists because each connection keeps its own phase.

/// The delay, in ticks, of a connection's first liveness check: a value in
/// `[⌈interval_ticks / 2⌉, interval_ticks]`, fixed by `seed` (the same seed always gives the same
/// delay) and spread evenly over that range across seeds, consecutive ones included.
///
/// Contract for the caller (the per-core timer pass): arm the first check at
/// `open_tick + spread_first_check(interval, seed)` instead of `open_tick + interval`, and at that
/// first check ping a connection that has been silent for at least that delay (not the full
/// interval); later checks are unchanged (next ping one interval after the previous one, or one
/// interval after the last traffic). A connection is then never first pinged later than
/// `interval_ticks` after it opened, and at most half an interval early; a ping that comes early
/// only gives the client more time to answer before the pong timeout.
///
/// Seeds: anything that differs between connections of one core, e.g. `ConnId::as_u64()`. An
/// `interval_ticks` of 0 or 1 gives `interval_ticks` back (nothing to spread).
pub fn spread_first_check(interval_ticks: u64, seed: u64) -> u64 {
    let low = interval_ticks.div_ceil(2);
    let choices = interval_ticks - low + 1;
    low + mix(seed) % choices
}

/// The splitmix64 finaliser: a bijection on `u64` whose outputs for consecutive inputs look
/// independent, so the modulo above is even for sequential ids.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
