//! [`PushPolicy`]: what an application decides in push mode — who may subscribe to what, and
//! what a publish becomes (changed, or refused) — and the token grants checked before it.

use super::envelope::Payload;
use crate::api::ConnMeta;
use crate::proto::handshake::Request;

/// A subscription or publish the policy refused, with a reason for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// A publish before it is sequenced: the policy may change its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The topic (already validated).
    pub topic: String,
    /// The payload subscribers will get.
    pub payload: Payload,
}

/// Where a publish came from.
#[derive(Debug, Clone, Copy)]
pub enum PublishSource<'a> {
    /// `POST /publish...`: the HTTP request.
    Http(&'a Request),
    /// A WebSocket client's `publish` command: its connection.
    WebSocket(&'a ConnMeta),
}

/// Application decisions in push mode; one instance per core (no locks needed). The defaults
/// allow everything. A connection admitted with a token is held to its `sub_topics` and
/// `pub_topics` claims first ([`token_allows_subscribe`], [`token_allows_publish`]): a topic
/// outside them is refused before the policy is asked.
pub trait PushPolicy: 'static {
    /// May the connection subscribe to `topic`? Asked for every topic of `?topics=` when it
    /// opens and for every `subscribe` command.
    fn authorize_subscribe(&mut self, meta: &ConnMeta, topic: &str) -> Result<(), Refusal> {
        let _ = (meta, topic);
        Ok(())
    }

    /// A publish about to be sequenced: change `publish.payload`, or refuse it (HTTP 403, or
    /// a `forbidden` error to the WebSocket publisher).
    fn on_publish(&mut self, publish: &mut Publish, source: PublishSource<'_>) -> Result<(), Refusal> {
        let _ = (publish, source);
        Ok(())
    }
}

/// Refuses a subscription outside the connection's token's `sub_topics` claim.
pub fn token_allows_subscribe(meta: &ConnMeta, topic: &str) -> Result<(), Refusal> {
    match meta.token() {
        Some(token) if !token.may_subscribe(topic) => {
            Err(Refusal("the token does not allow subscribing to this topic".into()))
        }
        _ => Ok(()),
    }
}

/// Refuses a WebSocket publish outside the connection's token's `pub_topics` claim.
pub fn token_allows_publish(meta: &ConnMeta, topic: &str) -> Result<(), Refusal> {
    match meta.token() {
        Some(token) if !token.may_publish(topic) => {
            Err(Refusal("the token does not allow publishing to this topic".into()))
        }
        _ => Ok(()),
    }
}

/// The policy of `--mode push`: everything allowed (WebSocket publishing is still gated by
/// `push_ws_publish`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenPolicy;

impl PushPolicy for OpenPolicy {}
