//! Drives each peer echo server binary with a real WebSocket client: echo of text and binary
//! messages, reassembly of fragmented messages, ping/pong and the closing handshake.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::{Bytes, Message, WebSocket};

/// Upper bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A running peer process, killed when dropped.
struct Peer {
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `exe` on port 0 and reads the port it bound from its listening line: picking a free
/// port first and passing it would race with other tests binding ports meanwhile (the probe
/// could then reach another test's server).
fn start_peer(exe: &str, threads: u16) -> Peer {
    let mut child = Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--threads", &threads.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {exe}: {err}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap_or_else(|err| panic!("{exe}: no listening line: {err}"));
    let port = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("{exe}: no address in {line:?}"))
        .port();
    Peer { child, port }
}

/// Opens a WebSocket client connection to the peer.
fn connect(peer: &Peer) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, peer.port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (ws, response) = tungstenite::client::client(format!("ws://127.0.0.1:{}/", peer.port), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Reads the next message, skipping nothing: the peers must not send anything unsolicited.
fn next(ws: &mut WebSocket<TcpStream>) -> Message {
    ws.read().expect("peer answered")
}

fn check_peer(exe: &str, threads: u16) {
    let peer = start_peer(exe, threads);
    let mut ws = connect(&peer);

    ws.send(Message::text("hello")).unwrap();
    assert_eq!(next(&mut ws), Message::text("hello"));

    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(Message::binary(binary.clone())).unwrap();
    assert_eq!(next(&mut ws), Message::binary(binary));

    for part in [
        Frame::message("frag", OpCode::Data(Data::Text), false),
        Frame::message("mented", OpCode::Data(Data::Continue), true),
    ] {
        ws.write(Message::Frame(part)).unwrap();
    }
    ws.flush().unwrap();
    assert_eq!(next(&mut ws), Message::text("fragmented"));

    ws.send(Message::Ping(Bytes::from_static(b"are you there"))).unwrap();
    assert_eq!(next(&mut ws), Message::Pong(Bytes::from_static(b"are you there")));

    // Pipelined messages come back in order.
    for i in 0..32 {
        ws.write(Message::text(i.to_string())).unwrap();
    }
    ws.flush().unwrap();
    for i in 0..32 {
        assert_eq!(next(&mut ws), Message::text(i.to_string()));
    }

    ws.close(None).unwrap();
    let closed = loop {
        match ws.read() {
            Ok(Message::Close(_)) => continue,
            Ok(other) => panic!("{exe}: unexpected message after close: {other:?}"),
            Err(err) => break err,
        }
    };
    assert!(
        matches!(closed, tungstenite::Error::ConnectionClosed),
        "{exe}: closing handshake did not complete: {closed}"
    );
}

#[test]
fn fastwebsockets_peer_echoes_pings_and_closes() {
    check_peer(env!("CARGO_BIN_EXE_peer-fastwebsockets"), 1);
    check_peer(env!("CARGO_BIN_EXE_peer-fastwebsockets"), 2);
}

#[test]
fn tokio_tungstenite_peer_echoes_pings_and_closes() {
    check_peer(env!("CARGO_BIN_EXE_peer-tokio-tungstenite"), 1);
    check_peer(env!("CARGO_BIN_EXE_peer-tokio-tungstenite"), 2);
}
