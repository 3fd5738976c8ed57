//! The sans-io core of RFC 6455: pure functions and state machines over bytes.
//!
//! Nothing in this module touches a socket, a runtime or a clock, so every rule here is
//! unit-testable and fuzzable on plain byte slices. The server's I/O layer (`crate::server`)
//! and the bundled load generator both drive these types.

pub mod close;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod session;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use frame::{FrameHeader, OpCode};
pub use session::{Event, MessageKind, ProtocolError, Role, Session};
