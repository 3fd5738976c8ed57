use std::time::Duration;

use proptest::prelude::*;

use super::{duration_to_ticks, spread_first_check, ticks_elapsed, TimerKey, TimerWheel};

/// Deterministic xorshift64* generator for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish value in `1..=max`.
    fn below(&mut self, max: u64) -> u64 {
        self.next() % max + 1
    }
}

/// Runs an expiry pass to `now` and returns what fired, in order.
fn fire<T: Copy>(wheel: &mut TimerWheel<T>, now: u64) -> Vec<T> {
    let mut out = Vec::new();
    wheel.advance_into(now, &mut out);
    out
}

/// Sorts `fired` after checking that it is in deadline order (`deadline_of`); timers due at the same
/// tick may come out in any order.
fn sorted_by_deadline<T: Copy + Ord>(mut fired: Vec<T>, deadline_of: impl Fn(T) -> u64) -> Vec<T> {
    for pair in fired.windows(2) {
        assert!(
            deadline_of(pair[0]) <= deadline_of(pair[1]),
            "fired out of deadline order"
        );
    }
    fired.sort_unstable();
    fired
}

/// Advances one tick at a time from `wheel.now() + 1` to `end`, checking that every timer fires at
/// exactly its deadline (`deadline_of(payload)`), and returns all payloads in firing order.
fn fire_tick_by_tick<T: Copy>(wheel: &mut TimerWheel<T>, end: u64, deadline_of: impl Fn(T) -> u64) -> Vec<T> {
    let mut all = Vec::new();
    let mut batch = Vec::new();
    for tick in wheel.now() + 1..=end {
        wheel.advance_into(tick, &mut batch);
        for &payload in &batch {
            assert_eq!(deadline_of(payload), tick, "timer fired at the wrong tick");
        }
        all.append(&mut batch);
    }
    all
}

#[test]
fn fires_in_deadline_order_across_levels() {
    let deadlines = [5_000, 3, 64, 63, 65, 4_096, 1, 200_000, 4_095, 70, 262_144, 2];
    let mut wheel = TimerWheel::new(0);
    for &deadline in &deadlines {
        wheel.arm(deadline, deadline);
    }
    let mut sorted = deadlines.to_vec();
    sorted.sort_unstable();
    assert_eq!(fire_tick_by_tick(&mut wheel, 300_000, |d| d), sorted);
    assert!(wheel.is_empty());

    for &deadline in &deadlines {
        wheel.arm(wheel.now() + deadline, deadline);
    }
    assert_eq!(
        fire(&mut wheel, u64::MAX),
        sorted,
        "one pass over everything must keep deadline order"
    );
}

#[test]
fn same_tick_batch_fires_together() {
    let mut wheel = TimerWheel::new(0);
    for id in 0..5 {
        wheel.arm(100, id);
    }
    wheel.arm(99, 99);
    wheel.arm(101, 101);
    assert_eq!(fire(&mut wheel, 98), Vec::<u32>::new());
    assert_eq!(fire(&mut wheel, 99), [99]);
    assert_eq!(sorted_by_deadline(fire(&mut wheel, 100), |_| 100), [0, 1, 2, 3, 4]);
    assert_eq!(wheel.len(), 1);
    assert_eq!(fire(&mut wheel, 101), [101]);
}

#[test]
fn equal_deadlines_armed_at_different_levels_fire_together() {
    // The first timer sits two levels up and cascades; the later ones are armed closer to the
    // deadline, at lower levels.
    let mut wheel = TimerWheel::new(0);
    let deadline = 3 * 4_096 + 100;
    wheel.arm(deadline, 0);
    for (id, now) in [(1, 4_100), (2, 3 * 4_096 + 3), (3, 3 * 4_096 + 70)] {
        assert_eq!(fire(&mut wheel, now), Vec::<u32>::new());
        wheel.arm(deadline, id);
    }
    assert_eq!(fire(&mut wheel, deadline - 1), Vec::<u32>::new());
    assert_eq!(
        sorted_by_deadline(fire(&mut wheel, deadline), |_| deadline),
        [0, 1, 2, 3]
    );
}

#[test]
fn cancel_returns_payload_once_and_timer_never_fires() {
    let mut wheel = TimerWheel::new(0);
    let keep = wheel.arm(10, 'k');
    let gone = wheel.arm(10, 'g');
    let far = wheel.arm(1 << 40, 'f');
    assert!(wheel.is_armed(gone));
    assert_eq!(wheel.cancel(gone), Some('g'));
    assert_eq!(wheel.cancel(gone), None);
    assert!(!wheel.is_armed(gone));
    assert_eq!(wheel.cancel(far), Some('f'));
    assert_eq!(
        wheel.next_wake(),
        Some(10),
        "cancelling the far timer must free its slot"
    );
    assert_eq!(fire(&mut wheel, 1 << 41), ['k']);
    assert!(!wheel.is_armed(keep));
    assert_eq!(wheel.cancel(keep), None, "a fired timer cannot be cancelled");
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_wake(), None);
}

#[test]
fn rearm_moves_deadline_earlier_and_later_and_keeps_key() {
    let mut wheel = TimerWheel::new(0);
    let key = wheel.arm(1_000, "a");
    assert!(wheel.rearm(key, 5_000));
    assert_eq!(wheel.deadline(key), Some(5_000));
    assert_eq!(fire(&mut wheel, 4_999), Vec::<&str>::new());
    assert!(wheel.rearm(key, 5_010), "later");
    assert_eq!(fire(&mut wheel, 5_000), Vec::<&str>::new());
    assert!(wheel.rearm(key, 5_002), "earlier");
    assert_eq!(fire(&mut wheel, 5_001), Vec::<&str>::new());
    assert!(wheel.is_armed(key));
    assert_eq!(fire(&mut wheel, 5_002), ["a"]);
    assert!(!wheel.rearm(key, 6_000), "a fired timer cannot be re-armed");
    assert!(wheel.is_empty());
}

#[test]
fn past_deadline_fires_at_next_pass() {
    let mut wheel = TimerWheel::new(500);
    wheel.arm(10, 1);
    let key = wheel.arm(900, 2);
    assert!(wheel.rearm(key, 500));
    assert_eq!(wheel.next_wake(), Some(500));
    assert_eq!(sorted_by_deadline(fire(&mut wheel, 500), |_| 500), [1, 2]);
}

#[test]
fn rearm_later_in_place_fires_at_the_final_deadline() {
    let mut wheel = TimerWheel::new(0);
    let near = wheel.arm(10, "near");
    let far = wheel.arm(5_000, "far");
    // Pushed back repeatedly, like an idle timeout refreshed by traffic, across level boundaries.
    for deadline in [20, 63, 64, 4_096, 100_000, 100_001] {
        assert!(wheel.rearm(near, deadline));
        assert_eq!(wheel.deadline(near), Some(deadline));
    }
    assert!(wheel.next_wake().is_some_and(|wake| wake <= 5_000));
    assert_eq!(fire(&mut wheel, 5_000), ["far"]);
    assert!(!wheel.rearm(far, 99_999), "fired");
    wheel.arm(99_999, "far");
    assert!(wheel.rearm(near, 200_000), "later again");
    assert!(
        wheel.rearm(near, 100_002),
        "then earlier than the slot it was re-filed in"
    );
    assert_eq!(fire(&mut wheel, 99_998), Vec::<&str>::new());
    assert_eq!(fire(&mut wheel, 99_999), ["far"]);
    assert_eq!(fire(&mut wheel, 100_001), Vec::<&str>::new());
    assert_eq!(fire(&mut wheel, 100_002), ["near"]);
}

#[test]
fn rearm_of_a_due_timer_to_the_future_takes_it_out_of_the_due_batch() {
    let mut wheel = TimerWheel::new(100);
    let key = wheel.arm(50, 1);
    assert!(wheel.rearm(key, 90), "still past: stays due");
    assert!(wheel.rearm(key, 150));
    assert_eq!(fire(&mut wheel, 149), Vec::<u8>::new());
    assert_eq!(fire(&mut wheel, 150), [1]);
}

#[test]
fn stale_key_after_reuse_cannot_touch_new_timer() {
    let mut wheel = TimerWheel::new(0);
    let old = wheel.arm(10, 1);
    assert_eq!(wheel.cancel(old), Some(1));
    let new = wheel.arm(20, 2);
    assert_ne!(old, new, "same entry, different generation");
    assert!(!wheel.is_armed(old));
    assert_eq!(wheel.deadline(old), None);
    assert!(!wheel.rearm(old, 5));
    assert_eq!(wheel.cancel(old), None);
    assert_eq!(wheel.deadline(new), Some(20));

    // The same after the old timer fired instead of being cancelled.
    assert_eq!(fire(&mut wheel, 20), [2]);
    let newer = wheel.arm(30, 3);
    assert_eq!(wheel.cancel(new), None);
    assert!(wheel.is_armed(newer));
    assert_eq!(fire(&mut wheel, 30), [3]);
    assert_eq!(std::mem::size_of::<Option<TimerKey>>(), 8);
}

#[test]
fn wraps_around_slot_and_level_boundaries() {
    for start in [60, 4_096 - 3, 262_144 - 100, (1 << 36) - 1, u64::MAX - 200] {
        let mut wheel = TimerWheel::new(start);
        let deadlines: Vec<u64> = (1..=150).map(|d| start.saturating_add(d)).collect();
        for &deadline in deadlines.iter().rev() {
            wheel.arm(deadline, deadline);
        }
        let end = start.saturating_add(150);
        assert_eq!(fire_tick_by_tick(&mut wheel, end, |d| d), deadlines, "start {start}");
        assert!(wheel.is_empty(), "start {start}");
    }
}

#[test]
fn far_future_deadlines_fire_exactly_on_time() {
    let deadlines = [1 << 20, (1 << 36) + 7, (1 << 50) + 12_345, (1 << 63) + 1, u64::MAX];
    let mut wheel = TimerWheel::new(0);
    for &deadline in deadlines.iter().rev() {
        wheel.arm(deadline, deadline);
    }
    for &deadline in &deadlines {
        let wake = wheel.next_wake().expect("timers pending");
        assert!(wake <= deadline, "next_wake {wake} is after deadline {deadline}");
        assert_eq!(fire(&mut wheel, deadline - 1), Vec::<u64>::new());
        assert_eq!(fire(&mut wheel, deadline), [deadline]);
    }
    assert!(wheel.is_empty());
}

#[test]
fn one_pass_after_a_stall_fires_everything_in_order() {
    let mut rng = Rng(7);
    let mut wheel = TimerWheel::new(1_000);
    let mut expected: Vec<(u64, u32)> = (0..10_000).map(|id| (1_000 + rng.below(1_000_000), id)).collect();
    for &(deadline, id) in &expected {
        wheel.arm(deadline, (deadline, id));
    }
    let late = wheel.arm(5_000_000, (5_000_000, u32::MAX));
    expected.sort_unstable();
    assert_eq!(
        sorted_by_deadline(fire(&mut wheel, 1_001_000), |(deadline, _)| deadline),
        expected
    );
    assert_eq!(wheel.now(), 1_001_000);
    assert_eq!(wheel.len(), 1);
    assert!(wheel.is_armed(late));
}

#[test]
fn rearming_inside_the_expiry_loop_repeats_within_one_pass() {
    let mut wheel = TimerWheel::new(0);
    wheel.arm(10, ());
    let mut fired_at = Vec::new();
    while wheel.pop_expired(100).is_some() {
        fired_at.push(wheel.now());
        wheel.arm(wheel.now() + 10, ());
    }
    assert_eq!(fired_at, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    assert_eq!(wheel.next_wake(), Some(110));
}

#[test]
fn time_never_goes_backwards() {
    let mut wheel = TimerWheel::new(100);
    wheel.arm(150, 1);
    assert_eq!(fire(&mut wheel, 50), Vec::<u8>::new());
    assert_eq!(wheel.now(), 100);
    assert_eq!(fire(&mut wheel, 150), [1]);
}

#[test]
fn million_timers_each_fire_once_at_their_tick() {
    const COUNT: usize = 1_000_000;
    const SPAN: u64 = 100_000;
    let mut rng = Rng(42);
    let deadlines: Vec<u64> = (0..COUNT).map(|_| rng.below(SPAN)).collect();
    let mut wheel = TimerWheel::with_capacity(0, COUNT);
    for (id, &deadline) in deadlines.iter().enumerate() {
        wheel.arm(deadline, id as u32);
    }
    assert_eq!(wheel.len(), COUNT);
    let mut fired = vec![false; COUNT];
    let mut batch = Vec::new();
    for tick in 1..=SPAN {
        wheel.advance_into(tick, &mut batch);
        for id in batch.drain(..) {
            let id = id as usize;
            assert_eq!(deadlines[id], tick, "timer {id} fired at the wrong tick");
            assert!(!std::mem::replace(&mut fired[id], true), "timer {id} fired twice");
        }
    }
    assert!(fired.iter().all(|&f| f), "some timers never fired");
    assert!(wheel.is_empty());
}

/// Runs bounded passes of `max` to `now` until nothing is due; returns each pass's batch.
fn fire_bounded<T: Copy>(wheel: &mut TimerWheel<T>, now: u64, max: usize) -> Vec<Vec<T>> {
    let mut passes = Vec::new();
    loop {
        let mut batch = Vec::new();
        let more = wheel.advance_into_bounded(now, max, &mut batch);
        assert!(batch.len() <= max, "a pass handed out more than its bound");
        passes.push(batch);
        if !more {
            return passes;
        }
    }
}

#[test]
fn bounded_passes_hand_out_at_most_max_and_keep_the_order_of_one_pass() {
    let mut rng = Rng(11);
    let deadlines: Vec<u64> = (0..5_000).map(|_| rng.below(200_000)).collect();
    let mut unbounded = TimerWheel::new(0);
    let mut bounded = TimerWheel::new(0);
    for (id, &deadline) in deadlines.iter().enumerate() {
        unbounded.arm(deadline, (deadline, id));
        bounded.arm(deadline, (deadline, id));
    }
    let expected = fire(&mut unbounded, 150_000);
    let passes = fire_bounded(&mut bounded, 150_000, 64);
    assert_eq!(passes.len(), expected.len().div_ceil(64).max(1));
    assert!(
        passes[..passes.len() - 1].iter().all(|p| p.len() == 64),
        "only the last pass is short"
    );
    let joined: Vec<_> = passes.concat();
    assert_eq!(joined, expected, "same timers in the same order as one unbounded pass");
    assert_eq!(bounded.now(), 150_000);
    assert_eq!(bounded.len(), unbounded.len());
}

#[test]
fn a_bounded_pass_reports_what_remains_and_the_next_pass_continues_with_it() {
    let mut wheel = TimerWheel::new(0);
    for id in 0..5 {
        wheel.arm(10, id);
    }
    wheel.arm(12, 12);
    wheel.arm(30, 30);
    let mut out = Vec::new();
    assert!(
        wheel.advance_into_bounded(20, 3, &mut out),
        "three of six due timers handed out"
    );
    assert_eq!(out.len(), 3);
    assert!(wheel.now() <= 20, "the wheel's time lags while due timers remain");
    assert_eq!(wheel.next_wake(), Some(wheel.now()), "the left-over timers are due now");
    // Work between passes: a new timer due before the pass's tick, one far later.
    wheel.arm(15, 15);
    wheel.arm(100, 100);
    let mut rest = Vec::new();
    assert!(!wheel.advance_into_bounded(25, 10, &mut rest));
    assert_eq!(rest.len(), 4);
    assert!(
        rest[..2].iter().all(|&id| id < 5),
        "the left-over tick-10 timers come first: {rest:?}"
    );
    assert_eq!(&rest[2..], [12, 15]);
    out.extend(rest);
    assert_eq!(sorted_by_deadline(out[..5].to_vec(), |_| 10), [0, 1, 2, 3, 4]);
    assert_eq!(wheel.now(), 25);
    assert_eq!(wheel.len(), 2);
    assert_eq!(fire(&mut wheel, 100), [30, 100]);
}

#[test]
fn a_bounded_pass_that_empties_exactly_at_its_bound_says_nothing_remains() {
    let mut wheel = TimerWheel::new(0);
    wheel.arm(5, 'a');
    wheel.arm(6, 'b');
    wheel.arm(50, 'c');
    let mut out = Vec::new();
    assert!(
        !wheel.advance_into_bounded(10, 2, &mut out),
        "nothing else due by tick 10"
    );
    assert_eq!(out, ['a', 'b']);
    assert_eq!(wheel.now(), 10);
    assert!(!wheel.advance_into_bounded(49, 0, &mut out), "max 0 only reports");
    assert!(
        wheel.advance_into_bounded(50, 0, &mut out),
        "max 0 reports the due timer"
    );
    assert_eq!(out, ['a', 'b'], "max 0 hands out nothing");
    assert!(!wheel.advance_into_bounded(50, 1, &mut out));
    assert_eq!(out, ['a', 'b', 'c']);
}

#[test]
fn spread_first_check_stays_in_the_second_half_of_the_interval() {
    for interval in [0, 1, 2, 3, 10, 300, 1 << 40, u64::MAX] {
        for seed in 0..1_000 {
            let delay = spread_first_check(interval, seed);
            assert!(
                delay >= interval.div_ceil(2) && delay <= interval,
                "interval {interval}, seed {seed}: {delay}"
            );
            assert_eq!(delay, spread_first_check(interval, seed), "deterministic");
        }
    }
}

#[test]
fn ten_thousand_connections_opened_in_one_tick_are_checked_over_half_an_interval() {
    // 30 s at 100 ms ticks; connection ids on a core are consecutive.
    let interval = 300;
    let opened_at = 7_000;
    let mut wheel = TimerWheel::with_capacity(opened_at, 10_000);
    for id in 0..10_000u64 {
        wheel.arm(opened_at + spread_first_check(interval, id), id);
    }
    let mut per_tick = Vec::new();
    let mut batch = Vec::new();
    for tick in opened_at + 1..=opened_at + interval {
        wheel.advance_into(tick, &mut batch);
        if !batch.is_empty() {
            per_tick.push(batch.len());
        }
        batch.clear();
    }
    assert!(wheel.is_empty(), "every first check falls within one interval");
    assert!(
        per_tick.len() as u64 >= interval / 2,
        "first checks fell on only {} distinct ticks",
        per_tick.len()
    );
    let mean = 10_000 / per_tick.len();
    let busiest = per_tick.iter().copied().max().unwrap_or(0);
    assert!(busiest <= 2 * mean, "busiest tick has {busiest} checks, mean {mean}");
}

#[test]
fn duration_to_ticks_rounds_up_to_at_least_one() {
    let ms = Duration::from_millis(1);
    assert_eq!(duration_to_ticks(Duration::ZERO, ms), 1);
    assert_eq!(duration_to_ticks(Duration::from_micros(1), ms), 1);
    assert_eq!(duration_to_ticks(Duration::from_millis(30), ms), 30);
    assert_eq!(duration_to_ticks(Duration::from_micros(30_001), ms), 31);
    assert_eq!(duration_to_ticks(Duration::MAX, Duration::from_nanos(1)), u64::MAX);
    assert_eq!(ticks_elapsed(Duration::from_micros(2_999), ms), 2);
    assert_eq!(ticks_elapsed(Duration::from_millis(3), ms), 3);
}

#[test]
#[should_panic(expected = "tick length must be positive")]
fn zero_tick_is_rejected() {
    duration_to_ticks(Duration::from_secs(1), Duration::ZERO);
}

/// One step of the model-based test.
#[derive(Clone, Debug)]
enum Op {
    /// Arm a timer `delta` ticks after the wheel's time (wrapping: large values land far out).
    Arm(u64),
    /// Re-arm the `n`-th key ever handed out (possibly stale) to `delta` ticks ahead.
    Rearm(usize, u64),
    /// Cancel the `n`-th key ever handed out (possibly stale).
    Cancel(usize),
    /// Run an expiry pass `delta` ticks ahead.
    Advance(u64),
    /// Run a bounded expiry pass `delta` ticks ahead, handing out at most the second value.
    AdvanceBounded(u64, usize),
}

fn delta() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..70_u64,
        0..5_000_u64,
        0..300_000_u64,
        any::<u32>().prop_map(|d| u64::from(d) << 20)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => delta().prop_map(Op::Arm),
        2 => (any::<usize>(), delta()).prop_map(|(n, d)| Op::Rearm(n, d)),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => delta().prop_map(Op::Advance),
        2 => (delta(), 0..8_usize).prop_map(|(d, max)| Op::AdvanceBounded(d, max)),
    ]
}

/// An armed timer in the reference model.
struct Model {
    id: usize,
    key: TimerKey,
    /// Deadline, raised to the wheel time at arming for deadlines already past.
    due: u64,
}

proptest! {
    /// Random arm/rearm/cancel/advance sequences against a sorted-list model: every pass must hand
    /// out exactly the due timers, in deadline order; a bounded pass the earliest of them, up to
    /// its bound, and whether any are left.
    #[test]
    fn matches_reference_model(start in any::<u32>(), ops in prop::collection::vec(op(), 1..300)) {
        let mut wheel = TimerWheel::new(u64::from(start));
        let mut armed: Vec<Model> = Vec::new();
        let mut keys: Vec<TimerKey> = Vec::new();
        for op in ops {
            let now = wheel.now();
            match op {
                Op::Arm(delta) => {
                    let deadline = now.saturating_add(delta);
                    let key = wheel.arm(deadline, keys.len());
                    armed.push(Model { id: keys.len(), key, due: deadline.max(now) });
                    keys.push(key);
                }
                Op::Rearm(n, delta) if !keys.is_empty() => {
                    let key = keys[n % keys.len()];
                    let deadline = now.saturating_add(delta);
                    let model = armed.iter_mut().find(|m| m.key == key);
                    prop_assert_eq!(wheel.rearm(key, deadline), model.is_some());
                    if let Some(model) = model {
                        model.due = deadline.max(now);
                        prop_assert_eq!(wheel.deadline(key), Some(deadline));
                    }
                }
                Op::Cancel(n) if !keys.is_empty() => {
                    let key = keys[n % keys.len()];
                    let position = armed.iter().position(|m| m.key == key);
                    let expected = position.map(|p| armed.remove(p).id);
                    prop_assert_eq!(wheel.cancel(key), expected);
                }
                Op::Advance(delta) => {
                    let target = now.saturating_add(delta);
                    armed.sort_by_key(|m| (m.due, m.id));
                    let split = armed.partition_point(|m| m.due <= target);
                    let expected: Vec<(u64, usize)> = armed.drain(..split).map(|m| (m.due, m.id)).collect();
                    let due_of: std::collections::HashMap<usize, u64> = expected.iter().map(|&(due, id)| (id, due)).collect();
                    let fired: Vec<(u64, usize)> = fire(&mut wheel, target).into_iter().map(|id| (due_of.get(&id).copied().unwrap_or(u64::MAX), id)).collect();
                    prop_assert_eq!(sorted_by_deadline(fired, |(due, _)| due), expected);
                    prop_assert_eq!(wheel.now(), target);
                    if let Some(first) = armed.iter().map(|m| m.due).min() {
                        prop_assert!(wheel.next_wake().is_some_and(|w| w > target && w <= first));
                    }
                }
                Op::AdvanceBounded(delta, max) => {
                    let target = now.saturating_add(delta);
                    armed.sort_by_key(|m| (m.due, m.id));
                    let due = armed.partition_point(|m| m.due <= target);
                    let due_of: std::collections::HashMap<usize, u64> = armed[..due].iter().map(|m| (m.id, m.due)).collect();
                    let mut fired = Vec::new();
                    let remains = wheel.advance_into_bounded(target, max, &mut fired);
                    prop_assert_eq!(remains, due > max);
                    prop_assert_eq!(fired.len(), due.min(max));
                    let fired_dues: Vec<u64> = fired.iter().map(|id| due_of.get(id).copied().unwrap_or(u64::MAX)).collect();
                    let earliest: Vec<u64> = armed[..fired.len()].iter().map(|m| m.due).collect();
                    prop_assert_eq!(fired_dues, earliest, "the earliest due timers, in order");
                    armed.retain(|m| !fired.contains(&m.id));
                    if remains {
                        prop_assert!(wheel.now() >= now && wheel.now() <= target);
                        prop_assert_eq!(wheel.next_wake(), Some(wheel.now()));
                    } else {
                        prop_assert_eq!(wheel.now(), target);
                    }
                }
                Op::Rearm(..) | Op::Cancel(_) => {}
            }
            prop_assert_eq!(wheel.len(), armed.len());
            for model in &armed {
                prop_assert!(wheel.is_armed(model.key));
            }
        }
    }
}
