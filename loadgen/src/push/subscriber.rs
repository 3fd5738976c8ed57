//! A subscriber connection: subscribed to one topic, it accounts for the sequence number of
//! every message and records the publish-to-receive latency of each first arrival.
//!
//! A frame that cannot be used (malformed, on another topic, an `error` notice) is counted as
//! an error by reason; the connection stays open so one bad frame does not turn into losses.

use ringcast::proto::MessageKind;

use super::envelope::{self, Frame};
use super::seq::{Arrival, SeqTracker};
use super::{clock, payload, topic_number};
use crate::engine::Engine;

/// One subscription's state.
#[derive(Debug)]
pub struct Subscriber {
    topic: u32,
    seq: SeqTracker,
}

impl Subscriber {
    /// A subscriber of topic number `topic`.
    pub fn new(topic: u32) -> Subscriber {
        Subscriber {
            topic,
            seq: SeqTracker::default(),
        }
    }

    /// Handles a message frame from the server.
    pub fn on_message(&mut self, engine: &Engine, kind: MessageKind, payload: &[u8]) {
        if kind != MessageKind::Text {
            return engine.error("unexpected_binary".into());
        }
        match envelope::parse(payload) {
            Err(reason) => engine.error(reason.into()),
            Ok(Frame::Message { topic, .. } | Frame::Gap { topic, .. }) if topic_number(&topic) != Some(self.topic) => {
                engine.error("wrong_topic".into());
            }
            Ok(Frame::Message { epoch, seq, data, .. }) => {
                if self.seq.record(epoch, seq) == Arrival::Duplicate {
                    return;
                }
                match payload::parse(data.as_bytes()) {
                    Some(sent_ns) => engine.record_message(engine.stamp(clock::instant(sent_ns)), data.len()),
                    None => engine.error("bad_payload".into()),
                }
            }
            Ok(Frame::Gap { epoch, next, .. }) => self.seq.gap(epoch, next),
            Ok(Frame::Error { code, .. }) => engine.error(format!("server_error_{code}")),
            Ok(Frame::Published { .. }) => engine.error("unexpected_reply".into()),
            Ok(Frame::Notice) => {}
        }
    }

    /// The connection ended: adds the subscription to the core's counts.
    pub fn finish(&self, engine: &Engine) {
        engine.push_counts().subscription_ended(self.topic, &self.seq.finish());
    }
}
