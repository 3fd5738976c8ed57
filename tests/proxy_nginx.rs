//! Behind Debian's nginx (started here on a loopback port with a generated config that proxies
//! WebSocket upgrades to the binary): with `--trusted-proxy`, the address nginx forwards in
//! `X-Forwarded-For` is the client for the per-address limits and the logs, and a forged header
//! changes nothing, whether it passes through nginx or comes from a direct (untrusted) client.
//!
//! nginx connects to the binary from 127.0.0.2 (`proxy_bind`), the only trusted address; the
//! test's clients connect from 127.0.0.3 and up, so each hop has an address of its own.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::push::split_response;
use common::{ServerProcess, DRIVERS};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// The address nginx connects to the binary from.
const PROXY_SOURCE: &str = "127.0.0.2";

/// An nginx process in front of one upstream; killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx on a free loopback port, proxying everything (upgrades included) to
    /// `upstream` with `X-Forwarded-For` appended.
    fn start(upstream: SocketAddr) -> Nginx {
        let dir = std::env::temp_dir().join(format!("ringcast-nginx-{}-{}", std::process::id(), upstream.port()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let d = dir.display();
        let config = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://{upstream};
            proxy_bind {PROXY_SOURCE};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let mut child = Command::new(nginx_binary())
            .args([
                "-p",
                &d.to_string(),
                "-e",
                &format!("{d}/error.log"),
                "-c",
                conf.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx (apt-get install nginx; .ci/run does): {e}"));
        for _ in 0..200 {
            if TcpStream::connect(addr).is_ok() {
                return Nginx { child, addr, dir };
            }
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nginx did not listen on {addr}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `nginx` from PATH, or where Debian puts it.
fn nginx_binary() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .expect("nginx is not installed (apt-get install nginx; .ci/run does)")
}

/// A TCP connection to `addr` from the loopback address `source`.
fn tcp_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// An upgrade from `source` to `addr` (nginx or the binary): the open connection (after
/// echoing one message through it), or the refusal's status and body.
type Outcome = Result<tungstenite::WebSocket<TcpStream>, (u16, String)>;

fn upgrade(source: &str, addr: SocketAddr, forwarded_for: Option<&str>) -> Outcome {
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(value) = forwarded_for {
        request.headers_mut().insert("X-Forwarded-For", value.parse().unwrap());
    }
    match tungstenite::client(request, tcp_from(source, addr)) {
        Ok((mut ws, _)) => {
            ws.send(Message::text("through")).unwrap();
            assert_eq!(ws.read().unwrap(), Message::text("through"));
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            let retry = response.headers().get("retry-after");
            assert!(retry.is_some(), "a refusal for a limit says when to retry: {body}");
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("upgrade from {source}: {other:?}"),
    }
}

fn expect_open(outcome: Outcome, what: &str) -> tungstenite::WebSocket<TcpStream> {
    outcome.unwrap_or_else(|(status, body)| panic!("{what}: refused {status} {body}"))
}

fn expect_refused(outcome: Outcome, what: &str) -> (u16, String) {
    match outcome {
        Ok(_) => panic!("{what}: upgraded"),
        Err(refusal) => refusal,
    }
}

/// Waits (bounded) until the server has `n` connections open.
fn wait_for_open_connections(server: &ServerProcess, n: u64) {
    for _ in 0..400 {
        if server.metric("ringcast_connections_open") == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "{} connections open, not {n}",
        server.metric("ringcast_connections_open")
    );
}

/// The peers the server logged for `event`.
fn peers(server: &ServerProcess, event: &str) -> Vec<String> {
    server
        .json_events(event)
        .iter()
        .map(|e| e["peer"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn behind_nginx_the_forwarded_address_is_what_the_per_address_connection_limit_counts() {
    for driver in DRIVERS {
        let server = ServerProcess::start(
            driver,
            &["--trusted-proxy", PROXY_SOURCE, "--max-connections-per-ip", "1"],
        );
        let nginx = Nginx::start(server.addr);
        let first = expect_open(upgrade("127.0.0.3", nginx.addr, None), "the first client through nginx");
        let (status, body) = expect_refused(upgrade("127.0.0.3", nginx.addr, None), "its second connection");
        assert_eq!(status, 429, "{driver}: {body}");
        assert!(body.contains("too many connections from this address"), "{body}");
        // nginx itself has two connections open now; only the forwarded address counts.
        let _other = expect_open(upgrade("127.0.0.4", nginx.addr, None), "another client through nginx");
        // A forged entry passes through nginx, which appends the real address: ignored.
        let forged = upgrade("127.0.0.3", nginx.addr, Some("127.0.0.9"));
        assert_eq!(expect_refused(forged, "a forged header through nginx").0, 429);
        // A direct client is not a trusted proxy: its X-Forwarded-For is ignored, and it is
        // counted under its own address (127.0.0.4, which it names, is at its limit).
        let _direct = expect_open(upgrade("127.0.0.5", server.addr, Some("127.0.0.4")), "a direct client");
        let again = upgrade("127.0.0.5", server.addr, Some("127.0.0.6"));
        assert_eq!(expect_refused(again, "its second direct connection").0, 429);
        server.wait_for_log(|l| l.contains("\"event\":\"rejected\"") && l.contains("127.0.0.5:"));
        let opened = peers(&server, "open");
        assert_eq!(opened.len(), 3, "{opened:?}");
        assert!(opened.contains(&"127.0.0.3:0".to_owned()), "{opened:?}");
        assert!(opened.contains(&"127.0.0.4:0".to_owned()), "{opened:?}");
        assert!(
            opened.iter().any(|p| p.starts_with("127.0.0.5:") && p != "127.0.0.5:0"),
            "{opened:?}"
        );
        let rejected = peers(&server, "rejected");
        assert_eq!(
            rejected.iter().filter(|p| *p == "127.0.0.3:0").count(),
            2,
            "{driver}: {rejected:?}"
        );
        assert!(
            !opened.iter().chain(&rejected).any(|p| p.starts_with(PROXY_SOURCE)),
            "the proxy is never the client"
        );
        // The slot is given back under the forwarded address when that connection ends (the
        // close path reads it from the connection's ConnMeta).
        drop(first);
        wait_for_open_connections(&server, 2);
        let _back = expect_open(
            upgrade("127.0.0.3", nginx.addr, None),
            "127.0.0.3 after its connection closed",
        );
    }
}

#[test]
fn behind_nginx_the_handshake_rate_applies_to_the_forwarded_address() {
    for driver in DRIVERS {
        let server = ServerProcess::start(
            driver,
            &[
                "--trusted-proxy",
                "127.0.0.2/32",
                "--handshake-rate-per-ip",
                "1/m",
                "--handshake-burst-per-ip",
                "1",
            ],
        );
        let nginx = Nginx::start(server.addr);
        drop(expect_open(
            upgrade("127.0.0.3", nginx.addr, None),
            "the first handshake",
        ));
        let (status, body) = expect_refused(upgrade("127.0.0.3", nginx.addr, None), "the second");
        assert_eq!(status, 429, "{driver}: {body}");
        assert!(body.contains("too many handshakes from this address"), "{body}");
        drop(expect_open(upgrade("127.0.0.4", nginx.addr, None), "another address"));
        // Plain requests through nginx pass (the rate counts upgrades only).
        let mut stream = tcp_from("127.0.0.3", nginx.addr);
        std::io::Write::write_all(
            &mut stream,
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut response = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut response);
        assert_eq!(split_response(&response).0, 200, "{response}");
        assert_eq!(server.metric("ringcast_access_refused_total{reason=\"rate_limit\"}"), 1);
        // Sent directly from an untrusted address, the same header counts for nothing.
        let direct = upgrade("127.0.0.6", server.addr, Some("127.0.0.3"));
        drop(expect_open(direct, "a direct client naming a limited address"));
    }
}
