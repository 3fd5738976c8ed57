//! A connection's byte stream: plain TCP (`ws://`, `http://`) or TLS over TCP (`wss://`,
//! `https://`), with the same owned-buffer reads and writes either way.
//!
//! TLS is rustls's sans-io [`ClientConnection`]: ciphertext moves over the monoio socket, the
//! read and write halves of a split stream share the connection state through an
//! `Rc<RefCell<_>>` and borrow it only between awaits.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use rustls::ClientConnection;

use crate::conn::io_reason;
use crate::tls::TlsClient;

/// Fewest ciphertext bytes read from the socket at a time (during the handshake, and when the
/// plaintext buffer is smaller); otherwise as many as the plaintext buffer holds, so a TLS
/// connection's read buffers scale with the run's messages like a plain one's.
const MIN_TLS_READ: usize = 4096;

type Shared = Rc<RefCell<ClientConnection>>;

/// The TLS state of one direction of a stream.
struct TlsSide {
    conn: Shared,
    /// Ciphertext: read and not yet fed to rustls (reads), or to be written (writes).
    buf: Vec<u8>,
    /// How much of a read `buf` rustls has taken.
    fed: usize,
}

impl TlsSide {
    fn new(conn: Shared) -> TlsSide {
        TlsSide {
            conn,
            buf: Vec::new(),
            fed: 0,
        }
    }
}

/// A whole stream, before it is split (the TLS handshake, the upgrade, HTTP publishing).
pub struct Transport {
    tcp: TcpStream,
    tls: Option<(TlsSide, TlsSide)>,
}

impl Transport {
    /// Wraps a connected socket; with `tls`, runs the TLS handshake first (short of flushing
    /// the client's last flight, which goes out with the first write).
    pub async fn open(mut tcp: TcpStream, tls: Option<&TlsClient>) -> Result<Transport, String> {
        let Some(client) = tls else {
            return Ok(Transport { tcp, tls: None });
        };
        let conn = Rc::new(RefCell::new(client.connection()?));
        let (mut rd, mut wr) = (TlsSide::new(conn.clone()), TlsSide::new(conn.clone()));
        while conn.borrow().is_handshaking() {
            if let Err(e) = flush(&mut tcp, &mut wr).await {
                return Err(io_reason(&e));
            }
            match feed(&mut tcp, &mut rd, MIN_TLS_READ).await {
                Ok(true) => {}
                Ok(false) => return Err("eof_in_tls_handshake".into()),
                Err(e) => {
                    // Tell the server why (an alert), if the socket still takes it.
                    let _ = flush(&mut tcp, &mut wr).await;
                    return Err(io_reason(&e));
                }
            }
        }
        Ok(Transport {
            tcp,
            tls: Some((rd, wr)),
        })
    }

    /// The socket's descriptor.
    pub fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, data: Vec<u8>) -> io::Result<()> {
        match &mut self.tls {
            None => self.tcp.write_all(data).await.0.map(drop),
            Some((_, wr)) => {
                wr.conn.borrow_mut().writer().write_all(&data)?;
                flush(&mut self.tcp, wr).await
            }
        }
    }

    /// Reads into the spare capacity of `buf` (which must have some), after what it holds;
    /// `Ok(0)` is the end of the stream.
    pub async fn read_append(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match &mut self.tls {
            None => read_plain(&mut self.tcp, buf).await,
            Some((rd, wr)) => {
                // Anything rustls has to say (a key update reply) goes out before we wait.
                if let Err(e) = flush(&mut self.tcp, wr).await {
                    return (Err(e), buf);
                }
                read_tls(&mut self.tcp, rd, buf).await
            }
        }
    }

    /// Splits the stream into halves the reader and the writer task own.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        let (rd, wr) = self.tcp.into_split();
        let (rd_tls, wr_tls) = self.tls.unzip();
        (ReadHalf { rd, tls: rd_tls }, WriteHalf { wr, tls: wr_tls })
    }
}

/// The reading half of a split [`Transport`].
pub struct ReadHalf {
    rd: OwnedReadHalf<TcpStream>,
    tls: Option<TlsSide>,
}

impl ReadHalf {
    /// Reads into the spare capacity of `buf` (which must have some); `Ok(0)` is the end of
    /// the stream.
    pub async fn read_append(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match &mut self.tls {
            None => read_plain(&mut self.rd, buf).await,
            Some(rd) => read_tls(&mut self.rd, rd, buf).await,
        }
    }

    /// Whether reading left TLS records for the writer to send (wake it when so).
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.borrow().wants_write())
    }
}

/// The writing half of a split [`Transport`].
pub struct WriteHalf {
    wr: OwnedWriteHalf<TcpStream>,
    tls: Option<TlsSide>,
}

impl WriteHalf {
    /// Writes all of `data` (none: only what TLS has pending) and hands the buffer back.
    pub async fn write_all(&mut self, data: BytesMut) -> (io::Result<()>, BytesMut) {
        match &mut self.tls {
            None => {
                let (res, data) = self.wr.write_all(data).await;
                (res.map(drop), data)
            }
            Some(wr) => {
                if let Err(e) = wr.conn.borrow_mut().writer().write_all(&data) {
                    return (Err(e), data);
                }
                (flush(&mut self.wr, wr).await, data)
            }
        }
    }

    /// Whether TLS has records to send even with no new data.
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.borrow().wants_write())
    }
}

async fn read_plain<R: AsyncReadRent>(rd: &mut R, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    debug_assert!(buf.len() < buf.capacity(), "a read needs spare capacity");
    let filled = buf.len();
    let (res, slice) = rd.read(buf.slice_mut(filled..)).await;
    (res, slice.into_inner())
}

/// Hands out decrypted bytes, reading and decrypting more records until there are some.
async fn read_tls<R: AsyncReadRent>(rd: &mut R, side: &mut TlsSide, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    debug_assert!(buf.len() < buf.capacity(), "a read needs spare capacity");
    loop {
        {
            let mut conn = side.conn.borrow_mut();
            let mut reader = conn.reader();
            match reader.fill_buf() {
                Ok([]) => return (Ok(0), buf), // close_notify
                Ok(chunk) => {
                    let n = chunk.len().min(buf.capacity() - buf.len());
                    buf.extend_from_slice(&chunk[..n]);
                    reader.consume(n);
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return (Err(e), buf),
            }
        }
        match feed(rd, side, buf.capacity().max(MIN_TLS_READ)).await {
            Ok(true) => {}
            Ok(false) => return (Ok(0), buf),
            Err(e) => return (Err(e), buf),
        }
    }
}

/// Gives rustls more ciphertext: what is left of the last socket read, else a new read of up
/// to `chunk` bytes. `Ok(false)` is the end of the TCP stream.
async fn feed<R: AsyncReadRent>(rd: &mut R, side: &mut TlsSide, chunk: usize) -> io::Result<bool> {
    if side.fed == side.buf.len() {
        let mut buf = std::mem::take(&mut side.buf);
        buf.clear();
        buf.reserve(chunk);
        let (res, buf) = rd.read(buf).await;
        side.buf = buf;
        side.fed = 0;
        if res? == 0 {
            return Ok(false);
        }
    }
    let mut conn = side.conn.borrow_mut();
    let mut rest = &side.buf[side.fed..];
    let before = rest.len();
    conn.read_tls(&mut rest)?;
    side.fed += before - rest.len();
    conn.process_new_packets()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(true)
}

/// Writes every TLS record rustls has pending.
async fn flush<W: AsyncWriteRent>(wr: &mut W, side: &mut TlsSide) -> io::Result<()> {
    let mut out = std::mem::take(&mut side.buf);
    out.clear();
    {
        let mut conn = side.conn.borrow_mut();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
    }
    if out.is_empty() {
        side.buf = out;
        return Ok(());
    }
    let (res, out) = wr.write_all(out).await;
    side.buf = out;
    res.map(drop)
}
