//! Runs the `tungstenite-load` client against a small blocking tungstenite echo server in this
//! process: a faithful server gives zero errors and mismatches, a corrupting one is caught.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;

use serde_json::Value;
use tungstenite::Message;

/// Starts an echo server on a free loopback port; with `corrupt_every = Some(n)` every n-th
/// echo on a connection has its first byte replaced. Returns the port.
fn start_server(corrupt_every: Option<u64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream, corrupt_every));
        }
    });
    port
}

/// Echoes text messages on one connection until it closes.
fn serve(stream: TcpStream, corrupt_every: Option<u64>) {
    stream.set_nodelay(true).unwrap();
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let mut seen = 0u64;
    while let Ok(message) = ws.read() {
        if let Message::Text(text) = message {
            seen += 1;
            let reply = match corrupt_every {
                Some(n) if seen % n == 0 => format!("Z{}", &text.as_str()[1..]),
                _ => text.as_str().to_owned(),
            };
            if ws.send(Message::text(reply)).is_err() {
                return;
            }
        }
    }
}

/// Runs the client for a one-second window and returns its exit code and JSON report.
fn run_client(port: u16) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_tungstenite-load"))
        .args(["--url", &format!("ws://127.0.0.1:{port}/")])
        .args(["--conns", "4", "--in-flight", "4", "--size", "100"])
        .args(["--warmup", "200ms", "--duration", "1s"])
        .args(["--server-pid", &std::process::id().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap(), serde_json::from_str(line).unwrap())
}

#[test]
fn faithful_server_gives_clean_counts() {
    let (code, report) = run_client(start_server(None));
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["conns_established"], 4, "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");
    assert_eq!(report["mismatches"], 0, "{report}");
    assert!(report["messages"].as_u64().unwrap() > 100, "{report}");
    assert!(report["msgs_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["latency_us"]["p99"].as_u64().unwrap() > 0, "{report}");
    assert!(report["server_cpu_seconds"].as_f64().is_some(), "{report}");
}

#[test]
fn corrupted_echoes_are_counted_as_mismatches() {
    let (code, report) = run_client(start_server(Some(10)));
    assert_eq!(code, 1, "{report}");
    assert!(report["mismatches"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");
}

#[test]
fn refused_connections_are_errors() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, report) = run_client(port);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["errors"]["connect_refused"], 4, "{report}");
    assert_eq!(report["messages"], 0, "{report}");
}
