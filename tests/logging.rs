//! Logging to a stderr nobody reads: the server keeps serving, drops and counts log lines
//! instead of blocking on the pipe, and reports the drop once stderr is read again.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{ServerProcess, DRIVERS};
use tungstenite::Message;

/// A tungstenite client whose every read and write gives up after 10 s (a stalled server makes
/// the test fail instead of hang).
fn connect(server: &ServerProcess) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect_timeout(&server.addr, Duration::from_secs(10)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let (ws, _) = tungstenite::client(server.url("/"), stream).expect("upgrade");
    ws
}

#[test]
fn a_stderr_nobody_reads_drops_log_lines_instead_of_stalling_the_server() {
    for driver in DRIVERS {
        // A small buffer: 1000 connections log about 600 KB (one open and one close line each).
        let server = ServerProcess::start_with_stderr_unread(driver, &["--log-buffer-bytes", "65536"]);
        for i in 0..1000 {
            let mut ws = connect(&server);
            ws.close(None)
                .unwrap_or_else(|e| panic!("{driver}: connection {i} could not close: {e}"));
            loop {
                match ws.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::ConnectionClosed) => break,
                    Err(e) => panic!("{driver}: connection {i} did not close cleanly: {e}"),
                }
            }
        }
        let mut ws = connect(&server);
        ws.send(Message::text("still serving")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("still serving"), "{driver}");
        let dropped = server.metric("ringcast_log_lines_dropped_total");
        assert!(dropped > 0, "{driver}: no log line was dropped");
        server.read_stderr();
        let report = server.wait_for_log(|l| l.contains("\"event\":\"log_lines_dropped\""));
        let report: serde_json::Value = serde_json::from_str(&report).expect("the report is JSON like the rest");
        let reported = report["dropped"].as_u64().expect("a count");
        assert!(
            reported > 0 && reported <= dropped,
            "{driver}: reported {reported}, counted {dropped}"
        );
        assert!(
            report["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("dropped {reported} log lines"))),
            "{report}"
        );
        // Once stderr is read, lines get through again: a fresh connection's open line arrives.
        let ws = connect(&server);
        let peer = format!("\"peer\":\"{}\"", ws.get_ref().local_addr().unwrap());
        server.wait_for_log(|l| l.contains("\"event\":\"open\"") && l.contains(&peer));
    }
}
