//! ringcast: a thread-per-core io_uring WebSocket engine for very many connections.
//!
//! Layers, bottom up:
//! - [`proto`]: the sans-io RFC 6455 core (handshake, frame codec, masking, UTF-8, sessions).
//! - [`server`]: the thin I/O layer: per-core monoio runtimes, listeners, connection tasks.
//! - [`handler`]: the callback API an application implements.

pub mod proto;
