//! Bad input over the real binary, one table row per input: what it is, the outcome the
//! README documents for it (a status before the upgrade, or the close code after it), and the
//! counter that must move by exactly that much. Every row runs under both io drivers against
//! one push-mode server each (push mode is the internet-facing one; its engine rules are
//! echo mode's); after the whole table a normal tungstenite client still subscribes and
//! receives, the refusals were logged, and no connection is left open.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use common::push::{publish, Subscriber};
use common::{client_frame, http_bytes_at, upgrade_request, RawWs, ServerProcess, DRIVERS};

/// The limits the rows run against.
const SERVER_ARGS: &[&str] = &[
    "--mode",
    "push",
    "--ws-path",
    "/ws",
    "--max-message-size",
    "65536",
    "--max-request-head",
    "2048",
    "--max-queued-bytes",
    "65536",
    "--slow-consumer-close-code",
    "1013",
    "--push-max-topics-per-connection",
    "4",
    "--close-timeout",
    "2s",
];

/// How a row's bytes reach the server.
enum Input {
    /// A request head of its own (refused before any upgrade).
    Request(Vec<u8>),
    /// Written in one go after a good upgrade at `/ws`.
    Frames(Vec<u8>),
    /// Written in the same write as a good upgrade request.
    WithUpgrade(Vec<u8>),
    /// Written one byte per write after a good upgrade.
    Trickle(Vec<u8>),
    /// A subscriber of `flood` that stops reading while publishes flow to it.
    StopsReading,
}

/// What the server must answer.
enum Outcome {
    /// This status, with these headers, before any upgrade; then it closes.
    Status(u16, &'static [&'static str]),
    /// A close frame with this code after the upgrade; then it closes.
    Close(u16),
}

/// One bad input.
struct Row {
    name: &'static str,
    input: Input,
    outcome: Outcome,
    /// The metric series that counts this outcome.
    counter: String,
}

/// Requests without `Upgrade: websocket` are plain HTTP: the router answers, they are counted
/// as HTTP requests, not as refused upgrades.
const PLAIN_HTTP: &str = "ringcast_http_requests_total";
const SLOW_CONSUMERS: &str = "ringcast_slow_consumers_total";

/// A request refused before the upgrade with `status`, the headers the README gives that
/// status, and its `ringcast_handshake_rejected_total` series.
fn refused(name: &'static str, request: impl Into<Vec<u8>>, status: u16) -> Row {
    let headers: &'static [&'static str] = match status {
        405 => &["Allow: GET"],
        426 => &["Sec-WebSocket-Version: 13"],
        _ => &[],
    };
    Row {
        name,
        input: Input::Request(request.into()),
        outcome: Outcome::Status(status, headers),
        counter: format!("ringcast_handshake_rejected_total{{status=\"{status}\"}}"),
    }
}

/// A request that is not an upgrade at a WebSocket path: the router's 426 naming what to send.
fn routed(name: &'static str, request: String) -> Row {
    Row {
        name,
        input: Input::Request(request.into_bytes()),
        outcome: Outcome::Status(426, &["Upgrade: websocket", "Sec-WebSocket-Version: 13"]),
        counter: PLAIN_HTTP.to_owned(),
    }
}

/// Input after the upgrade that breaks a rule: closed with `code` (1002, 1007 or 1009),
/// counted in its `ringcast_protocol_errors_total` series.
fn violation(name: &'static str, input: Input, code: u16) -> Row {
    Row {
        name,
        input,
        outcome: Outcome::Close(code),
        counter: format!("ringcast_protocol_errors_total{{code=\"{code}\"}}"),
    }
}

/// [`violation`] for bytes written in one go after the upgrade.
fn broken(name: &'static str, bytes: Vec<u8>, code: u16) -> Row {
    violation(name, Input::Frames(bytes), code)
}

/// A frame header with an explicit length field (`len7` and the extended bytes), masked.
fn header(first: u8, len7: u8, extended: &[u8]) -> Vec<u8> {
    [&[first, 0x80 | len7][..], extended, &[1, 2, 3, 4]].concat()
}

/// A client close frame with `code` and `reason`.
fn close_frame(code: u16, reason: &[u8]) -> Vec<u8> {
    client_frame(0x88, &[&code.to_be_bytes()[..], reason].concat())
}

fn rows() -> Vec<Row> {
    let good = upgrade_request("/ws");
    let with_header = |line: &str| good.replace("\r\n\r\n", &format!("\r\n{line}\r\n\r\n"));
    let key = |key: &str| good.replacen("dGhlIHNhbXBsZSBub25jZQ==", key, 1);
    let many_headers: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
    let endless = good.trim_end().to_owned() + &"\r\nX-More: aaaaaaaaaaaaaaaa".repeat(90);
    let unmasked = vec![0x81, 0x02, b'h', b'i'];
    let mut key_not_ascii = good.clone().into_bytes();
    key_not_ascii[good.find("dGhl").expect("the key") + 5] = 0xff;
    let length64 = |len: u64| header(0x82, 127, &len.to_be_bytes());
    vec![
        // Before the upgrade: the request line.
        refused("request line of garbage", "BLAH\x01 / HTTP/1.1\r\n\r\n", 400),
        refused("request line without a version", "GET /ws\r\nHost: x\r\n\r\n", 400),
        refused(
            "request line with a fourth part",
            good.replacen("HTTP/1.1", "HTTP/1.1 x", 1),
            400,
        ),
        refused("control byte in the target", good.replacen("/ws", "/w\x7fs", 1), 400),
        refused("upgrade with POST", good.replacen("GET", "POST", 1), 405),
        refused("lower-case method", good.replacen("GET", "get", 1), 405),
        refused("HTTP/1.0", good.replacen("HTTP/1.1", "HTTP/1.0", 1), 400),
        refused("HTTP/2.0", good.replacen("HTTP/1.1", "HTTP/2.0", 1), 400),
        refused("upgrade at another path", upgrade_request("/elsewhere"), 404),
        // Header lines.
        refused("header line without a colon", with_header("X-Broken"), 400),
        refused("space before the colon", good.replacen("Host:", "Host :", 1), 400),
        refused(
            "folded header line",
            good.replacen("Upgrade: websocket", "Upgrade:\r\n websocket", 1),
            400,
        ),
        refused("two Host headers", with_header("Host: other"), 400),
        refused(
            "two keys",
            with_header("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="),
            400,
        ),
        refused("two versions", with_header("Sec-WebSocket-Version: 13"), 400),
        refused("missing Host", good.replacen("Host: localhost\r\n", "", 1), 400),
        refused(
            "header over the head limit",
            with_header(&format!("X-Pad: {}", "p".repeat(3000))),
            431,
        ),
        refused("70 header lines", with_header(many_headers.trim_end()), 431),
        refused("head that never ends", endless, 431),
        // The upgrade headers.
        refused(
            "WebSocket version 8",
            good.replacen("Version: 13", "Version: 8", 1),
            426,
        ),
        refused(
            "WebSocket versions 13, 8",
            good.replacen("Version: 13", "Version: 13, 8", 1),
            426,
        ),
        refused(
            "no WebSocket version",
            good.replacen("Sec-WebSocket-Version: 13\r\n", "", 1),
            426,
        ),
        refused("key of 5 bytes", key("c2hvcnQ="), 400),
        refused("key of 33 bytes", key(&"QUFB".repeat(11)), 400),
        refused("key not base64", key("!!!!!!!!!!!!!!!!!!!!!!!!"), 400),
        refused("key with a byte that is not ASCII", key_not_ascii, 400),
        refused(
            "no key",
            good.replacen("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1),
            400,
        ),
        refused(
            "Connection without upgrade",
            good.replacen("Connection: Upgrade", "Connection: keep-alive", 1),
            400,
        ),
        routed("no Upgrade header", good.replacen("Upgrade: websocket\r\n", "", 1)),
        routed("Upgrade: h2c", good.replacen("Upgrade: websocket", "Upgrade: h2c", 1)),
        // Push mode's query.
        refused("bad topic in the query", upgrade_request("/ws?topics=a:b"), 400),
        refused("more topics than allowed", upgrade_request("/ws?topics=a,b,c,d,e"), 400),
        refused(
            "bad since in the query",
            upgrade_request("/ws?topics=a&since=a:zz:1"),
            400,
        ),
        // After the upgrade: framing.
        broken("unmasked frame", unmasked.clone(), 1002),
        violation(
            "unmasked frame sent with the request",
            Input::WithUpgrade(unmasked),
            1002,
        ),
        broken("RSV1 without an extension", client_frame(0xc1, b"x"), 1002),
        broken("RSV2 and RSV3", client_frame(0xb1, b"x"), 1002),
        broken("opcode 0x3", client_frame(0x83, b""), 1002),
        broken("opcode 0xB", client_frame(0x8b, b""), 1002),
        broken("ping of 126 bytes", client_frame(0x89, &[0; 126]), 1002),
        broken("fragmented ping", client_frame(0x09, b"x"), 1002),
        broken(
            "fragmented close",
            [&[0x08], &close_frame(1000, b"")[1..]].concat(),
            1002,
        ),
        broken("continuation with nothing to continue", client_frame(0x80, b"x"), 1002),
        broken(
            "new message inside a fragmented one",
            [client_frame(0x01, b"a"), client_frame(0x82, b"b")].concat(),
            1002,
        ),
        broken("16-bit length that fits 7 bits", header(0x82, 126, &[0, 5]), 1002),
        broken("64-bit length that fits 16 bits", length64(200), 1002),
        broken("64-bit length with the top bit", length64(1 << 63), 1002),
        // Sizes (the limit is 65,536 bytes): refused from the header, before any payload.
        broken("declared length of 2^62", length64(1 << 62), 1009),
        broken("declared length one over the limit", length64(65_537), 1009),
        violation(
            "huge length one byte per write",
            Input::Trickle(header(0x81, 127, &(1u64 << 40).to_be_bytes())),
            1009,
        ),
        broken(
            "fragments over the limit together",
            [
                client_frame(0x02, &[1; 40_000]),
                header(0x80, 126, &30_000u16.to_be_bytes()),
            ]
            .concat(),
            1009,
        ),
        // UTF-8.
        broken(
            "invalid UTF-8 in one frame",
            client_frame(0x81, b"\xce\xba\xed\xa0\x80"),
            1007,
        ),
        broken(
            "code point broken across fragments",
            [
                client_frame(0x01, b"\xce\xba\xe1\xbd\xb9\xe2\x82"),
                client_frame(0x80, b"("),
            ]
            .concat(),
            1007,
        ),
        broken(
            "impossible byte in a later fragment, no final one",
            [client_frame(0x01, "κόσμε".as_bytes()), client_frame(0x00, b"\xf4\x90")].concat(),
            1007,
        ),
        broken(
            "code point left open by the final fragment",
            [client_frame(0x01, b"ok\xe2"), client_frame(0x80, b"\x82")].concat(),
            1007,
        ),
        // Close payloads.
        broken("close payload of one byte", client_frame(0x88, &[3]), 1002),
        broken("close code 1005", close_frame(1005, b""), 1002),
        broken("close code 1004", close_frame(1004, b""), 1002),
        broken("close code 5000", close_frame(5000, b""), 1002),
        broken("close reason not UTF-8", close_frame(1000, b"\xff\xfe"), 1002),
        // A valid close echoed, whatever follows it; a subscriber closed for not reading.
        Row {
            name: "garbage after a close",
            input: Input::Frames([close_frame(1000, b"bye"), vec![0xff; 64]].concat()),
            outcome: Outcome::Close(1000),
            counter: "ringcast_connections_closed_total{by=\"client\"}".to_owned(),
        },
        Row {
            name: "subscriber that stops reading",
            input: Input::StopsReading,
            outcome: Outcome::Close(1013),
            counter: SLOW_CONSUMERS.to_owned(),
        },
    ]
}

/// Sends a row's input and checks the server's answer.
fn play(server: &ServerProcess, row: &Row) {
    let name = row.name;
    match (&row.input, &row.outcome) {
        (Input::Request(bytes), Outcome::Status(status, headers)) => {
            expect_status(server, bytes, *status, headers, name)
        }
        (Input::Frames(bytes), Outcome::Close(code)) => {
            let mut ws = RawWs::connect(server, "/ws", &[]);
            ws.send(bytes);
            expect_close(&mut ws, *code, name);
        }
        (Input::WithUpgrade(bytes), Outcome::Close(code)) => {
            expect_close(&mut RawWs::connect(server, "/ws", bytes), *code, name)
        }
        (Input::Trickle(bytes), Outcome::Close(code)) => {
            let mut ws = RawWs::connect(server, "/ws", &[]);
            for byte in bytes {
                ws.send(std::slice::from_ref(byte));
            }
            expect_close(&mut ws, *code, name);
        }
        (Input::StopsReading, Outcome::Close(code)) => stop_reading(server, *code),
        _ => panic!("{name}: a request row expects a status, a frames row a close code"),
    }
}

/// The server's next frame is a close with `code`, and nothing follows it but the end of
/// the stream.
fn expect_close(ws: &mut RawWs, code: u16, name: &str) {
    let frame = ws
        .read_frame()
        .unwrap_or_else(|| panic!("{name}: the server closed TCP without a close frame"));
    assert_eq!(frame.close_code(), Some(code), "{name}: {frame:?}");
    ws.expect_eof();
}

fn expect_status(server: &ServerProcess, request: &[u8], status: u16, headers: &[&str], name: &str) {
    let response = http_bytes_at(server.addr, request);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status} ")),
        "{name}: got {response:?}"
    );
    for header in headers {
        assert!(
            format!("{head}\r\n").contains(&format!("\r\n{header}\r\n")),
            "{name}: no {header:?} in {head:?}"
        );
    }
    assert_eq!(body.lines().count(), 1, "{name}: a one-line reason, got {body:?}");
}

/// A subscriber with a small receive buffer reads its `subscribed` notice, then stops reading
/// while 16 KiB messages are published to its topic: the server closes it as a slow consumer
/// with the configured code, after what it had queued.
fn stop_reading(server: &ServerProcess, code: u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut ws = RawWs::upgrade(stream, "/ws?topics=flood", &[]);
    let notice = ws.read_frame().expect("the subscribed notice");
    assert!(
        String::from_utf8_lossy(&notice.payload).contains("\"subscribed\""),
        "{notice:?}"
    );
    let before = server.metric(SLOW_CONSUMERS);
    let data = "x".repeat(16 * 1024);
    let mut published = 0;
    while published < 400 && server.metric(SLOW_CONSUMERS) == before {
        publish(server.addr, "flood", &data);
        published += 1;
    }
    assert!(
        published < 400,
        "never closed as a slow consumer after {published} publishes"
    );
    // What was queued before the close comes first, then the close frame.
    let mut frames = 0;
    let close = loop {
        let frame = ws.read_frame().expect("frames up to the close");
        if frame.opcode == 8 {
            break frame;
        }
        assert_eq!(frame.opcode, 1, "only text messages before the close");
        frames += 1;
        assert!(frames <= published, "more messages than were published");
    };
    assert_eq!(close.close_code(), Some(code), "{close:?}");
    // The server waits for our close; answer it and the server ends the connection.
    ws.send(&close_frame(code, b""));
    let mut rest = Vec::new();
    let _ = ws.stream.read_to_end(&mut rest);
}

/// Polls `read` (bounded: about 2 s) until `done` holds for its value; returns the last value.
fn settle(mut read: impl FnMut() -> u64, done: impl Fn(u64) -> bool) -> u64 {
    let mut now = read();
    for _ in 0..200 {
        if done(now) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        now = read();
    }
    now
}

/// How many JSON log events named `event` have `field` equal to `value`.
fn events_with(server: &ServerProcess, event: &str, field: &str, value: u64) -> u64 {
    server.json_events(event).iter().filter(|e| e[field] == value).count() as u64
}

#[test]
fn every_bad_input_gets_its_documented_outcome_and_counter() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, SERVER_ARGS);
        let rows = rows();
        let names: std::collections::HashSet<&str> = rows.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), rows.len(), "row names are unique");
        for row in &rows {
            let before = server.metric(&row.counter);
            play(&server, row);
            // A scrape is a plain HTTP request too: the one that reads the counter counts itself.
            let want = before + if row.counter == PLAIN_HTTP { 2 } else { 1 };
            let now = settle(|| server.metric(&row.counter), |n| n >= want);
            assert_eq!(now, want, "{driver}: {}: {}", row.name, row.counter);
        }
        // Every refusal and every protocol error was logged, once.
        let count = |pick: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| pick(r)).count() as u64;
        for status in [400u16, 404, 405, 426, 431] {
            let want = count(&|r| matches!(r.outcome, Outcome::Status(s, _) if s == status) && r.counter != PLAIN_HTTP);
            let logged = settle(
                || events_with(&server, "rejected", "status", status.into()),
                |n| n >= want,
            );
            assert_eq!(logged, want, "{driver}: `rejected` log lines with status {status}");
        }
        for code in [1002u16, 1007, 1009] {
            let want = count(&|r| matches!(r.outcome, Outcome::Close(c) if c == code));
            let logged = settle(
                || events_with(&server, "protocol_error", "code", code.into()),
                |n| n >= want,
            );
            assert_eq!(logged, want, "{driver}: `protocol_error` log lines with code {code}");
        }
        still_serves(&server);
        let open = settle(|| server.metric("ringcast_connections_open"), |n| n == 0);
        assert_eq!(open, 0, "{driver}: connections left open after the table");
    }
}

/// A normal client after the table: subscribes, gets a publish, gets an error reply to a bad
/// command, closes cleanly.
fn still_serves(server: &ServerProcess) {
    let mut subscriber = Subscriber::connect(server.addr, "/ws?topics=alive");
    subscriber.expect_subscribed("alive");
    publish(server.addr, "alive", "still here");
    assert_eq!(subscriber.expect_message().3, "still here");
    subscriber.command(serde_json::json!({"op": "dance", "ref": 1}));
    let reply = subscriber.next_json();
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("unknown_op")),
        "{reply}"
    );
    subscriber.ws.close(None).unwrap();
    while subscriber.ws.read().is_ok() {}
}
