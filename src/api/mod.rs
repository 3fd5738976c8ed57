//! The types the public API hands out: connection ids, metadata, messages, close records and
//! send errors. Leaf modules: they depend on nothing in the engine, so the engine's internals
//! can use them without importing the handler layer back.

mod close;
mod error;
mod id;
mod message;
mod meta;

pub use close::{CloseInfo, ClosedBy, ConnStats};
pub use error::SendError;
pub use id::ConnId;
pub use message::Message;
pub use meta::ConnMeta;
