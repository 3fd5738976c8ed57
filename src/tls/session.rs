//! One connection's TLS state: rustls' unbuffered server connection plus the one buffer it
//! may need between reads (an unfinished record). Pure: bytes in, bytes out, no system call.

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::ServerConfig;

/// Most plaintext one record carries (RFC 8446 §5.1).
const MAX_FRAGMENT: usize = 16 * 1024;

/// Chunks at least this long are encrypted where they lie rather than copied into a joint
/// buffer first (the copy would cost more than the record's overhead).
const DIRECT_CHUNK: usize = 2048;

/// Room reserved per record for its header, content type, padding and tag (22 bytes for the
/// AEAD suites; the rest is slack, and a too-small buffer is grown to what rustls asks).
const RECORD_OVERHEAD: usize = 64;

/// Most received bytes held unprocessed: a handshake message may span records (rustls takes
/// them up to 64 KiB), plus a record on either side of it. A peer that sends more without
/// completing anything is refused.
const MAX_PENDING: usize = 0x1_0000 + 2 * (MAX_FRAGMENT + 2048 + 5);

/// A TLS failure: the peer broke the protocol, a handshake could not agree, or the
/// connection's state refuses further use.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// rustls refused the input (or its state after an earlier failure).
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The client sent 0-RTT data, which is not accepted.
    #[error("early data is not accepted")]
    EarlyData,
    /// The peer sent more than [`MAX_PENDING`] bytes without completing a record.
    #[error("more than {MAX_PENDING} bytes received without a complete record")]
    Unfinished,
    /// A record could not be made (encoding, encryption, or the session's state).
    #[error("cannot make a record: {0}")]
    Write(String),
    /// An earlier read failed; the session is unusable.
    #[error("the TLS session failed earlier")]
    Failed,
}

impl TlsError {
    /// A short, stable name for log lines (the error's text carries the details).
    pub fn reason(&self) -> &'static str {
        use rustls::Error;
        match self {
            TlsError::Rustls(Error::InvalidMessage(_)) => "invalid_message",
            TlsError::Rustls(Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. }) => {
                "unexpected_message"
            }
            TlsError::Rustls(Error::AlertReceived(_)) => "alert_received",
            TlsError::Rustls(Error::DecryptError) => "decrypt_error",
            TlsError::Rustls(Error::PeerIncompatible(_)) => "peer_incompatible",
            TlsError::Rustls(Error::PeerMisbehaved(_)) => "peer_misbehaved",
            TlsError::Rustls(Error::NoApplicationProtocol) => "no_application_protocol",
            TlsError::Rustls(_) => "tls_other",
            TlsError::EarlyData => "early_data",
            TlsError::Unfinished => "unfinished_record",
            TlsError::Write(_) => "write_failed",
            TlsError::Failed => "failed_earlier",
        }
    }
}

/// What one [`TlsSession::read`] found besides plaintext.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadProgress {
    /// The peer sent close_notify: no more plaintext will come.
    pub peer_closed: bool,
}

/// A server-side TLS connection driven with caller-owned buffers.
pub(crate) struct TlsSession {
    conn: UnbufferedServerConnection,
    /// Received bytes not yet processed (an unfinished record); empty, with no capacity,
    /// whenever the input ended on a record boundary.
    pending: Vec<u8>,
    /// Whether our close_notify has been encrypted.
    close_notify_sent: bool,
    /// Whether the peer's close_notify has come: what follows it is dropped unread.
    peer_closed: bool,
    /// Whether a read failed: rustls' state no longer matches any input we could give it,
    /// so nothing more is read or written.
    failed: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.is_handshaking())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl TlsSession {
    /// A new server connection awaiting the client's hello.
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, TlsError> {
        Ok(TlsSession {
            conn: UnbufferedServerConnection::new(config)?,
            pending: Vec::new(),
            close_notify_sent: false,
            peer_closed: false,
            failed: false,
        })
    }

    /// Whether the handshake is still under way (no application data can be sent yet).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Bytes held between reads (an unfinished record), for the idle-memory checks.
    #[cfg(test)]
    pub fn pending_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Processes `input`, the next bytes the peer sent: handshake messages are answered
    /// (their records appended to `transmit`, to be written before anything else), and the
    /// plaintext of application-data records is appended to `plaintext`. The records are
    /// decrypted in `input` itself; only a trailing unfinished record is copied aside (at most
    /// [`MAX_PENDING`] bytes of them). After the peer's close_notify, input is dropped unread.
    pub fn read(
        &mut self,
        input: &mut [u8],
        plaintext: &mut Vec<u8>,
        transmit: &mut Vec<u8>,
    ) -> Result<ReadProgress, TlsError> {
        if self.failed {
            return Err(TlsError::Failed);
        }
        let result = self.read_records(input, plaintext, transmit);
        self.failed = result.is_err();
        result
    }

    /// [`TlsSession::read`] of a session that has not failed.
    fn read_records(
        &mut self,
        input: &mut [u8],
        plaintext: &mut Vec<u8>,
        transmit: &mut Vec<u8>,
    ) -> Result<ReadProgress, TlsError> {
        if self.peer_closed {
            return Ok(ReadProgress { peer_closed: true });
        }
        // Plaintext is never longer than the ciphertext it came in.
        plaintext.reserve(input.len() + self.pending.len());
        let (rest, progress) = if self.pending.is_empty() {
            let (used, progress) = self.process(input, plaintext, transmit)?;
            (&input[used..], progress)
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(input);
            let (used, progress) = self.process(&mut pending, plaintext, transmit)?;
            pending.drain(..used);
            if !pending.is_empty() {
                self.pending = pending;
            }
            (&[][..], progress)
        };
        self.peer_closed = progress.peer_closed;
        if progress.peer_closed {
            self.pending = Vec::new();
        } else if !rest.is_empty() {
            self.pending = rest.to_vec();
        }
        if self.pending.len() > MAX_PENDING {
            return Err(TlsError::Unfinished);
        }
        Ok(progress)
    }

    /// Runs rustls over `buffer` until it needs more bytes; returns how many it consumed.
    fn process(
        &mut self,
        buffer: &mut [u8],
        plaintext: &mut Vec<u8>,
        transmit: &mut Vec<u8>,
    ) -> Result<(usize, ReadProgress), TlsError> {
        let mut start = 0;
        let mut outcome = ReadProgress::default();
        loop {
            let status = self.conn.process_tls_records(&mut buffer[start..]);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(error) => {
                    // rustls queued an alert for the peer: hand it over before failing.
                    self.flush_alert(&mut buffer[start + discard..], transmit);
                    return Err(error.into());
                }
            };
            let done = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = match record {
                            Ok(record) => record,
                            Err(error) => {
                                drop(records);
                                self.flush_alert(&mut buffer[start + discard..], transmit);
                                return Err(error.into());
                            }
                        };
                        discard += record.discard;
                        plaintext.extend_from_slice(record.payload);
                    }
                    false
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_into(transmit, |out| encode.encode(out))?;
                    false
                }
                ConnectionState::TransmitTlsData(transmitted) => {
                    // The caller writes `transmit` before anything encrypted later.
                    transmitted.done();
                    false
                }
                ConnectionState::PeerClosed => {
                    outcome.peer_closed = true;
                    false
                }
                ConnectionState::ReadEarlyData(_) => return Err(TlsError::EarlyData),
                // WriteTraffic, BlockedHandshake, Closed: nothing more to do with this input.
                _ => true,
            };
            start += discard;
            if done {
                return Ok((start, outcome));
            }
        }
    }

    /// Encrypts `chunks`, in order, into one record stream appended to `out`: a chunk of at
    /// least [`DIRECT_CHUNK`] bytes is encrypted where it lies, shorter ones are joined first so
    /// that small frames share records. Room is reserved once, for these records and a
    /// close_notify after them. Records rustls has queued itself (a key update) come first.
    pub fn encrypt(&mut self, chunks: &[&[u8]], out: &mut Vec<u8>) -> Result<(), TlsError> {
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        out.reserve(total + (chunks.len() + total / MAX_FRAGMENT + 2) * RECORD_OVERHEAD);
        let mut joined = Vec::new();
        for chunk in chunks {
            if chunk.len() >= DIRECT_CHUNK {
                self.encrypt_one(&std::mem::take(&mut joined), out)?;
                self.encrypt_one(chunk, out)?;
            } else {
                joined.extend_from_slice(chunk);
            }
        }
        self.encrypt_one(&joined, out)
    }

    /// Encrypts `plaintext` (if any) into records appended to `out`.
    fn encrypt_one(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        if plaintext.is_empty() {
            return Ok(());
        }
        self.with_write_traffic(out, |traffic, out| {
            let records = plaintext.len().div_ceil(MAX_FRAGMENT);
            encrypt_into(out, plaintext.len() + records * RECORD_OVERHEAD, |buf| {
                traffic.encrypt(plaintext, buf)
            })
        })
    }

    /// Appends our close_notify to `out`, once; later calls add nothing.
    pub fn close_notify(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        if std::mem::replace(&mut self.close_notify_sent, true) {
            return Ok(());
        }
        self.with_write_traffic(out, |traffic, out| {
            encrypt_into(out, RECORD_OVERHEAD, |buf| traffic.queue_close_notify(buf))
        })
    }

    /// Brings the connection to its write state (encoding what rustls queued on the way) and
    /// runs `write` there.
    fn with_write_traffic(
        &mut self,
        out: &mut Vec<u8>,
        write: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> Result<(), TlsError>,
    ) -> Result<(), TlsError> {
        if self.failed {
            return Err(TlsError::Failed);
        }
        let mut write = Some(write);
        loop {
            // Every complete record has been processed on receipt, so what `pending` holds is
            // unfinished and yields no new state; it is passed so that rustls sees its input
            // unchanged.
            let status = self.conn.process_tls_records(&mut self.pending);
            debug_assert_eq!(status.discard, 0);
            match status.state? {
                ConnectionState::EncodeTlsData(mut encode) => encode_into(out, |buf| encode.encode(buf))?,
                ConnectionState::TransmitTlsData(transmitted) => transmitted.done(),
                ConnectionState::WriteTraffic(mut traffic) => {
                    let write = write.take().expect("the write state is reached once");
                    return write(&mut traffic, out);
                }
                other => return Err(TlsError::Write(format!("the session is in state {other:?}"))),
            }
        }
    }

    /// Encodes the alert rustls queued after a failure (a fatal error queues one at most;
    /// asking again would make rustls process the input again). `rest` is the input after
    /// what the failed call discarded: rustls must see its input unchanged (its handshake
    /// reassembly keeps offsets into it), even when it only hands out what it queued.
    fn flush_alert(&mut self, rest: &mut [u8], transmit: &mut Vec<u8>) {
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = self.conn.process_tls_records(rest).state {
            let _ = encode_into(transmit, |buf| encode.encode(buf));
        }
    }
}

/// Appends what `fill` writes to `out`, offering `room` bytes first and then as many as the
/// error it returns asks for (`required`).
fn append_growing<E: std::fmt::Display>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), TlsError> {
    loop {
        let start = out.len();
        out.resize(start + room, 0);
        let filled = fill(&mut out[start..]);
        out.truncate(start + *filled.as_ref().unwrap_or(&0));
        match filled {
            Ok(_) => return Ok(()),
            Err(error) => match required(&error) {
                Some(size) if size > room => room = size,
                _ => return Err(TlsError::Write(error.to_string())),
            },
        }
    }
}

/// Appends a record rustls encodes (a handshake message, an alert).
fn encode_into(out: &mut Vec<u8>, encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>) -> Result<(), TlsError> {
    append_growing(out, 512, encode, |e| match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
        _ => None,
    })
}

/// Appends records rustls encrypts, starting with `room` bytes.
fn encrypt_into(
    out: &mut Vec<u8>,
    room: usize,
    encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), TlsError> {
    append_growing(out, room, encrypt, |e| match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

    fn server() -> TlsSession {
        static CONFIG: std::sync::OnceLock<Arc<ServerConfig>> = std::sync::OnceLock::new();
        let config = CONFIG.get_or_init(|| {
            crate::tls::server_config(&format!("{DIR}/server.pem"), &format!("{DIR}/server.key")).unwrap()
        });
        TlsSession::new(config.clone()).unwrap()
    }

    fn client() -> ClientConnection {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(format!("{DIR}/ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
    }

    /// What the client has to send, as raw records.
    fn client_output(client: &mut ClientConnection) -> Vec<u8> {
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Feeds the server's records to the client and returns the plaintext it yields.
    fn client_input(client: &mut ClientConnection, mut records: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        while !records.is_empty() {
            client.read_tls(&mut records).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut plain);
        }
        plain
    }

    /// Runs the handshake, feeding the server `chunk` bytes at a time.
    fn handshake(server: &mut TlsSession, client: &mut ClientConnection, chunk: usize) {
        while client.is_handshaking() || server.is_handshaking() {
            let mut from_client = client_output(client);
            let mut transmit = Vec::new();
            let mut plaintext = Vec::new();
            for piece in from_client.chunks_mut(chunk) {
                server.read(piece, &mut plaintext, &mut transmit).unwrap();
            }
            assert!(plaintext.is_empty());
            client_input(client, &transmit);
        }
    }

    #[test]
    fn a_handshake_then_data_both_ways_even_with_records_split_across_reads() {
        for chunk in [1, 7, 100, 1 << 20] {
            let (mut server, mut client) = (server(), client());
            handshake(&mut server, &mut client, chunk);
            let message = vec![b'x'; 40_000];
            client.writer().write_all(&message).unwrap();
            let mut from_client = client_output(&mut client);
            let (mut plaintext, mut transmit) = (Vec::new(), Vec::new());
            for piece in from_client.chunks_mut(chunk) {
                server.read(piece, &mut plaintext, &mut transmit).unwrap();
            }
            assert_eq!(plaintext, message, "chunk {chunk}");
            assert_eq!(server.pending_capacity(), 0, "nothing held once the records are done");
            let mut records = Vec::new();
            server.encrypt(&[b"hello ", b"over ", b"tls"], &mut records).unwrap();
            server.encrypt(&[&message], &mut records).unwrap();
            let got = client_input(&mut client, &records);
            assert_eq!(got, [&b"hello over tls"[..], &message].concat());
        }
    }

    #[test]
    fn close_notify_goes_once_and_the_peers_is_reported() {
        let (mut server, mut client) = (server(), client());
        handshake(&mut server, &mut client, 1 << 20);
        let mut records = Vec::new();
        server.close_notify(&mut records).unwrap();
        let len = records.len();
        server.close_notify(&mut records).unwrap();
        assert_eq!(records.len(), len, "once");
        client_input(&mut client, &records);
        client.send_close_notify();
        let mut from_client = client_output(&mut client);
        let (mut plaintext, mut transmit) = (Vec::new(), Vec::new());
        let outcome = server.read(&mut from_client, &mut plaintext, &mut transmit).unwrap();
        assert!(outcome.peer_closed);
        // Whatever follows the close_notify is dropped, not held.
        let mut junk = vec![23u8; 1 << 20];
        let outcome = server.read(&mut junk, &mut plaintext, &mut transmit).unwrap();
        assert!(outcome.peer_closed);
        assert_eq!((plaintext.len(), server.pending_capacity()), (0, 0));
    }

    #[test]
    fn garbage_fails_with_an_alert_for_the_peer() {
        let mut server = server();
        let mut input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let (mut plaintext, mut transmit) = (Vec::new(), Vec::new());
        let error = server.read(&mut input, &mut plaintext, &mut transmit).unwrap_err();
        assert!(!error.reason().is_empty());
        assert_eq!(transmit.first(), Some(&21), "an alert record: {transmit:?}");
        assert!(plaintext.is_empty());
    }

    #[test]
    fn a_session_that_failed_reads_and_writes_nothing_more() {
        let (mut server, mut client) = (server(), client());
        handshake(&mut server, &mut client, 1 << 20);
        client.writer().write_all(b"a request split over two records").unwrap();
        let mut record = client_output(&mut client);
        let last = record.len() - 1;
        record[last] ^= 1; // the tag no longer matches
        let (mut plaintext, mut transmit) = (Vec::new(), Vec::new());
        assert!(server.read(&mut record, &mut plaintext, &mut transmit).is_err());
        // The alert for the peer, encrypted (TLS 1.3 records all look like application data).
        assert_eq!(transmit.first(), Some(&23));
        assert!(plaintext.is_empty());
        let mut out = Vec::new();
        assert!(matches!(server.encrypt(&[b"reply"], &mut out), Err(TlsError::Failed)));
        assert!(matches!(server.close_notify(&mut out), Err(TlsError::Failed)));
        assert!(matches!(
            server.read(&mut [23, 3, 3, 0, 1, 0], &mut plaintext, &mut transmit),
            Err(TlsError::Failed)
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn an_idle_session_holds_no_buffer() {
        let (mut server, mut client) = (server(), client());
        handshake(&mut server, &mut client, 1 << 20);
        assert_eq!(server.pending_capacity(), 0);
        // Half a record arrives: only that half is kept, and freed once the rest comes.
        client.writer().write_all(b"ping").unwrap();
        let mut from_client = client_output(&mut client);
        let half = from_client.len() / 2;
        let (mut plaintext, mut transmit) = (Vec::new(), Vec::new());
        let (first, second) = from_client.split_at_mut(half);
        server.read(first, &mut plaintext, &mut transmit).unwrap();
        assert!(server.pending_capacity() >= half);
        server.read(second, &mut plaintext, &mut transmit).unwrap();
        assert_eq!((plaintext.as_slice(), server.pending_capacity()), (&b"ping"[..], 0));
    }

    proptest::proptest! {
        /// Whatever a client sends before or instead of a hello, split however: no panic, and
        /// never more than MAX_PENDING held (plus the read that brought it).
        #[test]
        fn arbitrary_input_never_panics_and_holds_little(
            header in proptest::sample::select(vec![vec![], vec![22, 3, 1], vec![22, 3, 3, 0x40, 0], vec![22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3]]),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            split in 1usize..700,
        ) {
            let mut server = server();
            let mut input = [header, body].concat();
            let (mut plaintext, mut transmit) = (Vec::new(), Vec::new());
            for piece in input.chunks_mut(split) {
                if server.read(piece, &mut plaintext, &mut transmit).is_err() {
                    break;
                }
                proptest::prop_assert!(server.pending_capacity() <= MAX_PENDING + split);
            }
            proptest::prop_assert!(plaintext.is_empty(), "no application data without a handshake");
        }
    }
}
