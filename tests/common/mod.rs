//! Test support: run the real `ringcast` binary, speak raw bytes to it, read its metrics.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Both io drivers; behaviour tests run under each.
pub const DRIVERS: [&str; 2] = ["uring", "epoll"];

/// A `ringcast` process listening on a free loopback port; killed on drop.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// The server's stderr while nobody reads it (see `start_with_stderr_unread`).
    unread_stderr: Mutex<Option<ChildStderr>>,
    /// The rest of its stdout (kept open: the server prints more lines after the first).
    stdout: Mutex<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Starts the binary with `--listen 127.0.0.1:0 --io <driver>` plus `args` (one core unless
    /// `args` name `--cores`), collecting its log lines.
    pub fn start(driver: &str, args: &[&str]) -> ServerProcess {
        let server = ServerProcess::start_with_stderr_unread(driver, args);
        server.read_stderr();
        server
    }

    /// Like `start`, but nothing reads the server's stderr (a pipe) until `read_stderr`.
    pub fn start_with_stderr_unread(driver: &str, args: &[&str]) -> ServerProcess {
        let cores: &[&str] = if args.contains(&"--cores") {
            &[]
        } else {
            &["--cores", "1"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .args(["--listen", "127.0.0.1:0", "--io", driver, "--log-format", "json"])
            .args(cores)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringcast");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read listening line");
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no listening line, got {line:?}"))
            .parse()
            .unwrap();
        assert!(
            line.contains(if driver == "uring" { "(io_uring)" } else { "(epoll)" }),
            "{line}"
        );
        let unread_stderr = Mutex::new(child.stderr.take());
        ServerProcess {
            child,
            addr,
            logs: Arc::new(Mutex::new(Vec::new())),
            unread_stderr,
            stdout: Mutex::new(stdout),
        }
    }

    /// Starts collecting the server's log lines (once; later calls do nothing).
    pub fn read_stderr(&self) {
        let Some(stderr) = self.unread_stderr.lock().unwrap().take() else {
            return;
        };
        let sink = self.logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
    }

    /// The next line the server printed on stdout (after the first listening line).
    pub fn stdout_line(&self) -> String {
        let mut line = String::new();
        self.stdout.lock().unwrap().read_line(&mut line).expect("read stdout");
        line
    }

    /// The address in the server's next stdout line, `{prefix}ADDR{suffix}` (e.g. `metrics on
    /// http://` and `/metrics`).
    pub fn printed_addr(&self, prefix: &str, suffix: &str) -> SocketAddr {
        let line = self.stdout_line();
        line.trim()
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .unwrap_or_else(|| panic!("expected {prefix}ADDR{suffix}, got {line:?}"))
            .parse()
            .unwrap()
    }

    /// `ws://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// A plain TCP connection with a 10 s read timeout.
    pub fn tcp(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Sends a raw HTTP request and returns the whole response (the server closes after it).
    pub fn http(&self, request: &str) -> String {
        http_at(self.addr, request)
    }

    /// The value of one metric line, e.g. `ringcast_protocol_errors_total{code="1002"}`.
    pub fn metric(&self, series: &str) -> u64 {
        metric_at(self.addr, series)
    }

    /// Log lines (JSON) printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The JSON log events named `event` printed so far.
    pub fn json_events(&self, event: &str) -> Vec<serde_json::Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// Waits (bounded) until some log line satisfies `pred`.
    pub fn wait_for_log(&self, pred: impl Fn(&str) -> bool) -> String {
        for _ in 0..200 {
            if let Some(line) = self.logs().into_iter().find(|l| pred(l)) {
                return line;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no matching log line; logs: {:#?}", self.logs());
    }
}

impl ServerProcess {
    /// Sends a signal (e.g. `libc::SIGTERM`) to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits (bounded) until `series` reaches `value`.
    pub fn wait_for_metric(&self, series: &str, value: u64) {
        for _ in 0..400 {
            if self.metric(series) >= value {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{series} never reached {value} (now {})", self.metric(series));
    }

    /// Waits (bounded) until `series` is exactly `value` (e.g. open connections back to 0).
    pub fn wait_for_metric_eq(&self, series: &str, value: u64) {
        wait_for_metric_eq_at(self.addr, series, value);
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory (`VmRSS` in `/proc/PID/status`), in bytes.
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"));
        kib * 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a raw HTTP request to any server at `addr` (in-process ones too) and returns the whole
/// response (the server closes after it; reads give up after 10 s).
pub fn http_at(addr: SocketAddr, request: &str) -> String {
    http_bytes_at(addr, request.as_bytes())
}

/// [`http_at`] for a request that is not text (a binary body).
pub fn http_bytes_at(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Waits (bounded) until `series` in the `/metrics` at `addr` is exactly `value`.
pub fn wait_for_metric_eq_at(addr: SocketAddr, series: &str, value: u64) {
    for _ in 0..400 {
        if metric_at(addr, series) == value {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{series} never came to {value} (now {})", metric_at(addr, series));
}

/// The value of one metric line scraped from `/metrics` at `addr` (0 when absent).
pub fn metric_at(addr: SocketAddr, series: &str) -> u64 {
    let body = http_at(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse::<f64>().ok()))
        .map(|v| v as u64)
        .unwrap_or(0)
}

/// A valid upgrade request for `path`.
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A client frame (masked) written by hand, so tests can also write broken ones.
pub fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first_byte];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A raw WebSocket connection after a successful upgrade.
pub struct RawWs {
    pub stream: TcpStream,
    buffered: Vec<u8>,
}

/// A frame as the server sent it (servers never mask).
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawWs {
    /// Upgrades a fresh connection at `path`; `extra` bytes go in the same write as the request.
    pub fn connect(server: &ServerProcess, path: &str, extra: &[u8]) -> RawWs {
        RawWs::upgrade(server.tcp(), path, extra)
    }

    /// Upgrades an already connected stream.
    pub fn upgrade(mut stream: TcpStream, path: &str, extra: &[u8]) -> RawWs {
        let mut request = upgrade_request(path).into_bytes();
        request.extend_from_slice(extra);
        stream.write_all(&request).unwrap();
        let mut buffered = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "closed during handshake: {:?}",
                String::from_utf8_lossy(&buffered)
            );
            buffered.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffered[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        buffered.drain(..head_end);
        RawWs { stream, buffered }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self, want: usize) -> bool {
        let mut chunk = [0u8; 65536];
        while self.buffered.len() < want {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buffered.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    /// Reads the next frame, or `None` when the server closed TCP.
    pub fn read_frame(&mut self) -> Option<ServerFrame> {
        if !self.fill(2) {
            return None;
        }
        let (b0, b1) = (self.buffered[0], self.buffered[1]);
        assert_eq!(b1 & 0x80, 0, "server frames must not be masked");
        let (len, header) = match b1 & 0x7f {
            126 => {
                self.fill(4);
                (u16::from_be_bytes([self.buffered[2], self.buffered[3]]) as usize, 4)
            }
            127 => {
                self.fill(10);
                (
                    u64::from_be_bytes(self.buffered[2..10].try_into().unwrap()) as usize,
                    10,
                )
            }
            n => (n as usize, 2),
        };
        assert!(self.fill(header + len), "truncated frame");
        let payload = self.buffered[header..header + len].to_vec();
        self.buffered.drain(..header + len);
        Some(ServerFrame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        })
    }

    /// Asserts the server sends nothing more and closes TCP (EOF within 5 s, not a timeout).
    pub fn expect_eof(&mut self) {
        assert!(self.buffered.is_empty(), "bytes before EOF: {:?}", self.buffered);
        self.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let end = self.stream.read(&mut [0u8; 256]);
        assert!(matches!(end, Ok(0)), "expected EOF, got {end:?}");
    }

    /// Asserts the server's next frame is a close with `code`, then that it closes TCP.
    pub fn expect_close(&mut self, code: u16) {
        let frame = self.read_frame().expect("a close frame");
        assert_eq!(frame.close_code(), Some(code), "frame {frame:?}");
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest);
        assert!(rest.is_empty(), "bytes after the close frame: {rest:?}");
    }
}

pub mod browser;
pub mod push;
pub mod redis;
