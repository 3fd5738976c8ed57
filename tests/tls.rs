//! Native TLS (`--tls-cert`, `--tls-key`) against an independent TLS stack: OpenSSL (through
//! the `openssl` crate) under tungstenite as the WebSocket client, on both io drivers. The
//! server's metrics stay on a plain `--metrics-listen` address.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{metric_at, wait_for_metric_eq_at, ServerProcess, DRIVERS};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion};
use tungstenite::{Error, Message, WebSocket};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// A TLS server on `driver` with its metrics on a plain address of their own.
struct TlsServer {
    process: ServerProcess,
    metrics: SocketAddr,
}

impl TlsServer {
    fn start(driver: &str, args: &[&str]) -> TlsServer {
        let (cert, key) = (format!("{FIXTURES}/server.pem"), format!("{FIXTURES}/server.key"));
        let mut all = vec![
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let process = ServerProcess::start(driver, &all);
        let metrics = process.printed_addr("metrics on http://", "/metrics");
        TlsServer { process, metrics }
    }

    fn metric(&self, series: &str) -> u64 {
        metric_at(self.metrics, series)
    }

    fn wait_for_metric(&self, series: &str, value: u64) {
        wait_for_metric_eq_at(self.metrics, series, value);
    }
}

/// OpenSSL's client, trusting the test CA (or nothing at all, with `trust_ca` false).
fn connector(trust_ca: bool) -> SslConnector {
    connector_up_to(trust_ca, None)
}

/// [`connector`] limited to TLS versions up to `max` (`None`: OpenSSL's newest).
fn connector_up_to(trust_ca: bool, max: Option<SslVersion>) -> SslConnector {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_max_proto_version(max).unwrap();
    if trust_ca {
        builder.set_ca_file(format!("{FIXTURES}/ca.pem")).unwrap();
    } else {
        builder.set_verify(SslVerifyMode::PEER);
    }
    builder.set_alpn_protos(b"\x08http/1.1").unwrap();
    builder.build()
}

fn tls_connect(addr: SocketAddr) -> SslStream<TcpStream> {
    tls_connect_up_to(addr, None)
}

fn tls_connect_up_to(addr: SocketAddr, max: Option<SslVersion>) -> SslStream<TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    connector_up_to(true, max).connect("localhost", tcp).unwrap()
}

/// A `wss://` client: OpenSSL's handshake, then tungstenite's upgrade.
fn wss(addr: SocketAddr, path: &str) -> WebSocket<SslStream<TcpStream>> {
    wss_from(tls_connect(addr), addr, path)
}

fn wss_from(tls: SslStream<TcpStream>, addr: SocketAddr, path: &str) -> WebSocket<SslStream<TcpStream>> {
    assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"http/1.1"[..]));
    let url = format!("wss://localhost:{}{path}", addr.port());
    let (ws, response) = tungstenite::client::client(url, tls).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

fn next_data(ws: &mut WebSocket<SslStream<TcpStream>>) -> Message {
    loop {
        match ws.read().unwrap() {
            Message::Ping(_) | Message::Pong(_) => continue,
            message => return message,
        }
    }
}

/// After our close, the server's close reply, then a clean end of TLS: OpenSSL reports an
/// end of stream without close_notify as an error, so `ConnectionClosed` proves it came.
fn close_cleanly(mut ws: WebSocket<SslStream<TcpStream>>) {
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000)),
            Ok(_) => {}
            Err(Error::ConnectionClosed) => break,
            Err(other) => panic!("not a clean close: {other}"),
        }
    }
    let shutdown = ws.get_mut().get_shutdown();
    assert!(shutdown.contains(openssl::ssl::ShutdownState::RECEIVED), "{shutdown:?}");
}

#[test]
fn wss_echoes_text_binary_and_pings_and_closes_cleanly() {
    for driver in DRIVERS {
        let server = TlsServer::start(driver, &[]);
        let mut ws = wss(server.process.addr, "/");
        ws.send(Message::text("hello over tls")).unwrap();
        assert_eq!(next_data(&mut ws), Message::text("hello over tls"), "{driver}");
        // Larger than a TLS record and than a receive buffer, both ways.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone())).unwrap();
        assert_eq!(next_data(&mut ws), Message::binary(big), "{driver}");
        ws.send(Message::Ping("p".into())).unwrap();
        let pong = loop {
            if let Message::Pong(payload) = ws.read().unwrap() {
                break payload;
            }
        };
        assert_eq!(&pong[..], b"p");
        // Many small messages sent before reading any reply: their echoes are encrypted in
        // batches, in order.
        for i in 0..2000 {
            ws.write(Message::text(format!("m{i}"))).unwrap();
        }
        ws.flush().unwrap();
        for i in 0..2000 {
            assert_eq!(next_data(&mut ws), Message::text(format!("m{i}")), "{driver}");
        }
        close_cleanly(ws);
        server.wait_for_metric("ringcast_connections_closed_total{by=\"client\"}", 1);
        assert_eq!(server.metric("ringcast_upgrades_total"), 1);
        assert_eq!(server.metric("ringcast_messages_received_total"), 2002);
        assert_eq!(server.metric("ringcast_tls_errors_total"), 0);
        assert_eq!(server.metric("ringcast_tls_handshake_failures_total"), 0);
    }
}

#[test]
fn tls_1_2_clients_are_served_too() {
    for driver in DRIVERS {
        let server = TlsServer::start(driver, &[]);
        let addr = server.process.addr;
        let tls = tls_connect_up_to(addr, Some(SslVersion::TLS1_2));
        assert_eq!(tls.ssl().version_str(), "TLSv1.2");
        let mut ws = wss_from(tls, addr, "/");
        let big = vec![7u8; 100_000];
        ws.send(Message::binary(big.clone())).unwrap();
        assert_eq!(next_data(&mut ws), Message::binary(big), "{driver}");
        close_cleanly(ws);
        let tls13 = tls_connect(addr);
        assert_eq!(tls13.ssl().version_str(), "TLSv1.3", "the newest version both speak");
    }
}

#[test]
fn the_server_closes_tls_connections_with_a_close_frame_then_close_notify() {
    for driver in DRIVERS {
        let server = TlsServer::start(driver, &["--idle-timeout", "300ms", "--ping-interval", "0s"]);
        let mut ws = wss(server.process.addr, "/");
        let frame = loop {
            match ws.read().unwrap() {
                Message::Close(frame) => break frame,
                _ => continue,
            }
        };
        assert!(frame.is_some(), "{driver}: a close frame with a code");
        match ws.read() {
            Err(Error::ConnectionClosed) => {}
            other => panic!("{driver}: not a clean end after the close: {other:?}"),
        }
        server.wait_for_metric("ringcast_connections_open", 0);
    }
}

#[test]
fn plain_http_on_the_tls_port_over_tls_and_tls_errors_each_get_a_defined_outcome() {
    for driver in DRIVERS {
        let server = TlsServer::start(driver, &[]);
        let addr = server.process.addr;
        // HTTPS: the plain routes answer over TLS.
        let mut tls = tls_connect(addr);
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        let _ = tls.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 200"), "{driver}: {response}");
        // Plain HTTP to the TLS port: a plain 400 that says why.
        let response = common::http_at(addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 400"), "{driver}: {response}");
        assert!(response.contains("this port speaks TLS"), "{response}");
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"400\"}"), 1);
        // A client that does not trust the certificate gives up in the handshake (its alert
        // ends the server's side).
        let tcp = TcpStream::connect(addr).unwrap();
        assert!(connector(false).connect("localhost", tcp).is_err());
        server.wait_for_metric("ringcast_tls_handshake_failures_total", 1);
        // A handshake record holding an empty (undecodable) client hello.
        let mut garbage = TcpStream::connect(addr).unwrap();
        garbage.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        garbage.write_all(&[22, 3, 1, 0, 4, 1, 0, 0, 0]).unwrap();
        let mut alert = Vec::new();
        let _ = garbage.read_to_end(&mut alert);
        assert_eq!(
            alert.first(),
            Some(&21),
            "{driver}: an alert record, then the end: {alert:?}"
        );
        server.wait_for_metric("ringcast_tls_handshake_failures_total", 2);
        let failures = server.process.json_events("tls_handshake_failed");
        assert_eq!(failures.len(), 2, "{driver}: a log line each");
        // Everyone else is still served.
        let mut ws = wss(addr, "/");
        ws.send(Message::text("still here")).unwrap();
        assert_eq!(next_data(&mut ws), Message::text("still here"));
        close_cleanly(ws);
    }
}

#[test]
fn a_corrupted_record_after_the_upgrade_ends_the_connection_and_is_counted() {
    for driver in DRIVERS {
        let server = TlsServer::start(driver, &[]);
        let mut ws = wss(server.process.addr, "/");
        ws.send(Message::text("before")).unwrap();
        assert_eq!(next_data(&mut ws), Message::text("before"));
        // Write a well-formed application-data record header with a payload that cannot
        // decrypt, straight on the TCP socket under OpenSSL.
        let tcp = ws.get_mut().get_mut();
        tcp.write_all(&[23, 3, 3, 0, 32]).unwrap();
        tcp.write_all(&[0xab; 32]).unwrap();
        server.wait_for_metric("ringcast_tls_errors_total", 1);
        server.wait_for_metric("ringcast_connections_open", 0);
        assert_eq!(server.process.json_events("tls_error").len(), 1, "{driver}");
    }
}

#[test]
fn tls_settings_that_cannot_work_stop_the_start_with_the_reason() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let cert = format!("{FIXTURES}/server.pem");
    let stderr = run(&["--tls-cert", &cert]);
    assert!(stderr.contains("tls_key"), "{stderr}");
    let stderr = run(&["--tls-cert", &cert, "--tls-key", "/nonexistent/key.pem"]);
    assert!(stderr.contains("/nonexistent/key.pem"), "{stderr}");
}
