//! Start-up of the real binary: settings that cannot work are refused before anything is bound,
//! with exit code 2 and a message naming the setting; only the final configuration counts.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ServerProcess;

/// Runs the binary with `args`; its exit code and stderr, or a panic if it is still running
/// after 20 s (it would be serving).
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringcast");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait for ringcast").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringcast {args:?} did not exit: it accepted the configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("collect ringcast's stderr");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn contradictory_flags_exit_2_with_the_setting_named() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--ping-interval", "50ms", "--timer-tick", "100ms"],
            "ringcast: invalid configuration: timer_tick 100ms is longer than ping_interval 50ms",
        ),
        (
            &["--pong-timeout", "0s"],
            "ringcast: invalid configuration: pong_timeout 0s is shorter than timer_tick 100ms while pings are on",
        ),
        (
            &["--max-queued-bytes", "0"],
            "ringcast: invalid configuration: max_queued_bytes must be above 0",
        ),
        (
            &["--shutdown-close-code", "1000"],
            "ringcast: invalid configuration: shutdown_close_code must be 1001 or 1012, not 1000",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["--listen", "127.0.0.1:0", "--cores", "1"];
        args.extend_from_slice(flags);
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.starts_with(expected),
            "{flags:?}: expected {expected:?}, got {stderr:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    }
}

#[test]
fn a_flag_may_repair_what_the_config_file_sets() {
    let dir = std::env::temp_dir().join(format!("ringcast-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fast-pings.toml");
    std::fs::write(&file, "ping_interval = \"50ms\"\n").unwrap();
    let path = file.to_str().unwrap();
    let (code, stderr) = run_to_exit(&["--listen", "127.0.0.1:0", "--config", path]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("timer_tick 100ms is longer than ping_interval 50ms"),
        "{stderr}"
    );
    let server = ServerProcess::start("epoll", &["--config", path, "--timer-tick", "10ms"]);
    assert!(server
        .http("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .contains("200 OK"));
}
