//! The real binary over TCP, driven by an independent client (`tungstenite`) and by raw
//! sockets for malformed input. Every test runs under both io drivers.

mod common;

use common::{client_frame, RawWs, ServerProcess, DRIVERS};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

fn each_driver(args: &[&str], test: impl Fn(&ServerProcess)) {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, args);
        test(&server);
    }
}

#[test]
fn tungstenite_echo_of_every_length_class_and_ping() {
    each_driver(&[], |server| {
        let (mut ws, _) = tungstenite::connect(server.url("/")).unwrap();
        for len in [0usize, 1, 125, 126, 65535, 65536, 1 << 20] {
            let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            ws.send(Message::text(text.clone())).unwrap();
            assert_eq!(ws.read().unwrap(), Message::text(text), "text of {len} bytes");
            let binary: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            ws.send(Message::binary(binary.clone())).unwrap();
            assert_eq!(ws.read().unwrap(), Message::binary(binary), "binary of {len} bytes");
        }
        ws.send(Message::Ping(b"are you there".to_vec().into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Pong(b"are you there".to_vec().into()));
        ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }))
        .unwrap();
        match ws.read() {
            Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
            other => panic!("expected the close echo, got {other:?}"),
        }
        assert!(matches!(ws.read(), Err(tungstenite::Error::ConnectionClosed)));
        let closed = server.wait_for_log(|l| l.contains("\"event\":\"close\""));
        assert!(
            closed.contains("\"closed_by\":\"client\"") && closed.contains("\"code_received\":1000"),
            "{closed}"
        );
        assert_eq!(server.metric("ringcast_messages_received_total"), 14);
    });
}

#[test]
fn many_messages_pipelined_arrive_in_order() {
    each_driver(&[], |server| {
        let (mut ws, _) = tungstenite::connect(server.url("/")).unwrap();
        for i in 0..500 {
            ws.write(Message::text(format!("message {i}"))).unwrap();
        }
        ws.flush().unwrap();
        for i in 0..500 {
            assert_eq!(ws.read().unwrap(), Message::text(format!("message {i}")));
        }
    });
}

#[test]
fn frames_sent_with_the_upgrade_request_are_not_lost() {
    each_driver(&[], |server| {
        let mut early = client_frame(0x81, b"early one");
        early.extend(client_frame(0x82, b"early two"));
        let mut ws = RawWs::connect(server, "/", &early);
        assert_eq!(ws.read_frame().unwrap().payload, b"early one");
        assert_eq!(ws.read_frame().unwrap().payload, b"early two");
    });
}

#[test]
fn fragments_are_joined_and_control_frames_may_interleave() {
    each_driver(&[], |server| {
        let mut ws = RawWs::connect(server, "/", &[]);
        ws.send(&client_frame(0x01, b"Hello, "));
        ws.send(&client_frame(0x89, b"mid-ping"));
        ws.send(&client_frame(0x00, "wörld".as_bytes()));
        ws.send(&client_frame(0x80, b"!"));
        let pong = ws.read_frame().unwrap();
        assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"mid-ping"[..]));
        let echo = ws.read_frame().unwrap();
        assert_eq!(
            (echo.fin, echo.opcode, echo.payload),
            (true, 1, "Hello, wörld!".as_bytes().to_vec())
        );
    });
}

#[test]
fn byte_by_byte_delivery_still_decodes() {
    each_driver(&[], |server| {
        let mut ws = RawWs::connect(server, "/", &[]);
        for byte in client_frame(0x81, "slow κόσμε".as_bytes()) {
            ws.send(&[byte]);
        }
        assert_eq!(ws.read_frame().unwrap().payload, "slow κόσμε".as_bytes());
    });
}

/// Each broken input, the close code it must get, and the counter series it must bump.
fn violations() -> Vec<(&'static str, Vec<u8>, u16)> {
    let mut unmasked = vec![0x81, 0x02];
    unmasked.extend_from_slice(b"hi");
    let mut top_bit = vec![0x82, 0xff];
    top_bit.extend_from_slice(&(1u64 << 63).to_be_bytes());
    top_bit.extend_from_slice(&[1, 2, 3, 4]);
    vec![
        ("unmasked client frame", unmasked, 1002),
        ("rsv1 set", client_frame(0xC1, b"x"), 1002),
        ("rsv3 set", client_frame(0x91, b"x"), 1002),
        ("reserved data opcode", client_frame(0x83, b""), 1002),
        ("reserved control opcode", client_frame(0x8B, b""), 1002),
        ("ping longer than 125", client_frame(0x89, &[0; 126]), 1002),
        ("fragmented ping", client_frame(0x09, b"x"), 1002),
        ("continuation without start", client_frame(0x80, b"x"), 1002),
        (
            "text while fragmented",
            [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat(),
            1002,
        ),
        ("64-bit length top bit", top_bit, 1002),
        (
            "invalid utf-8",
            client_frame(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
            1007,
        ),
        ("utf-8 cut at end of message", client_frame(0x81, b"ok\xe2\x82"), 1007),
        ("close with one byte", client_frame(0x88, &[3]), 1002),
        ("close with code 1005", client_frame(0x88, &1005u16.to_be_bytes()), 1002),
        ("close with code 999", client_frame(0x88, &999u16.to_be_bytes()), 1002),
        ("close with code 5000", client_frame(0x88, &5000u16.to_be_bytes()), 1002),
        (
            "close reason not utf-8",
            client_frame(0x88, &[0x03, 0xe8, 0xff, 0xfe]),
            1002,
        ),
    ]
}

#[test]
fn every_violation_gets_its_close_code_and_the_server_keeps_serving() {
    each_driver(&["--close-timeout", "2s"], |server| {
        let (mut bystander, _) = tungstenite::connect(server.url("/")).unwrap();
        let mut expected_1002 = 0;
        for (name, bytes, code) in violations() {
            let mut ws = RawWs::connect(server, "/", &[]);
            ws.send(&bytes);
            ws.expect_close(code);
            expected_1002 += u64::from(code == 1002);
            bystander.send(Message::text(name)).unwrap();
            assert_eq!(
                bystander.read().unwrap(),
                Message::text(name),
                "server still serves after {name}"
            );
        }
        assert_eq!(
            server.metric("ringcast_protocol_errors_total{code=\"1002\"}"),
            expected_1002
        );
        assert_eq!(server.metric("ringcast_protocol_errors_total{code=\"1007\"}"), 2);
        let logged = server.wait_for_log(|l| l.contains("\"event\":\"protocol_error\"") && l.contains("\"code\":1007"));
        assert!(logged.contains("not valid UTF-8"), "{logged}");
    });
}

#[test]
fn invalid_utf8_fails_before_the_message_is_complete() {
    each_driver(&[], |server| {
        let mut ws = RawWs::connect(server, "/", &[]);
        // A valid first fragment, then a fragment whose bytes can never be UTF-8; the final
        // fragment is never sent, yet the server must fail the connection now.
        ws.send(&client_frame(0x01, "κόσμε".as_bytes()));
        ws.send(&client_frame(0x00, b"\xf4\x90\x80\x80"));
        ws.expect_close(1007);
    });
}

#[test]
fn oversized_message_is_refused_from_its_header_alone() {
    each_driver(&["--max-message-size", "1024"], |server| {
        let mut ws = RawWs::connect(server, "/", &[]);
        // Only the header of a 1 MiB frame: the payload never comes.
        let header = &client_frame(0x82, &vec![0u8; 1 << 20])[..14];
        ws.send(header);
        ws.expect_close(1009);
        let mut ws = RawWs::connect(server, "/", &[]);
        ws.send(&client_frame(0x02, &[1; 1000]));
        ws.send(&client_frame(0x80, &[2; 100]));
        ws.expect_close(1009);
        assert_eq!(server.metric("ringcast_protocol_errors_total{code=\"1009\"}"), 2);
    });
}

#[test]
fn close_without_code_is_answered_with_1000_and_valid_codes_are_echoed() {
    each_driver(&[], |server| {
        let mut ws = RawWs::connect(server, "/", &[]);
        ws.send(&client_frame(0x88, b""));
        ws.expect_close(1000);
        for code in [1000u16, 1001, 3000, 4999] {
            let mut ws = RawWs::connect(server, "/", &[]);
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(b"reason");
            ws.send(&client_frame(0x88, &payload));
            ws.expect_close(code);
        }
    });
}

#[test]
fn data_after_a_close_frame_is_ignored() {
    each_driver(&[], |server| {
        let mut ws = RawWs::connect(server, "/", &[]);
        let mut bytes = client_frame(0x88, &1000u16.to_be_bytes());
        bytes.extend(client_frame(0x81, b"too late"));
        ws.send(&bytes);
        ws.expect_close(1000);
        assert_eq!(server.metric("ringcast_messages_received_total"), 0);
    });
}

#[test]
fn a_flooding_connection_does_not_starve_the_others() {
    each_driver(&[], |server| {
        let mut flood = RawWs::connect(server, "/", &[]);
        let mut writer = flood.stream.try_clone().unwrap();
        // 32 MiB of echo requests while another thread reads every echo back, so the flooding
        // connection is always readable and never blocked on writes.
        let sender = std::thread::spawn(move || {
            let message = client_frame(0x82, &[5u8; 65536]);
            for _ in 0..512 {
                std::io::Write::write_all(&mut writer, &message).unwrap();
            }
        });
        let reader = std::thread::spawn(move || (0..512).filter(|_| flood.read_frame().is_some()).count());
        let (mut bystander, _) = tungstenite::connect(server.url("/")).unwrap();
        for i in 0..20 {
            bystander.send(Message::text(format!("still served {i}"))).unwrap();
            assert_eq!(bystander.read().unwrap(), Message::text(format!("still served {i}")));
        }
        sender.join().unwrap();
        assert_eq!(reader.join().unwrap(), 512, "every flood message was echoed");
    });
}
