//! End-to-end runs of the loadgen binary against a tungstenite test server.

mod support;

use support::{count, loadgen, run, summary, u, wait_for, Mode, Server, SUMMARY_FIELDS};

#[test]
fn echo_closed_loop_measures_every_connection() {
    let server = Server::start(Mode::Echo);
    let url = server.url();
    let (code, out, err) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--conns",
        "50",
        "--in-flight",
        "4",
        "--duration",
        "2s",
        "--warmup",
        "300ms",
        "--json",
        "--server-pid",
        &std::process::id().to_string(),
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    for field in SUMMARY_FIELDS {
        assert!(s.get(field).is_some(), "missing {field} in {s}");
    }
    assert_eq!(s["scenario"], "echo");
    assert_eq!(u(&s, "conns_target"), 50);
    assert_eq!(u(&s, "conns_established"), 50);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    assert_eq!(u(&s, "handshakes"), 50);
    assert_eq!(u(&s, "conns_open_at_end"), 50);
    assert!(u(&s, "messages") > 0);
    let (bytes, msgs) = (
        s["bytes_per_sec"].as_f64().unwrap(),
        s["msgs_per_sec"].as_f64().unwrap(),
    );
    assert!(
        (bytes / msgs - 20.0).abs() < 0.01,
        "20-byte payloads: {bytes} B/s for {msgs} msg/s"
    );
    let latency = &s["latency_us"];
    assert!(u(latency, "p50") > 0 && u(latency, "p50") <= u(latency, "p99") && u(latency, "p99") <= u(latency, "max"));
    let per_core = s["per_core"].as_array().unwrap();
    assert!(!per_core.is_empty());
    assert_eq!(
        per_core.iter().map(|c| u(c, "messages")).sum::<u64>(),
        u(&s, "messages")
    );
    // Our own process stands in for the server: its CPU time is a number.
    assert!(s["server_cpu_seconds"].as_f64().is_some(), "{s}");
    // Every echo the server sent was counted or drained, and every connection closed cleanly.
    assert!(count(&server.counts.echoed) >= u(&s, "messages"));
    wait_for(|| count(&server.counts.closes) == 50);
}

#[test]
fn echo_open_loop_keeps_to_the_rate() {
    let server = Server::start(Mode::Echo);
    let url = server.url();
    let (code, out, err) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--conns",
        "20",
        "--rate",
        "1000",
        "--duration",
        "2s",
        "--warmup",
        "200ms",
        "--binary",
        "--size",
        "200",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}");
    let s = summary(&out);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    let messages = u(&s, "messages");
    // Messages are counted by intended send time, so the window holds at most rate x duration.
    assert!(messages > 0 && messages <= 2001, "{messages}");
    assert!(s["config"]["binary"].as_bool().unwrap());
    assert_eq!(s["config"]["rate"].as_f64(), Some(1000.0));
}

#[test]
fn connect_holds_answers_pings_and_closes_cleanly() {
    let server = Server::start(Mode::PingFirst);
    let url = server.url();
    let (code, out, err) = run(loadgen(&[
        "connect",
        "--url",
        &url,
        "--conns",
        "50",
        "--hold",
        "1s",
        "--ramp-rate",
        "500",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(s["scenario"], "connect");
    assert_eq!(u(&s, "conns_established"), 50);
    assert_eq!(u(&s, "handshakes"), 50);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    assert_eq!(u(&s, "conns_open_at_end"), 50);
    assert!(s["hold_s"].as_f64().unwrap() >= 1.0);
    // At 500/s the ramp of 50 connections takes about 0.1 s, never less than the pacing.
    assert!(s["duration_s"].as_f64().unwrap() >= 0.09, "{s}");
    assert!(u(&s["handshake_latency_us"], "p50") > 0);
    assert!(s["server_cpu_seconds"].is_null());
    wait_for(|| count(&server.counts.closes) == 50);
    assert_eq!(count(&server.counts.pongs), 50);
}

#[test]
fn churn_completes_loops() {
    let server = Server::start(Mode::Echo);
    let url = server.url();
    let (code, out, err) = run(loadgen(&[
        "churn",
        "--url",
        &url,
        "--conns",
        "4",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(s["scenario"], "churn");
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    let loops = u(&s, "loops_completed");
    assert!(loops > 0);
    assert!(s["conns_per_sec"].as_f64().unwrap() > 0.0);
    // A loop that straddles the window start counts its close but not its handshake.
    assert!(u(&s, "handshakes") + 4 >= loops);
    assert!(u(&s, "messages") > 0);
    assert!(u(&s, "conns_established") >= u(&s, "handshakes"));
}

#[test]
fn failed_upgrades_are_counted_and_fail_the_exit_status() {
    let server = Server::start(Mode::Status(503));
    let url = server.url();
    let args = ["connect", "--url", &url, "--conns", "5", "--hold", "100ms", "--json"];
    let (code, out, _) = run(loadgen(&args));
    assert_eq!(code, 1);
    let s = summary(&out);
    assert_eq!(u(&s, "conns_established"), 0);
    assert_eq!(u(&s, "errors_total"), 5);
    assert_eq!(u(&s["connect_failures"], "handshake_status_503"), 5);
    let mut tolerant = loadgen(&args);
    tolerant.args(["--max-errors", "5"]);
    assert_eq!(run(tolerant).0, 0);
}

#[test]
fn refused_connections_are_named() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/");
    let (code, out, _) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--conns",
        "3",
        "--duration",
        "100ms",
        "--json",
    ]));
    assert_eq!(code, 1);
    let s = summary(&out);
    assert_eq!(u(&s["connect_failures"], "refused"), 3);
}
