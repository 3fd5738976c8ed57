//! TLS for `wss://` (and `https://` on the WebSocket port), through rustls.
//!
//! [`server_config`] loads the PEM certificate chain and key once at start-up; every
//! connection then gets a [`TlsSession`], a sans-io wrapper around rustls' *unbuffered*
//! server connection: the caller owns every buffer. Ciphertext is decrypted where the data
//! path received it (an io_uring provided buffer, or the epoll path's scratch buffer) and
//! only an unfinished record is copied aside, so an idle TLS connection holds its keys and
//! no buffer. Outbound frames stay plaintext in the connection's queue until the driver
//! writes them; they are encrypted then, all of a turn's frames into one record stream.

mod config;
mod session;

pub use config::{server_config, TlsConfigError};
pub(crate) use session::{TlsError, TlsSession};
