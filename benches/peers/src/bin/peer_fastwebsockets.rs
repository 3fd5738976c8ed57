//! Echo server built on `fastwebsockets` (hyper 1 upgrade + tokio), following that crate's own
//! `examples/echo_server.rs`: a `FragmentCollector` with the default auto-pong and auto-close.

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The same allocator as the ringcast binary, so allocator choice is not what the benchmark compares.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Echoes text and binary messages until the peer closes; pings and closes are answered by the library.
async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// Answers the HTTP upgrade and runs the echo loop on its own task.
async fn upgrade_request(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        // Connection errors (peer vanished mid-frame) end that connection only; nothing to report.
        let _ = tokio::task::unconstrained(echo(fut)).await;
    });
    Ok(response)
}

/// Serves one TCP connection through hyper's HTTP/1 server with upgrades enabled.
async fn handle(stream: TcpStream) {
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(upgrade_request))
        .with_upgrades();
    let _ = conn.await;
}

fn main() -> std::io::Result<()> {
    ringcast_peers::serve("peer-fastwebsockets", handle)
}
