//! ringcast: a thread-per-core io_uring WebSocket engine for very many connections.
//!
//! Layers, bottom up:
//! - [`proto`]: the sans-io RFC 6455 core (handshake, frame codec, masking, UTF-8, sessions).
//! - [`server`]: the I/O layer: per-core monoio runtimes, listeners, the per-connection state
//!   machine and its two thin data-path drivers (io_uring, epoll), cross-core inboxes.
//! - [`api`]: the types the API hands out (ids, metadata, messages, close records, errors).
//! - [`handler`]: the callback API an application implements.
//! - [`metrics`]: per-core counters exported in the Prometheus format.
//! - [`config`]: the embedded default configuration and its overrides.
//! - [`logging`]: a log sink that never blocks the threads that log.
//! - [`access`]: access control before the upgrade (trusted proxies, handshake rate, origins,
//!   JWTs and what they grant, the admin token).
//! - [`push`]: push mode (topics, publishing, fan-out, history and resume, Redis backplane).
//! - [`timer`]: the per-core timing wheel behind heartbeats and idle timeouts.

pub mod access;
pub mod api;
pub mod config;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod proto;
pub mod push;
pub mod server;
pub mod timer;
pub mod tls;

pub use config::Config;
pub use handler::{Context, EchoHandler, Handler, Message};
pub use server::{DeliveryHandle, RunningServer, Server, ServerError};
