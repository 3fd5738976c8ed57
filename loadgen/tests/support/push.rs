//! A fake push server (README.md, "Push mode") for the push scenario tests, thread per
//! connection: subscribers with `?topics=`, `POST /publish/{topic}` and `POST /publish` batches
//! (one request per TCP connection, then close), WebSocket `publish` commands, and fan-out of
//! `message` envelopes with per-topic sequence numbers.
//!
//! [`Faults`] act on the first subscriber of `t0` only: drop one message, send one twice, hold
//! one back until after the next, replace one with a `gap` notice, or stop delivering after a
//! sequence. Or on every HTTP publish: refuse it with a status, or hold it before sequencing.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::Message;

/// The epoch of every topic.
pub const EPOCH: &str = "00000000000000e1";

/// Faults to inject (sequence numbers of `t0`, first subscriber only).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Never send this sequence.
    pub drop: Option<u64>,
    /// Send this sequence twice.
    pub duplicate: Option<u64>,
    /// Send this sequence after the next one.
    pub reorder: Option<u64>,
    /// Send a `gap` notice (next = this + 1) instead of this sequence.
    pub gap: Option<u64>,
    /// Send nothing after this sequence.
    pub cut_after: Option<u64>,
    /// Answer every HTTP publish with this status instead of sequencing it.
    pub refuse: Option<u16>,
    /// Hold every HTTP publish this long before sequencing it.
    pub delay: Option<Duration>,
}

/// What the server saw and did.
#[derive(Debug, Default)]
pub struct PushCounts {
    pub subscriptions: AtomicU64,
    /// Publishes sequenced (HTTP and WebSocket).
    pub publishes: AtomicU64,
    pub single_requests: AtomicU64,
    pub batch_requests: AtomicU64,
    pub ws_publishes: AtomicU64,
    /// Message frames handed to subscribers.
    pub delivered: AtomicU64,
    /// Close frames received from clients.
    pub closes: AtomicU64,
}

/// A running fake push server; it lives until the test process exits.
pub struct PushServer {
    pub addr: SocketAddr,
    pub counts: Arc<PushCounts>,
    hub: Arc<Hub>,
}

impl PushServer {
    pub fn start(faults: Faults) -> PushServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test port");
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(PushCounts::default());
        let hub = Arc::new(Hub {
            faults,
            counts: counts.clone(),
            topics: Mutex::new(HashMap::new()),
        });
        let shared = hub.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let hub = shared.clone();
                std::thread::spawn(move || serve(stream, &hub));
            }
        });
        PushServer { addr, counts, hub }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The last sequence published to `topic` (0 before the first).
    pub fn last_seq(&self, topic: &str) -> u64 {
        self.hub.topics.lock().unwrap().get(topic).map_or(0, |t| t.seq)
    }
}

struct Hub {
    faults: Faults,
    counts: Arc<PushCounts>,
    topics: Mutex<HashMap<String, Topic>>,
}

#[derive(Default)]
struct Topic {
    seq: u64,
    subs: Vec<Sub>,
}

struct Sub {
    tx: Sender<String>,
    faulty: bool,
    held: Option<String>,
}

impl Hub {
    fn subscribe(&self, topic: &str, tx: Sender<String>) {
        let mut topics = self.topics.lock().unwrap();
        let entry = topics.entry(topic.to_string()).or_default();
        let faulty = topic == "t0" && entry.subs.is_empty();
        entry.subs.push(Sub { tx, faulty, held: None });
        self.counts.subscriptions.fetch_add(1, Ordering::SeqCst);
    }

    /// Sequences `data` on `topic`, fans it out, and returns its sequence.
    fn publish(&self, topic: &str, data: &str) -> u64 {
        let mut topics = self.topics.lock().unwrap();
        let entry = topics.entry(topic.to_string()).or_default();
        entry.seq += 1;
        let seq = entry.seq;
        self.counts.publishes.fetch_add(1, Ordering::SeqCst);
        let message = json!({"type": "message", "topic": topic, "epoch": EPOCH, "seq": seq, "data": data}).to_string();
        let send = |sub: &Sub, text: String| {
            self.counts.delivered.fetch_add(1, Ordering::SeqCst);
            let _ = sub.tx.send(text);
        };
        let f = self.faults;
        for sub in &mut entry.subs {
            if !sub.faulty {
                send(sub, message.clone());
                continue;
            }
            if f.cut_after.is_some_and(|c| seq > c) || f.drop == Some(seq) {
                continue;
            }
            if f.gap == Some(seq) {
                let _ = sub
                    .tx
                    .send(json!({"type": "gap", "topic": topic, "epoch": EPOCH, "next": seq + 1}).to_string());
                continue;
            }
            if f.reorder == Some(seq) {
                sub.held = Some(message.clone());
                continue;
            }
            send(sub, message.clone());
            if f.duplicate == Some(seq) {
                send(sub, message.clone());
            }
            if let Some(held) = sub.held.take() {
                send(sub, held);
            }
        }
        seq
    }
}

fn serve(stream: TcpStream, hub: &Hub) {
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut method = [0u8; 4];
    for _ in 0..100 {
        match stream.peek(&mut method) {
            Ok(4) => break,
            Ok(0) | Err(_) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    if &method == b"POST" {
        http(stream, hub);
    } else {
        websocket(stream, hub);
    }
}

fn http(mut stream: TcpStream, hub: &Hub) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (path, head, length) = loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(&buf) {
            let length = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse::<usize>().unwrap())
                .expect("the client sends Content-Length");
            break (req.path.unwrap().to_string(), head, length);
        }
    };
    while buf.len() < head + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = std::str::from_utf8(&buf[head..head + length]).unwrap();
    if let Some(delay) = hub.faults.delay {
        std::thread::sleep(delay);
    }
    let (status, reply) = if let Some(status) = hub.faults.refuse {
        (status, json!({"error": "refused"}))
    } else if path == "/publish" {
        hub.counts.batch_requests.fetch_add(1, Ordering::SeqCst);
        let batch: Value = serde_json::from_str(body).unwrap();
        let results: Vec<Value> = batch["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let topic = m["topic"].as_str().unwrap();
                let seq = hub.publish(topic, m["data"].as_str().unwrap());
                json!({"topic": topic, "epoch": EPOCH, "seq": seq})
            })
            .collect();
        (200, json!({ "results": results }))
    } else {
        hub.counts.single_requests.fetch_add(1, Ordering::SeqCst);
        let topic = path.strip_prefix("/publish/").expect("a publish path");
        let seq = hub.publish(topic, body);
        (200, json!({"topic": topic, "epoch": EPOCH, "seq": seq}))
    };
    let reply = reply.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn websocket(stream: TcpStream, hub: &Hub) {
    let (tx, rx) = mpsc::channel();
    // Subscribe before the 101 goes out, as the client counts itself subscribed on the 101.
    #[allow(clippy::result_large_err)] // the signature is tungstenite's
    let subscribe = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let query = req.uri().query().unwrap_or("");
        for pair in query.split('&') {
            if let Some(topics) = pair.strip_prefix("topics=") {
                for topic in topics.split(',').filter(|t| !t.is_empty()) {
                    hub.subscribe(topic, tx.clone());
                }
            }
        }
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, subscribe) else {
        return;
    };
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    loop {
        while let Ok(text) = rx.try_recv() {
            if ws.send(Message::text(text)).is_err() {
                return;
            }
        }
        match ws.read() {
            Ok(Message::Text(command)) => {
                let command: Value = serde_json::from_str(command.as_str()).unwrap();
                assert_eq!(command["op"], "publish", "{command}");
                let topic = command["topic"].as_str().unwrap();
                let seq = hub.publish(topic, command["data"].as_str().unwrap());
                hub.counts.ws_publishes.fetch_add(1, Ordering::SeqCst);
                let reply =
                    json!({"type": "published", "topic": topic, "epoch": EPOCH, "seq": seq, "ref": command["ref"]});
                if ws.send(Message::text(reply.to_string())).is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                hub.counts.closes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}
