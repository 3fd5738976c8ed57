//! Target `handshake`: the request-head parser and the upgrade rules of RFC 6455 section 4.2.1.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ringcast::proto::handshake::{parse_request, upgrade_response, validate_upgrade, HttpError, Request, Upgrade};

/// The request-head limit the target runs with (the smallest `--max-request-head` allowed is
/// 256; a small one makes the 431 paths reachable by short inputs).
pub const MAX_HEAD: usize = 1024;

/// The subprotocols the target offers, in server preference order.
const SUPPORTED: [&str; 2] = ["superchat", "chat"];

/// Parses `data` as a request head and, when one is complete, validates it as an upgrade.
///
/// Checks: a complete head is at most [`MAX_HEAD`] bytes, ends the way HTTP heads end, parses
/// the same from its own bytes, and no shorter prefix of it is complete or refused (so how the
/// request is split across reads never changes the answer); an incomplete one is shorter than
/// the limit; refusals are 400 or 431 before the upgrade and 400, 405 or 426 after, each a
/// well-formed response whose body is its one-line reason (426 naming version 13, 405 naming
/// GET); an accepted upgrade met every rule (one Host, key and version header each), its
/// accept key is tungstenite's for the same key, its subprotocol is one the client offered,
/// and its 101 response parses back.
pub fn run(data: &[u8]) {
    match parse_request(data, MAX_HEAD) {
        Ok(None) => assert!(data.len() < MAX_HEAD, "an incomplete head at the limit must be a 431"),
        Err(error) => {
            assert!(matches!(error.status, 400 | 431), "parse refused with {error}");
            check_error_response(&error);
        }
        Ok(Some(request)) => {
            check_head(data, &request);
            let supported: Vec<String> = SUPPORTED.iter().map(|p| p.to_string()).collect();
            match validate_upgrade(&request, &supported) {
                Ok(upgrade) => check_upgrade(&request, &upgrade),
                Err(error) => {
                    assert!(matches!(error.status, 400 | 405 | 426), "upgrade refused with {error}");
                    check_error_response(&error);
                }
            }
        }
    }
}

fn check_head(data: &[u8], request: &Request) {
    let head = &data[..request.head_len];
    assert!(request.head_len <= MAX_HEAD);
    // The last line is empty: an LF after a line's LF, or CR LF after it (bare LFs are accepted).
    assert!(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"), "{head:?}");
    assert_eq!(
        parse_request(head, MAX_HEAD).as_ref().ok().and_then(Option::as_ref),
        Some(request)
    );
    for cut in [1, request.head_len / 2, request.head_len - 1] {
        assert_eq!(
            parse_request(&head[..cut], MAX_HEAD),
            Ok(None),
            "a prefix of {cut} bytes of a complete head must ask for more"
        );
    }
    assert!(request.minor_version <= 1);
    assert!(!request.path.contains('?'));
}

fn check_upgrade(request: &Request, upgrade: &Upgrade) {
    assert_eq!(request.method, "GET");
    assert_eq!(request.minor_version, 1);
    for name in ["host", "sec-websocket-key", "sec-websocket-version"] {
        assert_eq!(request.header_values(name).count(), 1, "exactly one {name} header");
    }
    assert!(request.has_token("upgrade", "websocket") && request.has_token("connection", "upgrade"));
    assert_eq!(
        request.header("sec-websocket-version").map(<[u8]>::trim_ascii),
        Some(&b"13"[..])
    );
    let key = request.header("sec-websocket-key").expect("a key").trim_ascii();
    assert_eq!(BASE64.decode(key).map(|nonce| nonce.len()), Ok(16));
    assert_eq!(upgrade.accept, tungstenite::handshake::derive_accept_key(key));
    if let Some(protocol) = &upgrade.protocol {
        assert!(SUPPORTED.contains(&protocol.as_str()));
        assert!(request.has_token("sec-websocket-protocol", protocol));
    }
    let response = Parsed::from(&upgrade_response(upgrade));
    assert_eq!(response.status, 101);
    assert_eq!(response.header("sec-websocket-accept"), Some(upgrade.accept.as_bytes()));
    assert_eq!(
        response.header("sec-websocket-protocol"),
        upgrade.protocol.as_deref().map(str::as_bytes)
    );
}

fn check_error_response(error: &HttpError) {
    let bytes = error.to_response();
    let response = Parsed::from(&bytes);
    assert_eq!(response.status, error.status);
    let body = &bytes[response.head_len..];
    assert_eq!(
        response.header("content-length"),
        Some(body.len().to_string().as_bytes())
    );
    assert_eq!(body, format!("{}\n", error.reason).as_bytes());
    assert!(!error.reason.contains('\n'), "the reason is one line");
    match error.status {
        426 => assert_eq!(response.header("sec-websocket-version"), Some(&b"13"[..])),
        405 => assert_eq!(response.header("allow"), Some(&b"GET"[..])),
        _ => {}
    }
}

/// A response of ours parsed back with httparse (an independent reader of the bytes).
struct Parsed {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    head_len: usize,
}

impl Parsed {
    fn from(bytes: &[u8]) -> Parsed {
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut slots);
        let Ok(httparse::Status::Complete(head_len)) = response.parse(bytes) else {
            panic!("unparsable response {:?}", String::from_utf8_lossy(bytes));
        };
        Parsed {
            status: response.code.expect("a status"),
            headers: response
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect(),
            head_len,
        }
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}
