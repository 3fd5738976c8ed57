//! End-to-end runs of the push scenario against the fake push server (tests/support/push.rs):
//! exact delivery counts over HTTP and WebSocket publishing, batches, --procs and the epoll
//! driver, latency from the intended publish time, failed publishes, and the detection of
//! injected losses, duplicates, reordering and gap notices.

mod support;

use serde_json::Value;
use support::push::{Faults, PushServer};
use support::tls::{fixture, TlsFront};
use support::{count, loadgen, run, scratch, summary, u, wait_for};

/// Runs `push` against `server` with `args` and returns (exit code, summary).
fn push(server: &PushServer, args: &[&str]) -> (i32, Value) {
    push_to(&server.url(), args)
}

/// Runs `push` against the server at `url` with `args` and returns (exit code, summary).
fn push_to(url: &str, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["push", "--url", url, "--json", "--close-timeout", "1s"];
    all.extend_from_slice(args);
    let (code, out, err) = run(loadgen(&all));
    assert!(
        out.lines().last().is_some_and(|l| l.starts_with('{')),
        "stderr: {err}\nstdout: {out}"
    );
    (code, summary(&out))
}

/// Asserts a fault-free run delivered every acknowledged publish to every subscriber of its
/// topic exactly once, and that the server agrees; returns the push section.
fn assert_exact(server: &PushServer, s: &Value, subscribers_per_topic: u64) -> Value {
    assert_eq!(u(s, "errors_total"), 0, "{s}");
    let p = s["push"].clone();
    let acked = u(&p, "publishes_acked");
    assert!(acked > 0, "{p}");
    assert_eq!(u(&p, "publishes_scheduled"), acked, "{p}");
    assert_eq!(u(&p, "publishes_sent"), acked, "{p}");
    assert_eq!(u(&p, "publishes_failed"), 0, "{p}");
    assert_eq!(count(&server.counts.publishes), acked);
    assert_eq!(u(&p, "deliveries_expected"), acked * subscribers_per_topic, "{p}");
    assert_eq!(u(&p, "deliveries_received"), u(&p, "deliveries_expected"), "{p}");
    assert_eq!(u(&p, "deliveries_unique"), u(&p, "deliveries_expected"), "{p}");
    assert_eq!(count(&server.counts.delivered), u(&p, "deliveries_received"));
    for field in [
        "lost",
        "lost_in_gaps",
        "duplicated",
        "out_of_order",
        "deliveries_unexpected",
        "gaps",
        "epoch_changes",
    ] {
        assert_eq!(u(&p, field), 0, "{field} in {p}");
    }
    // Deliveries of publishes intended inside the window are measured, with latency.
    let measured = u(s, "messages");
    assert!(measured > 0 && measured <= u(&p, "deliveries_received"), "{s}");
    let latency = &s["latency_us"];
    assert!(u(latency, "p50") > 0 && u(latency, "p50") <= u(latency, "max"), "{s}");
    p
}

#[test]
fn http_publishing_delivers_every_publish_to_every_subscriber() {
    let server = PushServer::start(Faults::default());
    let out = scratch("push-http");
    let (code, s) = push(
        &server,
        &[
            "--conns",
            "12",
            "--topics",
            "3",
            "--publish-rate",
            "300",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--drain",
            "300ms",
            "--size",
            "64",
            "--server-pid",
            &std::process::id().to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["scenario"], "push");
    assert_eq!((u(&s, "conns_target"), u(&s, "conns_established")), (12, 12));
    let p = assert_exact(&server, &s, 4);
    assert_eq!((u(&p, "subscribers"), u(&p, "topics")), (12, 3));
    assert_eq!(p["publish_via"], "http");
    // 300/s over 1.2 s of warmup and window.
    let acked = u(&p, "publishes_acked");
    assert!((355..=361).contains(&acked), "{acked}");
    assert_eq!(count(&server.counts.single_requests), acked);
    assert_eq!(count(&server.counts.batch_requests), 0);
    // Every topic got its third of the publishes.
    for topic in ["t0", "t1", "t2"] {
        assert!(server.last_seq(topic).abs_diff(acked / 3) <= 1, "{topic}");
    }
    assert_eq!(s["config"]["rate"].as_f64(), Some(300.0));
    assert_eq!(u(&s["config"], "size"), 64);
    // Delivered payload bytes are --size each.
    let per_delivery = s["bytes_per_sec"].as_f64().unwrap() / s["msgs_per_sec"].as_f64().unwrap();
    assert!((per_delivery - 64.0).abs() < 0.01, "{per_delivery}");
    assert!(s["client_cpu_seconds"].as_f64().is_some() && s["server_cpu_seconds"].as_f64().is_some());
    let hgrm = std::fs::read_to_string(out.join("push-latency.hgrm")).unwrap();
    assert!(hgrm.contains("#[Max     ="), "{hgrm}");
    assert!(!out.join("latency.hgrm").exists());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(written, s);
    let summary_json = out.join("summary.json");
    let summary_json = summary_json.to_str().unwrap();
    let (code, table, err) = run(support::binary(&["compare", summary_json, summary_json]));
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("push.deliveries_received"), "{table}");
    // Every subscriber ended with a close handshake.
    wait_for(|| count(&server.counts.closes) == 12);
}

#[test]
fn websocket_publishing_uses_dedicated_publisher_connections() {
    let server = PushServer::start(Faults::default());
    let (code, s) = push(
        &server,
        &[
            "--conns",
            "10",
            "--topics",
            "5",
            "--publish-via",
            "ws",
            "--publishers",
            "2",
            "--publish-rate",
            "250",
            "--duration",
            "800ms",
            "--warmup",
            "100ms",
            "--drain",
            "300ms",
        ],
    );
    assert_eq!(code, 0, "{s}");
    // Ten subscribers and two publishers.
    assert_eq!((u(&s, "conns_target"), u(&s, "conns_established")), (12, 12));
    let p = assert_exact(&server, &s, 2);
    assert_eq!((u(&p, "subscribers"), u(&p, "publishers")), (10, 2));
    assert_eq!(count(&server.counts.ws_publishes), u(&p, "publishes_acked"));
    assert_eq!(count(&server.counts.subscriptions), 10);
    wait_for(|| count(&server.counts.closes) == 12);
}

#[test]
fn http_batches_and_procs_on_epoll_merge_into_exact_counts() {
    let server = PushServer::start(Faults::default());
    let (code, s) = push(
        &server,
        &[
            "--conns",
            "8",
            "--topics",
            "2",
            "--publish-rate",
            "400",
            "--publish-batch",
            "4",
            "--procs",
            "2",
            "--io",
            "epoll",
            "--duration",
            "800ms",
            "--warmup",
            "100ms",
            "--drain",
            "300ms",
        ],
    );
    assert_eq!(code, 0, "{s}");
    assert_eq!(u(&s, "procs"), 2);
    let p = assert_exact(&server, &s, 4);
    assert_eq!(u(&p, "publish_batch"), 4);
    assert_eq!(count(&server.counts.single_requests), 0);
    assert!(count(&server.counts.batch_requests) > 0);
    let procs: std::collections::BTreeSet<u64> =
        s["per_core"].as_array().unwrap().iter().map(|c| u(c, "proc")).collect();
    assert_eq!(procs.into_iter().collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn injected_loss_duplicate_reordering_and_gap_are_each_counted() {
    let faults = Faults {
        drop: Some(3),
        duplicate: Some(5),
        reorder: Some(7),
        gap: Some(9),
        cut_after: Some(30),
        ..Faults::default()
    };
    let server = PushServer::start(faults);
    let (code, s) = push(
        &server,
        &[
            "--conns",
            "6",
            "--topics",
            "2",
            "--publish-rate",
            "200",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--drain",
            "300ms",
        ],
    );
    // Delivery faults are reported, not errors.
    assert_eq!(code, 0, "{s}");
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    let p = &s["push"];
    let t0 = server.last_seq("t0");
    assert!(t0 > 30, "{t0}");
    assert_eq!(u(p, "publishes_acked"), u(p, "publishes_scheduled"));
    // Seq 3 dropped and seq 9 given up by the gap notice, inside the stream; 31.. never came.
    assert_eq!(u(p, "lost"), 2 + (t0 - 30), "{p}");
    assert_eq!(u(p, "lost_in_gaps"), 2, "{p}");
    assert_eq!(u(p, "duplicated"), 1, "{p}");
    assert_eq!(u(p, "out_of_order"), 1, "{p}");
    assert_eq!(u(p, "gaps"), 1, "{p}");
    assert_eq!(u(p, "deliveries_unexpected"), 0, "{p}");
    assert_eq!(
        u(p, "deliveries_received"),
        u(p, "deliveries_expected") - u(p, "lost") + 1,
        "{p}"
    );
    assert_eq!(count(&server.counts.delivered), u(p, "deliveries_received"));
}

#[test]
fn latency_counts_from_the_intended_publish_time() {
    // The server holds every publish 100 ms before sequencing it: no delivery can be faster.
    let server = PushServer::start(Faults {
        delay: Some(std::time::Duration::from_millis(100)),
        ..Faults::default()
    });
    let (code, s) = push(
        &server,
        &[
            "--conns",
            "4",
            "--topics",
            "2",
            "--publish-rate",
            "50",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--drain",
            "500ms",
        ],
    );
    assert_eq!(code, 0, "{s}");
    assert_exact(&server, &s, 2);
    let latency = &s["latency_us"];
    assert!(u(latency, "p50") >= 100_000, "{latency}");
    assert!(u(latency, "max") < 1_000_000, "{latency}");
}

#[test]
fn refused_publishes_are_failures_by_status() {
    let server = PushServer::start(Faults {
        refuse: Some(503),
        ..Faults::default()
    });
    let (code, s) = push(
        &server,
        &[
            "--conns",
            "2",
            "--publish-rate",
            "100",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--drain",
            "100ms",
        ],
    );
    assert_eq!(code, 1, "{s}");
    let p = &s["push"];
    let scheduled = u(p, "publishes_scheduled");
    assert!(scheduled > 0);
    assert_eq!(
        (u(p, "publishes_sent"), u(p, "publishes_failed")),
        (scheduled, scheduled),
        "{p}"
    );
    assert_eq!((u(p, "publishes_acked"), u(p, "deliveries_expected")), (0, 0), "{p}");
    assert_eq!(u(&s["errors"], "publish_status_503"), scheduled, "{s}");
    assert_eq!(u(&s, "errors_total"), scheduled);
}

#[test]
fn bad_push_arguments_are_refused_before_connecting() {
    for (args, needle) in [
        (&["--size", "19"][..], "--size must be at least 20"),
        (&["--topics", "0"], "--topics must be at least 1"),
        (
            &["--publish-via", "ws", "--publish-url", "http://127.0.0.1:1"],
            "--publish-url is for",
        ),
        (&["--publishers", "2"], "--publishers is for --publish-via ws"),
        (&["--publish-url", "https://127.0.0.1:1"], "needs --tls-ca FILE"),
        (&["--tls-insecure"], "--tls-insecure is for wss://"),
    ] {
        let mut all = vec!["push", "--url", "ws://127.0.0.1:9/ws"];
        all.extend_from_slice(args);
        let (code, _, err) = run(loadgen(&all));
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn wss_subscribers_get_every_publish_made_over_https_and_over_wss() {
    let server = PushServer::start(Faults::default());
    let front = TlsFront::start(server.addr);
    let (url, ca) = (front.url("/ws"), fixture("ca.pem"));
    let window = ["--duration", "600ms", "--warmup", "100ms", "--drain", "300ms"];
    // HTTP publishing goes to the --url host: over TLS, like the subscribers.
    let mut args = vec![
        "--tls-ca",
        &ca,
        "--conns",
        "6",
        "--topics",
        "2",
        "--publish-rate",
        "200",
    ];
    args.extend_from_slice(&window);
    let (code, s) = push_to(&url, &args);
    assert_eq!(code, 0, "{s}");
    assert_eq!(u(&s, "conns_established"), 6);
    let p = assert_exact(&server, &s, 3);
    assert_eq!(count(&server.counts.single_requests), u(&p, "publishes_acked"));
    wait_for(|| count(&server.counts.closes) == 6);
    // WebSocket publishers connect over wss:// too.
    let mut args = vec!["--tls-insecure", "--conns", "4", "--topics", "2", "--publish-via", "ws"];
    args.extend_from_slice(&["--publish-rate", "200"]);
    args.extend_from_slice(&window);
    let (code, s) = push_to(&url, &args);
    assert_eq!(code, 0, "{s}");
    assert_eq!((u(&s, "conns_target"), u(&s, "conns_established")), (5, 5));
    let p = s["push"].clone();
    assert_eq!(u(&p, "publishes_failed"), 0, "{p}");
    assert_eq!(u(&p, "deliveries_received"), u(&p, "publishes_acked") * 2, "{p}");
    assert_eq!(count(&server.counts.ws_publishes), u(&p, "publishes_acked"));
    wait_for(|| count(&server.counts.closes) == 6 + 5);
}
