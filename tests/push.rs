//! Push mode over the real binary with independent clients (tungstenite, raw HTTP): fan-out
//! across cores, order, history and resume, commands and their errors, HTTP publishing, and
//! the slow-consumer policies. Every test runs under both io drivers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::push::{post, publish, Subscriber};
use common::{ServerProcess, DRIVERS};
use serde_json::json;
use tungstenite::Message;

fn push_server(driver: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--mode", "push"];
    args.extend_from_slice(extra);
    ServerProcess::start(driver, &args)
}

#[test]
fn every_subscriber_on_every_core_gets_every_publish_once_in_order() {
    for driver in DRIVERS {
        let server = push_server(driver, &["--cores", "2"]);
        let mut subscribers: Vec<Subscriber> = (0..16)
            .map(|_| Subscriber::connect(server.addr, "/ws?topics=news"))
            .collect();
        for s in &mut subscribers {
            assert_eq!(s.expect_subscribed("news").1, 0);
        }
        let mut epoch = String::new();
        for i in 1..=40u64 {
            let reply = publish(server.addr, "news", &format!("m{i}"));
            assert_eq!(reply["seq"], i, "{reply}");
            epoch = reply["epoch"].as_str().unwrap().to_owned();
        }
        for s in &mut subscribers {
            for i in 1..=40u64 {
                let (topic, got_epoch, seq, data) = s.expect_message();
                assert_eq!(
                    (topic.as_str(), got_epoch.as_str(), seq, data),
                    ("news", epoch.as_str(), i, format!("m{i}"))
                );
            }
        }
        assert_eq!(server.metric("ringcast_push_deliveries_total"), 16 * 40, "{driver}");
        assert_eq!(server.metric("ringcast_push_publishes_total"), 40);
        // Nothing more was queued for anyone: a duplicate would be read here instead.
        publish(server.addr, "news", "last");
        for s in &mut subscribers {
            assert_eq!(s.expect_message().2, 41);
        }
    }
}

#[test]
fn a_resuming_client_gets_what_it_missed_or_a_gap() {
    for driver in DRIVERS {
        let server = push_server(driver, &["--push-history-size", "5"]);
        let first = publish(server.addr, "t", "1");
        let epoch = first["epoch"].as_str().unwrap().to_owned();
        publish(server.addr, "t", "2");
        publish(server.addr, "t", "3");
        let mut resumed = Subscriber::connect(server.addr, &format!("/ws?topics=t&since=t:{epoch}:1"));
        assert_eq!(resumed.expect_subscribed("t"), (epoch.clone(), 3));
        assert_eq!(resumed.expect_message().2, 2);
        assert_eq!(resumed.expect_message().2, 3);
        publish(server.addr, "t", "4");
        assert_eq!(resumed.expect_message().2, 4, "new messages follow the replay");
        for i in 5..=13 {
            publish(server.addr, "t", &i.to_string());
        }
        // History holds 9..=13: a client at 3 has lost 4..=8.
        let mut late = Subscriber::connect(server.addr, &format!("/ws?topics=t&since=t:{epoch}:3"));
        late.expect_subscribed("t");
        let gap = late.next_json();
        assert_eq!(gap, json!({"type":"gap","topic":"t","epoch":epoch,"next":9}));
        let replayed: Vec<u64> = (0..5).map(|_| late.expect_message().2).collect();
        assert_eq!(replayed, [9, 10, 11, 12, 13]);
        // Another epoch (a restart, say): nothing can be replayed.
        let mut stranger = Subscriber::connect(server.addr, "/ws?topics=t&since=t:0000000000000001:12");
        stranger.expect_subscribed("t");
        assert_eq!(
            stranger.next_json(),
            json!({"type":"gap","topic":"t","epoch":epoch,"next":14})
        );
        // Up to date: no replay, no gap; the next frame is the next publish.
        let mut current = Subscriber::connect(server.addr, &format!("/ws?topics=t&since=t:{epoch}:13"));
        current.expect_subscribed("t");
        publish(server.addr, "t", "14");
        assert_eq!(current.expect_message().2, 14, "{driver}");
    }
}

#[test]
fn commands_work_and_bad_ones_get_errors_without_losing_the_connection() {
    for driver in DRIVERS {
        let server = push_server(driver, &[]);
        let mut client = Subscriber::connect(server.addr, "/ws");
        client.command(json!({"op":"subscribe","topics":["a","b"],"ref":1}));
        assert_eq!(client.next_json()["ref"], 1);
        client.expect_subscribed("b");
        let errors = [
            ("not json", "bad_json"),
            (r#"{"op":"dance","ref":"x"}"#, "unknown_op"),
            (r#"{"op":"subscribe","topics":["a:b"]}"#, "bad_topic"),
            (r#"{"op":"subscribe"}"#, "bad_command"),
            (r#"{"op":"unsubscribe","topics":["zzz"]}"#, "not_subscribed"),
            (r#"{"op":"publish","topic":"a","data":"x"}"#, "publish_disabled"),
        ];
        for (command, code) in errors {
            client.ws.send(Message::text(command)).unwrap();
            let reply = client.next_json();
            assert_eq!(
                (reply["type"].as_str(), reply["code"].as_str()),
                (Some("error"), Some(code)),
                "{command}"
            );
        }
        client.ws.send(Message::binary(vec![1, 2])).unwrap();
        assert_eq!(client.next_json()["code"], "binary_not_supported");
        client.command(json!({"op":"unsubscribe","topics":["a"]}));
        assert_eq!(client.next_json(), json!({"type":"unsubscribed","topic":"a"}));
        publish(server.addr, "a", "not for you");
        publish(server.addr, "b", "for you");
        assert_eq!(client.expect_message().3, "for you", "{driver}: still open, only b");
        assert_eq!(server.metric("ringcast_push_command_errors_total"), 5);
    }
}

#[test]
fn websocket_clients_publish_when_allowed() {
    for driver in DRIVERS {
        let server = push_server(driver, &["--push-ws-publish", "--cores", "2"]);
        let mut subscribers: Vec<Subscriber> = (0..6)
            .map(|_| Subscriber::connect(server.addr, "/ws?topics=chat"))
            .collect();
        subscribers.iter_mut().for_each(|s| drop(s.expect_subscribed("chat")));
        let mut publisher = Subscriber::connect(server.addr, "/ws");
        for i in 1..=5 {
            publisher.command(json!({"op":"publish","topic":"chat","data":format!("hi {i}"),"ref":i}));
            let reply = publisher.next_json();
            assert_eq!(
                (reply["type"].as_str(), reply["seq"].as_u64(), reply["ref"].as_u64()),
                (Some("published"), Some(i), Some(i))
            );
        }
        for s in &mut subscribers {
            let got: Vec<String> = (0..5).map(|_| s.expect_message().3).collect();
            assert_eq!(got, ["hi 1", "hi 2", "hi 3", "hi 4", "hi 5"], "{driver}");
        }
    }
}

#[test]
fn bad_subscriptions_are_refused_before_the_upgrade() {
    for driver in DRIVERS {
        let server = push_server(driver, &["--push-max-topics-per-connection", "2"]);
        let cases = [
            ("/ws?topics=a:b", "invalid topic"),
            ("/ws?topics=a,b,c", "at most 2 per connection"),
            ("/ws?topics=a&since=a:xyz:1", "invalid since entry"),
            ("/ws?topics=a&since=b:1:1", "not in ?topics="),
        ];
        for (path, reason) in cases {
            let response = server.http(&common::upgrade_request(path));
            assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
            assert!(response.contains(reason), "{path}: {response}");
        }
        let mut fine = Subscriber::connect(server.addr, "/ws?topics=a,b");
        fine.expect_subscribed("a");
        fine.expect_subscribed("b");
        fine.command(json!({"op":"subscribe","topics":["c"]}));
        assert_eq!(fine.next_json()["code"], "too_many_topics", "{driver}");
    }
}

#[test]
fn http_publishing_covers_binary_batches_and_refusals() {
    for driver in DRIVERS {
        let server = push_server(driver, &["--max-http-body", "1000"]);
        let mut client = Subscriber::connect(server.addr, "/ws?topics=bin,x,y");
        (0..3).for_each(|_| drop(client.next_json()));
        let (status, body) = post(server.addr, "/publish/bin", "application/octet-stream", &[0, 255, 7]);
        assert_eq!(status, 200, "{body}");
        let Message::Binary(frame) = client.next_message() else {
            panic!("a binary publish arrives as a binary frame");
        };
        assert_eq!(&frame[..5], &[1, 3, b'b', b'i', b'n']);
        assert_eq!(u64::from_be_bytes(frame[13..21].try_into().unwrap()), 1, "seq");
        assert_eq!(&frame[21..], &[0, 255, 7]);
        let batch = json!({"messages":[{"topic":"x","data":"1"},{"topic":"y","data":"2"},{"topic":"x","data":"3"}]});
        let (status, body) = post(
            server.addr,
            "/publish",
            "application/json",
            batch.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        let seqs: Vec<u64> = reply["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 1, 2]);
        let got: Vec<(String, String)> = (0..3)
            .map(|_| {
                let m = client.expect_message();
                (m.0, m.3)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("x".into(), "1".into()),
                ("y".into(), "2".into()),
                ("x".into(), "3".into())
            ]
        );
        let refusals = [
            ("GET /publish/x HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(), "405"),
            (
                "POST /publish/a,b HTTP/1.1\r\nContent-Length: 1\r\n\r\nx".to_owned(),
                "400",
            ),
            (
                "POST /publish HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".to_owned(),
                "400",
            ),
            (
                format!(
                    "POST /publish/x HTTP/1.1\r\nContent-Length: 1001\r\n\r\n{}",
                    "a".repeat(1001)
                ),
                "413",
            ),
            (
                "POST /publish/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_owned(),
                "411",
            ),
        ];
        for (request, status) in refusals {
            let response = server.http(&request);
            assert!(
                response.starts_with(&format!("HTTP/1.1 {status}")),
                "{driver} {request:?}: {response}"
            );
        }
        let response = common::http_bytes_at(
            server.addr,
            b"POST /publish/x HTTP/1.1\r\nContent-Length: 1\r\n\r\n\xff",
        );
        assert!(response.starts_with("HTTP/1.1 400"), "invalid UTF-8 text: {response}");
    }
}

/// A subscriber that never reads, with a tiny receive buffer, on a server with a small queue
/// cap, while `count` publishes of `size` bytes flow; returns its raw socket.
fn stalled_subscriber(server: &ServerProcess) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(common::upgrade_request("/ws?topics=flood").as_bytes())
        .unwrap();
    stream
}

fn flood(server: &ServerProcess, count: usize, size: usize) {
    let data = "x".repeat(size);
    for _ in 0..count {
        publish(server.addr, "flood", &data);
    }
}

#[test]
fn a_slow_subscriber_is_closed_and_the_others_get_everything() {
    for driver in DRIVERS {
        let server = push_server(
            driver,
            &["--max-queued-bytes", "65536", "--slow-consumer-close-code", "1013"],
        );
        let _stalled = stalled_subscriber(&server);
        let mut healthy = Subscriber::connect(server.addr, "/ws?topics=flood");
        healthy.expect_subscribed("flood");
        let reader = std::thread::spawn(move || (1..=300u64).all(|i| healthy.expect_message().2 == i));
        flood(&server, 300, 16 * 1024);
        assert!(
            reader.join().unwrap(),
            "{driver}: the healthy subscriber got 1..=300 in order"
        );
        server.wait_for_metric("ringcast_slow_consumers_total", 1);
    }
}

#[test]
fn a_slow_subscriber_under_the_drop_policy_loses_its_oldest_messages_and_is_told() {
    for driver in DRIVERS {
        let server = push_server(driver, &["--max-queued-bytes", "65536", "--push-slow-consumer", "drop"]);
        let stalled = stalled_subscriber(&server);
        let mut probe = Subscriber::connect(server.addr, "/ws?topics=flood");
        probe.expect_subscribed("flood");
        flood(&server, 300, 16 * 1024);
        assert_eq!(probe.expect_message().2, 1, "a fast subscriber loses nothing");
        server.wait_for_metric("ringcast_messages_shed_total", 1);
        // Now read the stalled one: every jump in sequence is announced just before it.
        let mut ws = finish_upgrade(stalled);
        assert_eq!(read_json(&mut ws)["type"], "subscribed");
        let (mut expected, mut gaps) = (1u64, 0);
        while expected <= 300 {
            let frame = read_json(&mut ws);
            match frame["type"].as_str() {
                Some("gap") => {
                    let next = frame["next"].as_u64().unwrap();
                    assert!(next > expected, "{driver}: a gap moves forward: {frame}");
                    expected = next;
                    gaps += 1;
                }
                Some("message") => {
                    assert_eq!(frame["seq"].as_u64(), Some(expected), "{driver}: no unannounced jump");
                    expected += 1;
                }
                _ => panic!("unexpected {frame}"),
            }
        }
        assert!(
            gaps >= 1,
            "{driver}: the stalled subscriber was told about what it lost"
        );
        assert_eq!(server.metric("ringcast_slow_consumers_total"), 0, "nobody was closed");
        assert!(server.metric("ringcast_push_gap_notices_total") >= gaps);
    }
}

/// Reads the 101 response head of a hand-written upgrade (byte by byte, so no frame is
/// consumed) and wraps the socket in a tungstenite client.
fn finish_upgrade(mut stream: TcpStream) -> tungstenite::WebSocket<TcpStream> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None)
}

fn read_json(ws: &mut tungstenite::WebSocket<TcpStream>) -> serde_json::Value {
    match ws.read().unwrap() {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}
