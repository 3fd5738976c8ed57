//! [`SendError`]: why a send was refused.

use super::ConnId;

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection has sent its close frame (or is gone); nothing may follow a close frame.
    #[error("connection {0} is closing or closed")]
    Closed(ConnId),
    /// The connection's outbound queue is over `max_queued_bytes`: it was closed with
    /// `slow_consumer_close_code` (1008 by default).
    #[error("connection {0} is too slow to drain its queue and was closed")]
    SlowConsumer(ConnId),
    /// The id names a core this server does not run.
    #[error("connection {0} names a core this server does not run")]
    NoSuchCore(ConnId),
}

/// Why a [`crate::api::Post`] could not be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The server does not run this core.
    #[error("core {0} is not run by this server")]
    NoSuchCore(usize),
}
