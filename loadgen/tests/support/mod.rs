//! Test helpers: the tungstenite test server, the fake push server, a TLS front for both,
//! running the loadgen binary, reading its summary.

#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub mod push;
mod server;
pub mod tls;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

pub use server::{Counts, Mode, Server};

/// The loadgen binary with `args`, quiet.
pub fn loadgen(args: &[&str]) -> Command {
    let mut cmd = binary(args);
    cmd.arg("--quiet");
    cmd
}

/// The loadgen binary with exactly `args`.
pub fn binary(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast-loadgen"));
    cmd.args(args);
    cmd
}

/// Runs the command and returns (exit code, stdout, stderr).
pub fn run(mut cmd: Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run ringcast-loadgen");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The JSON summary on the last line of stdout.
pub fn summary(stdout: &str) -> Value {
    let last = stdout.lines().last().expect("stdout has lines");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

/// Every field scripts rely on.
pub const SUMMARY_FIELDS: &[&str] = &[
    "scenario",
    "url",
    "conns_target",
    "conns_established",
    "connect_failures",
    "errors_total",
    "duration_s",
    "messages",
    "msgs_per_sec",
    "bytes_per_sec",
    "handshakes",
    "handshakes_per_sec",
    "latency_us",
    "handshake_latency_us",
    "server_cpu_seconds",
    "msgs_per_server_cpu_sec",
    "handshakes_per_server_cpu_sec",
    "per_core",
    "procs",
];

/// Waits up to five seconds for `cond` (a server thread counts a close right after the client
/// returns; allow it to catch up).
pub fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(cond(), "condition not reached");
}

/// A test server's counter, read now.
pub fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

/// `v[key]` as a number, or a panic naming it.
pub fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// An empty scratch directory `loadgen-NAME-PID` under the target's temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
