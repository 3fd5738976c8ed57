//! `wss://` end to end: the loadgen binary against the tungstenite test server behind the TLS
//! front (tests/support/tls.rs), with the CA checked (`--tls-ca`) or not (`--tls-insecure`),
//! over TLS 1.3 and 1.2, both monoio drivers, --procs, and the failures: a CA that did not
//! sign the server's certificate, and no trust flag at all.

mod support;

use support::tls::{fixture, TlsFront};
use support::{count, loadgen, run, summary, u, wait_for, Mode, Server};

#[test]
fn echo_over_wss_with_the_ca_counts_every_message() {
    let server = Server::start(Mode::Echo);
    let front = TlsFront::start(server.addr);
    let (url, ca) = (front.url("/echo"), fixture("ca.pem"));
    let (code, out, err) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--tls-ca",
        &ca,
        "--conns",
        "20",
        "--in-flight",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--size",
        "100",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(s["url"], url);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    assert_eq!((u(&s, "conns_established"), u(&s, "handshakes")), (20, 20));
    assert_eq!(u(&s, "conns_open_at_end"), 20);
    let messages = u(&s, "messages");
    assert!(messages > 0, "{s}");
    let per_message = s["bytes_per_sec"].as_f64().unwrap() / s["msgs_per_sec"].as_f64().unwrap();
    assert!((per_message - 100.0).abs() < 0.01, "{per_message}");
    // The server echoed every measured message (and those of the warmup and the drain).
    assert!(count(&server.counts.echoed) >= messages);
    assert!(u(&s["handshake_latency_us"], "p50") > 0);
    assert!(out.contains("(TCP + TLS + upgrade)"), "{out}");
    assert!(!err.contains("warning"), "{err}");
    wait_for(|| count(&server.counts.closes) == 20);
}

#[test]
fn open_loop_echo_over_wss_keeps_to_the_rate() {
    let server = Server::start(Mode::Echo);
    let front = TlsFront::start(server.addr);
    let (url, ca) = (front.url("/echo"), fixture("ca.pem"));
    let (code, out, err) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--tls-ca",
        &ca,
        "--conns",
        "10",
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--binary",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    // Counted by intended send time: the window holds at most rate x duration.
    let messages = u(&s, "messages");
    assert!((400..=501).contains(&messages), "{messages}");
    // What was sent in the warmup and the window (about 600 messages) was echoed once.
    let echoed = count(&server.counts.echoed);
    assert!(
        (messages..=610).contains(&echoed),
        "{echoed} echoed, {messages} measured"
    );
}

#[test]
fn insecure_connect_over_two_procs_holds_answers_pings_and_warns_once() {
    let server = Server::start(Mode::PingFirst);
    let front = TlsFront::start(server.addr);
    let url = front.url("/");
    let (code, out, err) = run(loadgen(&[
        "connect",
        "--url",
        &url,
        "--tls-insecure",
        "--procs",
        "2",
        "--conns",
        "30",
        "--hold",
        "500ms",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    assert_eq!((u(&s, "conns_established"), u(&s, "conns_open_at_end")), (30, 30));
    assert_eq!(
        err.matches("--tls-insecure: server certificates are not verified")
            .count(),
        1,
        "{err}"
    );
    wait_for(|| count(&server.counts.closes) == 30);
    assert_eq!(count(&server.counts.pongs), 30);
}

#[test]
fn churn_over_tls12_on_epoll_completes_loops() {
    let server = Server::start(Mode::Echo);
    let front = TlsFront::tls12(server.addr);
    let url = front.url("/echo");
    let (code, out, err) = run(loadgen(&[
        "churn",
        "--url",
        &url,
        "--tls-insecure",
        "--io",
        "epoll",
        "--conns",
        "3",
        "--duration",
        "1s",
        "--warmup",
        "100ms",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(s["config"]["driver"], "epoll");
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    let loops = u(&s, "loops_completed");
    assert!(loops > 0 && u(&s, "messages") > 0, "{s}");
    // Every loop is a new TCP connection with its own full TLS handshake.
    wait_for(|| count(&server.counts.upgraded) == u(&s, "conns_established"));
    assert!(count(&server.counts.accepted) >= loops);
}

#[test]
fn a_ca_that_did_not_sign_the_server_fails_verification() {
    let server = Server::start(Mode::Echo);
    let front = TlsFront::start(server.addr);
    // The leaf itself as the only trust anchor: it is not the certificate's issuer.
    let (url, wrong) = (front.url("/echo"), fixture("server.pem"));
    let (code, out, err) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--tls-ca",
        &wrong,
        "--conns",
        "4",
        "--duration",
        "200ms",
        "--handshake-timeout",
        "3s",
        "--json",
    ]));
    assert_eq!(code, 1, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(u(&s, "conns_established"), 0);
    assert_eq!(
        u(&s["connect_failures"], "tls_invalid_certificate_unknown_issuer"),
        4,
        "{s}"
    );
    assert_eq!(count(&server.counts.upgraded), 0);
}

#[test]
fn wss_without_a_trust_flag_says_which_to_pass() {
    let (code, out, err) = run(loadgen(&["echo", "--url", "wss://127.0.0.1:9/", "--conns", "1"]));
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("--tls-ca FILE") && err.contains("--tls-insecure"), "{err}");
    let missing = fixture("missing.pem");
    let url = "wss://127.0.0.1:9/";
    let (code, _, err) = run(loadgen(&["echo", "--url", url, "--tls-ca", &missing]));
    assert_eq!(code, 2);
    assert!(err.contains(&format!("--tls-ca {missing}")), "{err}");
    let (code, _, err) = run(loadgen(&["echo", "--url", "ws://127.0.0.1:9/", "--tls-insecure"]));
    assert_eq!(code, 2);
    assert!(err.contains("--tls-insecure is for wss://"), "{err}");
    let (code, _, _) = run(loadgen(&["echo", "--url", url, "--tls-insecure", "--tls-ca", &missing]));
    assert_eq!(code, 2, "the two trust flags exclude each other");
}

#[test]
fn messages_larger_than_a_tls_record_cross_intact() {
    let server = Server::start(Mode::Echo);
    let front = TlsFront::start(server.addr);
    let (url, ca) = (front.url("/echo"), fixture("ca.pem"));
    let (code, out, err) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--tls-ca",
        &ca,
        "--conns",
        "2",
        "--in-flight",
        "4",
        "--size",
        "100000",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--binary",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    assert!(u(&s, "messages") > 0, "{s}");
    let per_message = s["bytes_per_sec"].as_f64().unwrap() / s["msgs_per_sec"].as_f64().unwrap();
    assert!((per_message - 100_000.0).abs() < 1.0, "{per_message}");
}
