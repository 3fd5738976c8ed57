//! RFC 6455 section 5 rules, one test (or table row) each, over the public `ringcast::proto` API.
//!
//! The groups follow the Autobahn|Testsuite layout (1 framing, 2 pings/pongs, 3 reserved bits,
//! 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close), but every expectation comes from the RFC:
//! a broken rule fails the connection with the exact close code of section 7.4.1.

use bytes::BytesMut;
use ringcast::proto::close::close_payload;
use ringcast::proto::frame::{decode_header, encode_frame, header_len, server_frame};
use ringcast::proto::handshake::{accept_key, parse_request, upgrade_response, validate_upgrade};
use ringcast::proto::{CloseCode, CloseFrame, Event, MessageKind, OpCode, ProtocolError, Role, Session};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const LIMIT: usize = 1 << 20;

/// An owned copy of an [`Event`], so tests can collect and compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<Event<'_>> for Ev {
    fn from(event: Event<'_>) -> Ev {
        match event {
            Event::Message {
                kind: MessageKind::Text,
                payload,
            } => Ev::Text(String::from_utf8(payload.to_vec()).expect("text events carry valid UTF-8")),
            Event::Message {
                kind: MessageKind::Binary,
                payload,
            } => Ev::Binary(payload.to_vec()),
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close(frame) => Ev::Close(frame.code.map(|c| c.0), frame.reason.to_owned()),
        }
    }
}

/// One end of a connection: a session plus every event it reported so far.
struct Peer {
    session: Session,
    events: Vec<Ev>,
}

impl Peer {
    fn new(role: Role, limit: usize) -> Peer {
        Peer {
            session: Session::new(role, limit),
            events: Vec::new(),
        }
    }

    fn server() -> Peer {
        Peer::new(Role::Server, LIMIT)
    }

    fn client() -> Peer {
        Peer::new(Role::Client, LIMIT)
    }

    /// Feeds one read's worth of bytes (copied, since the session unmasks in place).
    fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        let mut buf = bytes.to_vec();
        let events = &mut self.events;
        self.session.feed(&mut buf, &mut |e| events.push(e.into()))
    }

    /// Feeds each piece as its own read and returns the index of the piece that failed.
    fn feed_pieces(&mut self, pieces: &[&[u8]]) -> Option<(usize, ProtocolError)> {
        pieces
            .iter()
            .enumerate()
            .find_map(|(i, piece)| self.feed(piece).err().map(|e| (i, e)))
    }
}

/// A frame as a client sends it: masked with [`KEY`].
fn masked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, fin, opcode, payload, Some(KEY));
    buf.to_vec()
}

/// A frame as a server sends it: unmasked.
fn unmasked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, fin, opcode, payload, None);
    buf.to_vec()
}

fn text(payload: &str) -> Vec<u8> {
    masked(true, OpCode::Text, payload.as_bytes())
}

fn close(payload: &[u8]) -> Vec<u8> {
    masked(true, OpCode::Close, payload)
}

fn concat(frames: &[&[u8]]) -> Vec<u8> {
    frames.concat()
}

/// Feeds `bytes` to a fresh server session, whole and then one byte per read; both must fail
/// with `code`, and deliver the same events before failing.
fn assert_server_fails(bytes: &[u8], code: CloseCode) -> Vec<Ev> {
    let mut whole = Peer::server();
    let err = whole.feed(bytes).expect_err("the input breaks a rule");
    assert_eq!(err.code, code, "whole input: {err}");
    let mut bytewise = Peer::server();
    let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
    let (_, err) = bytewise.feed_pieces(&pieces).expect("the input breaks a rule");
    assert_eq!(err.code, code, "one byte per read: {err}");
    assert_eq!(whole.events, bytewise.events);
    whole.events
}

// ---- Group 1: framing -------------------------------------------------------------------------

#[test]
fn data_frames_of_every_length_class_arrive_intact() {
    for len in [0usize, 1, 125, 126, 127, 128, 65535, 65536, 65537, 200_000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let frame = masked(true, OpCode::Binary, &data);
        assert_eq!(frame.len(), header_len(len, true) + len);
        let mut whole = Peer::server();
        whole.feed(&frame).unwrap();
        assert_eq!(whole.events, vec![Ev::Binary(data.clone())], "len {len}");
        // Arbitrary read boundaries, including inside the header.
        for chunk in [1usize, 3, 13, 4096] {
            if len > 70_000 && chunk < 13 {
                continue;
            }
            let mut split = Peer::server();
            for piece in frame.chunks(chunk) {
                split.feed(piece).unwrap();
            }
            assert_eq!(split.events, whole.events, "len {len} chunk {chunk}");
        }
    }
}

#[test]
fn empty_text_and_binary_messages_are_delivered() {
    let mut peer = Peer::server();
    peer.feed(&concat(&[&text(""), &masked(true, OpCode::Binary, b"")]))
        .unwrap();
    assert_eq!(peer.events, vec![Ev::Text(String::new()), Ev::Binary(Vec::new())]);
}

#[test]
fn many_frames_in_one_read_are_all_delivered_in_order() {
    let frames: Vec<Vec<u8>> = (0..50).map(|i| text(&format!("message {i}"))).collect();
    let mut peer = Peer::server();
    peer.feed(&frames.concat()).unwrap();
    let expected: Vec<Ev> = (0..50).map(|i| Ev::Text(format!("message {i}"))).collect();
    assert_eq!(peer.events, expected);
}

#[test]
fn unmasked_client_frame_is_1002() {
    assert_server_fails(&unmasked(true, OpCode::Text, b"hello"), CloseCode::PROTOCOL_ERROR);
    assert_server_fails(&unmasked(true, OpCode::Ping, b""), CloseCode::PROTOCOL_ERROR);
    // Even after a good message, and even with an empty payload.
    let events = assert_server_fails(
        &concat(&[&text("ok"), &unmasked(true, OpCode::Binary, b"")]),
        CloseCode::PROTOCOL_ERROR,
    );
    assert_eq!(events, vec![Ev::Text("ok".into())]);
}

#[test]
fn masked_server_frame_is_1002_in_the_client_role() {
    for frame in [text("hello"), masked(true, OpCode::Ping, b""), close(&[])] {
        let mut peer = Peer::client();
        assert_eq!(peer.feed(&frame).unwrap_err().code, CloseCode::PROTOCOL_ERROR);
        assert!(peer.events.is_empty());
    }
}

#[test]
fn client_role_accepts_unmasked_server_frames() {
    let mut peer = Peer::client();
    let data = vec![0xa5; 70_000];
    peer.feed(&server_frame(OpCode::Text, "κόσμε".as_bytes())).unwrap();
    peer.feed(&server_frame(OpCode::Binary, &data)).unwrap();
    peer.feed(&server_frame(OpCode::Ping, b"p")).unwrap();
    peer.feed(&server_frame(
        OpCode::Close,
        &close_payload(CloseCode::GOING_AWAY, "bye"),
    ))
    .unwrap();
    assert_eq!(
        peer.events,
        vec![
            Ev::Text("κόσμε".into()),
            Ev::Binary(data),
            Ev::Ping(b"p".to_vec()),
            Ev::Close(Some(1001), "bye".into()),
        ]
    );
}

#[test]
fn sixty_four_bit_length_with_the_top_bit_is_1002() {
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 63 | 200_000).to_be_bytes());
    frame.extend_from_slice(&KEY);
    assert_server_fails(&frame, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn non_minimal_lengths_are_1002() {
    // Section 5.2: "the minimal number of bytes MUST be used to encode the length".
    for len in [0u8, 5, 125] {
        let mut short_in_16 = vec![0x82, 0x80 | 126, 0, len];
        short_in_16.extend_from_slice(&KEY);
        short_in_16.extend_from_slice(&vec![0; len as usize]);
        assert_server_fails(&short_in_16, CloseCode::PROTOCOL_ERROR);
    }
    let mut short_in_64 = vec![0x82, 0x80 | 127];
    short_in_64.extend_from_slice(&65535u64.to_be_bytes());
    short_in_64.extend_from_slice(&KEY);
    assert_server_fails(&short_in_64, CloseCode::PROTOCOL_ERROR);
}

// ---- Group 2: pings and pongs -----------------------------------------------------------------

#[test]
fn ping_and_pong_payloads_are_delivered() {
    let all_bytes: Vec<u8> = (0..125u8).map(|b| b.wrapping_mul(101)).collect();
    for payload in [&b""[..], b"Hello, world!", &[0x00, 0xff, 0xfe, 0xfd], &all_bytes] {
        for (opcode, expected) in [
            (OpCode::Ping, Ev::Ping(payload.to_vec())),
            (OpCode::Pong, Ev::Pong(payload.to_vec())),
        ] {
            let frame = masked(true, opcode, payload);
            let mut whole = Peer::server();
            whole.feed(&frame).unwrap();
            assert_eq!(whole.events, vec![expected.clone()]);
            let mut bytewise = Peer::server();
            assert!(bytewise.feed_pieces(&frame.chunks(1).collect::<Vec<_>>()).is_none());
            assert_eq!(bytewise.events, vec![expected]);
        }
    }
}

#[test]
fn control_frame_longer_than_125_is_1002() {
    for opcode in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        for len in [126usize, 127, 65536] {
            let mut payload = vec![b'*'; len];
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
            let frame = masked(true, opcode, &payload);
            // Detected from the header alone.
            let (head, _) = frame.split_at(header_len(len, true));
            let mut peer = Peer::server();
            assert_eq!(
                peer.feed(head).unwrap_err().code,
                CloseCode::PROTOCOL_ERROR,
                "{opcode:?} {len}"
            );
            assert_server_fails(&frame, CloseCode::PROTOCOL_ERROR);
        }
    }
}

#[test]
fn unsolicited_pongs_are_delivered_and_pings_in_a_row_keep_order() {
    let frames: Vec<Vec<u8>> = (0..10u8)
        .map(|i| masked(true, if i % 2 == 0 { OpCode::Ping } else { OpCode::Pong }, &[i]))
        .collect();
    let mut peer = Peer::server();
    peer.feed(&frames.concat()).unwrap();
    let expected: Vec<Ev> = (0..10u8)
        .map(|i| {
            if i % 2 == 0 {
                Ev::Ping(vec![i])
            } else {
                Ev::Pong(vec![i])
            }
        })
        .collect();
    assert_eq!(peer.events, expected);
}

// ---- Group 3: reserved bits -------------------------------------------------------------------

#[test]
fn any_rsv_bit_is_1002() {
    for rsv in 1..=7u8 {
        for opcode in [OpCode::Text, OpCode::Binary, OpCode::Ping, OpCode::Pong, OpCode::Close] {
            let mut bad = masked(true, opcode, b"");
            bad[0] |= rsv << 4;
            // A good message before it is delivered; the ping after it is never looked at.
            let stream = concat(&[&text("Hello"), &bad, &masked(true, OpCode::Ping, b"")]);
            let events = assert_server_fails(&stream, CloseCode::PROTOCOL_ERROR);
            assert_eq!(events, vec![Ev::Text("Hello".into())], "rsv {rsv} {opcode:?}");
        }
    }
}

// ---- Group 4: opcodes -------------------------------------------------------------------------

#[test]
fn every_reserved_opcode_is_1002() {
    for op in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        assert!(OpCode::from_wire(op).is_none());
        for payload in [&b""[..], b"reserved"] {
            let mut bad = masked(true, OpCode::Binary, payload);
            bad[0] = 0x80 | op;
            let stream = concat(&[&text("Hello"), &bad, &masked(true, OpCode::Ping, b"")]);
            let events = assert_server_fails(&stream, CloseCode::PROTOCOL_ERROR);
            assert_eq!(events, vec![Ev::Text("Hello".into())], "opcode {op:#x}");
        }
    }
}

// ---- Group 5: fragmentation -------------------------------------------------------------------

#[test]
fn fragmented_messages_are_joined() {
    let frames = concat(&[
        &masked(false, OpCode::Text, b"frag"),
        &masked(false, OpCode::Continuation, "ment κό".as_bytes()),
        &masked(true, OpCode::Continuation, "σμε".as_bytes()),
        &masked(false, OpCode::Binary, &[1, 2]),
        &masked(true, OpCode::Continuation, &[3]),
    ]);
    for chunk in [1, 2, 5, frames.len()] {
        let mut peer = Peer::server();
        for piece in frames.chunks(chunk) {
            peer.feed(piece).unwrap();
        }
        assert_eq!(
            peer.events,
            vec![Ev::Text("fragment κόσμε".into()), Ev::Binary(vec![1, 2, 3])],
            "chunk {chunk}"
        );
    }
}

#[test]
fn fragmented_control_frame_is_1002() {
    for opcode in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        let first = masked(false, opcode, b"frag");
        let rest = masked(true, OpCode::Continuation, b"ment");
        assert_server_fails(&concat(&[&first, &rest]), CloseCode::PROTOCOL_ERROR);
    }
}

#[test]
fn continuation_with_nothing_to_continue_is_1002() {
    for fin in [true, false] {
        let lone = masked(fin, OpCode::Continuation, b"fragment");
        assert_server_fails(&lone, CloseCode::PROTOCOL_ERROR);
        // Also right after a message that already ended.
        let after = concat(&[&text("done"), &lone]);
        assert_eq!(
            assert_server_fails(&after, CloseCode::PROTOCOL_ERROR),
            vec![Ev::Text("done".into())]
        );
        let after_fragments = concat(&[
            &masked(false, OpCode::Text, b"a"),
            &masked(true, OpCode::Continuation, b"b"),
            &lone,
        ]);
        assert_eq!(
            assert_server_fails(&after_fragments, CloseCode::PROTOCOL_ERROR),
            vec![Ev::Text("ab".into())]
        );
    }
}

#[test]
fn new_data_message_while_a_fragmented_one_is_open_is_1002() {
    for open in [OpCode::Text, OpCode::Binary] {
        for intruder in [OpCode::Text, OpCode::Binary] {
            for fin in [true, false] {
                let stream = concat(&[&masked(false, open, b"first"), &masked(fin, intruder, b"second")]);
                let events = assert_server_fails(&stream, CloseCode::PROTOCOL_ERROR);
                assert!(events.is_empty(), "{open:?} then {intruder:?} fin {fin}");
            }
        }
    }
}

#[test]
fn control_frames_may_interleave_between_fragments() {
    let stream = concat(&[
        &masked(false, OpCode::Text, b"fragment1"),
        &masked(true, OpCode::Ping, b"ping"),
        &masked(false, OpCode::Continuation, b"fragment2"),
        &masked(true, OpCode::Pong, b"pong"),
        &masked(true, OpCode::Continuation, b"fragment3"),
    ]);
    let expected = vec![
        Ev::Ping(b"ping".to_vec()),
        Ev::Pong(b"pong".to_vec()),
        Ev::Text("fragment1fragment2fragment3".into()),
    ];
    for chunk in [1, 7, stream.len()] {
        let mut peer = Peer::server();
        for piece in stream.chunks(chunk) {
            peer.feed(piece).unwrap();
        }
        assert_eq!(peer.events, expected, "chunk {chunk}");
    }
}

#[test]
fn close_may_arrive_inside_a_fragmented_message() {
    let stream = concat(&[
        &masked(false, OpCode::Text, b"never"),
        &close(&close_payload(CloseCode::NORMAL, "")),
        &masked(true, OpCode::Continuation, b" finished"),
    ]);
    let mut peer = Peer::server();
    peer.feed(&stream).unwrap();
    assert_eq!(peer.events, vec![Ev::Close(Some(1000), String::new())]);
}

#[test]
fn empty_fragments_make_valid_messages() {
    let all_empty = concat(&[
        &masked(false, OpCode::Text, b""),
        &masked(false, OpCode::Continuation, b""),
        &masked(true, OpCode::Continuation, b""),
    ]);
    let mixed = concat(&[
        &masked(false, OpCode::Binary, b""),
        &masked(false, OpCode::Continuation, b"x"),
        &masked(true, OpCode::Continuation, b""),
    ]);
    for (stream, expected) in [(all_empty, Ev::Text(String::new())), (mixed, Ev::Binary(b"x".to_vec()))] {
        for chunk in [1, stream.len()] {
            let mut peer = Peer::server();
            for piece in stream.chunks(chunk) {
                peer.feed(piece).unwrap();
            }
            assert_eq!(peer.events, vec![expected.clone()], "chunk {chunk}");
        }
    }
}

// ---- Group 6: UTF-8 ---------------------------------------------------------------------------

/// Byte sequences that are not UTF-8: overlongs, surrogates, above U+10FFFF, stray bytes.
const INVALID_UTF8: &[&[u8]] = &[
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xf0\x80\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
    b"\xbf",
    b"\xfe",
    b"\xff",
    b"\xc0 ",
    b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xff",
];

#[test]
fn valid_utf8_text_is_accepted() {
    for sample in [
        "",
        "Hello-µ@ßöäüàá-UTF-8!!",
        "κόσμε",
        "\u{10ffff}\u{fffd}\u{0}",
        "\u{d7ff}\u{e000}",
    ] {
        let mut peer = Peer::server();
        peer.feed(&text(sample)).unwrap();
        assert_eq!(peer.events, vec![Ev::Text(sample.into())]);
    }
}

#[test]
fn invalid_utf8_in_a_single_frame_is_1007() {
    for sample in INVALID_UTF8 {
        let frame = masked(true, OpCode::Text, sample);
        let events = assert_server_fails(&frame, CloseCode::INVALID_PAYLOAD);
        assert!(events.is_empty(), "{sample:?}");
        // The same bytes are fine as binary.
        let mut peer = Peer::server();
        peer.feed(&masked(true, OpCode::Binary, sample)).unwrap();
    }
}

#[test]
fn invalid_utf8_split_across_fragments_fails_on_the_fragment_with_the_bad_byte() {
    // 0xF4 may start a code point; 0xF4 0x90 cannot (it would be above U+10FFFF).
    let frames = [
        masked(false, OpCode::Text, "κόσμε ".as_bytes()),
        masked(false, OpCode::Continuation, b"ok \xf4"),
        masked(false, OpCode::Continuation, b"\x90\x80\x80 more"),
        masked(true, OpCode::Continuation, b"end"),
    ];
    let pieces: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut peer = Peer::server();
    let (failed_at, err) = peer.feed_pieces(&pieces).expect("invalid UTF-8");
    assert_eq!(err.code, CloseCode::INVALID_PAYLOAD);
    assert_eq!(failed_at, 2, "fails before the final fragment arrives");
    assert!(peer.events.is_empty());
}

#[test]
fn invalid_utf8_in_one_frame_fails_on_the_read_that_carries_the_bad_byte() {
    // "κόσμε" then a surrogate: 0xED is a valid start, 0xED 0xA0 is not.
    let payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited";
    let bad_at = 12;
    let frame = masked(true, OpCode::Text, payload);
    let head = header_len(payload.len(), true);
    let mut pieces: Vec<&[u8]> = vec![&frame[..head]];
    pieces.extend(frame[head..].chunks(1));
    let mut peer = Peer::server();
    let (failed_at, err) = peer.feed_pieces(&pieces).expect("invalid UTF-8");
    assert_eq!(err.code, CloseCode::INVALID_PAYLOAD);
    assert_eq!(failed_at, 1 + bad_at);

    // Two reads: the split lands just before the bad byte, so the first read passes.
    let mut peer = Peer::server();
    peer.feed(&frame[..head + bad_at]).unwrap();
    assert_eq!(
        peer.feed(&frame[head + bad_at..]).unwrap_err().code,
        CloseCode::INVALID_PAYLOAD
    );
}

#[test]
fn incomplete_code_point_at_the_end_of_a_message_is_1007() {
    let truncated = "abc€".as_bytes();
    let truncated = &truncated[..truncated.len() - 1];
    // In one frame.
    assert_server_fails(&masked(true, OpCode::Text, truncated), CloseCode::INVALID_PAYLOAD);
    // At the end of the last fragment; the earlier fragments pass.
    let frames = [
        masked(false, OpCode::Text, b"abc"),
        masked(false, OpCode::Continuation, b"\xe2"),
        masked(true, OpCode::Continuation, b"\x82"),
    ];
    let pieces: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let (failed_at, err) = Peer::server().feed_pieces(&pieces).expect("open code point");
    assert_eq!((failed_at, err.code), (2, CloseCode::INVALID_PAYLOAD));
    // Completed by the next fragment, the same bytes are valid.
    let completed = concat(&[
        &masked(false, OpCode::Text, b"abc\xe2"),
        &masked(false, OpCode::Continuation, b"\x82"),
        &masked(true, OpCode::Continuation, b"\xac"),
    ]);
    let mut peer = Peer::server();
    peer.feed(&completed).unwrap();
    assert_eq!(peer.events, vec![Ev::Text("abc€".into())]);
}

// ---- Message size limit -----------------------------------------------------------------------

#[test]
fn message_above_the_limit_is_1009_from_the_header_alone() {
    for (limit, len) in [(125usize, 126usize), (1024, 1025), (65536, 65537), (LIMIT, 1 << 40)] {
        let mut head = BytesMut::new();
        ringcast::proto::frame::encode_header(&mut head, true, OpCode::Binary, len, Some(KEY));
        let mut peer = Peer::new(Role::Server, limit);
        let err = peer.feed(&head).unwrap_err();
        assert_eq!(err.code, CloseCode::TOO_BIG, "limit {limit} len {len}");
        assert_eq!(
            peer.session.retained_bytes(),
            0,
            "nothing is buffered for a refused frame"
        );
    }
}

#[test]
fn message_at_the_limit_is_accepted() {
    let data = vec![b'a'; 1024];
    let mut peer = Peer::new(Role::Server, 1024);
    peer.feed(&masked(true, OpCode::Text, &data)).unwrap();
    peer.feed(&masked(false, OpCode::Binary, &data[..1000])).unwrap();
    peer.feed(&masked(true, OpCode::Continuation, &data[..24])).unwrap();
    assert_eq!(peer.events.len(), 2);
}

#[test]
fn fragmented_message_crossing_the_limit_is_1009() {
    let mut peer = Peer::new(Role::Server, 100);
    peer.feed(&masked(false, OpCode::Text, &[b'a'; 60])).unwrap();
    peer.feed(&masked(false, OpCode::Continuation, &[b'b'; 40])).unwrap();
    // The third fragment's header alone is enough to refuse it.
    let third = masked(true, OpCode::Continuation, &[b'c'; 1]);
    let err = peer.feed(&third[..header_len(1, true)]).unwrap_err();
    assert_eq!(err.code, CloseCode::TOO_BIG);
    assert!(peer.events.is_empty());
}

#[test]
fn control_frames_do_not_count_towards_the_limit() {
    let mut peer = Peer::new(Role::Server, 10);
    peer.feed(&concat(&[
        &masked(false, OpCode::Text, &[b'a'; 10]),
        &masked(true, OpCode::Ping, &[0; 125]),
        &masked(true, OpCode::Continuation, b""),
    ]))
    .unwrap();
    assert_eq!(peer.events, vec![Ev::Ping(vec![0; 125]), Ev::Text("a".repeat(10))]);
}

// ---- Group 7: close ---------------------------------------------------------------------------

#[test]
fn empty_close_is_answered_with_1000() {
    let mut peer = Peer::server();
    let mut buf = close(&[]);
    let mut reply = None;
    peer.session
        .feed(&mut buf, &mut |e| {
            if let Event::Close(frame) = e {
                reply = Some((frame.code, frame.reply_code()));
            }
        })
        .unwrap();
    assert_eq!(reply, Some((None, CloseCode::NORMAL)));
    assert!(peer.session.close_received());
}

#[test]
fn close_with_a_one_byte_payload_is_1002() {
    assert_server_fails(&close(&[0x03]), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn close_with_an_invalid_code_is_1002() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
        let events = assert_server_fails(&close(&code.to_be_bytes()), CloseCode::PROTOCOL_ERROR);
        assert!(events.is_empty(), "code {code}");
        assert!(CloseFrame::parse(&code.to_be_bytes()).is_err());
    }
}

#[test]
fn close_with_a_non_utf8_reason_is_1002() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80");
    assert_server_fails(&close(&payload), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn close_with_a_valid_code_is_delivered_and_echoed() {
    let codes = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
    ];
    for code in codes {
        for reason in ["", "Hello κόσμε", &"*".repeat(123)] {
            let frame = close(&close_payload(CloseCode(code), reason));
            let mut peer = Peer::server();
            assert!(peer.feed_pieces(&frame.chunks(3).collect::<Vec<_>>()).is_none());
            assert_eq!(
                peer.events,
                vec![Ev::Close(Some(code), reason.to_owned())],
                "code {code}"
            );
            assert_eq!(
                CloseFrame::parse(&close_payload(CloseCode(code), reason))
                    .unwrap()
                    .reply_code()
                    .0,
                code
            );
        }
    }
}

#[test]
fn input_after_a_close_frame_is_ignored() {
    let mut garbage = masked(true, OpCode::Text, b"\xff");
    garbage[0] |= 0x70;
    let stream = concat(&[
        &text("before"),
        &close(&close_payload(CloseCode::NORMAL, "done")),
        &text("after"),
        &garbage,
    ]);
    let mut peer = Peer::server();
    peer.feed(&stream).unwrap();
    // Later reads are ignored too, however broken.
    peer.feed(&unmasked(true, OpCode::Ping, b"x")).unwrap();
    peer.feed(&[0xff; 64]).unwrap();
    assert_eq!(
        peer.events,
        vec![Ev::Text("before".into()), Ev::Close(Some(1000), "done".into())]
    );
    assert!(peer.session.close_received());
}

// ---- Buffer retention -------------------------------------------------------------------------

#[test]
fn retained_bytes_is_zero_between_messages_and_non_zero_inside_one() {
    let mut peer = Peer::server();
    assert_eq!(peer.session.retained_bytes(), 0);

    // A whole frame in one read is handed out from the caller's buffer.
    peer.feed(&text("hello")).unwrap();
    assert_eq!(peer.session.retained_bytes(), 0);

    // A frame split across reads is buffered until it completes, then released.
    let big = masked(true, OpCode::Binary, &[7; 10_000]);
    peer.feed(&big[..5000]).unwrap();
    assert!(peer.session.retained_bytes() > 0);
    peer.feed(&big[5000..]).unwrap();
    assert_eq!(peer.session.retained_bytes(), 0);

    // A fragmented message is buffered between fragments, then released.
    peer.feed(&masked(false, OpCode::Text, b"part one ")).unwrap();
    assert!(peer.session.retained_bytes() > 0);
    peer.feed(&masked(true, OpCode::Ping, b"ping")).unwrap();
    assert!(peer.session.retained_bytes() > 0);
    peer.feed(&masked(true, OpCode::Continuation, b"part two")).unwrap();
    assert_eq!(peer.session.retained_bytes(), 0);

    // A control frame split across reads is released once complete.
    let ping = masked(true, OpCode::Ping, &[1; 100]);
    peer.feed(&ping[..50]).unwrap();
    assert!(peer.session.retained_bytes() > 0);
    peer.feed(&ping[50..]).unwrap();
    assert_eq!(peer.session.retained_bytes(), 0);

    // A header split across reads needs no heap.
    let frame = text("split header");
    peer.feed(&frame[..3]).unwrap();
    peer.feed(&frame[3..]).unwrap();
    assert_eq!(peer.session.retained_bytes(), 0);

    assert_eq!(peer.events.len(), 6);
}

// ---- Frame codec ------------------------------------------------------------------------------

#[test]
fn server_frames_decode_to_their_input() {
    for len in [0usize, 125, 126, 65535, 65536] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let frame = server_frame(OpCode::Binary, &payload);
        let (header, used) = decode_header(&frame).unwrap().unwrap();
        assert!(header.fin);
        assert_eq!(header.mask, None);
        assert_eq!(header.opcode, OpCode::Binary);
        assert_eq!(header.payload_len, len as u64);
        assert_eq!(&frame[used..], &payload[..]);
    }
}

// ---- Opening handshake (section 4) ------------------------------------------------------------

const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn rfc_handshake_example_is_accepted_at_any_read_boundary() {
    let mut bytes = RFC_REQUEST.as_bytes().to_vec();
    let early_frame = text("early");
    bytes.extend_from_slice(&early_frame);
    let head = RFC_REQUEST.len();
    for cut in 0..head {
        assert_eq!(parse_request(&bytes[..cut], 8192), Ok(None), "cut {cut}");
    }
    let req = parse_request(&bytes, 8192).unwrap().unwrap();
    assert_eq!(req.head_len, head);
    let upgrade = validate_upgrade(&req, &["chat".to_owned()]).unwrap();
    assert_eq!(upgrade.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(upgrade.accept, accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
    assert_eq!(upgrade.protocol.as_deref(), Some("chat"));
    let response = String::from_utf8(upgrade_response(&upgrade)).unwrap();
    assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(response.ends_with("\r\n\r\n"));
    // Frames that arrived with the head are not lost.
    let mut peer = Peer::server();
    peer.feed(&bytes[req.head_len..]).unwrap();
    assert_eq!(peer.events, vec![Ev::Text("early".into())]);
}
