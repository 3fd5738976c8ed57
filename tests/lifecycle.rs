//! Connection lifecycle with the real binary: heartbeats, idle timeouts, limits, structured
//! events and graceful shutdown. Intervals are short; nothing asserts on speed.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{client_frame, RawWs, ServerProcess, DRIVERS};
use tungstenite::Message;

const FAST_HEARTBEAT: &[&str] = &[
    "--ping-interval",
    "200ms",
    "--pong-timeout",
    "400ms",
    "--timer-tick",
    "20ms",
];

#[test]
fn a_silent_client_is_pinged_then_closed_for_heartbeat_timeout() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, FAST_HEARTBEAT);
        let mut ws = RawWs::connect(&server, "/", &[]);
        let mut pings = 0;
        let close = loop {
            let frame = ws.read_frame().expect("the server ends with a close frame");
            match frame.opcode {
                0x9 => pings += 1,
                0x8 => break frame,
                other => panic!("unexpected opcode {other}"),
            }
        };
        assert!(pings >= 1, "{driver}: pinged before being closed");
        assert_eq!(close.close_code(), Some(1001));
        assert_eq!(&close.payload[2..], b"heartbeat timeout");
        let mut rest = Vec::new();
        let _ = ws.stream.read_to_end(&mut rest);
        server.wait_for_log(|l| l.contains("\"event\":\"close\"") && l.contains("heartbeat_timeout"));
        let closed = &server.json_events("close")[0];
        assert_eq!(closed["closed_by"], "heartbeat");
        assert_eq!(closed["error"], "heartbeat_timeout");
        assert_eq!(server.metric("ringcast_heartbeat_timeouts_total"), 1);
        assert!(server.metric("ringcast_heartbeat_pings_total") >= 1);
    }
}

#[test]
fn a_client_that_answers_pings_stays_open() {
    for driver in DRIVERS {
        // A generous pong timeout: a loaded test machine may stall the client for a while.
        let args = [
            "--ping-interval",
            "200ms",
            "--pong-timeout",
            "3s",
            "--timer-tick",
            "20ms",
        ];
        let server = ServerProcess::start(driver, &args);
        let (mut ws, _) = tungstenite::connect(server.url("/")).unwrap();
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = ws.get_ref() {
            stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        }
        let mut pings = 0;
        // Twelve ping intervals: tungstenite answers every ping as it reads it.
        for _ in 0..24 {
            match ws.read() {
                Ok(Message::Ping(_)) => pings += 1,
                Ok(other) => panic!("{driver}: unexpected {other:?}"),
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{driver}: connection ended: {e}"),
            }
        }
        assert!(pings >= 2, "{driver}: got {pings} pings");
        ws.send(Message::text("still here")).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => break assert_eq!(t.as_str(), "still here"),
                Ok(Message::Ping(_)) => {}
                other => panic!("{driver}: {other:?}"),
            }
        }
        assert_eq!(server.metric("ringcast_heartbeat_timeouts_total"), 0);
    }
}

#[test]
fn a_chatty_client_is_never_pinged() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--ping-interval", "2s", "--timer-tick", "20ms"]);
        let mut ws = RawWs::connect(&server, "/", &[]);
        // Three ping intervals of traffic, a message every 20 ms.
        for i in 0..150 {
            let text = format!("tick {i}");
            ws.send(&client_frame(0x81, text.as_bytes()));
            let frame = ws.read_frame().unwrap();
            assert_eq!(
                (frame.opcode, frame.payload),
                (0x1, text.into_bytes()),
                "{driver}: no ping in between"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(server.metric("ringcast_heartbeat_pings_total"), 0);
    }
}

#[test]
fn idle_timeout_alone_closes_without_pinging() {
    for driver in DRIVERS {
        let server = ServerProcess::start(
            driver,
            &[
                "--ping-interval",
                "0s",
                "--idle-timeout",
                "300ms",
                "--timer-tick",
                "20ms",
            ],
        );
        let mut ws = RawWs::connect(&server, "/", &[]);
        let frame = ws.read_frame().unwrap();
        assert_eq!(
            frame.close_code(),
            Some(1001),
            "{driver}: the first frame is the close: {frame:?}"
        );
        assert_eq!(&frame.payload[2..], b"idle timeout");
        server.wait_for_log(|l| l.contains("\"error\":\"idle_timeout\""));
        assert_eq!(server.metric("ringcast_idle_timeouts_total"), 1);
    }
}

fn connect_from(source: &str, server: &ServerProcess) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

#[test]
fn per_ip_limit_answers_429_and_other_addresses_still_connect() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--max-connections-per-ip", "2"]);
        let _a = RawWs::upgrade(connect_from("127.0.0.1", &server), "/", &[]);
        let _b = RawWs::upgrade(connect_from("127.0.0.1", &server), "/", &[]);
        let mut third = connect_from("127.0.0.1", &server);
        std::io::Write::write_all(&mut third, common::upgrade_request("/").as_bytes()).unwrap();
        let mut response = String::new();
        let _ = third.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 429 "), "{driver}: {response}");
        assert!(response.contains("Retry-After: 1"), "{response}");
        let mut other = RawWs::upgrade(connect_from("127.0.0.2", &server), "/", &[]);
        other.send(&client_frame(0x81, b"from elsewhere"));
        assert_eq!(other.read_frame().unwrap().payload, b"from elsewhere");
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"429\"}"), 1);
    }
}

#[test]
fn a_client_that_floods_without_reading_is_slowed_not_buffered() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--max-queued-bytes", "262144"]);
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ws = RawWs::upgrade(stream, "/", &[]);
        let mut writer = ws.stream.try_clone().unwrap();
        writer.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
        // Echo requests until TCP pushes back: a server that stops reading while its writes are
        // blocked makes the flooder's own writes stall instead of growing its queue.
        let message = client_frame(0x82, &[7u8; 65536]);
        let mut sent = 0;
        while sent < 4096 && std::io::Write::write_all(&mut writer, &message).is_ok() {
            sent += 1;
        }
        assert!(sent < 4096, "{driver}: the server never pushed back");
        assert_eq!(server.metric("ringcast_slow_consumers_total"), 0);
        // Reading resumes the flow: every echo that was accepted arrives intact.
        ws.stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut echoed = 0;
        while let Some(frame) = ws.read_frame() {
            assert_eq!(frame.payload.len(), 65536);
            echoed += 1;
        }
        assert!(echoed >= 1, "{driver}: echoes arrive once the client reads");
    }
}

#[test]
fn open_and_close_events_are_structured_json() {
    let server = ServerProcess::start("uring", &["--subprotocol", "chat"]);
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(server.url("/feed?x=1")).unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
    let (mut ws, _) = tungstenite::connect(request).unwrap();
    ws.send(Message::text("12345")).unwrap();
    ws.read().unwrap();
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: 4100.into(),
        reason: "done here".into(),
    }))
    .unwrap();
    while ws.read().is_ok() {}
    server.wait_for_log(|l| l.contains("\"event\":\"close\""));
    let open = &server.json_events("open")[0];
    assert_eq!(open["path"], "/feed");
    assert_eq!(open["protocol"], "chat");
    assert_eq!(open["core"], 0);
    // Connection ids read core:slot:generation (the first connection of core 0: slot 0).
    let id: ringcast::api::ConnId = open["conn"].as_str().expect("conn is a string").parse().unwrap();
    assert_eq!(
        (id.core(), id.key(), id.to_string()),
        (0, 0, open["conn"].as_str().unwrap().to_owned())
    );
    assert!(open["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(open["handshake_us"].is_u64());
    let close = &server.json_events("close")[0];
    assert_eq!(close["conn"], open["conn"]);
    assert_eq!(close["closed_by"], "client");
    assert_eq!(close["code_received"], 4100);
    assert_eq!(close["reason_received"], "done here");
    assert_eq!(close["code_sent"], 4100);
    assert_eq!(
        (close["messages_in"].as_u64(), close["messages_out"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (close["bytes_in"].as_u64(), close["bytes_out"].as_u64()),
        (Some(5), Some(5))
    );
    assert!(close["duration_ms"].is_u64());
}

#[test]
fn sigterm_delivers_queued_messages_then_1001_and_exits_zero() {
    for driver in DRIVERS {
        let mut server = ServerProcess::start(driver, &["--shutdown-timeout", "20s", "--close-timeout", "20s"]);
        assert!(server
            .http("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
            .contains("200 OK"));
        let messages: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 8192]).collect();
        let mut clients: Vec<RawWs> = (0..1000).map(|_| RawWs::connect(&server, "/", &[])).collect();
        for client in clients.iter_mut() {
            let batch: Vec<u8> = messages.iter().flat_map(|m| client_frame(0x82, m)).collect();
            client.send(&batch);
        }
        server.wait_for_metric("ringcast_messages_received_total", 4000);
        server.signal(libc::SIGTERM);
        for (i, client) in clients.iter_mut().enumerate() {
            for expected in &messages {
                let frame = client
                    .read_frame()
                    .unwrap_or_else(|| panic!("{driver}: client {i} lost a message"));
                assert_eq!(&frame.payload, expected, "{driver}: client {i}");
            }
            let close = client.read_frame().expect("a close frame after the messages");
            assert_eq!(close.close_code(), Some(1001), "{driver}: client {i}");
            client.send(&client_frame(0x88, &1001u16.to_be_bytes()));
        }
        let status = server
            .wait_exit(Duration::from_secs(30))
            .expect("exits once every client answered");
        assert!(status.success(), "{driver}: exit status {status:?}");
        assert_eq!(
            server
                .json_events("close")
                .iter()
                .filter(|e| e["closed_by"] == "shutdown")
                .count(),
            1000
        );
    }
}

#[test]
fn a_client_that_ignores_the_close_does_not_hold_the_exit() {
    for driver in DRIVERS {
        let mut server = ServerProcess::start(driver, &["--shutdown-timeout", "1s", "--close-timeout", "30s"]);
        let mut silent = RawWs::connect(&server, "/", &[]);
        server.signal(libc::SIGINT);
        assert_eq!(silent.read_frame().unwrap().close_code(), Some(1001));
        let status = server
            .wait_exit(Duration::from_secs(20))
            .expect("exits after the shutdown timeout");
        assert!(status.success(), "{driver}: {status:?}");
    }
}

#[test]
fn service_restart_code_is_selectable() {
    let mut server = ServerProcess::start("uring", &["--shutdown-close-code", "1012"]);
    let (mut ws, _) = tungstenite::connect(server.url("/")).unwrap();
    server.signal(libc::SIGTERM);
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1012),
        other => panic!("expected close 1012, got {other:?}"),
    }
    while ws.read().is_ok() {}
    assert!(server.wait_exit(Duration::from_secs(20)).expect("exits").success());
}

#[test]
fn two_cores_share_the_port_and_shut_down_together() {
    for driver in DRIVERS {
        let mut server = ServerProcess::start(driver, &["--cores", "2"]);
        let mut clients: Vec<_> = (0..40)
            .map(|_| tungstenite::connect(server.url("/")).unwrap().0)
            .collect();
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.send(Message::text(format!("hello {i}"))).unwrap();
            assert_eq!(ws.read().unwrap(), Message::text(format!("hello {i}")));
        }
        assert_eq!(server.metric("ringcast_cores"), 2);
        assert_eq!(server.metric("ringcast_connections_open"), 40);
        let cores: std::collections::BTreeSet<u64> = server
            .json_events("open")
            .iter()
            .filter_map(|e| e["core"].as_u64())
            .collect();
        assert_eq!(
            cores.into_iter().collect::<Vec<_>>(),
            vec![0, 1],
            "{driver}: SO_REUSEPORT spreads connections"
        );
        server.signal(libc::SIGTERM);
        for ws in clients.iter_mut() {
            match ws.read() {
                Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
                other => panic!("{driver}: expected close 1001, got {other:?}"),
            }
            while ws.read().is_ok() {}
        }
        let status = server.wait_exit(Duration::from_secs(20)).expect("both cores shut down");
        assert!(status.success(), "{driver}: {status:?}");
    }
}
