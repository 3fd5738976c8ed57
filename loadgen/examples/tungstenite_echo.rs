//! A reference echo server (tungstenite, blocking, thread per connection), the same one the
//! integration tests use: a known-good peer for checking the load generator itself.
//!
//! `cargo run --release -p ringcast-loadgen --example tungstenite_echo -- 127.0.0.1:9002 30`
//! serves on 127.0.0.1:9002 for 30 seconds.

#[path = "../tests/support/server.rs"]
mod server;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9002".into());
    let secs: u64 = args.next().map_or(60, |s| s.parse().expect("seconds"));
    let server = server::Server::bind(&addr, server::Mode::Echo);
    println!("echoing on {} for {secs} s", server.url());
    std::thread::sleep(std::time::Duration::from_secs(secs));
}
