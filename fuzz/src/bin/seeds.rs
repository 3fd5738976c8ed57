//! Writes the seed corpus (`ringcast_fuzz::seeds`) to `fuzz/corpus/<target>/<name>`; run it
//! after changing a seed: `cargo run -p ringcast-fuzz --bin ringcast-fuzz-seeds`.

use std::process::ExitCode;

fn main() -> ExitCode {
    for target in &ringcast_fuzz::TARGETS {
        let dir = ringcast_fuzz::corpus_dir(target);
        let seeds = ringcast_fuzz::seeds::seeds(target.name);
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            seeds
                .iter()
                .try_for_each(|(name, bytes)| std::fs::write(dir.join(name), bytes))
        });
        if let Err(e) = written {
            eprintln!("ringcast-fuzz-seeds: cannot write {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        println!("{}: {} seeds in {}", target.name, seeds.len(), dir.display());
    }
    ExitCode::SUCCESS
}
