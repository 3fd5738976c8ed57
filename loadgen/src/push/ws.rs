//! A WebSocket publisher connection: it writes `publish` commands for its share of the schedule
//! and matches the `published` and `error` replies to them by `ref`.

use std::collections::{HashMap, VecDeque};

use bytes::BytesMut;
use ringcast::proto::frame::encode_frame;
use ringcast::proto::{MessageKind, OpCode};

use super::envelope::{self, Frame};
use super::publish::{self, Publish};
use super::topic_name;
use crate::conn::Peer;
use crate::engine::Engine;
use crate::rng::WyRand;

/// One publisher connection's state.
#[derive(Debug, Default)]
pub struct WsPublisher {
    /// Publishes due and not written yet.
    due: VecDeque<Publish>,
    /// The topic of every publish written and not answered yet, by `ref`.
    unanswered: HashMap<u64, u32>,
    next_ref: u64,
    payload: Vec<u8>,
    command: Vec<u8>,
}

/// Hands `publish` to the publisher connection in engine slot `slot`, and wakes its writer; a
/// publish with no open connection to go on fails at once.
pub fn deliver(engine: &Engine, slot: usize, publish: Publish) {
    match engine.link(slot) {
        Some(link) if link.accepting() => {
            let Peer::Publisher(publisher) = &link.peer else {
                unreachable!("slot {slot} holds a publisher connection");
            };
            publisher.borrow_mut().due.push_back(publish);
            link.wake();
        }
        _ => publish::failed(engine, "publish_no_connection", 1),
    }
}

impl WsPublisher {
    /// Encodes every due publish into `buf` as a masked text frame (none once the window ended).
    pub fn fill(&mut self, engine: &Engine, buf: &mut BytesMut, rng: &mut WyRand) {
        if !publish::open(engine) {
            return;
        }
        let count = self.due.len() as u64;
        for p in self.due.drain(..) {
            self.payload.clear();
            publish::encode(engine, &p, &mut self.payload);
            self.command.clear();
            envelope::publish_command(&mut self.command, &topic_name(p.topic), &self.payload, self.next_ref);
            encode_frame(buf, true, OpCode::Text, &self.command, Some(rng.mask()));
            self.unanswered.insert(self.next_ref, p.topic);
            self.next_ref += 1;
        }
        if count > 0 {
            publish::written(engine, count);
        }
    }

    /// Handles a message frame from the server: replies to publishes.
    pub fn on_message(&mut self, engine: &Engine, kind: MessageKind, payload: &[u8]) {
        if kind != MessageKind::Text {
            return engine.error("unexpected_binary".into());
        }
        match envelope::parse(payload) {
            Err(reason) => engine.error(reason.into()),
            Ok(Frame::Published { reference, .. }) => match self.answer(reference) {
                Some(topic) => publish::acked(engine, topic),
                None => engine.error("unexpected_reply".into()),
            },
            Ok(Frame::Error { code, reference }) => match self.answer(reference) {
                Some(_) => publish::failed(engine, &format!("publish_{code}"), 1),
                None => engine.error(format!("server_error_{code}")),
            },
            Ok(Frame::Message { .. } | Frame::Gap { .. }) => engine.error("unexpected_message".into()),
            Ok(Frame::Notice) => {}
        }
    }

    /// The connection ended: publishes never written or never answered failed.
    pub fn finish(&self, engine: &Engine) {
        publish::failed(engine, "publish_not_sent", self.due.len() as u64);
        publish::failed(engine, "publish_unanswered", self.unanswered.len() as u64);
    }

    fn answer(&mut self, reference: Option<u64>) -> Option<u32> {
        self.unanswered.remove(&reference?)
    }
}
