//! The README's browser client (`examples/push-client.js`) against the real binary, run by
//! Node's WHATWG WebSocket: it subscribes, prints messages, loses its connection, reconnects
//! by itself and resumes without losing or repeating a message.

mod common;

use std::process::Command;

use common::ServerProcess;

#[test]
fn the_readme_shows_the_client_as_it_is() {
    let readme = include_str!("../README.md");
    let client = include_str!("../examples/push-client.js");
    assert!(
        readme.contains(client.trim()),
        "README's push client differs from examples/push-client.js: paste the file again"
    );
}

#[test]
fn the_readme_client_resumes_after_a_reconnect() {
    let server = ServerProcess::start("uring", &["--mode", "push", "--cores", "2"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/push_client_resume.js");
    let output = Command::new("node")
        .args(["--experimental-websocket", script, &server.addr.to_string()])
        .output()
        .expect("node must be installed (apt-get install nodejs; .ci/run does it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "no report from node: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(report["outcome"], "done", "{report}");
    assert_eq!(
        report["seen"],
        serde_json::json!([[1, "a"], [2, "b"], [3, "c"], [4, "d"], [5, "e"]]),
        "every message once, in order, across the reconnect"
    );
    assert_eq!(report["reconnects"], 1);
    assert_eq!(report["subscribed"], 2);
    assert_eq!(report["gaps"], 0, "history covered the time away");
}
