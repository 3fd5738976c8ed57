//! What `on_close` and the `close` log event report about a finished connection.

use std::time::Duration;

use crate::proto::close::CloseCode;

/// Messages and bytes a connection has received and sent (payload bytes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    /// Data messages received.
    pub messages_in: u64,
    /// Data messages queued for sending.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes queued for sending.
    pub bytes_out: u64,
}

/// Who or what ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The client sent a close frame.
    Client,
    /// The application (a handler) closed it.
    Server,
    /// It stopped answering heartbeats, or was idle past the idle timeout.
    Heartbeat,
    /// The peer broke the protocol, the socket failed, a timeout fired, or the handler panicked.
    Error,
    /// The server is shutting down.
    Shutdown,
}

impl ClosedBy {
    /// The lower-case name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedBy::Client => "client",
            ClosedBy::Server => "server",
            ClosedBy::Heartbeat => "heartbeat",
            ClosedBy::Error => "error",
            ClosedBy::Shutdown => "shutdown",
        }
    }
}

/// Everything known about a connection when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// Who ended it.
    pub closed_by: ClosedBy,
    /// The close code we sent, if we sent a close frame.
    pub code_sent: Option<CloseCode>,
    /// The reason we sent.
    pub reason_sent: String,
    /// The close code the peer sent (`Some(1005)` for a close frame without a code).
    pub code_received: Option<CloseCode>,
    /// The reason the peer sent.
    pub reason_received: String,
    /// The error class (`protocol_error`, `reset`, `close_timeout`, ...) when `closed_by` is `Error`.
    pub error: Option<&'static str>,
    /// How long the connection was open.
    pub duration: Duration,
    /// Its counters.
    pub stats: ConnStats,
}
