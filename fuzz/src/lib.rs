//! Fuzz targets for ringcast's parsers, runnable on stable Rust.
//!
//! Each target is a pure function of a byte slice that drives the real code and asserts what
//! must hold for every input (see each module). Two engines run them: the deterministic
//! runner in `tests/runner.rs` (the checked-in corpus, then seeded mutations; part of `cargo
//! test --workspace`), and afl++ through afl.rs (`src/bin/afl.rs`, built only with the `afl`
//! feature). Both run every input through [`check`], which also bounds the heap the input
//! made the target hold. `fuzz/README.md` has the commands.

pub mod alloc;
pub mod close;
pub mod frames;
pub mod handshake;
pub mod mutate;
pub mod push;
pub mod seeds;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A fuzz target.
pub struct Target {
    /// Its name: the afl binary's argument and the folder of its corpus (`corpus/<name>/`).
    pub name: &'static str,
    /// The target itself: panics when a check fails.
    pub run: fn(&[u8]),
    /// The most heap bytes an input of this many bytes may make the target hold at once.
    pub alloc_bound: fn(usize) -> usize,
}

const KIB: usize = 1024;

/// Every target, with its allocation bound. The bounds are linear in the input length plus a
/// constant from the configured limit; the factors cover the copies the checks themselves
/// make (each target keeps its input, the decoded results of every run it compares, and
/// what the parser keeps), so an allocation driven by a declared length rather than by bytes
/// received breaks them. Over the CI run the highest peak is under half of its bound
/// (handshake 6.2 KiB for 661 bytes, frames 8.9 KiB for 301 bytes, push 6.3 KiB for 378).
pub const TARGETS: [Target; 4] = [
    Target {
        name: "handshake",
        run: handshake::run,
        // The parsed request owns a copy of the head, and the prefix checks parse up to
        // three more; `MAX_HEAD` bounds every head that is kept.
        alloc_bound: |len| 4 * len + 4 * handshake::MAX_HEAD + 8 * KIB,
    },
    Target {
        name: "frames",
        run: frames::run,
        // Four outcomes (the model and three runs) hold at most the input each, each run
        // copies one read at a time, and a session keeps at most `MAX_RETAINED`.
        alloc_bound: |len| 16 * len + 2 * frames::MAX_RETAINED + 8 * KIB,
    },
    Target {
        name: "close",
        run: close::run,
        alloc_bound: |len| 2 * len + KIB,
    },
    Target {
        name: "push",
        run: push::run,
        // serde_json builds a tree for `ref` (up to a 32-byte `Value` per two input bytes,
        // and the command clones it); errors copy a topic name or the text they quote.
        alloc_bound: |len| 32 * len + 16 * KIB,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs `target` on `data` and asserts it held at most its allocation bound. Panics on any
/// failed check; the global allocator must be [`alloc::CountingAlloc`].
pub fn check(target: &Target, data: &[u8]) {
    let peak = alloc::peak_during(|| (target.run)(data));
    let bound = (target.alloc_bound)(data.len());
    assert!(
        peak <= bound,
        "target {} held {peak} heap bytes for a {}-byte input; the bound is {bound}",
        target.name,
        data.len()
    );
}

/// A target's checked-in corpus folder.
pub fn corpus_dir(target: &Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target.name)
}

/// The files of a corpus folder, by name.
pub fn read_corpus(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            files.push((path, bytes));
        }
    }
    files.sort();
    Ok(files)
}

/// A bounded, seeded run: the corpus, then this many mutated inputs.
#[derive(Debug, Clone, Copy)]
pub struct Campaign {
    /// Seeds the mutations (with the target's name mixed in).
    pub seed: u64,
    /// Mutated inputs to run after the corpus.
    pub iterations: usize,
    /// The longest mutated input.
    pub max_len: usize,
}

/// An input that failed a check, saved for replay.
#[derive(Debug)]
pub struct Failure {
    /// Where the input was written.
    pub saved: PathBuf,
    /// Where it came from (a corpus file, or the mutation that made it).
    pub origin: String,
}

/// Replays `corpus`, then runs `campaign.iterations` mutations of it, each through
/// [`check`]. The first input that fails is written to `failures/` and returned.
pub fn run_campaign(target: &Target, corpus: &[Vec<u8>], campaign: Campaign, failures: &Path) -> Result<(), Failure> {
    let attempt = |data: &[u8], origin: String| -> Result<(), Failure> {
        if catch_unwind(AssertUnwindSafe(|| check(target, data))).is_ok() {
            return Ok(());
        }
        let saved = failures.join(format!("{}-{:016x}", target.name, fnv1a(data)));
        std::fs::create_dir_all(failures)
            .and_then(|()| std::fs::write(&saved, data))
            .unwrap_or_else(|e| panic!("cannot save the failing input to {}: {e}", saved.display()));
        Err(Failure { saved, origin })
    };
    for (i, data) in corpus.iter().enumerate() {
        attempt(data, format!("corpus file #{i}"))?;
    }
    let mut rng = mutate::Rng::new(campaign.seed ^ fnv1a(target.name.as_bytes()));
    for iteration in 0..campaign.iterations {
        let parent = &corpus[rng.below(corpus.len())];
        let data = mutate::mutate(&mut rng, parent, corpus, campaign.max_len);
        attempt(&data, format!("mutation {iteration} (seed {:#x})", campaign.seed))?;
    }
    Ok(())
}

/// FNV-1a: a stable 64-bit hash for seeds and file names.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
