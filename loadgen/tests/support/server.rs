//! A small blocking tungstenite WebSocket server (thread per connection): a known-good peer
//! for the integration tests and the `tungstenite_echo` example.

#![allow(dead_code)] // each user needs a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tungstenite::{Bytes, Message};

/// How the test server treats each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Echo text and binary messages.
    Echo,
    /// Send a ping right after the upgrade, then echo.
    PingFirst,
    /// Answer the upgrade request with this HTTP status and close.
    Status(u16),
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Counts {
    pub accepted: AtomicU64,
    pub upgraded: AtomicU64,
    pub echoed: AtomicU64,
    pub pongs: AtomicU64,
    /// Close frames received from clients.
    pub closes: AtomicU64,
}

/// A running test server; it lives until the test process exits.
pub struct Server {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
}

impl Server {
    pub fn start(mode: Mode) -> Server {
        Server::bind("127.0.0.1:0", mode)
    }

    pub fn bind(addr: &str, mode: Mode) -> Server {
        let listener = TcpListener::bind(addr).expect("bind a test port");
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let counts = shared.clone();
                std::thread::spawn(move || serve(stream, mode, &counts));
            }
        });
        Server { addr, counts }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/echo", self.addr)
    }
}

fn serve(stream: TcpStream, mode: Mode, counts: &Counts) {
    stream.set_nodelay(true).unwrap();
    if let Mode::Status(code) = mode {
        return refuse(stream, code);
    }
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    counts.upgraded.fetch_add(1, Ordering::SeqCst);
    if mode == Mode::PingFirst && ws.send(Message::Ping(Bytes::from_static(b"are you there"))).is_err() {
        return;
    }
    loop {
        match ws.read() {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                counts.echoed.fetch_add(1, Ordering::SeqCst);
                if ws.send(msg).is_err() {
                    return;
                }
            }
            Ok(Message::Pong(payload)) => {
                assert_eq!(&payload[..], b"are you there");
                counts.pongs.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Message::Close(_)) => {
                counts.closes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fn refuse(mut stream: TcpStream, code: u16) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}
