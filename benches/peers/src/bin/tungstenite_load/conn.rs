//! One connection: connect and upgrade, then the closed echo loop with payload checks, then
//! the closing handshake. Every wait is bounded.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Read buffer per connection. tungstenite zero-fills the free part of its read buffer, up to
/// this size, before every read, so its 128 KiB default costs a 128 KiB memset per read (half the
/// client's CPU in ping-pong); 4 KiB is what its docs suggest for many connections, and what the
/// tokio-tungstenite peer server uses.
const READ_BUFFER_SIZE: usize = 4 * 1024;
/// TCP connect plus HTTP upgrade must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After the window, echoes still outstanding must arrive within this.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The closing handshake must finish within this.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// An upgraded client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Counters shared by every connection of the process (one thread, so a `RefCell`).
pub struct Totals {
    /// Echoes of messages sent inside the window, with the right payload.
    pub messages: u64,
    /// Echoes whose payload or type differed from the message sent.
    pub mismatches: u64,
    /// Connection failures by reason.
    pub errors: BTreeMap<&'static str, u64>,
    /// Round-trip latency of the window's messages, microseconds.
    pub latency_us: Histogram<u64>,
}

impl Totals {
    /// Empty counters; latencies up to one minute at three significant digits.
    pub fn new() -> Self {
        Self {
            messages: 0,
            mismatches: 0,
            errors: BTreeMap::new(),
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
        }
    }

    /// Counts one failure of `reason`.
    pub fn error(&mut self, reason: &'static str) {
        *self.errors.entry(reason).or_default() += 1;
    }
}

/// The measured window, shared by every connection.
#[derive(Clone, Copy)]
pub struct Window {
    /// Messages sent from here on count.
    pub start: Instant,
    /// No message is sent from here on; outstanding echoes are drained.
    pub end: Instant,
}

/// What one connection sends.
#[derive(Clone, Copy)]
pub struct Load {
    /// Messages outstanding.
    pub in_flight: u32,
    /// Payload bytes.
    pub size: usize,
}

/// Connects to `addr` and upgrades to `url` within [`CONNECT_TIMEOUT`], with `TCP_NODELAY` and
/// a [`READ_BUFFER_SIZE`] read buffer.
pub async fn connect(addr: &str, url: &str) -> Result<Ws, &'static str> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|err| io_reason(&err, "connect"))?;
        let _ = stream.set_nodelay(true);
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_SIZE);
        tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .map(|(ws, _response)| ws)
            .map_err(|err| ws_reason(&err, "handshake"))
    };
    timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or(Err("connect_timeout"))
}

/// Runs the echo loop of connection `id` until the window ends, drains, and closes.
pub async fn echo(id: u32, mut ws: Ws, load: Load, window: Window, totals: Rc<RefCell<Totals>>) {
    let mut conn = Conn {
        id,
        load,
        window,
        next_seq: 0,
        outstanding: VecDeque::with_capacity(load.in_flight as usize),
        expected: Vec::with_capacity(load.size),
        totals,
    };
    let result = conn.run(&mut ws).await;
    if let Err(reason) = result {
        conn.totals.borrow_mut().error(reason);
        return;
    }
    let closed = timeout(CLOSE_TIMEOUT, async {
        ws.close(None).await?;
        // The server closes TCP after answering the close; read until then.
        while ws.next().await.transpose()?.is_some() {}
        Ok::<(), WsError>(())
    })
    .await;
    match closed {
        Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {}
        Ok(Err(err)) => conn.totals.borrow_mut().error(ws_reason(&err, "close")),
        Err(_) => conn.totals.borrow_mut().error("close_timeout"),
    }
}

/// State of one connection's echo loop.
struct Conn {
    id: u32,
    load: Load,
    window: Window,
    next_seq: u64,
    /// Sequence number and send time of every message not yet echoed, oldest first.
    outstanding: VecDeque<(u64, Instant)>,
    /// Scratch buffer for the payload an echo must carry.
    expected: Vec<u8>,
    totals: Rc<RefCell<Totals>>,
}

impl Conn {
    /// Sends `in_flight` messages, then answers every echo with a new message until the
    /// window ends; echoes already readable are answered together with one flush.
    async fn run(&mut self, ws: &mut Ws) -> Result<(), &'static str> {
        for _ in 0..self.load.in_flight {
            self.send(ws).await?;
        }
        ws.flush().await.map_err(|err| ws_reason(&err, "write"))?;
        loop {
            let sending = Instant::now() < self.window.end;
            if !sending && self.outstanding.is_empty() {
                return Ok(());
            }
            let deadline = if sending {
                self.window.end
            } else {
                self.window.end + DRAIN_TIMEOUT
            };
            let first = match timeout_at(deadline, ws.next()).await {
                Ok(item) => item,
                Err(_) if sending => continue,
                Err(_) => return Err("response_timeout"),
            };
            let mut replies = self.receive(first)?;
            while let Some(item) = ws.next().now_or_never() {
                replies += self.receive(item)?;
            }
            if Instant::now() < self.window.end {
                for _ in 0..replies {
                    self.send(ws).await?;
                }
                ws.flush().await.map_err(|err| ws_reason(&err, "write"))?;
            }
        }
    }

    /// Queues the next message without flushing.
    async fn send(&mut self, ws: &mut Ws) -> Result<(), &'static str> {
        let seq = self.next_seq;
        self.next_seq += 1;
        payload(self.id, seq, self.load.size, &mut self.expected);
        let text = String::from_utf8(self.expected.clone()).expect("payloads are ASCII");
        self.outstanding.push_back((seq, Instant::now()));
        ws.feed(Message::text(text))
            .await
            .map_err(|err| ws_reason(&err, "write"))
    }

    /// Checks one item read from the server; returns how many new messages it calls for.
    fn receive(&mut self, item: Option<Result<Message, WsError>>) -> Result<u32, &'static str> {
        let message = match item {
            None => return Err("eof"),
            Some(Err(err)) => return Err(ws_reason(&err, "read")),
            Some(Ok(message)) => message,
        };
        let data = match &message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes.as_ref(),
            // Pongs are queued by tungstenite itself and go out with the next flush.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(0),
            Message::Close(_) => return Err("server_close"),
        };
        let Some((seq, sent)) = self.outstanding.pop_front() else {
            return Err("unexpected_message");
        };
        payload(self.id, seq, self.load.size, &mut self.expected);
        let mut totals = self.totals.borrow_mut();
        if !matches!(message, Message::Text(_)) || data != self.expected.as_slice() {
            totals.mismatches += 1;
        } else if sent >= self.window.start && sent < self.window.end {
            totals.messages += 1;
            let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            totals.latency_us.saturating_record(micros.max(1));
        }
        Ok(1)
    }
}

/// Writes the payload of message `seq` of connection `conn` into `out`: `size` lowercase
/// letters drawn from a generator seeded with both, so a reordered, truncated or foreign echo
/// does not match.
pub fn payload(conn: u32, seq: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    let seed = (u64::from(conn) << 40) ^ seq;
    let mut block = 0;
    while out.len() < size {
        let mut bits = splitmix64(seed.wrapping_add(block));
        block += 1;
        for _ in 0..LETTERS_PER_BLOCK.min(size - out.len()) {
            out.push(b'a' + (bits % 26) as u8);
            bits /= 26;
        }
    }
}

/// Letters taken from one 64-bit generator output (26^13 < 2^64).
const LETTERS_PER_BLOCK: usize = 13;

/// The SplitMix64 output function.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Error reason of an I/O failure during `phase`.
fn io_reason(err: &io::Error, phase: &'static str) -> &'static str {
    match (phase, err.kind()) {
        ("connect", io::ErrorKind::ConnectionRefused) => "connect_refused",
        ("connect", _) => "connect_error",
        (_, io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => "reset",
        (_, io::ErrorKind::UnexpectedEof) => "eof",
        ("handshake", _) => "handshake_io",
        _ => "io_error",
    }
}

/// Error reason of a WebSocket failure during `phase` (handshake, read, write, close).
fn ws_reason(err: &WsError, phase: &'static str) -> &'static str {
    match err {
        WsError::Io(err) => io_reason(err, phase),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed",
        WsError::Protocol(_) | WsError::Utf8(_) => "protocol_error",
        WsError::Capacity(_) => "capacity",
        _ if phase == "handshake" => "handshake_failed",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(conn: u32, seq: u64, size: usize) -> String {
        let mut out = Vec::new();
        payload(conn, seq, size, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn payloads_are_letters_that_differ_per_connection_and_message() {
        for size in [1, 13, 20, 1024] {
            let sample = text(3, 42, size);
            assert_eq!(sample.len(), size);
            assert!(sample.bytes().all(|byte| byte.is_ascii_lowercase()));
            assert_eq!(sample, text(3, 42, size));
        }
        assert_ne!(text(3, 42, 20), text(4, 42, 20));
        assert_ne!(text(3, 42, 20), text(3, 43, 20));
        assert!(text(3, 42, 1024).starts_with(&text(3, 42, 20)));
    }

    #[test]
    fn error_reasons() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused, "connect"), "connect_refused");
        let reset = WsError::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(ws_reason(&reset, "read"), "reset");
        assert_eq!(ws_reason(&WsError::ConnectionClosed, "read"), "closed");
    }
}
