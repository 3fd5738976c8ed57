//! A per-core chat room built on the library API.
//!
//! Every text message a client sends is broadcast to every client connected to the same core:
//! the frame is encoded once and the same bytes are queued to each connection. A client that
//! sends `/quit` is closed with code 4000. Run it with
//! `cargo run --release --example room -- 127.0.0.1:9002` and connect any WebSocket client.

use ringcast::config::Config;
use ringcast::handler::{CloseInfo, Context, Handler, Message};
use ringcast::proto::close::CloseCode;
use ringcast::proto::frame::{server_frame, OpCode};
use ringcast::Server;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One room per core; handlers never share state, so they need no locks.
struct Room;

impl Room {
    fn broadcast(cx: &mut Context<'_>, text: &str) {
        let frame = server_frame(OpCode::Text, text.as_bytes());
        for id in cx.connections_on_core() {
            // A member that is already closing just misses the message.
            let _ = cx.send_to(id, frame.clone());
        }
    }
}

impl Handler for Room {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let text = format!("{} joined core {}", cx.meta().peer(), cx.core());
        Room::broadcast(cx, &text);
    }

    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>) {
        match message {
            Message::Text("/quit") => cx.close(CloseCode(4000), "bye"),
            Message::Text(text) => {
                let line = format!("{}: {text}", cx.id());
                Room::broadcast(cx, &line);
            }
            Message::Binary(_) => cx.close(CloseCode::UNSUPPORTED_DATA, "text only"),
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, info: &CloseInfo) {
        let text = format!("{} left ({})", cx.id(), info.closed_by.as_str());
        Room::broadcast(cx, &text);
    }
}

fn main() {
    let mut config = Config::embedded();
    if let Some(addr) = std::env::args().nth(1) {
        config.listen = vec![addr.parse().expect("usage: room [ADDR:PORT]")];
    }
    let server = Server::new(config).start(|_core| Room).expect("start the server");
    println!("room listening on ws://{}/", server.local_addrs()[0]);
    server.join().expect("server failed");
}
