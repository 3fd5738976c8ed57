//! [`PushService`]: the push mode handler. One per core: it keeps the core's subscribers,
//! answers subscribe/unsubscribe/publish commands and `POST /publish`, and writes each
//! fan-out it receives from the hub to the core's subscribers.

use std::cell::Cell;
use std::sync::Arc;

use bytes::Bytes;

use super::control::{parse_command, Command, CommandError};
use super::envelope::{Notice, Payload};
use super::hub::{Fanout, Hub};
use super::policy::{token_allows_publish, token_allows_subscribe, Publish, PublishSource, PushPolicy};
use super::publish::{is_publish_path, parse_publish, publish_response, Outcome};
use super::query::{parse_initial_topics, Since};
use super::redis::RedisLink;
use super::subscribers::{JoinOutcome, SkipThrough, Subscribers};
use crate::api::{CloseInfo, ConnId, HttpReply, HttpToken, Message, Post, Response};
use crate::config::{Config, SlowConsumerPolicy};
use crate::handler::{Context, CoreContext, Handler};
use crate::metrics::Counter;
use crate::proto::handshake::{HttpError, Request};

/// Bits of a shed key that hold the sequence number; the topic's slot is above them.
const SHED_SEQ_BITS: u32 = 40;

/// The push settings every core's service reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PushSettings {
    pub ws_publish: bool,
    pub slow_consumer: SlowConsumerPolicy,
    pub max_topics_per_connection: usize,
}

impl PushSettings {
    pub fn from_config(config: &Config) -> PushSettings {
        PushSettings {
            ws_publish: config.push_ws_publish,
            slow_consumer: config.push_slow_consumer,
            max_topics_per_connection: config.push_max_topics_per_connection,
        }
    }
}

/// Who waits for the outcome of publishes sequenced elsewhere (in Redis).
#[derive(Debug)]
pub(crate) enum ReplyTo {
    /// An HTTP request on the core (`single`: `/publish/{topic}` rather than a batch).
    Http { token: HttpToken, single: bool },
    /// A WebSocket publisher on the core.
    WebSocket {
        id: ConnId,
        reference: Option<serde_json::Value>,
    },
}

/// Publishes to sequence off the core, and where the outcome goes.
#[derive(Debug)]
pub(crate) struct PublishJob {
    pub core: usize,
    pub reply: ReplyTo,
    pub items: Vec<Publish>,
}

/// The outcome of a [`PublishJob`], posted back to its core.
#[derive(Debug)]
pub(crate) struct PublishDone {
    pub reply: ReplyTo,
    pub results: Vec<(String, Outcome)>,
}

/// The push mode handler of one core, with the application's [`PushPolicy`].
pub struct PushService<P> {
    core: usize,
    hub: Arc<Hub>,
    redis: Option<RedisLink>,
    policy: P,
    subscribers: Subscribers,
    settings: PushSettings,
}

impl<P: PushPolicy> PushService<P> {
    pub(crate) fn new(
        core: usize,
        hub: Arc<Hub>,
        redis: Option<RedisLink>,
        policy: P,
        settings: PushSettings,
    ) -> PushService<P> {
        PushService {
            core,
            hub,
            redis,
            policy,
            subscribers: Subscribers::default(),
            settings,
        }
    }

    /// Subscribes the current connection to `topic`: `subscribed`, then a gap notice and the
    /// missed messages when it resumes.
    fn subscribe(
        &mut self,
        cx: &mut Context<'_>,
        topic: String,
        since: Option<Since>,
        reference: &Option<serde_json::Value>,
    ) {
        let id = cx.id();
        let refuse = |code: &'static str, message: String| Notice::Error {
            code,
            message,
            topic: Some(topic.clone()),
            reference: reference.clone(),
        };
        if let Err(refusal) = token_allows_subscribe(cx.meta(), &topic) {
            cx.engine().counters().inc(Counter::RefusedTopic);
            return send_notice(cx.engine(), id, &refuse("forbidden", refusal.0));
        }
        if let Err(refusal) = self.policy.authorize_subscribe(cx.meta(), &topic) {
            return send_notice(cx.engine(), id, &refuse("forbidden", refusal.0));
        }
        let member = self
            .subscribers
            .topic_mut(&topic)
            .is_some_and(|(_, t)| t.members.contains_key(&id));
        if !member && self.subscribers.count_of(id) >= self.settings.max_topics_per_connection {
            let limit = self.settings.max_topics_per_connection;
            return send_notice(
                cx.engine(),
                id,
                &refuse("too_many_topics", format!("at most {limit} topics per connection")),
            );
        }
        let joined = match self.hub.join(&topic, self.core, since) {
            Ok(joined) => joined,
            Err(error) => return send_notice(cx.engine(), id, &refuse("unavailable", error.to_string())),
        };
        let skip = SkipThrough {
            epoch: joined.epoch,
            seq: joined.seq,
        };
        let joined_now = self
            .subscribers
            .join(&topic, id, skip, self.settings.max_topics_per_connection);
        debug_assert_ne!(joined_now, JoinOutcome::TooMany, "checked above");
        let subscribed = Notice::Subscribed {
            topic: topic.clone(),
            epoch: joined.epoch,
            seq: joined.seq,
            reference: reference.clone(),
        };
        send_notice(cx.engine(), id, &subscribed);
        if let Some(next) = joined.gap {
            cx.engine().counters().inc(Counter::PushGapNotices);
            let gap = Notice::Gap {
                topic,
                epoch: joined.epoch,
                next,
            };
            send_notice(cx.engine(), id, &gap);
        }
        for frame in joined.replay {
            let _ = cx.send_frame(frame);
        }
    }

    fn unsubscribe(&mut self, cx: &mut Context<'_>, topic: String, reference: &Option<serde_json::Value>) {
        let id = cx.id();
        let (was, emptied) = self.subscribers.leave(&topic, id);
        if emptied {
            self.hub.leave(&topic, self.core);
        }
        let notice = match was {
            true => Notice::Unsubscribed {
                topic,
                reference: reference.clone(),
            },
            false => Notice::Error {
                code: "not_subscribed",
                message: "not subscribed to this topic".into(),
                topic: Some(topic),
                reference: reference.clone(),
            },
        };
        send_notice(cx.engine(), id, &notice);
    }

    fn publish_from_client(
        &mut self,
        cx: &mut Context<'_>,
        topic: String,
        data: String,
        reference: Option<serde_json::Value>,
    ) {
        let id = cx.id();
        let error = |code: &'static str, message: String, topic: &str| Notice::Error {
            code,
            message,
            topic: Some(topic.to_owned()),
            reference: reference.clone(),
        };
        if !self.settings.ws_publish {
            let notice = error(
                "publish_disabled",
                "publishing from WebSocket clients is off (push_ws_publish)".into(),
                &topic,
            );
            return send_notice(cx.engine(), id, &notice);
        }
        if let Err(refusal) = token_allows_publish(cx.meta(), &topic) {
            let counters = cx.engine().counters();
            counters.inc(Counter::RefusedTopic);
            counters.inc(Counter::PushPublishesRefused);
            return send_notice(cx.engine(), id, &error("forbidden", refusal.0, &topic));
        }
        let mut publish = Publish {
            topic,
            payload: Payload::Text(data),
        };
        if let Err(refusal) = self
            .policy
            .on_publish(&mut publish, PublishSource::WebSocket(cx.meta()))
        {
            cx.engine().counters().inc(Counter::PushPublishesRefused);
            return send_notice(cx.engine(), id, &error("forbidden", refusal.0, &publish.topic));
        }
        let reply = ReplyTo::WebSocket { id, reference };
        if let Some(done) = self.sequence(cx.engine(), reply, vec![publish]) {
            self.reply(cx.engine(), &done);
        }
    }

    /// Sequences publishes: here at once (no Redis: returns the outcome), or through Redis
    /// (the outcome is posted back to this core later; returns `None`).
    fn sequence(&mut self, cx: &mut CoreContext<'_>, reply: ReplyTo, items: Vec<Publish>) -> Option<PublishDone> {
        cx.counters().add(Counter::PushPublishes, items.len() as u64);
        let job = PublishJob {
            core: self.core,
            reply,
            items,
        };
        let job = match &self.redis {
            Some(link) => link.submit(job)?,
            None => job,
        };
        let results = job
            .items
            .iter()
            .map(|p| (p.topic.clone(), self.hub.publish_local(&p.topic, &p.payload)))
            .collect();
        Some(PublishDone {
            reply: job.reply,
            results,
        })
    }

    /// Gives publish outcomes to whoever waits for them on this core.
    fn reply(&mut self, cx: &mut CoreContext<'_>, done: &PublishDone) {
        match &done.reply {
            ReplyTo::Http { token, single } => {
                cx.complete_http(*token, publish_response(*single, &done.results));
            }
            ReplyTo::WebSocket { id, reference } => {
                for (topic, outcome) in &done.results {
                    let topic = topic.clone();
                    let notice = match outcome {
                        Ok(at) => Notice::Published {
                            topic,
                            epoch: at.epoch,
                            seq: at.seq,
                            reference: reference.clone(),
                        },
                        Err(error) => Notice::Error {
                            code: "unavailable",
                            message: error.to_string(),
                            topic: Some(topic),
                            reference: reference.clone(),
                        },
                    };
                    send_notice(cx, *id, &notice);
                }
            }
        }
    }

    /// Writes one published message to every subscriber of its topic on this core (the same
    /// frame to each; the driver batches the sends of the turn).
    fn fan_out(&mut self, cx: &mut CoreContext<'_>, fanout: &Fanout) {
        let Some((index, topic)) = self.subscribers.topic_mut(&fanout.topic) else {
            return;
        };
        topic.epoch = fanout.epoch;
        let subscribers = &self.subscribers;
        let Some(topic) = subscribers.by_index(index) else {
            return;
        };
        let due = topic
            .members
            .iter()
            .filter(|(_, skip)| !skip.covers(fanout.epoch, fanout.seq))
            .map(|(&id, _)| id);
        let (delivered, gaps) = match self.settings.slow_consumer {
            SlowConsumerPolicy::Close => (cx.send_to_each(due, &fanout.frame), 0),
            SlowConsumerPolicy::Drop => {
                let key = (((index + 1) as u64) << SHED_SEQ_BITS) | (fanout.seq & ((1 << SHED_SEQ_BITS) - 1));
                let gaps = Cell::new(0);
                let notices = |keys: &[u64]| {
                    let notices = gap_notices(subscribers, keys);
                    gaps.set(gaps.get() + notices.len());
                    notices
                };
                let sent = due
                    .filter(|&id| cx.send_sheddable(id, fanout.frame.clone(), key, notices).is_ok())
                    .count();
                (sent, gaps.get())
            }
        };
        if delivered > 0 {
            cx.note_fanout(fanout.published_at);
        }
        let counters = cx.counters();
        counters.add(Counter::PushDeliveries, delivered as u64);
        counters.add(Counter::PushGapNotices, gaps as u64);
    }
}

/// One gap notice per topic among the shed frames' keys, in order of first appearance: the
/// next sequence the subscriber gets is one past the last one shed.
fn gap_notices(subscribers: &Subscribers, keys: &[u64]) -> Vec<Bytes> {
    let mut last_shed: Vec<(usize, u64)> = Vec::new();
    for &key in keys {
        let (index, seq) = ((key >> SHED_SEQ_BITS) as usize - 1, key & ((1 << SHED_SEQ_BITS) - 1));
        match last_shed.iter_mut().find(|(i, _)| *i == index) {
            Some(entry) => entry.1 = entry.1.max(seq),
            None => last_shed.push((index, seq)),
        }
    }
    last_shed
        .into_iter()
        .filter_map(|(index, seq)| {
            let topic = subscribers.by_index(index)?;
            let notice = Notice::Gap {
                topic: topic.name.to_string(),
                epoch: topic.epoch,
                next: seq + 1,
            };
            Some(notice.to_frame())
        })
        .collect()
}

fn send_notice(cx: &mut CoreContext<'_>, id: ConnId, notice: &Notice) {
    let _ = cx.send_to(id, notice.to_frame());
}

fn command_error(error: CommandError) -> Notice {
    Notice::Error {
        code: error.code,
        message: error.message,
        topic: error.topic,
        reference: error.reference,
    }
}

impl<P: PushPolicy> Handler for PushService<P> {
    fn check_upgrade(&mut self, request: &Request) -> Result<(), HttpError> {
        parse_initial_topics(request.query.as_deref(), self.settings.max_topics_per_connection)
            .map(|_| ())
            .map_err(|e| HttpError::new(400, e.to_string()))
    }

    fn on_http(&mut self, cx: &mut CoreContext<'_>, request: &Request, body: &[u8]) -> Option<HttpReply> {
        if !is_publish_path(&request.path) {
            return None;
        }
        let mut items = match parse_publish(request, body) {
            Ok(items) => items,
            Err(response) => return Some(HttpReply::Ready(response)),
        };
        for publish in &mut items {
            if let Err(refusal) = self.policy.on_publish(publish, PublishSource::Http(request)) {
                cx.counters().inc(Counter::PushPublishesRefused);
                return Some(HttpReply::Ready(Response::text(403, format!("{}\n", refusal.0))));
            }
        }
        let single = request.path != "/publish";
        let token = cx.defer_http();
        let reply = ReplyTo::Http { token, single };
        if let Some(done) = self.sequence(cx, reply, items) {
            self.reply(cx, &done);
        }
        Some(HttpReply::Pending(token))
    }

    fn on_post(&mut self, cx: &mut CoreContext<'_>, post: &Post) {
        if let Some(fanout) = post.downcast_ref::<Fanout>() {
            self.fan_out(cx, fanout);
        } else if let Some(done) = post.downcast_ref::<PublishDone>() {
            self.reply(cx, done);
        }
    }

    fn on_open(&mut self, cx: &mut Context<'_>) {
        let max = self.settings.max_topics_per_connection;
        // Checked in check_upgrade: the query parses.
        let initial = parse_initial_topics(cx.meta().query(), max).unwrap_or_default();
        for (topic, since) in initial.topics {
            self.subscribe(cx, topic, since, &None);
        }
    }

    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            cx.engine().counters().inc(Counter::PushCommandErrors);
            let notice = command_error(CommandError::new(
                "binary_not_supported",
                "commands are JSON text frames",
            ));
            let id = cx.id();
            return send_notice(cx.engine(), id, &notice);
        };
        let request = match parse_command(text) {
            Ok(request) => request,
            Err(error) => {
                cx.engine().counters().inc(Counter::PushCommandErrors);
                let id = cx.id();
                return send_notice(cx.engine(), id, &command_error(error));
            }
        };
        match request.command {
            Command::Subscribe { topics } => {
                for (topic, since) in topics {
                    self.subscribe(cx, topic, since, &request.reference);
                }
            }
            Command::Unsubscribe { topics } => {
                for topic in topics {
                    self.unsubscribe(cx, topic, &request.reference);
                }
            }
            Command::Publish { topic, data } => self.publish_from_client(cx, topic, data, request.reference),
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, info: &CloseInfo) {
        let _ = info;
        for topic in self.subscribers.leave_all(cx.id()) {
            self.hub.leave(&topic, self.core);
        }
    }
}
