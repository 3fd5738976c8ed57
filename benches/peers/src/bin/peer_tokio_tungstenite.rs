//! Echo server built on `tokio-tungstenite`, following that crate's own `examples/echo-server.rs`
//! (split + forward of text and binary messages), with the 4 KiB read buffer that tungstenite's
//! `WebSocketConfig` docs recommend when many connections are expected.

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The same allocator as the ringcast binary, so allocator choice is not what the benchmark compares.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Read buffer per connection; the write buffer is allocated lazily and keeps its default batching.
const READ_BUFFER_SIZE: usize = 4 * 1024;

/// Accepts the WebSocket handshake and echoes until the peer closes; pings and closes are
/// answered by tungstenite itself.
async fn handle(stream: TcpStream) {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_SIZE);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (write, read) = ws.split();
    // Connection errors end that connection only; nothing to report.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

fn main() -> std::io::Result<()> {
    ringcast_peers::serve("peer-tokio-tungstenite", handle)
}
