//! How a connection's open phase ended: the decision both data paths hand to the closing
//! phase.

use std::io;

use super::conn::{ConnState, EngineClose};
use super::input::InputError;
use crate::proto::session::ProtocolError;

/// How the open phase of a WebSocket ended.
pub(crate) enum Ending {
    /// The client sent a valid close frame.
    ClientClose,
    /// A handler queued a close frame.
    ServerClose,
    /// The engine closed it (heartbeat, idle, slow consumer, shutdown).
    Engine(EngineClose),
    /// The client broke the protocol.
    Violation(ProtocolError),
    /// The socket ended or failed without a close handshake.
    Transport(TransportError),
}

impl From<InputError> for Ending {
    fn from(error: InputError) -> Ending {
        match error {
            InputError::Protocol(violation) => Ending::Violation(violation),
            InputError::Tls => Ending::Transport(TransportError::Tls),
            InputError::TlsClosed => Ending::Transport(TransportError::Eof),
        }
    }
}

impl Ending {
    /// Whether the connection's input can no longer be trusted to decode (a protocol
    /// violation, a panicking handler, a broken TLS session): what still arrives is dropped.
    pub(crate) fn input_untrusted(&self) -> bool {
        matches!(
            self,
            Ending::Violation(_)
                | Ending::Engine(EngineClose::HandlerPanic | EngineClose::TlsFailed)
                | Ending::Transport(TransportError::Tls)
        )
    }

    /// Whether the open phase of `c` is over, and how: the peer's close frame arrived, the
    /// engine closed it, or a handler queued a close frame.
    pub(crate) fn of(c: &ConnState) -> Option<Ending> {
        if c.parts.as_ref().is_some_and(|p| p.session.close_received()) {
            Some(Ending::ClientClose)
        } else if let Some(why) = c.engine_close() {
            Some(Ending::Engine(why))
        } else if c.close_sent() {
            Some(Ending::ServerClose)
        } else {
            None
        }
    }
}

/// A socket that ended without a close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportError {
    /// The peer closed TCP without a close frame (1006 from its side).
    Eof,
    /// The peer reset the connection.
    Reset,
    /// Another read failure.
    Read,
    /// A write failed.
    Write,
    /// A TLS record could not be read.
    Tls,
}

impl TransportError {
    pub fn from_read(error: &io::Error) -> TransportError {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => TransportError::Reset,
            _ => TransportError::Read,
        }
    }

    pub fn from_write(error: &io::Error) -> TransportError {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => TransportError::Reset,
            _ => TransportError::Write,
        }
    }

    /// The error class named in logs and `CloseInfo::error`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportError::Eof => "eof_without_close",
            TransportError::Reset => "reset",
            TransportError::Read => "read_error",
            TransportError::Write => "write_error",
            TransportError::Tls => "tls_error",
        }
    }
}
