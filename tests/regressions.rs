//! Regression tests for engine defects found in review, each written to fail until its defect
//! is fixed: EOF queued behind data, echoes larger than the queue cap, one connection holding
//! its core, a panicking handler, and sends the outbound counters miss. Binary tests run the
//! real `ringcast` under both io drivers; library tests run `ringcast::Server` in-process under
//! both. Waits are bounded; nothing asserts on speed.

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{client_frame, metric_at, RawWs, ServerProcess, DRIVERS};
use ringcast::config::{Config, CoreSelection, IoMode};
use ringcast::handler::{CloseInfo, Context, Handler, Message};
use ringcast::proto::frame::{server_frame, OpCode};
use ringcast::Server;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message as WsMessage;

/// Polls `done` every 25 ms for at most 10 s; whether it became true.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    done()
}

/// A tungstenite client to `addr` whose reads and writes give up after `timeout`, accepting
/// messages and frames up to 64 MiB.
fn ws_client(addr: SocketAddr, timeout: Duration) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, _) =
        tungstenite::client::client_with_config(format!("ws://{addr}/"), stream, Some(config)).expect("upgrade");
    ws
}

/// The next message, or the error as text, retrying reads interrupted by a signal (a timed
/// socket read returns EINTR instead of restarting; see `start_in_process`).
fn read_message(ws: &mut tungstenite::WebSocket<TcpStream>) -> Result<WsMessage, String> {
    loop {
        match ws.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other.map_err(|e| e.to_string()),
        }
    }
}

/// Reads the next data message, skipping pings; panics with `context` on anything else.
fn read_data(ws: &mut tungstenite::WebSocket<TcpStream>, context: &str) -> WsMessage {
    loop {
        match read_message(ws) {
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => {}
            Ok(message @ (WsMessage::Text(_) | WsMessage::Binary(_))) => return message,
            other => panic!("{context}: expected a data message, got {other:?}"),
        }
    }
}

#[test]
fn eof_right_behind_data_closes_the_connection_and_frees_its_slot() {
    const CLIENTS: usize = 20;
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--ping-interval", "0s", "--max-connections-per-ip", "20"]);
        let mut clients: Vec<RawWs> = (0..CLIENTS).map(|_| RawWs::connect(&server, "/", &[])).collect();
        // One burst: each client's last frame and its FIN back to back, no close frame.
        for (i, client) in clients.iter_mut().enumerate() {
            client.send(&client_frame(0x81, format!("last words {i}").as_bytes()));
            client.stream.shutdown(Shutdown::Write).unwrap();
        }
        let eof_closes = || {
            server
                .json_events("close")
                .iter()
                .filter(|e| e["error"] == "eof_without_close")
                .count()
        };
        eventually(|| eof_closes() >= CLIENTS);
        assert_eq!(
            eof_closes(),
            CLIENTS,
            "{driver}: connections whose FIN arrived right behind a frame were never closed"
        );
        for (i, client) in clients.iter_mut().enumerate() {
            let echo = client.read_frame().expect("the echo of the last frame");
            assert_eq!(echo.payload, format!("last words {i}").into_bytes(), "{driver}");
            client.expect_eof();
        }
        assert!(
            eventually(|| server.metric("ringcast_connections_open") == 0),
            "{driver}: ringcast_connections_open stays at {}",
            server.metric("ringcast_connections_open")
        );
        // The per-IP count was given back: a full new set from the same address gets in.
        let mut again: Vec<RawWs> = (0..CLIENTS).map(|_| RawWs::connect(&server, "/", &[])).collect();
        for client in &mut again {
            client.send(&client_frame(0x81, b"back"));
            assert_eq!(client.read_frame().unwrap().payload, b"back", "{driver}");
        }
    }
}

/// `len` bytes of valid UTF-8 mixing one- to four-byte characters.
fn text_of(len: usize) -> String {
    let mut text = String::with_capacity(len);
    let pattern = "ringcast \u{fc}ber \u{20ac}5 \u{1d11e} ";
    while text.len() + pattern.len() <= len {
        text.push_str(pattern);
    }
    while text.len() < len {
        text.push('.');
    }
    text
}

#[test]
fn echoes_up_to_the_default_message_size_come_back_intact() {
    for driver in DRIVERS {
        // Defaults: max_message_size 16 MiB, max_queued_bytes 4 MiB.
        let server = ServerProcess::start(driver, &[]);
        let mut ws = ws_client(server.addr, Duration::from_secs(30));
        for size in [8 << 20, 16 << 20] {
            let text = text_of(size);
            ws.send(WsMessage::text(text.clone())).unwrap();
            match read_data(&mut ws, &format!("{driver}: {size}-byte text echo")) {
                WsMessage::Text(echo) => assert!(echo.as_str() == text, "{driver}: {size}-byte text changed"),
                other => panic!("{driver}: {other:?}"),
            }
            let binary: Vec<u8> = (0..size).map(|i| (i * 31 + i / 4093) as u8).collect();
            ws.send(WsMessage::binary(binary.clone())).unwrap();
            match read_data(&mut ws, &format!("{driver}: {size}-byte binary echo")) {
                WsMessage::Binary(echo) => assert!(echo[..] == binary[..], "{driver}: {size}-byte binary changed"),
                other => panic!("{driver}: {other:?}"),
            }
        }
        assert_eq!(server.metric("ringcast_slow_consumers_total"), 0, "{driver}");
    }
}

/// The flooding client gives up once it has sent this much since the echo connection last
/// completed a round trip: the echo connection is starved.
const STARVED_AFTER: u64 = 256 << 20;

#[test]
fn a_connection_flooding_unanswered_frames_does_not_hold_its_core() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &[]);
        let flooder = RawWs::connect(&server, "/", &[]);
        let mut echoer = RawWs::connect(&server, "/", &[]);
        // A starved echo connection gets its echo once the flood stops, so its reads wait long.
        echoer.stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        // Unsolicited pongs: the server reads and drops them, so it never pauses the flooder
        // for replies to flush.
        let pong = client_frame(0x8A, &[0x55; 125]);
        let burst: Vec<u8> = pong.iter().copied().cycle().take(pong.len() * 8_000).collect();
        let echo_done = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        // `sent` when the echo connection last completed a round trip.
        let progress = Arc::new(AtomicU64::new(0));
        let flood = {
            let (echo_done, sent, progress) = (echo_done.clone(), sent.clone(), progress.clone());
            let mut stream = flooder.stream.try_clone().unwrap();
            stream.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            std::thread::spawn(move || {
                while !echo_done.load(Ordering::Relaxed) {
                    let total = sent.load(Ordering::Relaxed);
                    if total - progress.load(Ordering::Relaxed) >= STARVED_AFTER {
                        return Some(total);
                    }
                    if stream.write_all(&burst).is_err() {
                        break;
                    }
                    sent.fetch_add(burst.len() as u64, Ordering::Relaxed);
                }
                None
            })
        };
        assert!(
            eventually(|| sent.load(Ordering::Relaxed) >= 16 << 20),
            "{driver}: the flood never got going"
        );
        progress.store(sent.load(Ordering::Relaxed), Ordering::Relaxed);
        for i in 0..200 {
            let text = format!("round trip {i}");
            echoer.send(&client_frame(0x81, text.as_bytes()));
            let echo = echoer.read_frame().expect("an echo");
            assert_eq!(echo.payload, text.into_bytes(), "{driver}");
            progress.store(sent.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        echo_done.store(true, Ordering::Relaxed);
        if let Some(total) = flood.join().unwrap() {
            panic!(
                "{driver}: the echo connection was starved: no round trip completed while the \
                 flooding connection on its core sent {} MiB (flood total {} MiB)",
                STARVED_AFTER >> 20,
                total >> 20
            );
        }
        drop(flooder);
    }
}

/// Log lines of the whole test process (JSON, one event per line), captured once.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("info")
            .with_writer(move || Capture(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        logs
    })
}

/// Appends what it is given to the captured logs.
struct Capture(&'static Mutex<Vec<u8>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many captured events have `"event": name`.
fn captured_events(name: &str) -> usize {
    let logs = captured_logs().lock().unwrap().clone();
    String::from_utf8_lossy(&logs)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == name)
        .count()
}

/// One core on a free loopback port with the io driver `io`.
fn library_config(io: IoMode) -> Config {
    let mut config = Config::embedded();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.cores = CoreSelection::Count(1);
    config.io = io;
    config
}

/// Starts an in-process server from a helper thread. Starting one probes io_uring on the
/// calling thread, and that thread's timed socket reads then sporadically fail with EINTR (seen
/// with tungstenite handshakes), so the test thread stays out of it.
fn start_in_process<H: Handler>(
    config: Config,
    handler: impl Fn(usize) -> H + Send + Sync + 'static,
) -> ringcast::RunningServer {
    std::thread::spawn(move || Server::new(config).start(handler).expect("start in-process"))
        .join()
        .expect("the starting thread")
}

/// Echoes, except that the message "boom" makes it panic.
struct Fragile;

impl Handler for Fragile {
    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>) {
        if message == Message::Text("boom") {
            panic!("the handler was asked to panic");
        }
        let _ = cx.send(message);
    }
}

fn echoes(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str, context: &str) {
    ws.send(WsMessage::text(text)).unwrap();
    assert_eq!(read_data(ws, context), WsMessage::text(text), "{context}");
}

#[test]
fn a_panicking_handler_closes_its_connection_with_1011_and_the_core_lives_on() {
    captured_logs();
    for io in [IoMode::Uring, IoMode::Epoll] {
        let logged_before = captured_events("handler_panic");
        let server = start_in_process(library_config(io), |_core| Fragile);
        let addr = server.local_addrs()[0];
        let mut bystander = ws_client(addr, Duration::from_secs(10));
        let mut victim = ws_client(addr, Duration::from_secs(10));
        echoes(&mut bystander, "before", &format!("{io:?}: bystander before the panic"));
        victim.send(WsMessage::text("boom")).unwrap();
        match read_message(&mut victim) {
            Ok(WsMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1011, "{io:?}: {frame:?}"),
            other => panic!("{io:?}: expected a close with 1011 after the handler panicked, got {other:?}"),
        }
        echoes(&mut bystander, "after", &format!("{io:?}: bystander after the panic"));
        let mut newcomer = ws_client(addr, Duration::from_secs(10));
        echoes(
            &mut newcomer,
            "new",
            &format!("{io:?}: a connection accepted after the panic"),
        );
        assert!(
            eventually(|| metric_at(addr, "ringcast_handler_panics_total") == 1),
            "{io:?}: ringcast_handler_panics_total is {}",
            metric_at(addr, "ringcast_handler_panics_total")
        );
        assert_eq!(
            captured_events("handler_panic"),
            logged_before + 1,
            "{io:?}: one event=handler_panic log line"
        );
    }
}

/// Greets on open, broadcasts every message to the whole core, and tells the others when a
/// connection leaves: sends to the current connection, to others, and from outside
/// `on_message`.
struct Chorus;

const WELCOME: &str = "welcome";
const GOODBYE: &str = "a neighbour left";

impl Handler for Chorus {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.send(Message::Text(WELCOME)).unwrap();
    }

    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>) {
        let frame = server_frame(OpCode::Text, message.as_bytes());
        for id in cx.connections_on_core() {
            cx.send_to(id, frame.clone()).unwrap();
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, _info: &CloseInfo) {
        let frame = server_frame(OpCode::Text, GOODBYE.as_bytes());
        let leaving = cx.id();
        for id in cx.connections_on_core().into_iter().filter(|&id| id != leaving) {
            cx.send_to(id, frame.clone()).unwrap();
        }
    }
}

#[test]
fn outbound_counters_count_every_frame_written() {
    const HELLO: &str = "hello, everyone";
    for io in [IoMode::Uring, IoMode::Epoll] {
        let server = start_in_process(library_config(io), |_core| Chorus);
        let addr = server.local_addrs()[0];
        let mut clients: Vec<_> = (0..3).map(|_| ws_client(addr, Duration::from_secs(10))).collect();
        let (mut messages, mut bytes) = (0u64, 0u64);
        let mut received = |message: WsMessage, expected: &str| {
            assert_eq!(message, WsMessage::text(expected), "{io:?}");
            messages += 1;
            bytes += expected.len() as u64;
        };
        for client in &mut clients {
            received(read_data(client, "welcome"), WELCOME);
        }
        clients[0].send(WsMessage::text(HELLO)).unwrap();
        for client in &mut clients {
            received(read_data(client, "broadcast"), HELLO);
        }
        let mut leaver = clients.pop().unwrap();
        leaver.close(None).unwrap();
        while read_message(&mut leaver).is_ok() {}
        for client in &mut clients {
            received(read_data(client, "goodbye"), GOODBYE);
        }
        assert_eq!((messages, bytes), (8, 3 * 7 + 3 * 15 + 2 * 16));
        eventually(|| metric_at(addr, "ringcast_messages_sent_total") == messages);
        assert_eq!(
            metric_at(addr, "ringcast_messages_sent_total"),
            messages,
            "{io:?}: messages written (3 welcomes from on_open, a broadcast to 3, 2 goodbyes from on_close)"
        );
        assert_eq!(
            metric_at(addr, "ringcast_payload_bytes_sent_total"),
            bytes,
            "{io:?}: payload bytes written"
        );
    }
}
