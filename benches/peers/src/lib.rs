//! Peer WebSocket echo servers used by the comparative benchmark (`ringcast-bench`).
//!
//! The peers share one accept loop ([`serve`]) so that the only difference between them is the
//! WebSocket library handling each accepted connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tokio::net::{TcpListener, TcpStream};

/// Command-line flags shared by every peer echo server.
#[derive(Debug, Parser)]
pub struct PeerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9101")]
    pub listen: SocketAddr,
    /// Runtime worker threads: 1 uses tokio's current_thread runtime, N > 1 a multi-thread runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// Pause after a failed `accept` (for example EMFILE) so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Parses [`PeerArgs`], builds the runtime they ask for and runs the accept loop forever.
///
/// Every accepted socket gets `TCP_NODELAY` (as tokio-tungstenite's own client does and as any
/// latency-sensitive WebSocket server should) and is handed to `handle` on its own task.
pub fn serve<F, Fut>(name: &str, handle: F) -> io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let args = PeerArgs::parse();
    let runtime = match args.threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(n))
            .enable_all()
            .build()?,
    };
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        println!(
            "{name} listening on {} ({} thread(s))",
            listener.local_addr()?,
            args.threads
        );
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    // Best effort: a socket that refuses NODELAY still works.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(handle(stream));
                }
                Err(err) => {
                    eprintln!("{name}: accept failed: {err}");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            }
        }
    })
}
