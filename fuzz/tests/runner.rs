//! The stable, deterministic fuzz run that CI runs (inside `cargo test --workspace`): each
//! target replays its checked-in corpus, then runs a fixed number of mutations from a fixed
//! seed, every input under the counting allocator's bound.
//!
//! Longer runs: `RINGCAST_FUZZ_ITERATIONS=1000000 RINGCAST_FUZZ_SEED=7 cargo test --release -p
//! ringcast-fuzz --test runner` (see fuzz/README.md). A failing input is saved under the
//! target dir's `tmp/fuzz-failures/`.

use std::path::Path;

use ringcast_fuzz::alloc::CountingAlloc;
use ringcast_fuzz::{check, corpus_dir, read_corpus, run_campaign, target, Campaign, Target};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Mutated inputs per target in CI.
const ITERATIONS: usize = 20_000;
/// The fixed seed of the CI run ("ringcast").
const SEED: u64 = 0x7269_6e67_6361_7374;
/// The longest mutated input.
const MAX_LEN: usize = 4096;
/// The fewest files a target's corpus may have.
const MIN_CORPUS: usize = 24;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
        .unwrap_or(default)
}

fn fuzz(name: &str) {
    let target = target(name).expect("a known target");
    let files = read_corpus(&corpus_dir(target)).expect("the checked-in corpus");
    assert!(files.len() >= MIN_CORPUS, "{name}: only {} corpus files", files.len());
    let corpus: Vec<Vec<u8>> = files.into_iter().map(|(_, bytes)| bytes).collect();
    let campaign = Campaign {
        seed: env_or("RINGCAST_FUZZ_SEED", SEED),
        iterations: env_or("RINGCAST_FUZZ_ITERATIONS", ITERATIONS as u64) as usize,
        max_len: MAX_LEN,
    };
    let failures = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    if let Err(failure) = run_campaign(target, &corpus, campaign, &failures) {
        panic!(
            "{name}: {} failed a check (the panic above says which); saved as {}. Copy it into \
             fuzz/corpus/{name}/ to keep it as a regression input.",
            failure.origin,
            failure.saved.display()
        );
    }
}

#[test]
fn handshake() {
    fuzz("handshake");
}

#[test]
fn frames() {
    fuzz("frames");
}

#[test]
fn close() {
    fuzz("close");
}

#[test]
fn push() {
    fuzz("push");
}

#[test]
fn the_checked_in_corpus_holds_every_seed() {
    for target in &ringcast_fuzz::TARGETS {
        let dir = corpus_dir(target);
        for (name, bytes) in ringcast_fuzz::seeds::seeds(target.name) {
            let file = std::fs::read(dir.join(name));
            assert_eq!(
                file.ok().as_ref(),
                Some(&bytes),
                "corpus/{}/{name} differs from its seed; run `cargo run -p ringcast-fuzz --bin ringcast-fuzz-seeds`",
                target.name
            );
        }
    }
}

#[test]
fn an_allocation_sized_by_a_declared_length_breaks_the_bound() {
    // A decoder that trusted a declared length would reserve it before the bytes arrive.
    let trusting = Target {
        name: "trusting",
        run: |data| {
            let declared = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            std::hint::black_box(Vec::<u8>::with_capacity(declared));
        },
        alloc_bound: |len| 16 * len + 4096,
    };
    check(&trusting, &[0, 0, 0x10, 0]);
    let caught = std::panic::catch_unwind(|| check(&trusting, &[0x01, 0, 0, 0]));
    assert!(
        caught.is_err(),
        "a 16 MiB reservation for a 4-byte input must fail the check"
    );
}
