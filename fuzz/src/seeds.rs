//! The seed corpus, written as code so every seed says what it is: `ringcast-fuzz-seeds`
//! writes these to `corpus/<target>/<name>`, and the runner checks the checked-in files match.
//! Files in a corpus folder that are not seeds (crashes found later, see the README) are
//! replayed too.

use bytes::BytesMut;
use ringcast::proto::frame::encode_frame;
use ringcast::proto::OpCode;

/// One seed: its file name and its bytes.
pub type Seed = (&'static str, Vec<u8>);

/// The seeds of the target named `target` (none for an unknown name).
pub fn seeds(target: &str) -> Vec<Seed> {
    match target {
        "handshake" => handshake(),
        "frames" => frames(),
        "close" => close(),
        "push" => push(),
        _ => Vec::new(),
    }
}

const GOOD: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn handshake() -> Vec<Seed> {
    let text = |name, text: String| (name, text.into_bytes());
    let good = || GOOD.to_owned();
    let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
    vec![
        text("good", good()),
        text("good-lf-only", good().replace("\r\n", "\n")),
        text("good-leading-crlf", format!("\r\n{GOOD}")),
        text(
            "good-lowercase",
            good().to_lowercase().replace("get", "GET").replace("http/", "HTTP/"),
        ),
        ("good-with-frame", [GOOD.as_bytes(), &[0x81, 0x80, 1, 2, 3, 4]].concat()),
        text(
            "good-no-protocol",
            good().replace("Sec-WebSocket-Protocol: chat, superchat\r\n", ""),
        ),
        text("post", good().replace("GET", "POST")),
        text("http10", good().replace("HTTP/1.1", "HTTP/1.0")),
        text("http12", good().replace("HTTP/1.1", "HTTP/1.2")),
        text("http2", good().replace("HTTP/1.1", "HTTP/2.0")),
        text("no-host", good().replace("Host: server.example.com\r\n", "")),
        text(
            "two-hosts",
            good().replace("Host: server.example.com\r\n", "Host: a\r\nHost: b\r\n"),
        ),
        text(
            "two-keys",
            good().replace(
                "Sec-WebSocket-Version",
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version",
            ),
        ),
        text(
            "two-versions",
            good().replace("Version: 13\r\n", "Version: 13\r\nSec-WebSocket-Version: 13\r\n"),
        ),
        text("version-8", good().replace("Version: 13", "Version: 8")),
        text("version-list", good().replace("Version: 13", "Version: 13, 8")),
        text("key-short", good().replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
        text(
            "key-not-base64",
            good().replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!!!!!!!!!!!!!!!!!!!!!!"),
        ),
        text(
            "key-unpadded",
            good().replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ"),
        ),
        text(
            "no-key",
            good().replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        ),
        text("upgrade-h2c", good().replace("Upgrade: websocket", "Upgrade: h2c")),
        text(
            "no-connection-upgrade",
            good().replace("keep-alive, Upgrade", "keep-alive"),
        ),
        text(
            "too-many-headers",
            good().replace("\r\n\r\n", &format!("\r\n{many}\r\n")),
        ),
        text(
            "oversized-header",
            good().replace("\r\n\r\n", &format!("\r\nX-Pad: {}\r\n\r\n", "p".repeat(1100))),
        ),
        text("incomplete", good()[..60].to_owned()),
        text("garbage-request-line", "BLAH\u{1} / HTTP/1.1\r\n\r\n".to_owned()),
        text("nul-in-path", good().replace("/chat", "/ch\0at")),
        text(
            "obs-fold",
            good().replace("Upgrade: websocket\r\n", "Upgrade:\r\n websocket\r\n"),
        ),
        text(
            "header-without-colon",
            good().replace("Host: server.example.com", "Host server.example.com"),
        ),
        text("space-before-colon", good().replace("Host:", "Host :")),
        text(
            "absolute-target",
            good().replace("/chat?room=1", "http://server.example.com/chat"),
        ),
        text(
            "bare-cr",
            good().replace("Host: server.example.com\r\n", "Host: a\rb\r\n"),
        ),
        (
            "obs-text-value",
            [GOOD.replace("keep-alive", "keep\u{7f}").as_bytes(), b"\xff"].concat(),
        ),
        text("empty", String::new()),
    ]
}

/// A masked client frame whose first byte (FIN, RSV bits, opcode) is `first`, so seeds can
/// carry reserved bits and opcodes the encoder would never write.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(&mut out, true, OpCode::Binary, payload, Some([0x37, 0xfa, 0x21, 0x3d]));
    out[0] = first;
    out.to_vec()
}

fn frames() -> Vec<Seed> {
    let input = |name, split: u8, parts: &[Vec<u8>]| (name, [vec![split], parts.concat()].concat());
    let close = |code: u16, reason: &[u8]| frame(0x88, &[&code.to_be_bytes()[..], reason].concat());
    let header_only = |b1: u8, len: &[u8]| [&[0x82, b1][..], len, &[1, 2, 3, 4]].concat();
    vec![
        input("text", 0x03, &[frame(0x81, b"Hello")]),
        input("binary-empty", 0x85, &[frame(0x82, b"")]),
        input("len-125", 0x11, &[frame(0x82, &[7; 125])]),
        input("len-126", 0x93, &[frame(0x82, &[7; 126])]),
        input("len-limit", 0xa1, &[frame(0x82, &[7; 1024])]),
        input(
            "len-over-limit",
            0x07,
            &[frame(0x02, &[7; 1000]), frame(0x80, &[7; 25])],
        ),
        input(
            "fragments-with-ping",
            0x05,
            &[frame(0x01, b"fra"), frame(0x89, b"p"), frame(0x80, b"gments")],
        ),
        input(
            "utf8-split-across-fragments",
            0x01,
            &[frame(0x01, "κό".as_bytes()), frame(0x80, "σμε".as_bytes())],
        ),
        input(
            "utf8-invalid-across-fragments",
            0x09,
            &[
                frame(0x01, "κόσμε".as_bytes()),
                frame(0x00, b"\xf4\x90\x80\x80"),
                frame(0x80, b"x"),
            ],
        ),
        input("utf8-cut-at-end", 0x02, &[frame(0x81, b"ok\xe2\x82")]),
        input("utf8-surrogate", 0x04, &[frame(0x81, b"\xed\xa0\x80")]),
        input("utf8-overlong", 0x06, &[frame(0x81, b"\xc0\xaf")]),
        input("ping-pong", 0x08, &[frame(0x89, b"ping"), frame(0x8a, b"pong")]),
        input("close-empty", 0x0a, &[frame(0x88, b"")]),
        input("close-reason", 0x0c, &[close(1000, "bye κόσμε".as_bytes())]),
        input("close-one-byte", 0x0e, &[frame(0x88, &[3])]),
        input("close-1005", 0x10, &[close(1005, b"")]),
        input("close-5000", 0x12, &[close(5000, b"")]),
        input("close-reason-not-utf8", 0x14, &[close(1000, b"\xff\xfe")]),
        input(
            "data-after-close",
            0x16,
            &[close(1000, b""), frame(0x81, b"too late"), vec![0xff; 8]],
        ),
        input("unmasked", 0x18, &[vec![0x81, 0x02, b'h', b'i']]),
        input("rsv1", 0x1a, &[frame(0xc1, b"x")]),
        input("rsv3", 0x1c, &[frame(0x91, b"x")]),
        input("opcode-3", 0x1e, &[frame(0x83, b"")]),
        input("opcode-b", 0x20, &[frame(0x8b, b"")]),
        input("ping-126", 0x22, &[frame(0x89, &[0; 126])]),
        input("ping-fragmented", 0x24, &[frame(0x09, b"x")]),
        input("continuation-first", 0x26, &[frame(0x80, b"x")]),
        input("text-during-fragments", 0x28, &[frame(0x01, b"a"), frame(0x81, b"b")]),
        input("len16-not-minimal", 0x2a, &[header_only(0xfe, &[0, 5])]),
        input("len64-not-minimal", 0x2c, &[header_only(0xff, &200u64.to_be_bytes())]),
        input("len64-top-bit", 0x2e, &[header_only(0xff, &(1u64 << 63).to_be_bytes())]),
        input("len64-huge", 0x30, &[header_only(0xff, &(1u64 << 62).to_be_bytes())]),
        input(
            "many-small",
            0x81,
            &(0..40).map(|i| frame(0x82, &[i; 3])).collect::<Vec<_>>(),
        ),
        input("empty", 0x00, &[]),
    ]
}

fn close() -> Vec<Seed> {
    let payload = |name, code: u16, reason: &[u8]| (name, [&code.to_be_bytes()[..], reason].concat());
    let long = "é".repeat(62);
    vec![
        ("empty", Vec::new()),
        ("one-byte", vec![0x03]),
        payload("1000", 1000, b""),
        payload("1000-reason", 1000, b"normal"),
        payload("1003", 1003, b""),
        payload("1004", 1004, b""),
        payload("1005", 1005, b""),
        payload("1006", 1006, b""),
        payload("1007", 1007, b""),
        payload("1013", 1013, b""),
        payload("1014", 1014, b""),
        payload("1015", 1015, b""),
        payload("1016", 1016, b""),
        payload("2999", 2999, b""),
        payload("3000", 3000, b""),
        payload("4999", 4999, b"app"),
        payload("5000", 5000, b""),
        payload("0", 0, b""),
        payload("65535", 65535, b""),
        payload("reason-utf8", 1001, "bye κόσμε".as_bytes()),
        payload(
            "reason-not-utf8",
            1000,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        ),
        payload("reason-cut-code-point", 1000, b"ok\xe2\x82"),
        payload("reason-123", 1000, &[b'r'; 123]),
        payload("reason-long-multibyte", 1000, long.as_bytes()),
        payload(
            "reason-4-byte-at-cut",
            1000,
            &[&[b'r'; 121][..], "𝄞".as_bytes()].concat(),
        ),
    ]
}

fn push() -> Vec<Seed> {
    let text = |name, text: &str| (name, text.as_bytes().to_vec());
    let deep = format!(
        r#"{{"op":"subscribe","topics":["a"],"ref":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let many_topics: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    vec![
        text("topic", "news/eu-1.live~x_y"),
        text("topic-bad-char", "a:b"),
        text("topic-unicode", "nëws"),
        text("topic-128", &"a".repeat(128)),
        text("topic-129", &"a".repeat(129)),
        text("since", "00000000000000ff:12"),
        text("since-signed", "+ff:+1"),
        text("since-overflow", "1ffffffffffffffff:1"),
        text("query", "topics=a,b,a&since=b:00000000000000ff:12"),
        text("query-too-many", &format!("topics={}", many_topics.join(","))),
        text("query-since-stray", "topics=a&since=b:1:1"),
        text("query-since-bad", "topics=a&since=a:zz:1"),
        text("query-empty-pairs", "&&topics=&since=&=&x"),
        text("query-bad-topic", "topics=a%20b"),
        text(
            "subscribe",
            r#"{"op":"subscribe","topics":["a","b"],"since":{"b":"10:4"},"ref":1}"#,
        ),
        text("subscribe-one", r#"{"op":"subscribe","topic":"a"}"#),
        text("subscribe-none", r#"{"op":"subscribe","topics":[]}"#),
        text(
            "subscribe-bad-since",
            r#"{"op":"subscribe","topics":["a"],"since":{"a":"x"}}"#,
        ),
        text(
            "subscribe-stray-since",
            r#"{"op":"subscribe","topics":["a"],"since":{"b":"1:1"}}"#,
        ),
        text("unsubscribe", r#"{"op":"unsubscribe","topic":"a","ref":"r"}"#),
        text("publish", r#"{"op":"publish","topic":"a","data":"κόσμε"}"#),
        text("publish-no-data", r#"{"op":"publish","topic":"a"}"#),
        text(
            "publish-data-not-string",
            r#"{"op":"publish","topic":"a","data":{"x":1}}"#,
        ),
        text("unknown-op", r#"{"op":"dance","ref":[1,{"a":null}]}"#),
        text("no-op", r#"{"topics":["a"]}"#),
        text("duplicate-op", r#"{"op":"subscribe","op":"publish","topic":"a"}"#),
        text("ref-null", r#"{"op":"subscribe","topic":"a","ref":null}"#),
        text("not-an-object", "[1]"),
        text("not-json", "not json"),
        text("deep-ref", &deep),
        text("escapes", r#"{"op":"publish","topic":"a","data":"\u0000\ud800\n"}"#),
        text("empty", ""),
    ]
}
