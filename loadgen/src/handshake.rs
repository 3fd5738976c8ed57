//! The client half of the HTTP/1.1 upgrade: build the request, check the `101` response.
//!
//! `Sec-WebSocket-Accept` is checked with ringcast's own [`accept_key`].

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ringcast::proto::handshake::accept_key;

use crate::rng::WyRand;

/// Longest response head accepted before giving up.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Why an upgrade did not succeed; [`HandshakeError::reason`] names it in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The server answered with a status other than 101.
    Status(u16),
    /// `Sec-WebSocket-Accept` was missing or wrong.
    BadAccept,
    /// `Upgrade: websocket` / `Connection: upgrade` was missing.
    BadUpgrade,
    /// The response head could not be parsed or was too long.
    Malformed,
}

impl HandshakeError {
    /// The failure reason as reported in `connect_failures`.
    pub fn reason(&self) -> String {
        match self {
            HandshakeError::Status(code) => format!("handshake_status_{code}"),
            HandshakeError::BadAccept => "bad_accept".into(),
            HandshakeError::BadUpgrade => "bad_upgrade".into(),
            HandshakeError::Malformed => "bad_response".into(),
        }
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
pub fn new_key(rng: &mut WyRand) -> String {
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce);
    BASE64.encode(nonce)
}

/// The upgrade request for `path` on `host` with `key` and any extra header lines.
pub fn request(path: &str, host: &str, key: &str, headers: &[String]) -> Vec<u8> {
    let mut out = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Checks a (possibly partial) response to a request made with `key`.
///
/// Returns `Ok(None)` when more bytes are needed, or the length of the head; any bytes after it
/// are already WebSocket frames.
pub fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => return Ok(None),
        _ => return Err(HandshakeError::Malformed),
    };
    let status = response.code.ok_or(HandshakeError::Malformed)?;
    if status != 101 {
        return Err(HandshakeError::Status(status));
    }
    let headers = response.headers;
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_token = |name: &'static str, token: &str| {
        values(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(HandshakeError::BadUpgrade);
    }
    let expected = accept_key(key.as_bytes());
    match values("sec-websocket-accept").next() {
        Some(v) if v.trim_ascii() == expected.as_bytes() => Ok(Some(head_len)),
        _ => Err(HandshakeError::BadAccept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn accepts_the_rfc_example_and_reports_the_head_length() {
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
                     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
        let head = check_response(resp, KEY).unwrap().unwrap();
        assert_eq!(&resp[head..], b"\x81\x02hi");
        for cut in 0..head {
            assert_eq!(check_response(&resp[..cut], KEY), Ok(None));
        }
    }

    #[test]
    fn names_each_failure() {
        let status = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            check_response(status, KEY).unwrap_err().reason(),
            "handshake_status_503"
        );
        let wrong =
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert_eq!(check_response(wrong, KEY), Err(HandshakeError::BadAccept));
        let no_upgrade = b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\r\n";
        assert_eq!(check_response(no_upgrade, KEY), Err(HandshakeError::BadUpgrade));
        assert_eq!(check_response(b"garbage\r\n\r\n", KEY), Err(HandshakeError::Malformed));
        assert_eq!(
            check_response(&[b'a'; MAX_RESPONSE_HEAD], KEY),
            Err(HandshakeError::Malformed)
        );
    }

    #[test]
    fn request_carries_key_and_extra_headers() {
        let mut rng = WyRand::new(1);
        let key = new_key(&mut rng);
        assert_eq!(BASE64.decode(&key).unwrap().len(), 16);
        let req = String::from_utf8(request("/x", "h:1", &key, &["Authorization: t".into()])).unwrap();
        assert!(req.starts_with("GET /x HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(req.contains(&format!("Sec-WebSocket-Key: {key}\r\n")));
        assert!(req.ends_with("Authorization: t\r\n\r\n"));
    }
}
