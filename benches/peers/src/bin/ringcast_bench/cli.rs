//! Command-line flags of `ringcast-bench`.

use std::path::PathBuf;

use clap::Parser;

use crate::scenario::ExtraServer;

/// Runs identical load against ringcast (io_uring and epoll), two peer echo servers
/// (fastwebsockets, tokio-tungstenite) and any extra servers, with two independent clients,
/// interleaved and repeated, and prints medians and ratios per scenario and client.
#[derive(Debug, Parser)]
pub struct Args {
    /// Repetitions per scenario; each repetition runs every server once per client, in turn.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
    /// Measured duration of each echo and churn run, in whole seconds ("5s" or "5").
    #[arg(long, default_value = "5s", value_parser = parse_seconds)]
    pub duration: u64,
    /// Run only the scenario with this exact name, or else those whose name contains it.
    #[arg(long)]
    pub only: Option<String>,
    /// Extra server to measure as a peer (repeatable): NAME=CMD, where CMD is a shell command
    /// line with {addr} (127.0.0.1:PORT) or {port}, and optionally {threads}, filled in per run.
    #[arg(long = "server", value_name = "NAME=CMD", value_parser = ExtraServer::parse)]
    pub servers: Vec<ExtraServer>,
    /// Skip the syscall-counting run (perf stat) after each echo scenario's repetitions.
    #[arg(long)]
    pub no_syscalls: bool,
    /// Directory holding release builds of ringcast, the clients and the peers.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Skip the `cargo build --release` of the five binaries before running.
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
    use super::*;

    #[test]
    fn parses_whole_seconds() {
        assert_eq!(parse_seconds("5s"), Ok(5));
        assert_eq!(parse_seconds("12"), Ok(12));
        assert!(parse_seconds("0s").is_err());
        assert!(parse_seconds("1.5s").is_err());
        assert!(parse_seconds("500ms").is_err());
    }

    #[test]
    fn server_flags_repeat_and_keep_their_commands() {
        let args = Args::try_parse_from([
            "ringcast-bench",
            "--server",
            "fws-copy=exec target/release/peer-fastwebsockets --listen {addr} --threads {threads}",
            "--server=uws=/opt/uws/EchoServer {port}",
        ])
        .unwrap();
        assert_eq!(args.reps, 5);
        let names: Vec<&str> = args.servers.iter().map(|server| server.name.as_str()).collect();
        assert_eq!(names, ["fws-copy", "uws"]);
        assert_eq!(args.servers[1].command, "/opt/uws/EchoServer {port}");
        assert!(Args::try_parse_from(["ringcast-bench", "--server", "nameless {port}"]).is_err());
    }
}
