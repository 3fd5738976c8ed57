//! A headless Chromium (Debian's `/usr/bin/chromium`) driven through the Chrome DevTools
//! Protocol: navigate, evaluate JavaScript, take screenshots, collect events.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The bound on every wait: chromium starting, a command's reply, a page condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium with one page under CDP; on drop chromium and its helper processes are
/// killed and its temporary profile removed.
pub struct Browser {
    cdp: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: Vec<Value>,
    process: Chromium,
}

/// The chromium process group and its temporary directory (profile and log).
struct Chromium {
    child: Child,
    dir: PathBuf,
}

impl Browser {
    /// Starts chromium on `about:blank` with a fresh profile, a 1280x800 window and viewport and
    /// DevTools on a free loopback port, and attaches to its page.
    pub fn launch() -> Browser {
        let process = Chromium::spawn();
        let port = process.devtools_port();
        let url = page_websocket_url(port, &process);
        let (cdp, _) = tungstenite::connect(&url).unwrap_or_else(|e| panic!("CDP connect to {url}: {e}"));
        let mut browser = Browser {
            cdp,
            next_id: 0,
            events: Vec::new(),
            process,
        };
        // Headless chromium's viewport is smaller than its window; pages get the full 1280x800.
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends one CDP command and returns its `result`, keeping the events that arrive before
    /// the reply; panics on an error reply or after [`WAIT`].
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.cdp
            .send(Message::text(command.to_string()))
            .unwrap_or_else(|e| panic!("CDP send {method}: {e}"));
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self.read_until(deadline, method);
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("CDP {method} failed: {error}");
                }
                return message["result"].clone();
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }

    /// Loads `url` and waits until its document has loaded.
    pub fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(result.get("errorText").is_none(), "navigate to {url}: {result}");
        self.wait_until("document.readyState === 'complete'", &format!("{url} loaded"));
    }

    /// Evaluates a JavaScript expression in the page and returns its value (JSON).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("JavaScript `{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true`; panics naming `what` after [`WAIT`].
    pub fn wait_until(&mut self, expression: &str, what: &str) {
        let deadline = Instant::now() + WAIT;
        while self.eval(expression) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let result = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = result["data"].as_str().expect("screenshot data");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("screenshot is base64")
    }

    /// The events named `method` received so far (after their domain was enabled with
    /// [`Browser::call`]), with those that are still queued on the connection.
    pub fn events(&mut self, method: &str) -> Vec<Value> {
        // A round trip: every event sent before its reply is collected.
        self.call("Runtime.evaluate", json!({"expression": "0"}));
        self.events
            .iter()
            .filter(|e| e["method"] == method)
            .map(|e| e["params"].clone())
            .collect()
    }

    /// The next CDP message, or a panic naming `method` at `deadline`.
    fn read_until(&mut self, deadline: Instant, method: &str) -> Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {WAIT:?} waiting for the reply to {method}"
            );
            if let MaybeTlsStream::Plain(stream) = self.cdp.get_mut() {
                stream.set_read_timeout(Some(left)).unwrap();
            }
            match self.cdp.read() {
                Ok(Message::Text(text)) => {
                    return serde_json::from_str(&text).unwrap_or_else(|e| panic!("CDP sent {text:?}: {e}"));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("CDP connection lost waiting for {method}: {e}; {}", self.process.log()),
            }
        }
    }
}

impl Chromium {
    fn spawn() -> Chromium {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringcast-chromium-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(dir.join("chromium.log")).unwrap();
        let child = Command::new("/usr/bin/chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so drop ends the renderer and helper processes too.
            .process_group(0)
            .spawn()
            .expect("chromium must be installed at /usr/bin/chromium (.ci/run installs it)");
        Chromium { child, dir }
    }

    /// The DevTools port chromium chose, from `DevToolsActivePort` in its profile.
    fn devtools_port(&self) -> u16 {
        let file = self.dir.join("profile/DevToolsActivePort");
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            // Written as "PORT\n/devtools/browser/ID"; complete once the second line is there.
            if let Some((port, _)) = text.split_once('\n') {
                return port
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("DevToolsActivePort: {text:?}"));
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no {} within {WAIT:?}; {}",
                file.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What chromium printed, for panic messages.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("chromium.log")).unwrap_or_default();
        format!("chromium's output:\n{log}")
    }
}

/// The page target's DevTools WebSocket URL, from `/json/list` (bounded wait for the target).
fn page_websocket_url(port: u16, process: &Chromium) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = http_get(port, "/json/list");
        let body = list.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        if let Ok(Value::Array(targets)) = serde_json::from_str::<Value>(body) {
            if let Some(url) = targets
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                return url.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no page target in /json/list within {WAIT:?}: {list:?}; {}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP GET to the DevTools server; the response up to its `Content-Length`, or what came
/// before an error.
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // HTTP/1.1: the DevTools server refuses 1.0.
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut chunk = [0u8; 16384];
    while !response_complete(&response) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// Whether `response` holds its head and the `Content-Length` bytes of body it announces.
fn response_complete(response: &[u8]) -> bool {
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    length.is_some_and(|length| response.len() >= head_end + 4 + length)
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this struct created (its leader is our child).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        remove_dir(&self.dir);
    }
}

/// Removes chromium's directory; helper processes dying a moment later may still write, so
/// it retries briefly.
fn remove_dir(dir: &Path) {
    for _ in 0..20 {
        if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
