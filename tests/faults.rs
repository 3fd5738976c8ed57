//! Fault tests over the real binary, under both io drivers: clients killed mid-frame and
//! mid-handshake, half-open connections (write side shut; pings no longer answered), clients
//! that flood without reading, subscribers that stop reading while publishes flow, SIGTERM
//! under load, Redis killed and Redis hung under load, and connection churn (the soak in
//! small; `benches/soak.sh` runs 500,000). One test runs in-process: a client that never
//! reads a large plain-HTTP response (no route of the binary answers that much).
//!
//! Most faults run in rounds on one server: a warm-up round, then [`MEASURED_ROUNDS`] rounds of
//! the same work. After every round no WebSocket connection is open (`ringcast_connections_open`
//! back to 0, bounded wait) and the server holds the descriptors it held after the warm-up;
//! after the last round its resident memory (`VmRSS`) is at most [`RSS_SLACK`] above what it
//! was after the warm-up; and the counters and log events say what happened, exactly.
//!
//! Why that bound means something: the warm-up grows everything the work needs once (the
//! allocator's pages, the connection slab, the provided-buffer pool, made small here with
//! `--uring-buffers 256` = 1 MiB so that the warm-up touches all of it, the log buffer). Each
//! round then makes the server hold several MiB on behalf of the clients it faults (unfinished
//! messages, request heads, queued output; the figure is in each test's comment), so memory
//! that one round's fault leaves behind, kept over the measured rounds, is well above the bound.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::push::{post, Subscriber};
use common::redis::{wait_ready, RedisServer};
use common::{client_frame, upgrade_request, RawWs, ServerProcess, DRIVERS};
use serde_json::Value;
use tungstenite::Message;

/// Measured rounds after the warm-up round.
const MEASURED_ROUNDS: usize = 4;
/// How far resident memory may end above its level after the warm-up: the allocator's slack
/// (pages it keeps after frees, in different places than before) for work of a few MiB.
const RSS_SLACK: u64 = 4 << 20;
/// Flags every server here gets: a provided-buffer pool the warm-up touches entirely.
const SMALL_POOL: [&str; 2] = ["--uring-buffers", "256"];
/// Bytes of an unfinished message a faulty client leaves the server holding.
const HELD: usize = 32 * 1024;

fn server(driver: &str, extra: &[&str]) -> ServerProcess {
    let mut args = SMALL_POOL.to_vec();
    args.extend_from_slice(extra);
    ServerProcess::start(driver, &args)
}

/// The server's open descriptors (`/proc/PID/fd`).
fn open_fds(server: &ServerProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("read /proc/PID/fd")
        .count()
}

/// Waits (bounded) until `open` WebSocket connections remain and the server's descriptors are
/// back to `fds` (when given: plain HTTP connections may still be finishing for a moment).
fn settle(server: &ServerProcess, open: u64, fds: Option<usize>) {
    server.wait_for_metric_eq("ringcast_connections_open", open);
    let Some(fds) = fds else { return };
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(server) != fds {
        assert!(
            Instant::now() < deadline,
            "descriptors {} never came back to {fds}",
            open_fds(server)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `round(0)` to warm up and `round(1..=MEASURED_ROUNDS)`, settling to `open` connections
/// after each; then checks the descriptors and resident memory against the warm-up's.
/// Returns the resident memory after the warm-up.
fn in_rounds(server: &ServerProcess, label: &str, open: u64, mut round: impl FnMut(usize)) -> u64 {
    round(0);
    settle(server, open, None);
    std::thread::sleep(Duration::from_millis(100));
    let fds = open_fds(server);
    let start = server.resident_bytes();
    let mut peak = start;
    for i in 1..=MEASURED_ROUNDS {
        round(i);
        settle(server, open, Some(fds));
        peak = peak.max(server.resident_bytes());
    }
    let end = server.resident_bytes();
    eprintln!("{label}: VmRSS after warm-up {start}, peak between rounds {peak}, end {end}");
    assert!(
        end <= start + RSS_SLACK,
        "{label}: resident memory {end} after {MEASURED_ROUNDS} rounds, {start} after the warm-up \
         (bound: + {RSS_SLACK})"
    );
    start
}

/// How many close events say `error`.
fn closes_with_error(server: &ServerProcess, error: &str) -> usize {
    server
        .json_events("close")
        .iter()
        .filter(|e| e["error"] == error)
        .count()
}

/// How a faulty client leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// `close(2)`: a FIN.
    Fin,
    /// `SO_LINGER` 0, then `close(2)`: a reset.
    Reset,
}

impl Leave {
    fn now(self, stream: TcpStream) {
        if let Leave::Reset = self {
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        drop(stream);
    }
}

/// A first fragment of `HELD` bytes and a ping, then the pong read back: the server has
/// certainly decoded the fragment and holds it as an unfinished message.
fn hold_unfinished_message(ws: &mut RawWs) {
    let mut bytes = client_frame(0x02, &vec![7u8; HELD]);
    bytes.extend(client_frame(0x89, b"sync"));
    ws.send(&bytes);
    let mut pong = ws.read_frame().expect("a pong");
    while pong.opcode == 0x09 {
        // A heartbeat ping that crossed our frames (left unanswered).
        pong = ws.read_frame().expect("a pong");
    }
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0x0a, &b"sync"[..]));
}

/// Where in a continuation frame a client is killed.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// 3 of its 8 header bytes.
    HalfHeader,
    /// Its whole header (a `HELD`-byte payload) and half the payload.
    HalfPayload,
}

impl Cut {
    fn bytes(self) -> Vec<u8> {
        let whole = client_frame(0x80, &vec![9u8; HELD]);
        match self {
            Cut::HalfHeader => whole[..3].to_vec(),
            Cut::HalfPayload => whole[..8 + HELD / 2].to_vec(),
        }
    }
}

/// 100 clients per round, each holding a 32 KiB unfinished message when it is killed halfway
/// through the header or the payload of its next frame, half by FIN and half by reset: the
/// server holds at least 3.2 MiB for them at the kill.
#[test]
fn clients_killed_mid_frame_leave_nothing_behind() {
    const PER_KIND: usize = 25;
    for driver in DRIVERS {
        let server = server(driver, &[]);
        in_rounds(&server, &format!("{driver} mid-frame"), 0, |_| {
            let mut clients = Vec::new();
            for cut in [Cut::HalfHeader, Cut::HalfPayload] {
                for leave in [Leave::Fin, Leave::Reset] {
                    for _ in 0..PER_KIND {
                        let mut ws = RawWs::connect(&server, "/", &[]);
                        hold_unfinished_message(&mut ws);
                        ws.send(&cut.bytes());
                        clients.push((ws.stream, leave));
                    }
                }
            }
            server.wait_for_metric_eq("ringcast_connections_open", clients.len() as u64);
            for (stream, leave) in clients {
                leave.now(stream);
            }
        });
        let killed = (1 + MEASURED_ROUNDS) * 4 * PER_KIND;
        server.wait_for_metric_eq("ringcast_connections_closed_total{by=\"error\"}", killed as u64);
        assert_eq!(
            server.metric("ringcast_reset_by_peer_total"),
            killed as u64 / 2,
            "{driver}"
        );
        assert_eq!(closes_with_error(&server, "reset"), killed / 2, "{driver}");
        assert_eq!(closes_with_error(&server, "eof_without_close"), killed / 2, "{driver}");
        assert_eq!(
            server.metric("ringcast_messages_received_total"),
            0,
            "{driver}: nothing was whole"
        );
        assert_still_serves(&server);
    }
}

/// A normal client still gets its echo.
fn assert_still_serves(server: &ServerProcess) {
    let mut client = Subscriber::connect(server.addr, "/");
    client.ws.send(Message::text("still here")).unwrap();
    assert_eq!(client.next_message(), Message::text("still here"));
    client.ws.close(None).unwrap();
    while client.ws.read().is_ok() {}
    server.wait_for_metric_eq("ringcast_connections_open", 0);
}

/// Writes binary echo requests (8,000 bytes each) from a client with a 4 KiB receive buffer
/// that reads nothing, until TCP stops taking them (a write blocks for 300 ms); bounded at
/// 256 MiB. Returns the stream.
fn flood_until_blocked(addr: SocketAddr) -> TcpStream {
    let mut stream = tiny_window(addr, &upgrade_request("/"));
    socket2::SockRef::from(&stream).set_send_buffer_size(64 * 1024).unwrap();
    stream.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
    let batch: Vec<u8> = (0..8).flat_map(|_| client_frame(0x82, &[5u8; 8000])).collect();
    let (mut written, mut offset) = (0usize, 0usize);
    while written < 256 << 20 {
        match stream.write(&batch[offset..]) {
            Ok(n) => {
                written += n;
                offset = (offset + n) % batch.len();
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return stream;
            }
            Err(e) => panic!("the server ended a flooding client after {written} bytes: {e}"),
        }
    }
    panic!("TCP never pushed back on a client that reads nothing ({written} bytes taken)");
}

/// Per round, 8 clients send echo requests as fast as TCP takes them and read none of the
/// replies, then are reset. The engine stops reading a connection once 64 KiB of its replies
/// are pending, so TCP, not the server's memory, must absorb what they send: while all 8 are
/// stuck, the server holds at most a few hundred KiB for them (replies pending, and input that
/// was on its way when reading stopped), within `RSS_SLACK` of its resident memory after the
/// warm-up (one flooding client).
#[test]
fn clients_that_flood_without_reading_are_held_back_by_tcp_not_by_server_memory() {
    const FLOODERS: usize = 8;
    for driver in DRIVERS {
        let server = server(driver, &[]);
        let mut stuck_peak = 0;
        let label = format!("{driver} flood without reading");
        let start = in_rounds(&server, &label, 0, |round| {
            let addr = server.addr;
            let flooders: Vec<TcpStream> = (0..if round == 0 { 1 } else { FLOODERS })
                .map(|_| std::thread::spawn(move || flood_until_blocked(addr)))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            if round > 0 {
                stuck_peak = stuck_peak.max(server.resident_bytes());
            }
            flooders.into_iter().for_each(|s| Leave::Reset.now(s));
        });
        eprintln!("{label}: VmRSS with {FLOODERS} stuck flooders at most {stuck_peak}");
        assert!(
            stuck_peak <= start + RSS_SLACK,
            "{label}: {stuck_peak} bytes resident with {FLOODERS} stuck flooders, {start} after the warm-up \
             (bound: + {RSS_SLACK})"
        );
        let flooders = (1 + MEASURED_ROUNDS * FLOODERS) as u64;
        server.wait_for_metric_eq("ringcast_connections_closed_total{by=\"error\"}", flooders);
        assert_eq!(
            server.metric("ringcast_reset_by_peer_total") + server.metric("ringcast_write_errors_total"),
            flooders,
            "{label}: each ended by its reset"
        );
        assert_still_serves(&server);
    }
}

/// The first half of an upgrade request whose head is `HELD` bytes long (a padding header).
fn half_a_request_head() -> Vec<u8> {
    let request = upgrade_request("/");
    let (line_and_host, rest) = request.split_at(request.find("\r\n").unwrap() + 2);
    let head = format!("{line_and_host}X-Pad: {}\r\n{rest}", "p".repeat(HELD));
    head.as_bytes()[..head.len() / 2].to_vec()
}

/// 60 clients per round send half of a 32 KiB request head: 20 then close, 20 reset, 20 stay
/// silent until the (shortened) handshake timeout. About 1.9 MiB of heads held per round.
#[test]
fn clients_gone_or_stuck_mid_handshake_leave_nothing_behind() {
    const PER_KIND: usize = 20;
    for driver in DRIVERS {
        let server = server(driver, &["--handshake-timeout", "300ms", "--max-request-head", "65536"]);
        in_rounds(&server, &format!("{driver} mid-handshake"), 0, |_| {
            let mut stuck = Vec::new();
            for leave in [Some(Leave::Fin), Some(Leave::Reset), None] {
                for _ in 0..PER_KIND {
                    let mut stream = server.tcp();
                    stream.write_all(&half_a_request_head()).unwrap();
                    match leave {
                        Some(leave) => leave.now(stream),
                        None => stuck.push(stream),
                    }
                }
            }
            for mut stream in stuck {
                let mut rest = Vec::new();
                let end = stream.read_to_end(&mut rest);
                assert!(
                    matches!(end, Ok(0)),
                    "{driver}: a stuck client is dropped, with no response: {end:?} {rest:?}"
                );
            }
        });
        let per_kind = ((1 + MEASURED_ROUNDS) * PER_KIND) as u64;
        server.wait_for_metric_eq("ringcast_handshake_aborted_total", 2 * per_kind);
        server.wait_for_metric_eq("ringcast_handshake_timeouts_total", per_kind);
        assert_eq!(server.json_events("handshake_timeout").len() as u64, per_kind);
        assert_eq!(server.metric("ringcast_upgrades_total"), 0, "{driver}");
        assert_still_serves(&server);
    }
}

/// A client with a 4 KiB receive buffer that writes `request` and then reads nothing.
fn tiny_window(addr: SocketAddr, request: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream
}

/// 50 clients per round send a whole message and the first 32 KiB fragment of another, then
/// shut their write side: each still gets its echo, then the server closes. 1.6 MiB held per
/// round.
#[test]
fn a_client_that_shuts_its_write_side_gets_what_was_queued_then_is_closed() {
    const CLIENTS: usize = 50;
    for driver in DRIVERS {
        let server = server(driver, &[]);
        in_rounds(&server, &format!("{driver} write side shut"), 0, |round| {
            let mut clients: Vec<RawWs> = (0..CLIENTS).map(|_| RawWs::connect(&server, "/", &[])).collect();
            for (i, ws) in clients.iter_mut().enumerate() {
                let mut bytes = client_frame(0x81, format!("bye {round} {i}").as_bytes());
                bytes.extend(client_frame(0x02, &vec![7u8; HELD]));
                ws.send(&bytes);
                ws.stream.shutdown(Shutdown::Write).unwrap();
            }
            for (i, ws) in clients.iter_mut().enumerate() {
                let echo = ws.read_frame().expect("the echo queued before the FIN");
                assert_eq!(
                    (echo.opcode, String::from_utf8(echo.payload).unwrap()),
                    (1, format!("bye {round} {i}"))
                );
                ws.expect_eof();
            }
        });
        let clients = ((1 + MEASURED_ROUNDS) * CLIENTS) as u64;
        assert_eq!(
            server.metric("ringcast_connections_closed_total{by=\"error\"}"),
            clients
        );
        assert_eq!(closes_with_error(&server, "eof_without_close") as u64, clients);
        assert_eq!(server.metric("ringcast_messages_sent_total"), clients, "{driver}");
        assert_still_serves(&server);
    }
}

/// A tungstenite client that answers pings (tungstenite does, whenever it reads) until told to
/// stop, then closes; returns whether it was never closed by the server.
fn ping_answerer(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let mut client = Subscriber::connect(addr, "/");
        client
            .ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match client.ws.read() {
                Ok(Message::Ping(_)) => {}
                Ok(other) => panic!("unexpected {other:?}"),
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return false,
            }
        }
        client
            .ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.ws.send(Message::text("alive")).unwrap();
        let echoed = client.next_message() == Message::text("alive");
        client.ws.close(None).unwrap();
        while client.ws.read().is_ok() {}
        echoed
    })
}

/// 50 clients per round hold a 32 KiB unfinished message and then go silent (they neither read
/// nor answer pings): each is pinged, then closed for the heartbeat. One client that answers
/// pings stays open through every round. 1.6 MiB held per round.
#[test]
fn clients_that_stop_answering_pings_are_closed_for_the_heartbeat() {
    const SILENT: usize = 50;
    for driver in DRIVERS {
        let server = server(
            driver,
            &[
                "--ping-interval",
                "300ms",
                "--pong-timeout",
                "600ms",
                "--timer-tick",
                "50ms",
            ],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let answerer = ping_answerer(server.addr, stop.clone());
        server.wait_for_metric_eq("ringcast_connections_open", 1);
        in_rounds(&server, &format!("{driver} heartbeat"), 1, |_| {
            let mut silent: Vec<RawWs> = (0..SILENT).map(|_| RawWs::connect(&server, "/", &[])).collect();
            silent.iter_mut().for_each(hold_unfinished_message);
            for ws in &mut silent {
                // Pings, then close 1001 and the end of the connection; no data frame.
                let mut frame = ws.read_frame().expect("a ping");
                while frame.opcode == 0x09 {
                    frame = ws.read_frame().expect("a ping or the close");
                }
                assert_eq!(
                    (frame.close_code(), &frame.payload[2..]),
                    (Some(1001), &b"heartbeat timeout"[..]),
                    "{driver}"
                );
                ws.expect_eof();
            }
        });
        stop.store(true, Ordering::Relaxed);
        assert!(
            answerer.join().unwrap(),
            "{driver}: a client that answers pings stays open"
        );
        settle(&server, 0, None);
        let silent = ((1 + MEASURED_ROUNDS) * SILENT) as u64;
        assert_eq!(server.metric("ringcast_heartbeat_timeouts_total"), silent, "{driver}");
        assert_eq!(
            server.metric("ringcast_connections_closed_total{by=\"heartbeat\"}"),
            silent
        );
        assert_eq!(closes_with_error(&server, "heartbeat_timeout") as u64, silent);
        assert!(server.metric("ringcast_heartbeat_pings_total") >= silent);
    }
}

/// A subscriber of `topic` that never reads, with a 4 KiB receive buffer.
fn stalled_subscriber(server: &ServerProcess, topic: &str) -> TcpStream {
    tiny_window(server.addr, &upgrade_request(&format!("/ws?topics={topic}")))
}

/// A thread reading the next `count` messages of `topic`; returns whether all came, in order.
fn reader(addr: SocketAddr, topic: &str, count: u64) -> std::thread::JoinHandle<bool> {
    let mut subscriber = Subscriber::connect(addr, &format!("/ws?topics={topic}"));
    let (_, last) = subscriber.expect_subscribed(topic);
    std::thread::spawn(move || {
        let all = (last + 1..=last + count).all(|seq| subscriber.expect_message().2 == seq);
        subscriber.ws.close(None).unwrap();
        while subscriber.ws.read().is_ok() {}
        all
    })
}

/// Publishes `count` text messages of `size` bytes to `topic` over HTTP.
fn flood(addr: SocketAddr, topic: &str, count: u64, size: usize) {
    let data = "x".repeat(size);
    for _ in 0..count {
        let (status, body) = post(addr, &format!("/publish/{topic}"), "text/plain", data.as_bytes());
        assert_eq!(status, 200, "{body}");
    }
}

/// Per round, 8 subscribers stop reading while 200 publishes of 16 KiB flow to them and to 2
/// that read: under `close`, each stalled one is closed as a slow consumer; under `drop`, it
/// loses its oldest messages, then is killed. The readers get everything. Each stalled
/// subscriber makes the server hold up to its 256 KiB queue cap: 2 MiB per round.
#[test]
fn subscribers_that_stop_reading_are_closed_or_shed_and_the_others_get_everything() {
    const STALLED: usize = 8;
    const PUBLISHES: u64 = 200;
    for driver in DRIVERS {
        for policy in ["close", "drop"] {
            let server = server(
                driver,
                &[
                    "--mode",
                    "push",
                    "--cores",
                    "2",
                    "--max-queued-bytes",
                    "262144",
                    "--push-slow-consumer",
                    policy,
                    "--close-timeout",
                    "500ms",
                ],
            );
            let label = format!("{driver} slow subscribers ({policy})");
            in_rounds(&server, &label, 0, |round| {
                // One topic: its history (100 messages) is full after the warm-up.
                let stalled: Vec<TcpStream> = (0..STALLED).map(|_| stalled_subscriber(&server, "flood")).collect();
                let readers: Vec<_> = (0..2).map(|_| reader(server.addr, "flood", PUBLISHES)).collect();
                server.wait_for_metric_eq("ringcast_connections_open", (STALLED + 2) as u64);
                flood(server.addr, "flood", PUBLISHES, 16 * 1024);
                for r in readers {
                    assert!(r.join().unwrap(), "{label}: a reader got every message in order");
                }
                let closed = if policy == "close" { (round + 1) * STALLED } else { 0 };
                server.wait_for_metric("ringcast_slow_consumers_total", closed as u64);
                if policy == "close" {
                    server.wait_for_metric_eq("ringcast_connections_open", 0);
                }
                stalled.into_iter().for_each(|s| Leave::Reset.now(s));
            });
            let rounds = (1 + MEASURED_ROUNDS) as u64;
            let (slow, shed) = (
                server.metric("ringcast_slow_consumers_total"),
                server.metric("ringcast_messages_shed_total"),
            );
            match policy {
                "close" => {
                    assert_eq!(slow, rounds * STALLED as u64, "{label}");
                    assert_eq!(closes_with_error(&server, "slow_consumer") as u64, slow);
                }
                _ => {
                    assert_eq!(slow, 0, "{label}: nobody closed");
                    assert!(
                        shed >= rounds * STALLED as u64,
                        "{label}: every stalled one shed ({shed})"
                    );
                    assert!(server.metric("ringcast_push_gap_notices_total") >= rounds * STALLED as u64);
                }
            }
        }
    }
}

/// What one echo client saw before the server closed it.
struct EchoRun {
    local: SocketAddr,
    echoed: u64,
    close_code: Option<u16>,
}

/// Sends numbered text messages in batches of 8 and checks that each echo is the next number,
/// until the server's close frame (bounded: 60 s); then completes the close handshake.
fn echo_until_closed(addr: SocketAddr, echoed_total: Arc<AtomicU64>) -> EchoRun {
    let mut client = Subscriber::connect(addr, "/");
    let local = client.ws.get_ref().local_addr().unwrap();
    let (mut sent, mut echoed, mut close_code) = (0u64, 0u64, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    'run: while Instant::now() < deadline {
        for _ in 0..8 {
            client.ws.write(Message::text(sent.to_string())).unwrap();
            sent += 1;
        }
        client.ws.flush().unwrap();
        while echoed < sent {
            match client.ws.read().expect("a frame before the close") {
                Message::Text(text) => {
                    assert_eq!(text.as_str(), echoed.to_string(), "echoes in order, none lost");
                    echoed += 1;
                    echoed_total.fetch_add(1, Ordering::Relaxed);
                }
                Message::Close(frame) => {
                    close_code = frame.map(|f| u16::from(f.code));
                    break 'run;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // Our reply to the close goes out on the next read; then the server closes TCP.
    while client.ws.read().is_ok() {}
    EchoRun {
        local,
        echoed,
        close_code,
    }
}

/// Eight tungstenite clients echo in batches on two cores, and one more client floods without
/// reading; SIGTERM: every echo client gets close 1001 after every echo the server queued for
/// it, the flooder is given up on when the shutdown timeout ends (the `shutdown_timeout` line
/// counts it, and its close event says so), and the server exits 0. The
/// server's close events say how many messages each connection got and sent: an echo client
/// saw exactly the messages the server sent it, and the server sent an echo for every message
/// it took in.
#[test]
fn sigterm_under_load_closes_everyone_with_1001_and_loses_nothing_queued() {
    const CLIENTS: usize = 8;
    for driver in DRIVERS {
        let mut server = server(driver, &["--cores", "2", "--shutdown-timeout", "1s"]);
        let flooder = flood_until_blocked(server.addr);
        let echoed = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (addr, echoed) = (server.addr, echoed.clone());
                std::thread::spawn(move || echo_until_closed(addr, echoed))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while echoed.load(Ordering::Relaxed) < (CLIENTS * 500) as u64 {
            assert!(Instant::now() < deadline, "{driver}: the echo load never got going");
            std::thread::sleep(Duration::from_millis(10));
        }
        server.signal(libc::SIGTERM);
        let runs: Vec<EchoRun> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        let status = server.wait_exit(Duration::from_secs(20)).expect("the server exits");
        assert_eq!(status.code(), Some(0), "{driver}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.json_events("close").len() < CLIENTS + 1 || server.json_events("stopped").is_empty() {
            assert!(
                Instant::now() < deadline,
                "{driver}: a close event per connection: {:#?}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (opens, closes) = (server.json_events("open"), server.json_events("close"));
        assert_eq!((opens.len(), closes.len()), (CLIENTS + 1, CLIENTS + 1), "{driver}");
        let abandoned: u64 = server
            .json_events("shutdown_timeout")
            .iter()
            .map(|e| e["open"].as_u64().unwrap())
            .sum();
        assert_eq!(
            abandoned, 1,
            "{driver}: only the flooder is left at the shutdown timeout"
        );
        let given_up: Vec<_> = closes.iter().filter(|c| c["error"] == "shutdown_timeout").collect();
        assert_eq!(given_up.len(), 1, "{driver}: the flooder's close event");
        assert_eq!(given_up[0]["closed_by"], "shutdown", "{}", given_up[0]);
        drop(flooder);
        for run in &runs {
            assert_eq!(run.close_code, Some(1001), "{driver}");
            let peer = run.local.to_string();
            let conn = &opens
                .iter()
                .find(|e| e["peer"] == peer.as_str())
                .expect("its open event")["conn"];
            let close = closes.iter().find(|e| &e["conn"] == conn).expect("its close event");
            assert_eq!(close["closed_by"], "shutdown", "{close}");
            assert_eq!(close["code_sent"], 1001, "{close}");
            assert_eq!(
                close["messages_out"], run.echoed,
                "{driver}: the client got all that was queued: {close}"
            );
            assert_eq!(
                close["messages_in"], close["messages_out"],
                "{driver}: an echo for each: {close}"
            );
        }
        let total: u64 = runs.iter().map(|r| r.echoed).sum();
        eprintln!("{driver}: {total} echoes before and during the shutdown");
    }
}

/// Publishes `p0`, `p1`, ... to `topic` over HTTP, one after the other, until `stop` (bounded:
/// 100,000 or 120 s); counts them in `done`; returns each one's data, status and reply.
fn publisher(
    addr: SocketAddr,
    topic: &'static str,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Vec<(String, u16, String)>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut replies = Vec::new();
        while !stop.load(Ordering::Relaxed) && replies.len() < 100_000 && Instant::now() < deadline {
            let data = format!("p{}", replies.len());
            let (status, body) = post(addr, &format!("/publish/{topic}"), "text/plain", data.as_bytes());
            replies.push((data, status, body));
            done.fetch_add(1, Ordering::Relaxed);
        }
        replies
    })
}

/// A subscriber of `topic` in a thread: reads messages until one whose data is `end`; returns
/// (epoch, seq, data) of every one before it.
fn collector(addr: SocketAddr, topic: &str) -> std::thread::JoinHandle<Vec<(String, u64, String)>> {
    let mut subscriber = Subscriber::connect(addr, &format!("/ws?topics={topic}"));
    subscriber.expect_subscribed(topic);
    std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let (_, epoch, seq, data) = subscriber.expect_message();
            if data == "end" {
                break;
            }
            got.push((epoch, seq, data));
        }
        subscriber.ws.close(None).unwrap();
        while subscriber.ws.read().is_ok() {}
        got
    })
}

/// Waits (bounded) until `done` has grown by `more`.
fn wait_for_more(done: &AtomicU64, more: u64) {
    let target = done.load(Ordering::Relaxed) + more;
    let deadline = Instant::now() + Duration::from_secs(30);
    while done.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "publishes stopped flowing");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How Redis goes away in [`redis_lost_under_load`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outage {
    /// SIGKILL, then a new `redis-server` on the same port: everything Redis held is gone.
    Killed,
    /// SIGSTOP, then SIGCONT: Redis hangs with the node's connections open, and comes back with
    /// everything it held (as after a network partition).
    Hung,
}

/// Push mode on Redis, four subscribers, publishes flowing over HTTP one after another. Each
/// round takes Redis away (`outage`), checks that `/readyz` says degraded and that publishes go
/// on, sequenced locally and delivered, brings Redis back and checks that the node reconnects
/// and publishes go through Redis again. At the end every subscriber got every publish
/// acknowledged with 200 once, in order, with the acknowledged epoch and sequence, and nothing
/// else, except the publish in flight when Redis hung: Redis runs it when it comes back, so
/// it reaches subscribers twice, once as sequenced locally (its acknowledgement) and once as
/// Redis sequenced it. Then they leave and no connection is open.
///
/// "Once" includes the publish Redis acknowledged just before it went away: Redis writes the
/// answer to the publisher before the message to the channel's subscribers, so a kill or a
/// stop between the two leaves the node an acknowledged publish that the channel never
/// brings, and the node delivers it itself.
fn redis_lost_under_load(outage: Outage) {
    const SUBSCRIBERS: usize = 4;
    for driver in DRIVERS {
        let mut redis = Some(RedisServer::start());
        let url = redis.as_ref().unwrap().url();
        let server = server(driver, &["--mode", "push", "--cores", "2", "--redis", &url]);
        wait_ready(&server, "redis: connected");
        let collectors: Vec<_> = (0..SUBSCRIBERS).map(|_| collector(server.addr, "live")).collect();
        let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let publisher = publisher(server.addr, "live", stop.clone(), done.clone());
        let label = format!("{driver} redis {outage:?}");
        in_rounds(&server, &label, SUBSCRIBERS as u64, |_| {
            wait_for_more(&done, 20);
            let port = match outage {
                Outage::Killed => Some(redis.take().unwrap().stop()),
                Outage::Hung => {
                    redis.as_ref().unwrap().pause(true);
                    None
                }
            };
            let degraded = wait_ready(&server, "degraded: redis: unreachable");
            assert!(degraded.contains("local delivery only"), "{degraded}");
            assert_eq!(server.metric("ringcast_redis_connected"), 0);
            let fallbacks = server.metric("ringcast_redis_local_fallbacks_total");
            wait_for_more(&done, 21);
            assert!(
                server.metric("ringcast_redis_local_fallbacks_total") >= fallbacks + 20,
                "{label}: publishes go on, sequenced locally"
            );
            match port {
                Some(port) => redis = Some(RedisServer::start_on(port)),
                None => redis.as_ref().unwrap().pause(false),
            }
            wait_ready(&server, "redis: connected");
            assert_eq!(server.metric("ringcast_redis_connected"), 1);
            let fallbacks = server.metric("ringcast_redis_local_fallbacks_total");
            wait_for_more(&done, 21);
            assert_eq!(
                server.metric("ringcast_redis_local_fallbacks_total"),
                fallbacks,
                "{label}: publishes go through Redis again"
            );
        });
        stop.store(true, Ordering::Relaxed);
        let replies = publisher.join().unwrap();
        let end = common::push::publish(server.addr, "live", "end");
        assert!(end["seq"].as_u64().is_some(), "{end}");
        let acked: Vec<(String, u64, String)> = replies
            .iter()
            .map(|(data, status, body)| {
                assert_eq!(*status, 200, "{label}: {data}: {body}");
                let reply: Value = serde_json::from_str(body).unwrap();
                (
                    reply["epoch"].as_str().unwrap().to_owned(),
                    reply["seq"].as_u64().unwrap(),
                    data.clone(),
                )
            })
            .collect();
        let epochs: std::collections::BTreeSet<&str> = acked.iter().map(|a| a.0.as_str()).collect();
        let rounds = 1 + MEASURED_ROUNDS;
        // Each outage starts a local epoch; each Redis that comes back empty starts a new one.
        let expected_epochs = if outage == Outage::Killed {
            1 + 2 * rounds
        } else {
            1 + rounds
        };
        assert_eq!(epochs.len(), expected_epochs, "{label}");
        let in_flight = if outage == Outage::Hung { rounds } else { 0 };
        for c in collectors {
            let (once, extra): (Vec<_>, Vec<_>) = c.join().unwrap().into_iter().partition(|m| acked.contains(m));
            let first_difference = once.iter().zip(&acked).position(|(got, ack)| got != ack);
            assert!(
                once == acked,
                "{label}: a subscriber got each acknowledged publish once, in order; got {} of {}, \
                 first difference at {first_difference:?}: got {:?}, acknowledged {:?}",
                once.len(),
                acked.len(),
                first_difference.and_then(|i| once.get(i)),
                first_difference.and_then(|i| acked.get(i)),
            );
            let again: std::collections::BTreeSet<&str> = extra.iter().map(|m| m.2.as_str()).collect();
            assert!(
                again.len() == extra.len()
                    && extra.len() <= in_flight
                    && again.iter().all(|d| acked.iter().any(|a| a.2 == *d)),
                "{label}: besides those, only the publishes in flight when Redis hung, once more: {extra:?}"
            );
        }
        settle(&server, 0, None);
        assert_eq!(server.metric("ringcast_redis_connects_total"), 1 + rounds as u64);
        assert_eq!(server.json_events("redis_down").len(), rounds, "{label}");
        eprintln!("{label}: {} publishes in {} epochs", acked.len(), epochs.len());
    }
}

#[test]
fn losing_redis_under_load_keeps_local_delivery_and_recovers() {
    redis_lost_under_load(Outage::Killed);
}

#[test]
fn a_hung_redis_under_load_keeps_local_delivery_and_recovers_without_redelivering() {
    redis_lost_under_load(Outage::Hung);
}

/// One churned connection: upgrade, one echo, a clean close handshake (the client closes).
fn churn_once(addr: SocketAddr, i: usize) {
    let mut client = Subscriber::connect(addr, "/");
    let text = format!("churn {i}");
    client.ws.send(Message::text(text.clone())).unwrap();
    assert_eq!(client.next_message(), Message::text(text));
    client.ws.close(None).unwrap();
    while client.ws.read().is_ok() {}
}

/// The soak in small (`benches/soak.sh` runs 500,000): 10,000 connections churned through one
/// server in rounds of 2,000 (4 threads), each upgraded, echoed once and closed cleanly. Every
/// one is counted as upgraded and closed by the client, none is left open, and resident memory
/// after the last round is within `RSS_SLACK` of its level after the first: 512 bytes left
/// behind per connection would cross it.
#[test]
fn churned_connections_leave_nothing_behind() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    for driver in DRIVERS {
        let server = server(driver, &[]);
        in_rounds(&server, &format!("{driver} churn"), 0, |_| {
            let addr = server.addr;
            let threads: Vec<_> = (0..THREADS)
                .map(|t| std::thread::spawn(move || (0..PER_THREAD).for_each(|i| churn_once(addr, t * PER_THREAD + i))))
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
        });
        let churned = ((1 + MEASURED_ROUNDS) * THREADS * PER_THREAD) as u64;
        assert_eq!(server.metric("ringcast_upgrades_total"), churned, "{driver}");
        server.wait_for_metric_eq("ringcast_connections_closed_total{by=\"client\"}", churned);
        assert_eq!(server.metric("ringcast_messages_received_total"), churned);
    }
}

/// The state of the server's end of the TCP connection `server` <- `client`, from
/// `/proc/net/tcp` (`01` ESTABLISHED, ...), or `None` once it is gone.
fn server_socket_state(server: SocketAddr, client: SocketAddr) -> Option<String> {
    let hex = |a: SocketAddr| format!("0100007F:{:04X}", a.port());
    let (local, remote) = (hex(server), hex(client));
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[1] == local && fields[2] == remote).then(|| fields[3].to_owned())
        })
}

/// A client that asks for a plain-HTTP response larger than the socket buffers take (16 MiB:
/// an application route; the built-in ones are small enough for loopback's buffers) and then
/// reads nothing must not hold its connection forever: the server gives up on the write after
/// the handshake timeout (300 ms here), counts a handshake timeout and closes its end.
/// In-process, as no route of the binary answers that much.
#[test]
fn a_client_that_never_reads_its_http_response_is_dropped() {
    use ringcast::config::{Config, CoreSelection, IoMode};
    for io in [IoMode::Uring, IoMode::Epoll] {
        let mut config = Config::embedded();
        config.listen = vec!["127.0.0.1:0".parse().unwrap()];
        config.cores = CoreSelection::Count(1);
        config.io = io;
        config.handshake_timeout = Duration::from_millis(300);
        config.close_timeout = Duration::from_millis(300);
        config.log_level = "off".into();
        let big = vec![b'x'; 16 << 20];
        let server = ringcast::Server::new(config)
            .route("/big", move |_| ringcast::api::Response {
                status: 200,
                content_type: "text/plain".into(),
                body: big.clone(),
            })
            .start(|_| ringcast::EchoHandler)
            .unwrap();
        let addr = server.local_addrs()[0];
        let stuck = tiny_window(addr, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
        let client = stuck.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match server_socket_state(addr, client) {
                Some(state) if state == "01" => {
                    assert!(
                        Instant::now() < deadline,
                        "{io:?}: the server still holds a connection whose client reads nothing"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
        assert_eq!(
            server.registry().total(ringcast::metrics::Counter::HandshakeTimeouts),
            1,
            "{io:?}: counted as a handshake timeout"
        );
        drop(stuck);
    }
}
