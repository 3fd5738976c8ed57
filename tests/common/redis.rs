//! A real `redis-server` (Debian's package; `.ci/run` installs it) on a loopback port, and
//! waiting on a push node's `/readyz`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::push::split_response;
use super::ServerProcess;

/// A `redis-server` on a loopback port, without persistence; killed on drop.
pub struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts one on `port` (e.g. the port of one stopped earlier) and waits until it accepts.
    pub fn start_on(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server; .ci/run does it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { port, child }
    }

    /// Starts one on a free port.
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        RedisServer::start_on(port)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops (SIGSTOP, `true`) or continues (SIGCONT, `false`) it: Redis hanging, its
    /// connections open.
    pub fn pause(&self, stopped: bool) {
        let signal = if stopped { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Kills it (SIGKILL: Redis lost, not shut down); returns its port for a restart.
    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until `/readyz` answers 200 with a body containing `line`; returns the body.
pub fn wait_ready(server: &ServerProcess, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = split_response(&server.http("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n"));
        if status == 200 && body.contains(line) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said {line:?}; last: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
