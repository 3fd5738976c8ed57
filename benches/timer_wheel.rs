//! Timing wheel costs at one million armed timers: arm, cancel, re-arm and expiry.
//!
//! Every benchmark iteration performs `TIMERS` operations (setup excluded), so criterion's time per
//! iteration in milliseconds reads directly as nanoseconds per operation; the throughput line gives
//! the same as operations per second. Deadlines are spread uniformly over `SPAN` ticks (one minute
//! at 1 ms ticks, like heartbeat and idle timeouts), and keys are touched in random order, as
//! connections would. At this size the entries (32 MB) do not fit in the private caches, so most
//! costs are cache misses; `expire_one_pass_memory_ordered` shows the same pass with entries laid
//! out in deadline order, for comparison.
//!
//! Run: `cargo bench --bench timer_wheel`

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use ringcast::timer::{TimerKey, TimerWheel};

const TIMERS: usize = 1_000_000;
const SPAN: u64 = 60_000;

/// Payload shaped like the server's: (connection slab key, timer kind).
type Payload = (u32, u8);

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `items` in a random order (Fisher-Yates).
    fn shuffled<T>(&mut self, mut items: Vec<T>) -> Vec<T> {
        for i in (1..items.len()).rev() {
            items.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
        items
    }
}

/// `TIMERS` deadlines uniform in `1..=SPAN`.
fn random_deadlines(seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    (0..TIMERS).map(|_| rng.next() % SPAN + 1).collect()
}

/// A wheel at tick 0 holding one timer per deadline (armed in that order), and the timers' keys and
/// deadlines in random order.
fn armed(deadlines: &[u64]) -> (TimerWheel<Payload>, Vec<(TimerKey, u64)>) {
    let mut wheel = TimerWheel::with_capacity(0, TIMERS);
    let timers = deadlines
        .iter()
        .enumerate()
        .map(|(id, &deadline)| (wheel.arm(deadline, (id as u32, 0)), deadline))
        .collect();
    (wheel, Rng(99).shuffled(timers))
}

/// Benchmarks one expiry pass from tick 0 to `SPAN` over a wheel armed with `deadlines`.
fn bench_one_pass(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, deadlines: &[u64]) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || armed(deadlines).0,
            |mut wheel| {
                wheel.advance(SPAN, |payload| {
                    black_box(payload);
                });
                wheel
            },
            BatchSize::PerIteration,
        )
    });
}

fn timer_wheel(c: &mut Criterion) {
    let deadlines = random_deadlines(1);
    let mut group = c.benchmark_group("timer_wheel_1M");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(TIMERS as u64));

    group.bench_function("arm", |b| {
        b.iter_batched(
            || TimerWheel::<Payload>::with_capacity(0, TIMERS),
            |mut wheel| {
                for (id, &deadline) in deadlines.iter().enumerate() {
                    black_box(wheel.arm(deadline, (id as u32, 0)));
                }
                wheel
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("cancel", |b| {
        b.iter_batched(
            || armed(&deadlines),
            |(mut wheel, timers)| {
                for &(key, _) in &timers {
                    black_box(wheel.cancel(key));
                }
                wheel
            },
            BatchSize::PerIteration,
        )
    });

    // Pushing every deadline back, like idle timeouts refreshed by traffic. Keys stay valid, so one
    // wheel serves all iterations.
    let (mut wheel, timers) = armed(&deadlines);
    let mut now = 0;
    group.bench_function("rearm_later", |b| {
        b.iter(|| {
            now += SPAN;
            for &(key, _) in &timers {
                black_box(wheel.rearm(key, now + SPAN));
            }
        })
    });
    drop(wheel);

    // Pulling every deadline forward, which moves the timer to another slot.
    group.bench_function("rearm_earlier", |b| {
        b.iter_batched(
            || armed(&deadlines),
            |(mut wheel, timers)| {
                for &(key, deadline) in &timers {
                    black_box(wheel.rearm(key, deadline / 2));
                }
                wheel
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("expire_tick_by_tick", |b| {
        b.iter_batched(
            || armed(&deadlines).0,
            |mut wheel| {
                let mut fired = Vec::with_capacity(1_024);
                for tick in 1..=SPAN {
                    wheel.advance_into(tick, &mut fired);
                    black_box(&fired);
                    fired.clear();
                }
                wheel
            },
            BatchSize::PerIteration,
        )
    });

    bench_one_pass(&mut group, "expire_one_pass_after_stall", &deadlines);
    let mut ordered = deadlines.clone();
    ordered.sort_unstable();
    bench_one_pass(&mut group, "expire_one_pass_memory_ordered", &ordered);
    group.finish();
}

criterion_group!(benches, timer_wheel);
criterion_main!(benches);
