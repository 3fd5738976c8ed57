//! Access control over the real binary: allowed origins, JWTs on upgrade (made by the
//! `jsonwebtoken` crate and, independently, by python3's `hmac` and by `openssl`), token expiry,
//! token claims over push topics, the admin token and `--admin-listen`, and the per-address
//! handshake rate. Each refusal is checked for its status, reason, counter and log line.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::push::{split_response, Subscriber};
use common::{http_at, upgrade_request, ServerProcess, DRIVERS};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const SECRET: &str = "test secret for HS256, 32 bytes or more";
const ADMIN: &str = "admin-token-0123456789";

/// A raw upgrade request for `path` with extra header lines (each ending in `\r\n`).
fn upgrade_with(path: &str, headers: &str) -> String {
    let request = upgrade_request(path);
    let end = request.len() - 2;
    format!("{}{headers}\r\n", &request[..end])
}

/// Sends an upgrade that the server refuses; returns the whole response (it closes after it).
fn refused(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let response = http_at(addr, &upgrade_with(path, headers));
    assert!(!response.starts_with("HTTP/1.1 101"), "upgraded: {response}");
    (split_response(&response).0, response)
}

/// Upgrades with tungstenite (an independent client), sending `headers`.
fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    tungstenite::client(request, stream).expect("upgrade").0
}

/// Echoes one message through `ws`.
fn echo(ws: &mut tungstenite::WebSocket<TcpStream>) {
    ws.send(Message::text("ping me")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("ping me"));
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The value of one metric line, read with the admin token when the server has one.
fn metric(addr: SocketAddr, series: &str, admin: Option<&str>) -> u64 {
    let auth = admin.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = http_at(addr, &format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{auth}\r\n"));
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

/// The `rejected` log lines with `access` = `reason`.
fn rejected_for(server: &ServerProcess, reason: &str) -> Vec<Value> {
    server
        .json_events("rejected")
        .into_iter()
        .filter(|e| e["access"] == reason)
        .collect()
}

/// A scratch directory for keys.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringcast-access-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `program` with `stdin`; its stdout (it must succeed).
fn run(program: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (needed by this test): {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A JWT signed with HMAC-SHA256 by python3's `hmac` (not by the crate the server uses), with
/// `header` as given: `{"alg":"none"}` gets no signature.
fn python_jwt(header: &Value, claims: &Value, key: &[u8]) -> String {
    const SCRIPT: &str = r#"
import base64, hashlib, hmac, sys
header, claims, key = sys.stdin.buffer.read().split(b"\n", 2)
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
signing = b64(header) + b"." + b64(claims)
none = b'"none"' in header
sig = b"" if none else b64(hmac.new(key, signing, hashlib.sha256).digest())
sys.stdout.buffer.write(signing + b"." + sig)
"#;
    let mut input = format!("{header}\n{claims}\n").into_bytes();
    input.extend_from_slice(key);
    String::from_utf8(run("python3", &["-c", SCRIPT], &input)).unwrap()
}

fn python_hs256(claims: &Value, key: &[u8]) -> String {
    python_jwt(&json!({"alg": "HS256", "typ": "JWT"}), claims, key)
}

/// An RSA key pair made by openssl: (private key file, public key file).
fn openssl_keys(dir: &Path, name: &str, bits: u32) -> (PathBuf, PathBuf) {
    let (private, public) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.pub.pem")));
    let bits = format!("rsa_keygen_bits:{bits}");
    run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &bits,
            "-out",
            private.to_str().unwrap(),
        ],
        b"",
    );
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
        b"",
    );
    (private, public)
}

/// A JWT signed RS256 by `openssl dgst -sha256 -sign`.
fn openssl_rs256(claims: &Value, private_key: &Path) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let signing = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = run(
        "openssl",
        &["dgst", "-sha256", "-sign", private_key.to_str().unwrap()],
        signing.as_bytes(),
    );
    format!("{signing}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A JWT made by the `jsonwebtoken` crate.
fn crate_jwt(claims: &Value, alg: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, key).unwrap()
}

#[test]
fn origins_outside_the_allowed_list_get_403_before_the_upgrade() {
    for driver in DRIVERS {
        let server = ServerProcess::start(
            driver,
            &[
                "--allowed-origin",
                "https://app.example.com",
                "--allowed-origin",
                "*.example.org",
            ],
        );
        for origin in [
            "https://app.example.com",
            "HTTPS://APP.example.com:443",
            "http://a.example.org",
        ] {
            echo(&mut connect(server.addr, "/", &[("Origin", origin)]));
        }
        echo(&mut connect(server.addr, "/", &[]));
        for origin in [
            "https://evil.example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://example.org",
            "null",
        ] {
            let (status, response) = refused(server.addr, "/", &format!("Origin: {origin}\r\n"));
            assert_eq!(status, 403, "{origin}: {response}");
            assert!(response.contains("is not allowed"), "{response}");
        }
        assert_eq!(
            metric(server.addr, "ringcast_handshake_rejected_total{status=\"403\"}", None),
            5
        );
        assert_eq!(
            metric(server.addr, "ringcast_access_refused_total{reason=\"origin\"}", None),
            5
        );
        server.wait_for_log(|l| l.contains("\"access\":\"origin\""));
        assert_eq!(rejected_for(&server, "origin")[0]["status"], 403, "{driver}");
    }
    let strict = ServerProcess::start("uring", &["--require-origin"]);
    let (status, response) = refused(strict.addr, "/", "");
    assert_eq!(status, 403);
    assert!(response.contains("an Origin header is required"), "{response}");
    echo(&mut connect(strict.addr, "/", &[("Origin", "https://any.example")]));
}

#[test]
fn hs256_tokens_from_an_independent_signer_are_checked_before_the_upgrade() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--jwt-secret", SECRET]);
        let good = python_hs256(&json!({"sub": "u1", "exp": now() + 300}), SECRET.as_bytes());
        echo(&mut connect(server.addr, &format!("/?token={good}"), &[]));
        echo(&mut connect(
            server.addr,
            "/",
            &[("Authorization", &format!("Bearer {good}"))],
        ));
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let by_crate = crate_jwt(&json!({"exp": now() + 300}), jsonwebtoken::Algorithm::HS256, &key);
        echo(&mut connect(server.addr, &format!("/?token={by_crate}"), &[]));
        let cases = [
            (String::new(), "a token is required", "token_missing"),
            (
                python_hs256(&json!({"exp": now() - 60}), SECRET.as_bytes()),
                "token expired",
                "token_expired",
            ),
            (
                python_hs256(&json!({"exp": now() + 300}), b"a different secret, also 32 bytes long"),
                "bad token signature",
                "token_invalid",
            ),
            (
                python_jwt(&json!({"alg": "none"}), &json!({"exp": now() + 300}), b""),
                "malformed token",
                "token_invalid",
            ),
            (
                python_hs256(&json!({"exp": now() + 300, "nbf": now() + 200}), SECRET.as_bytes()),
                "token not valid yet (nbf)",
                "token_invalid",
            ),
            (
                python_hs256(&json!({"sub": "no expiry"}), SECRET.as_bytes()),
                "token has no exp claim",
                "token_invalid",
            ),
        ];
        for (token, reason, _) in &cases {
            let (status, response) = refused(server.addr, &format!("/?token={token}"), "");
            assert_eq!(status, 401, "{reason}: {response}");
            assert!(response.contains("WWW-Authenticate: Bearer\r\n"), "{response}");
            assert!(response.contains(reason), "{reason}: {response}");
        }
        let (status, response) = refused(server.addr, "/", "Authorization: Basic dXNlcjpwYXNz\r\n");
        assert_eq!(status, 401, "{response}");
        assert_eq!(
            metric(server.addr, "ringcast_handshake_rejected_total{status=\"401\"}", None),
            7
        );
        for (reason, count) in [("token_missing", 1), ("token_expired", 1), ("token_invalid", 5)] {
            let series = format!("ringcast_access_refused_total{{reason=\"{reason}\"}}");
            assert_eq!(metric(server.addr, &series, None), count, "{driver} {reason}");
        }
        server.wait_for_log(|l| l.contains("\"access\":\"token_expired\""));
        assert!(rejected_for(&server, "token_expired")[0]["reason"] == "token expired");
    }
}

#[test]
fn rs256_tokens_signed_by_openssl_are_accepted_and_the_algorithms_never_mix() {
    let dir = scratch("rs256");
    let (private, public) = openssl_keys(&dir, "server", 2048);
    let (other_private, _) = openssl_keys(&dir, "other", 2048);
    let public_pem = std::fs::read(&public).unwrap();
    let claims = json!({"sub": "u1", "exp": now() + 300});
    for driver in DRIVERS {
        let both = ServerProcess::start(
            driver,
            &["--jwt-secret", SECRET, "--jwt-public-key", public.to_str().unwrap()],
        );
        echo(&mut connect(
            both.addr,
            &format!("/?token={}", openssl_rs256(&claims, &private)),
            &[],
        ));
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&private).unwrap()).unwrap();
        let by_crate = crate_jwt(&claims, jsonwebtoken::Algorithm::RS256, &key);
        echo(&mut connect(both.addr, &format!("/?token={by_crate}"), &[]));
        echo(&mut connect(
            both.addr,
            &format!("/?token={}", python_hs256(&claims, SECRET.as_bytes())),
            &[],
        ));
        // The classic confusion: an HS256 token whose HMAC key is the (public) RSA key.
        let confused = python_hs256(&claims, &public_pem);
        let (status, response) = refused(both.addr, &format!("/?token={confused}"), "");
        assert_eq!(status, 401, "{response}");
        assert!(response.contains("bad token signature"), "{response}");
        let forged = openssl_rs256(&claims, &other_private);
        let (status, response) = refused(both.addr, &format!("/?token={forged}"), "");
        assert_eq!(
            (status, response.contains("bad token signature")),
            (401, true),
            "{response}"
        );
    }
    let rsa_only = ServerProcess::start("uring", &["--jwt-public-key", public.to_str().unwrap()]);
    let hs = python_hs256(&claims, &public_pem);
    let (status, response) = refused(rsa_only.addr, &format!("/?token={hs}"), "");
    assert_eq!(status, 401);
    assert!(
        response.contains("token algorithm HS256 is not accepted (accepted: RS256)"),
        "{response}"
    );
    // A key too weak to trust is refused at start-up, naming the setting.
    let (_, weak) = openssl_keys(&dir, "weak", 1024);
    let output = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["--listen", "127.0.0.1:0", "--jwt-public-key", weak.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("jwt_public_key is a 1024-bit RSA key; at least 2048 bits"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_connection_whose_token_expires_is_closed_with_4001() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--jwt-secret", SECRET, "--jwt-leeway", "0s"]);
        let long = python_hs256(&json!({"exp": now() + 600}), SECRET.as_bytes());
        let mut lasting = connect(server.addr, &format!("/?token={long}"), &[]);
        // Minted last and used at once: 3 to 4 s of validity is ample on a loaded machine.
        let short = python_hs256(&json!({"exp": now() + 4}), SECRET.as_bytes());
        let mut expiring = connect(server.addr, &format!("/?token={short}"), &[]);
        echo(&mut expiring);
        // The server closes it by itself once exp has passed (the read waits at most 15 s).
        let close = match expiring.read().expect("a close frame before the read timeout") {
            Message::Close(frame) => frame.expect("a close code"),
            other => panic!("unexpected {other:?}"),
        };
        // Sends tungstenite's close reply, so the server ends the connection now.
        let _ = expiring.flush();
        assert_eq!(close.code, CloseCode::from(4001), "{driver}");
        assert_eq!(close.reason.as_str(), "token expired");
        echo(&mut lasting);
        assert_eq!(metric(server.addr, "ringcast_token_expired_closes_total", None), 1);
        let closed = server.wait_for_log(|l| l.contains("\"code_sent\":4001"));
        assert!(closed.contains("\"reason_sent\":\"token expired\""), "{closed}");
    }
}

#[test]
fn token_claims_restrict_the_topics_a_client_subscribes_and_publishes_to() {
    let claims = json!({"exp": now() + 600, "sub_topics": ["news", "chat/*"], "pub_topics": ["chat/*"]});
    let token = python_hs256(&claims, SECRET.as_bytes());
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--mode", "push", "--push-ws-publish", "--jwt-secret", SECRET]);
        let (status, response) = refused(server.addr, &format!("/ws?topics=news,secret&token={token}"), "");
        assert_eq!(status, 403, "{response}");
        assert!(
            response.contains("the token does not allow subscribing to \"secret\""),
            "{response}"
        );
        let mut client = Subscriber::connect(server.addr, &format!("/ws?topics=news,chat/a&token={token}"));
        client.expect_subscribed("news");
        client.expect_subscribed("chat/a");
        client.command(json!({"op": "subscribe", "topics": ["secret", "chat/b"], "ref": 1}));
        let refusal = client.next_json();
        assert_eq!(
            (refusal["type"].as_str(), refusal["code"].as_str()),
            (Some("error"), Some("forbidden"))
        );
        assert_eq!(refusal["topic"], "secret", "{refusal}");
        client.expect_subscribed("chat/b");
        client.command(json!({"op": "publish", "topic": "news", "data": "x", "ref": 2}));
        let refusal = client.next_json();
        assert_eq!(
            (refusal["code"].as_str(), refusal["ref"].as_u64()),
            (Some("forbidden"), Some(2))
        );
        client.command(json!({"op": "publish", "topic": "chat/a", "data": "hello", "ref": 3}));
        let mut notices = [client.next_json(), client.next_json()];
        notices.sort_by_key(|n| n["type"].as_str().map(str::to_owned));
        assert_eq!(notices[0]["type"], "message", "{notices:?}");
        assert_eq!(notices[0]["data"], "hello");
        assert_eq!(
            (notices[1]["type"].as_str(), notices[1]["ref"].as_u64()),
            (Some("published"), Some(3))
        );
        // A token without topic claims restricts nothing.
        let open = python_hs256(&json!({"exp": now() + 600}), SECRET.as_bytes());
        Subscriber::connect(server.addr, &format!("/ws?topics=secret&token={open}")).expect_subscribed("secret");
        assert_eq!(
            metric(server.addr, "ringcast_access_refused_total{reason=\"topic\"}", None),
            3,
            "{driver}"
        );
        assert_eq!(metric(server.addr, "ringcast_push_publishes_refused_total", None), 1);
    }
}

/// A POST to `path` at `addr` with `headers`; its status and body.
fn post(addr: SocketAddr, path: &str, headers: &str, body: &str) -> (u16, String) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    split_response(&http_at(addr, &request))
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    split_response(&http_at(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n"),
    ))
}

#[test]
fn the_admin_token_guards_publishing_and_observability_but_not_health() {
    let bearer = format!("Authorization: Bearer {ADMIN}\r\n");
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--mode", "push", "--admin-token", ADMIN]);
        let mut subscriber = Subscriber::connect(server.addr, "/ws?topics=a");
        subscriber.expect_subscribed("a");
        for headers in [
            "",
            "Authorization: Bearer admin-token-012345678\r\n",
            "Authorization: Basic YTpi\r\n",
        ] {
            let response = http_at(
                server.addr,
                &format!("POST /publish/a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n{headers}\r\nx"),
            );
            assert!(response.starts_with("HTTP/1.1 401 "), "{headers:?}: {response}");
            assert!(response.contains("WWW-Authenticate: Bearer\r\n"), "{response}");
        }
        assert_eq!(post(server.addr, "/publish/a", &bearer, "hello").0, 200);
        assert_eq!(
            subscriber.expect_message().3,
            "hello",
            "only the authorised publish arrived"
        );
        for path in ["/metrics", "/debug/latency?metric=loop_lag", "/dashboard"] {
            assert_eq!(get(server.addr, path, "").0, 401, "{path}");
            assert_eq!(get(server.addr, path, &bearer).0, 200, "{path}");
        }
        for path in ["/healthz", "/readyz"] {
            assert_eq!(get(server.addr, path, "").0, 200, "{path}");
        }
        assert_eq!(refused(server.addr, "/dashboard/stream", "").0, 401);
        let mut stats = connect(
            server.addr,
            "/dashboard/stream",
            &[("Authorization", &format!("Bearer {ADMIN}"))],
        );
        assert!(
            matches!(stats.read().unwrap(), Message::Text(_)),
            "the stats stream opened"
        );
        let series = "ringcast_access_refused_total{reason=\"admin_token\"}";
        assert_eq!(metric(server.addr, series, Some(ADMIN)), 7, "{driver}");
        assert_eq!(
            metric(server.addr, series, None),
            0,
            "an unauthorised scrape reads nothing"
        );
    }
}

#[test]
fn admin_listen_moves_publishing_and_observability_off_the_websocket_port() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--mode", "push", "--admin-listen", "127.0.0.1:0"]);
        let admin = server.printed_addr("admin on http://", "/");
        let mut subscriber = Subscriber::connect(server.addr, "/ws?topics=a");
        subscriber.expect_subscribed("a");
        let (status, _) = post(server.addr, "/publish/a", "", "public");
        assert_eq!(status, 426, "the WebSocket port takes no publish (ws_paths = *)");
        assert_eq!(post(admin, "/publish/a", "", "private").0, 200);
        assert_eq!(subscriber.expect_message().3, "private");
        assert_eq!(get(admin, "/metrics", "").0, 200);
        assert_eq!(get(server.addr, "/metrics", "").0, 426);
        assert_eq!(get(server.addr, "/healthz", "").0, 200);
        assert_eq!(get(admin, "/readyz", "").0, 200);
        assert_eq!(
            refused(admin, "/ws?topics=a", "").0,
            404,
            "no application upgrades there"
        );
        let mut stats = connect(admin, "/dashboard/stream", &[]);
        assert!(matches!(stats.read().unwrap(), Message::Text(_)), "{driver}");
    }
    // With --metrics-listen too, observability goes there and publishing stays on the admin
    // address.
    let server = ServerProcess::start(
        "uring",
        &[
            "--mode",
            "push",
            "--metrics-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let metrics = server.printed_addr("metrics on http://", "/metrics");
    let admin = server.printed_addr("admin on http://", "/");
    assert_eq!(get(metrics, "/metrics", "").0, 200);
    assert_eq!(get(admin, "/metrics", "").0, 404);
    assert_eq!(post(metrics, "/publish/a", "", "x").0, 404);
    assert_eq!(post(admin, "/publish/a", "", "x").0, 200);
}

#[test]
fn handshakes_beyond_the_per_address_rate_get_429_with_retry_after() {
    for driver in DRIVERS {
        // One token a minute after a burst of three: no refill happens during the test.
        let server = ServerProcess::start(
            driver,
            &["--handshake-rate-per-ip", "1/m", "--handshake-burst-per-ip", "3"],
        );
        let open: Vec<_> = (0..3).map(|_| connect(server.addr, "/", &[])).collect();
        let (status, response) = refused(server.addr, "/", "");
        assert_eq!(status, 429, "{response}");
        let retry: u64 = response
            .lines()
            .find_map(|l| l.strip_prefix("Retry-After: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After: {response}"));
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(response.contains("too many handshakes from this address"), "{response}");
        // Closing connections gives nothing back: the rate counts handshakes, not connections.
        drop(open);
        assert_eq!(refused(server.addr, "/", "").0, 429);
        // Plain HTTP is not rate limited (other addresses having buckets of their own:
        // tests/proxy_nginx.rs and the unit tests).
        assert_eq!(get(server.addr, "/healthz", "").0, 200);
        assert_eq!(
            metric(
                server.addr,
                "ringcast_access_refused_total{reason=\"rate_limit\"}",
                None
            ),
            2
        );
        assert_eq!(
            metric(server.addr, "ringcast_handshake_rejected_total{status=\"429\"}", None),
            2,
            "{driver}"
        );
        server.wait_for_log(|l| l.contains("\"access\":\"rate_limit\""));
    }
}

#[test]
fn a_refused_client_leaves_the_others_served() {
    // After a mix of refusals on one connection each, a good client still works and nothing
    // is left open.
    let server = ServerProcess::start(
        "epoll",
        &["--jwt-secret", SECRET, "--allowed-origin", "https://app.example.com"],
    );
    let token = python_hs256(&json!({"exp": now() + 300}), SECRET.as_bytes());
    let origin = "Origin: https://app.example.com\r\n";
    for (path, headers) in [
        (
            format!("/?token={token}"),
            "Origin: https://evil.example\r\n".to_owned(),
        ),
        ("/".to_owned(), origin.to_owned()),
        ("/?token=x.y.z".to_owned(), origin.to_owned()),
    ] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(upgrade_with(&path, &headers).as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 40"), "{response}");
    }
    let mut ws = connect(
        server.addr,
        &format!("/?token={token}"),
        &[("Origin", "https://app.example.com")],
    );
    echo(&mut ws);
    assert_eq!(metric(server.addr, "ringcast_connections_open", None), 1);
}
