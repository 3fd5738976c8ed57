//! An accepted socket during its handshake phase, plain or TLS. The upgrade task reads the
//! request and writes its response through it: over TLS, rustls' handshake runs as its records
//! arrive, what is read is decrypted and what is written encrypted. At the upgrade the TLS
//! session moves into the connection's state, where the data paths go on with it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::Arc;

use monoio::net::TcpStream;

use super::core::CoreCtx;
use super::socket::{linger_close, write_all, write_response};
use super::sys::{recv_nonblocking, ReadOutcome};
use crate::tls::{TlsError, TlsSession};

/// The first byte of a TLS record carrying a handshake message (what a client hello starts with).
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// Why reading the request failed at the transport.
pub(crate) enum ReadFailure {
    /// The peer went away (or the socket failed).
    Aborted,
    /// The TLS handshake failed, or a record could not be read.
    Tls(TlsError),
    /// A TLS port got plain HTTP; the socket is plain from here on, for the 400 that answers.
    PlainOnTlsPort,
}

/// An accepted socket up to its upgrade.
pub(crate) struct Accepted {
    stream: TcpStream,
    fd: RawFd,
    tls: Option<Box<TlsSession>>,
    /// Whether any byte has been read yet (the first tells TLS from plain HTTP).
    started: bool,
}

impl Accepted {
    /// A plain socket.
    pub fn plain(stream: TcpStream) -> Accepted {
        Accepted {
            fd: stream.as_raw_fd(),
            stream,
            tls: None,
            started: false,
        }
    }

    /// A socket whose peer must start with a TLS handshake.
    pub fn tls(stream: TcpStream, config: Arc<rustls::ServerConfig>) -> Result<Accepted, TlsError> {
        let session = Box::new(TlsSession::new(config)?);
        Ok(Accepted {
            tls: Some(session),
            ..Accepted::plain(stream)
        })
    }

    /// Whether the socket speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Appends what the peer sent (decrypted, over TLS) to `into`, waiting for readability only
    /// while nothing has come. Over TLS, handshake records are answered meanwhile, and this
    /// returns once some application data has come.
    pub async fn read_available<H>(&mut self, core: &CoreCtx<H>, into: &mut Vec<u8>) -> Result<(), ReadFailure> {
        let mut transmit = Vec::new();
        let before = into.len();
        loop {
            let outcome = core.with_scratch(|scratch| {
                let outcome = recv_nonblocking(self.fd, scratch);
                let Ok(ReadOutcome::Data(n)) = outcome else {
                    return outcome.map(|o| (o, Ok(())));
                };
                let first_read = !std::mem::replace(&mut self.started, true);
                let plaintext = match &mut self.tls {
                    Some(_) if first_read && scratch[0] != TLS_HANDSHAKE_RECORD => Err(ReadFailure::PlainOnTlsPort),
                    Some(tls) => match tls.read(&mut scratch[..n], into, &mut transmit) {
                        // The peer ended TLS: nothing more can come.
                        Ok(progress) if progress.peer_closed && into.len() == before => Err(ReadFailure::Aborted),
                        Ok(_) => Ok(()),
                        Err(error) => Err(ReadFailure::Tls(error)),
                    },
                    None => {
                        into.extend_from_slice(&scratch[..n]);
                        Ok(())
                    }
                };
                Ok((ReadOutcome::Data(n), plaintext))
            });
            if !transmit.is_empty() {
                // Handshake flights, or the alert of a failed handshake (best effort).
                let sent = write_all(&self.stream, self.fd, &transmit).await;
                transmit.clear();
                if sent.is_err() && matches!(outcome, Ok((_, Ok(())))) {
                    return Err(ReadFailure::Aborted);
                }
            }
            match outcome {
                Ok((ReadOutcome::Data(_), Err(ReadFailure::PlainOnTlsPort))) => {
                    self.tls = None;
                    return Err(ReadFailure::PlainOnTlsPort);
                }
                Ok((ReadOutcome::Data(_), Err(failure))) => return Err(failure),
                Ok((ReadOutcome::Data(_), Ok(()))) if into.len() > before => return Ok(()),
                Ok((ReadOutcome::Data(_), Ok(()))) => {}
                Ok((ReadOutcome::WouldBlock, _)) => {
                    self.stream.readable(false).await.map_err(|_| ReadFailure::Aborted)?;
                }
                Ok((ReadOutcome::Eof, _)) | Err(_) => return Err(ReadFailure::Aborted),
            }
        }
    }

    /// `data` as it goes on the wire: encrypted over TLS.
    fn wire<'d>(&mut self, data: &'d [u8]) -> io::Result<std::borrow::Cow<'d, [u8]>> {
        let Some(tls) = &mut self.tls else {
            return Ok(data.into());
        };
        let mut records = Vec::new();
        tls.encrypt(&[data], &mut records).map_err(io::Error::other)?;
        Ok(records.into())
    }

    /// Writes all of `data`, waiting for writability as needed.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let wire = self.wire(data)?;
        write_all(&self.stream, self.fd, &wire).await
    }

    /// Writes a plain-HTTP response within the handshake timeout (see
    /// [`super::socket::write_response`]).
    pub async fn write_response<H>(&mut self, core: &CoreCtx<H>, peer: SocketAddr, data: &[u8]) -> io::Result<()> {
        let wire = self.wire(data)?;
        write_response(core, &self.stream, self.fd, peer, &wire).await
    }

    /// Ends the connection after a response: close_notify over TLS, then a half-close and
    /// input discarded until the peer closes (see [`super::socket::linger_close`]).
    pub async fn linger_close<H>(&mut self, core: &CoreCtx<H>) {
        if let Some(tls) = self.tls.as_mut().filter(|t| !t.is_handshaking()) {
            let mut records = Vec::new();
            if tls.close_notify(&mut records).is_ok() {
                let write = write_all(&self.stream, self.fd, &records);
                let _ = monoio::time::timeout(core.shared.config.close_timeout, write).await;
            }
        }
        linger_close(core, &self.stream, self.fd).await;
    }

    /// The descriptor (owned from here by the caller) and the TLS session, at the upgrade.
    pub fn into_parts(self) -> (RawFd, Option<Box<TlsSession>>) {
        (self.stream.into_raw_fd(), self.tls)
    }
}
