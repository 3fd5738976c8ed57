//! A TLS front for the plain test servers: it terminates TLS (rustls, the committed test
//! certificate for localhost and 127.0.0.1) on 127.0.0.1 and relays the plaintext to a backend
//! on 127.0.0.1, so every scenario's test server also serves `wss://` (and `https://`).
//!
//! Two threads per connection share the rustls `ServerConnection` behind a mutex: one reads
//! the client (and answers its handshake), one reads the backend; socket reads happen outside
//! the lock, TLS records are written to the client under it, so they stay in order.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, SupportedProtocolVersion};

/// The committed test TLS material (tests/fixtures/tls at the repository root).
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/tls")
        .join(name);
    path.to_str().expect("a UTF-8 path").to_string()
}

/// A running TLS front; it lives until the test process exits.
pub struct TlsFront {
    pub addr: SocketAddr,
}

impl TlsFront {
    /// A front for `backend` offering TLS 1.3 and 1.2.
    pub fn start(backend: SocketAddr) -> TlsFront {
        TlsFront::with_versions(backend, rustls::ALL_VERSIONS)
    }

    /// A front for `backend` offering TLS 1.2 only.
    pub fn tls12(backend: SocketAddr) -> TlsFront {
        TlsFront::with_versions(backend, &[&rustls::version::TLS12])
    }

    fn with_versions(backend: SocketAddr, versions: &[&'static SupportedProtocolVersion]) -> TlsFront {
        let config = config(versions);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test port");
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let config = config.clone();
                std::thread::spawn(move || relay(client, backend, config));
            }
        });
        TlsFront { addr }
    }

    /// `wss://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("wss://{}{path}", self.addr)
    }
}

fn config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .expect("read server.pem")
        .collect::<Result<_, _>>()
        .expect("parse server.pem");
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("read server.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the test certificate and key");
    Arc::new(config)
}

fn relay(client: TcpStream, backend: SocketAddr, config: Arc<ServerConfig>) {
    let Ok(backend) = TcpStream::connect(backend) else {
        return;
    };
    let _ = (client.set_nodelay(true), backend.set_nodelay(true));
    let tls = Arc::new(Mutex::new(ServerConnection::new(config).expect("a server connection")));
    let (Ok(client2), Ok(backend2)) = (client.try_clone(), backend.try_clone()) else {
        return;
    };
    let tls2 = tls.clone();
    let up = std::thread::spawn(move || upstream(client, backend, &tls));
    downstream(backend2, client2, &tls2);
    let _ = up.join();
}

/// Client to backend: decrypts what the client sends, answering its handshake on the way.
fn upstream(mut client: TcpStream, mut backend: TcpStream, tls: &Mutex<ServerConnection>) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut plain = Vec::new();
    while let Ok(n @ 1..) = client.read(&mut buf) {
        let ok = {
            let mut conn = tls.lock().unwrap();
            let mut rest = &buf[..n];
            let mut ok = true;
            while ok && !rest.is_empty() {
                ok = conn.read_tls(&mut rest).is_ok() && conn.process_new_packets().is_ok();
                // WouldBlock once drained; what was read is kept.
                let _ = conn.reader().read_to_end(&mut plain);
            }
            // Handshake replies, or the alert for a failure.
            write_tls(&mut conn, &mut client) && ok
        };
        if !ok || backend.write_all(&plain).is_err() {
            break;
        }
        plain.clear();
    }
    let _ = backend.shutdown(Shutdown::Write);
}

/// Backend to client: encrypts what the backend sends; at its end, close_notify and close.
fn downstream(mut backend: TcpStream, mut client: TcpStream, tls: &Mutex<ServerConnection>) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n @ 1..) = backend.read(&mut buf) {
        let mut conn = tls.lock().unwrap();
        if conn.writer().write_all(&buf[..n]).is_err() || !write_tls(&mut conn, &mut client) {
            break;
        }
    }
    let mut conn = tls.lock().unwrap();
    conn.send_close_notify();
    write_tls(&mut conn, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

/// Writes every pending TLS record to the client; false when the client is gone.
fn write_tls(conn: &mut ServerConnection, client: &mut TcpStream) -> bool {
    while conn.wants_write() {
        if conn.write_tls(client).is_err() {
            return false;
        }
    }
    true
}
