//! The opening handshake over real TCP: every rejection has its status, a one-line reason, a
//! counter and a log line, and the server keeps serving.

mod common;

use common::{upgrade_request, ServerProcess, DRIVERS};

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

#[test]
fn each_bad_request_gets_its_status_and_reason() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--ws-path", "/ws"]);
        let good = upgrade_request("/ws");
        let cases: Vec<(String, &str, &str)> = vec![
            (
                upgrade_request("/other"),
                "404 Not Found",
                "no WebSocket endpoint at this path",
            ),
            (good.replace("GET", "POST"), "405 Method Not Allowed", "must use GET"),
            (
                good.replace("Version: 13", "Version: 8"),
                "426 Upgrade Required",
                "use 13",
            ),
            (good.replace("HTTP/1.1", "HTTP/1.0"), "400 Bad Request", "HTTP/1.1"),
            (good.replace("Host: localhost\r\n", ""), "400 Bad Request", "Host"),
            (
                good.replace("Connection: Upgrade", "Connection: keep-alive"),
                "400 Bad Request",
                "Connection",
            ),
            (
                good.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
                "400 Bad Request",
                "16 bytes",
            ),
            (
                good.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                "400 Bad Request",
                "16 bytes",
            ),
            (
                "BLAH\x01 / HTTP/1.1\r\n\r\n".to_string(),
                "400 Bad Request",
                "malformed",
            ),
            (
                good.replace("\r\n\r\n", &format!("\r\nX-Pad: {}\r\n\r\n", "p".repeat(9000))),
                "431 ",
                "too large",
            ),
        ];
        for (request, status, reason) in &cases {
            let response = server.http(request);
            assert!(
                status_line(&response).contains(status),
                "{driver}: {request:?} -> {response}"
            );
            assert!(
                body(&response).contains(reason),
                "{driver}: reason {reason:?} missing in {response}"
            );
            assert_eq!(body(&response).lines().count(), 1, "one-line reason: {response}");
        }
        let version = server.http(&good.replace("Version: 13", "Version: 8"));
        assert!(version.contains("Sec-WebSocket-Version: 13\r\n"), "{version}");
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"400\"}"), 6);
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"404\"}"), 1);
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"405\"}"), 1);
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"426\"}"), 2);
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"431\"}"), 1);
        server.wait_for_log(|l| l.contains("\"event\":\"rejected\"") && l.contains("\"status\":431"));
        let (mut ws, _) = tungstenite::connect(server.url("/ws")).expect("still serving after rejections");
        ws.send(tungstenite::Message::text("alive")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("alive"));
    }
}

#[test]
fn connection_limit_answers_503_with_retry_after() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--max-connections", "1"]);
        let (mut first, _) = tungstenite::connect(server.url("/")).unwrap();
        let response = server.http(&upgrade_request("/"));
        assert!(status_line(&response).contains("503"), "{response}");
        assert!(response.contains("Retry-After: 1\r\n"), "{response}");
        first.close(None).unwrap();
        while first.read().is_ok() {}
        // The slot is released once the first connection is gone.
        let mut admitted = false;
        for _ in 0..100 {
            if let Ok((mut ws, _)) = tungstenite::connect(server.url("/")) {
                ws.send(tungstenite::Message::text("in")).unwrap();
                admitted = ws.read().unwrap() == tungstenite::Message::text("in");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            admitted,
            "{driver}: a new connection is admitted after the first closed"
        );
        assert_eq!(server.metric("ringcast_handshake_rejected_total{status=\"503\"}"), 1);
    }
}

#[test]
fn plain_http_shares_the_port() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--ws-path", "/ws"]);
        let health = server.http("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(
            status_line(&health).contains("200") && body(&health) == "ok\n",
            "{health}"
        );
        let ws_path = server.http("GET /ws HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(
            status_line(&ws_path).contains("426") && ws_path.contains("Upgrade: websocket"),
            "{ws_path}"
        );
        let missing = server.http("GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(status_line(&missing).contains("404"), "{missing}");
        let post = server.http("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        assert!(status_line(&post).contains("405"), "{post}");
        let metrics = server.http("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(metrics.contains("# TYPE ringcast_connections_open gauge"), "{metrics}");
    }
}

#[test]
fn subprotocol_is_negotiated_in_server_preference_order() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--subprotocol", "v2.chat", "--subprotocol", "v1.chat"]);
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(server.url("/")).unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "v1.chat, v2.chat".parse().unwrap());
        let (_ws, response) = tungstenite::connect(request).unwrap();
        assert_eq!(response.headers().get("Sec-WebSocket-Protocol").unwrap(), "v2.chat");
        server.wait_for_log(|l| l.contains("\"event\":\"open\"") && l.contains("\"protocol\":\"v2.chat\""));
    }
}

#[test]
fn slow_request_is_dropped_after_the_handshake_timeout() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--handshake-timeout", "300ms"]);
        let mut stream = server.tcp();
        std::io::Write::write_all(&mut stream, b"GET / HTTP/1.1\r\nHost: slow").unwrap();
        let mut rest = Vec::new();
        let read = std::io::Read::read_to_end(&mut stream, &mut rest);
        assert!(
            read.is_ok() && rest.is_empty(),
            "{driver}: dropped without a response: {read:?} {rest:?}"
        );
        assert_eq!(server.metric("ringcast_handshake_timeouts_total"), 1);
    }
}
