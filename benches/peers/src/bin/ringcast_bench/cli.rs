//! Command-line flags of `ringcast-bench`.

use std::path::PathBuf;

use clap::Parser;

/// Runs identical load against ringcast and two peer echo servers (fastwebsockets,
/// tokio-tungstenite), interleaved and repeated, and prints medians and ratios per scenario.
#[derive(Debug, Parser)]
pub struct Args {
    /// Repetitions per scenario; each repetition runs every server once, in turn.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
    /// Measured duration of each echo and churn run, in whole seconds ("5s" or "5").
    #[arg(long, default_value = "5s", value_parser = parse_seconds)]
    pub duration: u64,
    /// Run only the scenario with this exact name, or else those whose name contains it.
    #[arg(long)]
    pub only: Option<String>,
    /// Directory holding release builds of ringcast, ringcast-loadgen and the peers.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Skip the `cargo build --release` of the four binaries before running.
    #[arg(long)]
    pub no_build: bool,
    /// Print the scenario names and exit.
    #[arg(long)]
    pub list: bool,
}

/// Parses a whole number of seconds, with or without an `s` suffix.
fn parse_seconds(text: &str) -> Result<u64, String> {
    let digits = text.strip_suffix('s').unwrap_or(text);
    match digits.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err(format!(
            "expected a positive whole number of seconds such as 5s, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seconds;

    #[test]
    fn parses_whole_seconds() {
        assert_eq!(parse_seconds("5s"), Ok(5));
        assert_eq!(parse_seconds("12"), Ok(12));
        assert!(parse_seconds("0s").is_err());
        assert!(parse_seconds("1.5s").is_err());
        assert!(parse_seconds("500ms").is_err());
    }
}
