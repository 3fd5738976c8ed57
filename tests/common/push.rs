//! Push-mode test clients: tungstenite subscribers and HTTP publishers.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use tungstenite::{Message, WebSocket};

use super::http_bytes_at;

/// A subscriber: a tungstenite client that reads JSON notices and messages.
pub struct Subscriber {
    pub ws: WebSocket<TcpStream>,
}

impl Subscriber {
    /// Connects to `ws://addr{path}` (e.g. `/ws?topics=a`).
    pub fn connect(addr: SocketAddr, path: &str) -> Subscriber {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("upgrade");
        Subscriber { ws }
    }

    /// The next text frame as JSON (pings are answered by tungstenite).
    pub fn next_json(&mut self) -> Value {
        loop {
            match self.ws.read().expect("read a frame") {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON from the server"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, whatever it is.
    pub fn next_message(&mut self) -> Message {
        loop {
            match self.ws.read().expect("read a frame") {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return other,
            }
        }
    }

    /// Reads the `subscribed` notice for `topic`; returns its epoch and seq.
    pub fn expect_subscribed(&mut self, topic: &str) -> (String, u64) {
        let notice = self.next_json();
        assert_eq!(notice["type"], "subscribed", "{notice}");
        assert_eq!(notice["topic"], topic, "{notice}");
        (
            notice["epoch"].as_str().unwrap().to_owned(),
            notice["seq"].as_u64().unwrap(),
        )
    }

    /// Reads the next published message: (topic, epoch, seq, data).
    pub fn expect_message(&mut self) -> (String, String, u64, String) {
        let message = self.next_json();
        assert_eq!(message["type"], "message", "{message}");
        (
            message["topic"].as_str().unwrap().to_owned(),
            message["epoch"].as_str().unwrap().to_owned(),
            message["seq"].as_u64().unwrap(),
            message["data"].as_str().unwrap().to_owned(),
        )
    }

    /// Sends a command.
    pub fn command(&mut self, command: Value) {
        self.ws.send(Message::text(command.to_string())).unwrap();
    }
}

/// `POST {path}` with `body` and `content_type`; returns the status and the body.
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    split_response(&http_bytes_at(addr, &request))
}

/// Publishes text `data` to `topic`; returns the reply's JSON (status 200 expected).
pub fn publish(addr: SocketAddr, topic: &str, data: &str) -> Value {
    let (status, body) = post(addr, &format!("/publish/{topic}"), "text/plain", data.as_bytes());
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The status code and body of a raw HTTP response.
pub fn split_response(response: &str) -> (u16, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}
