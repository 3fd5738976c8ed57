//! The HTTP/1.1 opening handshake (RFC 6455 section 4), parsed with `httparse`.
//!
//! `parse_request` turns bytes into a [`Request`] (or asks for more); `validate_upgrade` applies
//! section 4.2.1 and yields the `101` response or an [`HttpError`] with the status to send.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID that RFC 6455 appends to the client key before hashing.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The most header lines a request may carry before it is answered with 431.
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Headers an upgrade request may carry only once (RFC 9112 section 3.2 for Host, RFC 6455
/// section 11.3 for the key and the version): a second one is a 400, not a choice between
/// two values that a proxy in front may have read differently.
const SINGLE_HEADERS: [&str; 3] = ["Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version"];

/// A request that is answered with an HTTP error and then closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status code (400, 404, 405, 426, 431, 503, ...).
    pub status: u16,
    /// A one-line reason, sent as the response body.
    pub reason: std::borrow::Cow<'static, str>,
    /// Headers the status calls for (`Sec-WebSocket-Version`, `Allow`, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl HttpError {
    /// An error with no extra headers.
    pub fn new(status: u16, reason: impl Into<std::borrow::Cow<'static, str>>) -> HttpError {
        HttpError {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> HttpError {
        self.headers.push((name, value.into()));
        self
    }

    /// The full HTTP response: status line, headers, and the reason as a text body.
    pub fn to_response(&self) -> Vec<u8> {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = format!("{}\n", self.reason);
        http_response(self.status, "text/plain; charset=utf-8", &headers, body.as_bytes())
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}

/// A parsed HTTP request head (owned: it outlives the read buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string after `?`, if any.
    pub query: Option<String>,
    /// The minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Every header in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How many bytes of the buffer the request head used; bytes after it are the client's
    /// first frames (or a body) and must not be lost.
    pub head_len: usize,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The comma-separated tokens of every `name` header, trimmed.
    pub fn header_tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether some `name` header lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Whether the client asks to switch to WebSocket (`Upgrade: websocket`).
    pub fn wants_websocket(&self) -> bool {
        self.has_token("upgrade", "websocket")
    }
}

/// Parses a request head from `buf`. `Ok(None)` means incomplete; a head that is still
/// incomplete at `max_head_len` bytes, or has too many lines, is a 431.
pub fn parse_request(buf: &[u8], max_head_len: usize) -> Result<Option<Request>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= max_head_len => n,
        Ok(httparse::Status::Complete(_)) => return Err(too_large()),
        Ok(httparse::Status::Partial) if buf.len() >= max_head_len => return Err(too_large()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(too_large()),
        Err(_) => return Err(HttpError::new(400, "malformed HTTP request")),
    };
    let target = parsed.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Ok(Some(Request {
        method: parsed.method.unwrap_or_default().to_owned(),
        path,
        query,
        minor_version: parsed.version.unwrap_or(0),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        head_len,
    }))
}

fn too_large() -> HttpError {
    HttpError::new(431, "request header fields too large")
}

/// An accepted upgrade: what goes into the `101` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// The negotiated subprotocol, if any.
    pub protocol: Option<String>,
}

/// Applies RFC 6455 section 4.2.1 to an upgrade request and negotiates a subprotocol.
///
/// The subprotocol is the first of `supported` (server preference) that the client offered;
/// when none matches, the upgrade proceeds without one, as section 4.2.2 allows.
pub fn validate_upgrade(req: &Request, supported: &[String]) -> Result<Upgrade, HttpError> {
    if req.method != "GET" {
        return Err(HttpError::new(405, "WebSocket upgrades must use GET").with_header("Allow", "GET"));
    }
    if req.minor_version < 1 {
        return Err(HttpError::new(400, "WebSocket upgrades need HTTP/1.1 or later"));
    }
    if let Some(name) = SINGLE_HEADERS
        .iter()
        .find(|name| req.header_values(name).nth(1).is_some())
    {
        return Err(HttpError::new(400, format!("more than one {name} header")));
    }
    if req.header("host").is_none() {
        return Err(HttpError::new(400, "missing Host header"));
    }
    if !req.wants_websocket() {
        return Err(HttpError::new(400, "Upgrade header must name websocket"));
    }
    if !req.has_token("connection", "upgrade") {
        return Err(HttpError::new(400, "Connection header must contain upgrade"));
    }
    if req.header("sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13".as_slice()) {
        return Err(
            HttpError::new(426, "unsupported WebSocket version, use 13").with_header("Sec-WebSocket-Version", "13")
        );
    }
    let key = req
        .header("sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .unwrap_or_default();
    match BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(HttpError::new(400, "Sec-WebSocket-Key must be 16 bytes in base64")),
    }
    let protocol = supported
        .iter()
        .find(|p| req.has_token("sec-websocket-protocol", p))
        .cloned();
    Ok(Upgrade {
        accept: accept_key(key),
        protocol,
    })
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID);
    BASE64.encode(sha.finalize())
}

/// The `101 Switching Protocols` response for an accepted upgrade.
pub fn upgrade_response(upgrade: &Upgrade) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(upgrade.accept.as_bytes());
    if let Some(protocol) = &upgrade.protocol {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(protocol.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// A complete `Connection: close` HTTP/1.1 response with a body.
pub fn http_response(status: u16, content_type: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The standard reason phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Test support: the request `head` (complete) parses to.
#[cfg(test)]
pub(crate) fn test_request(head: &str) -> Request {
    parse_request(head.as_bytes(), 8192).unwrap().unwrap()
}

/// Test support: `GET target` with `headers` (each line ending in CRLF) after a Host header.
#[cfg(test)]
pub(crate) fn test_get(target: &str, headers: &str) -> Request {
    test_request(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(text: &str) -> Request {
        test_request(text)
    }

    #[test]
    fn rfc_example_key_gives_rfc_accept() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn valid_upgrade_negotiates_by_server_preference() {
        let req = parse(GOOD);
        assert_eq!(req.path, "/chat");
        assert_eq!(req.query.as_deref(), Some("room=1"));
        let up = validate_upgrade(&req, &["superchat".into(), "chat".into()]).unwrap();
        assert_eq!(up.protocol.as_deref(), Some("superchat"));
        let response = String::from_utf8(upgrade_response(&up)).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 "));
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(response.contains("Sec-WebSocket-Protocol: superchat\r\n"));
        assert!(validate_upgrade(&req, &["mqtt".into()]).unwrap().protocol.is_none());
    }

    #[test]
    fn head_length_leaves_early_frames_in_the_buffer() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let req = parse_request(&bytes, 8192).unwrap().unwrap();
        assert_eq!(&bytes[req.head_len..], &[0x81, 0x80, 1, 2, 3, 4]);
    }

    #[test]
    fn partial_head_asks_for_more_then_431_at_the_limit() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n", 8192), Ok(None));
        let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "a".repeat(9000));
        assert_eq!(parse_request(huge.as_bytes(), 8192).unwrap_err().status, 431);
        let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_request(req.as_bytes(), 8192).unwrap_err().status, 431);
        assert_eq!(parse_request(b"\x00\x01garbage\r\n\r\n", 8192).unwrap_err().status, 400);
    }

    fn status_of(text: &str) -> u16 {
        validate_upgrade(&parse(text), &[]).unwrap_err().status
    }

    #[test]
    fn each_rule_of_4_2_1_has_its_status() {
        assert_eq!(status_of(&GOOD.replace("GET", "POST")), 405);
        assert_eq!(status_of(&GOOD.replace("HTTP/1.1", "HTTP/1.0")), 400);
        assert_eq!(status_of(&GOOD.replace("Host: server.example.com\r\n", "")), 400);
        assert_eq!(status_of(&GOOD.replace("Upgrade: websocket", "Upgrade: h2c")), 400);
        assert_eq!(status_of(&GOOD.replace("keep-alive, Upgrade", "keep-alive")), 400);
        assert_eq!(
            status_of(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==")),
            400
        );
        assert_eq!(status_of(&GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!")), 400);
        let old = validate_upgrade(&parse(&GOOD.replace("Version: 13", "Version: 8")), &[]).unwrap_err();
        assert_eq!(old.status, 426);
        assert!(String::from_utf8(old.to_response())
            .unwrap()
            .contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn headers_that_may_appear_once_are_refused_twice() {
        let twice = [
            GOOD.replace("Host: server.example.com\r\n", "Host: a\r\nhost: b\r\n"),
            GOOD.replace(
                "Sec-WebSocket-Version",
                "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version",
            ),
            GOOD.replace(
                "Sec-WebSocket-Version: 13\r\n",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
            ),
        ];
        for (text, name) in twice.iter().zip(SINGLE_HEADERS) {
            let error = validate_upgrade(&parse(text), &[]).unwrap_err();
            assert_eq!(
                (error.status, error.reason.as_ref()),
                (400, format!("more than one {name} header").as_str())
            );
        }
    }

    #[test]
    fn tokens_are_case_insensitive_and_may_span_header_lines() {
        let text = GOOD.replace("Upgrade: websocket", "UPGRADE: WebSocket").replace(
            "Connection: keep-alive, Upgrade\r\n",
            "Connection: keep-alive\r\nconnection: UPGRADE\r\n",
        );
        assert!(validate_upgrade(&parse(&text), &[]).is_ok());
    }

    #[test]
    fn error_response_is_well_formed() {
        let resp = String::from_utf8(HttpError::new(404, "no WebSocket endpoint at this path").to_response()).unwrap();
        assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(resp.contains("Content-Length: 35\r\n"));
        assert!(resp.ends_with("\r\n\r\nno WebSocket endpoint at this path\n"));
    }
}
