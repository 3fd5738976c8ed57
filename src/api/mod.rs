//! The types the public API hands out: connection ids, metadata, messages, close records, send
//! errors, HTTP replies and posts. Leaf modules: they depend on nothing in the engine, so the engine's internals
//! can use them without importing the handler layer back.

mod close;
mod error;
mod http;
mod id;
mod message;
mod meta;
mod post;

pub use close::{CloseInfo, ClosedBy, ConnStats};
pub use error::{PostError, SendError};
pub use http::{HttpReply, HttpToken, Response};
pub use id::{ConnId, ParseConnIdError};
pub use message::Message;
pub use meta::ConnMeta;
pub use post::Post;
