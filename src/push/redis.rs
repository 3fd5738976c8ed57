//! The Redis backplane: fan-out across nodes through Redis pub/sub, with publishes sequenced
//! in Redis so that every node delivers the same (epoch, seq) and history can be resumed on
//! any node.
//!
//! - A publish runs one Lua script: the topic's epoch and counter live in a hash, its history in
//!   a stream (`MAXLEN` = `push_history_size`, expiring after `push_history_ttl`), and the
//!   sequenced message is `PUBLISH`ed on the cluster's one channel.
//! - Every node subscribes to that channel and hands what arrives to its [`Hub`] (which frames
//!   it once and fans it out to the cores), so every node mirrors every topic's history.
//! - On every (re)connect the node resyncs: for each topic in Redis or held here it reads the
//!   stream entries after the last one it took from Redis (before an outage too), so messages
//!   published while it was cut off are not lost and those it delivered are not delivered
//!   again. Publishes go through Redis again from the moment the node is subscribed, before
//!   the resync (none is sequenced locally while it catches up).
//! - A publish Redis acknowledged is delivered here even if its copy never comes back on the
//!   channel: Redis writes the answer to the publisher and the message to subscribers
//!   separately, the answer first, so a Redis killed or hung between the two has sequenced
//!   (and acknowledged) a message this node's subscriber never receives. The publisher notes
//!   every acknowledged publish until the channel brings it; when the subscription ends, the
//!   subscriber hands what is still unseen to the hub, in order, and only then does the
//!   publisher sequence anything locally.
//! - Redis unreachable: publishes are sequenced locally under a new epoch (local delivery keeps
//!   working; subscribers see the epoch change), the node says so in `/readyz`, a log line
//!   and `ringcast_redis_connected`, and it reconnects with backoff (0.1 s doubling to 5 s).
//!
//! Both threads use the synchronous `redis` client: no second async runtime, and no Redis
//! call ever runs on a core.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use redis::{Client, Commands, Connection, Script};

use super::envelope::{Epoch, Payload};
use super::hub::{HistorySettings, Hub, Sequenced, TopicLimit};
use super::service::{PublishDone, PublishJob};
use crate::metrics::MetricSource;

/// Sequences, stores and publishes one message (see the module documentation).
/// KEYS: meta hash, history stream. ARGV: payload, kind (t/b), history size, ttl seconds,
/// epoch to use if the topic has none, channel, topic.
const PUBLISH_SCRIPT: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local size = tonumber(ARGV[3])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, seq .. '-1', 'k', ARGV[2], 'p', ARGV[1])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  if size > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
end
redis.call('PUBLISH', ARGV[6], ARGV[2] .. ' ' .. epoch .. ' ' .. seq .. ' ' .. ARGV[7] .. '\n' .. ARGV[1])
return {epoch, seq}
"#;

/// How long a connect, read or write to Redis may take before the link counts as down.
const IO_TIMEOUT: Duration = Duration::from_millis(1000);
/// The first and the longest wait between reconnect attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// How often the subscriber thread looks at the stop flag while the channel is quiet.
const POLL: Duration = Duration::from_millis(200);
/// How long a quiet channel goes before the subscriber pings Redis (a half-open link shows up).
const QUIET_PING: Duration = Duration::from_secs(2);

/// The link's state, shared by the two threads, `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    /// Connected and caught up (`/readyz`, `ringcast_redis_connected`).
    up: AtomicBool,
    connects: AtomicU64,
    received: AtomicU64,
    local_fallbacks: AtomicU64,
    last_error: Mutex<String>,
    /// The subscription (while it runs, publishes go through Redis: from before the resync,
    /// so that none is sequenced locally while the node catches up) and the acknowledged
    /// publishes it has not brought yet.
    handoff: Mutex<Handoff>,
    /// Signalled when [`Handoff::unseen`] empties.
    all_seen: Condvar,
}

/// What the publisher and the subscriber threads hand each other about the subscription.
#[derive(Debug, Default)]
struct Handoff {
    /// Counts subscriptions: the one running, or the last one.
    link: u64,
    /// Whether subscription `link` runs (its messages are taken from the channel).
    live: bool,
    /// Publishes Redis acknowledged during subscription `link` whose copy the channel has not
    /// brought yet, in the order Redis sequenced them.
    unseen: Vec<Unseen>,
}

/// A publish Redis sequenced and acknowledged, kept until this node has taken it.
#[derive(Debug)]
struct Unseen {
    topic: String,
    at: Sequenced,
    payload: Payload,
}

impl Unseen {
    /// Whether taking `at` of `topic` takes this one too (the channel keeps Redis's order).
    fn covered_by(&self, topic: &str, at: Sequenced) -> bool {
        self.topic == topic && self.at.epoch == at.epoch && self.at.seq <= at.seq
    }
}

impl LinkState {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn handoff(&self) -> MutexGuard<'_, Handoff> {
        self.handoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new subscription runs: its channel brings every message Redis sequences from now on.
    fn start_link(&self) {
        let mut handoff = self.handoff();
        handoff.link += 1;
        handoff.live = true;
    }

    /// The subscription has ended: nothing more comes from its channel, so the publishes
    /// Redis acknowledged that it did not bring are handed to the hub now, in order (before
    /// the publisher sequences anything locally).
    fn end_link(&self, hub: &Hub) {
        let mut handoff = self.handoff();
        handoff.live = false;
        for unseen in handoff.unseen.drain(..) {
            let _ = hub.accept_sequenced(&unseen.topic, unseen.at, &unseen.payload);
        }
        self.all_seen.notify_all();
    }

    /// Takes a message Redis sequenced (from the channel or a resync) into the hub, and
    /// forgets the acknowledged publishes it covers.
    fn take(&self, hub: &Hub, topic: &str, at: Sequenced, payload: &Payload) -> Result<bool, TopicLimit> {
        let mut handoff = self.handoff();
        let taken = hub.accept_sequenced(topic, at, payload);
        if !handoff.unseen.is_empty() {
            handoff.unseen.retain(|u| !u.covered_by(topic, at));
            if handoff.unseen.is_empty() {
                self.all_seen.notify_all();
            }
        }
        taken
    }

    /// The number of the running subscription, if one runs.
    fn live_link(&self) -> Option<u64> {
        let handoff = self.handoff();
        handoff.live.then_some(handoff.link)
    }

    /// Redis acknowledged `at` of `topic`, published on a connection made during subscription
    /// `link`: kept until the channel brings it, or handed to the hub at once if that
    /// subscription has ended (nothing else would deliver it).
    fn acknowledged(&self, hub: &Hub, link: u64, topic: &str, at: Sequenced, payload: &Payload) {
        let mut handoff = self.handoff();
        if handoff.live && handoff.link == link {
            if !hub.has_taken(topic, at) {
                handoff.unseen.push(Unseen {
                    topic: topic.to_owned(),
                    at,
                    payload: payload.clone(),
                });
            }
        } else {
            let _ = hub.accept_sequenced(topic, at, payload);
        }
    }

    /// Waits until every publish Redis acknowledged has reached the hub: taken from the
    /// channel, or handed over when the subscription ended.
    fn wait_all_seen(&self) {
        let mut handoff = self.handoff();
        while !handoff.unseen.is_empty() {
            handoff = self.all_seen.wait(handoff).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Marks the link down (logging once per outage).
    fn down(&self, error: &redis::RedisError) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error.to_string();
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(event = "redis_down", error = %error, "Redis unreachable: publishing and delivering on this node only, reconnecting");
        }
    }

    /// The `/readyz` line.
    pub fn readiness(&self) -> Result<String, String> {
        match self.is_up() {
            true => Ok("redis: connected".into()),
            false => Err(format!(
                "redis: unreachable ({}); local delivery only, reconnecting",
                self.last_error.lock().unwrap_or_else(|e| e.into_inner())
            )),
        }
    }
}

impl MetricSource for LinkState {
    fn describe(&self) {
        metrics::describe_gauge!("ringcast_redis_connected", "1 while the Redis link is up, else 0.");
        metrics::describe_counter!("ringcast_redis_connects_total", "Connections made to Redis.");
        metrics::describe_counter!(
            "ringcast_redis_messages_received_total",
            "Published messages received from Redis."
        );
        metrics::describe_counter!(
            "ringcast_redis_local_fallbacks_total",
            "Publishes sequenced locally because Redis was unreachable."
        );
    }

    fn record(&self) {
        metrics::gauge!("ringcast_redis_connected").set(f64::from(u8::from(self.is_up())));
        metrics::counter!("ringcast_redis_connects_total").absolute(self.connects.load(Ordering::Relaxed));
        metrics::counter!("ringcast_redis_messages_received_total").absolute(self.received.load(Ordering::Relaxed));
        metrics::counter!("ringcast_redis_local_fallbacks_total")
            .absolute(self.local_fallbacks.load(Ordering::Relaxed));
    }
}

/// A core's handle on the backplane: hands publish jobs to the publisher thread.
#[derive(Debug, Clone)]
pub(crate) struct RedisLink {
    jobs: Sender<PublishJob>,
}

impl RedisLink {
    /// Hands `job` over; gives it back if the publisher thread is gone.
    pub fn submit(&self, job: PublishJob) -> Option<PublishJob> {
        self.jobs.send(job).err().map(|e| e.0)
    }
}

/// Names of the cluster's keys and channel.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn meta(&self, topic: &str) -> String {
        format!("{}:meta:{topic}", self.prefix)
    }
    fn history(&self, topic: &str) -> String {
        format!("{}:history:{topic}", self.prefix)
    }
    fn channel(&self) -> String {
        format!("{}:messages", self.prefix)
    }
}

/// The running backplane (two threads); stops when dropped.
pub struct Backplane {
    state: Arc<LinkState>,
    stop: Arc<AtomicBool>,
    subscriber: Option<JoinHandle<()>>,
}

impl Backplane {
    /// Starts the publisher and subscriber threads for `url`. Only a malformed URL (or a thread
    /// that cannot be spawned) fails: an unreachable Redis is retried in the background.
    pub(crate) fn start(
        url: &str,
        prefix: &str,
        hub: Arc<Hub>,
        history: HistorySettings,
        state: Arc<LinkState>,
    ) -> Result<(Backplane, RedisLink), redis::RedisError> {
        let client = Client::open(url)?;
        let stop = Arc::new(AtomicBool::new(false));
        let keys = Keys {
            prefix: prefix.to_owned(),
        };
        let (jobs, queue) = mpsc::channel();
        let publisher = Publisher {
            client: client.clone(),
            connection: None,
            script: Script::new(PUBLISH_SCRIPT),
            keys: keys.clone(),
            history,
            hub: hub.clone(),
            state: state.clone(),
        };
        std::thread::Builder::new()
            .name("ringcast-redis-pub".into())
            .spawn(move || publisher.run(queue))?;
        let subscriber = Subscriber {
            client,
            keys,
            hub,
            state: state.clone(),
            stop: stop.clone(),
        };
        let subscriber = std::thread::Builder::new()
            .name("ringcast-redis-sub".into())
            .spawn(move || subscriber.run())?;
        let backplane = Backplane {
            state,
            stop,
            subscriber: Some(subscriber),
        };
        Ok((backplane, RedisLink { jobs }))
    }
}

impl Drop for Backplane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.subscriber.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backplane").field("up", &self.state.is_up()).finish()
    }
}

fn connect(client: &Client) -> redis::RedisResult<Connection> {
    let connection = client.get_connection_with_timeout(IO_TIMEOUT)?;
    connection.set_read_timeout(Some(IO_TIMEOUT))?;
    connection.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(connection)
}

/// Runs publish jobs from the cores, one at a time, and posts each outcome back.
struct Publisher {
    client: Client,
    /// The connection, and the subscription during which it was made.
    connection: Option<(Connection, u64)>,
    script: Script,
    keys: Keys,
    history: HistorySettings,
    hub: Arc<Hub>,
    state: Arc<LinkState>,
}

impl Publisher {
    fn run(mut self, queue: Receiver<PublishJob>) {
        while let Ok(job) = queue.recv() {
            let results = job
                .items
                .iter()
                .map(|p| {
                    let link = self.state.live_link();
                    let outcome = match link {
                        Some(link) => self.publish(link, &p.topic, &p.payload),
                        None => Err(redis::RedisError::from((redis::ErrorKind::Io, "link down"))),
                    };
                    let outcome = outcome.or_else(|error| {
                        // A failure while the link is up is this connection's or this script's:
                        // reconnect for the next publish. The subscriber thread owns the link
                        // state and notices an outage on its own connection.
                        if link.is_some() {
                            tracing::warn!(event = "redis_publish_failed", topic = %p.topic, error = %error, "publishing on this node only");
                            self.connection = None;
                        }
                        // What Redis acknowledged comes first, then what is sequenced here.
                        self.state.wait_all_seen();
                        self.state.local_fallbacks.fetch_add(1, Ordering::Relaxed);
                        self.hub.publish_local(&p.topic, &p.payload)
                    });
                    (p.topic.clone(), outcome)
                })
                .collect();
            let done = PublishDone {
                reply: job.reply,
                results,
            };
            // The core exists (it sent the job); it may be shutting down, then nobody waits.
            self.hub.post(job.core, Arc::new(done));
        }
    }

    /// One publish through the script, during subscription `link`. Delivery (here too) comes
    /// back through the channel; the acknowledgement is noted until it has.
    fn publish(&mut self, link: u64, topic: &str, payload: &Payload) -> redis::RedisResult<Sequenced> {
        if self.connection.as_ref().is_some_and(|(_, made)| *made != link) {
            // Made before the last outage: to a Redis that may be gone, or hung and back.
            self.connection = None;
        }
        if self.connection.is_none() {
            self.connection = Some((connect(&self.client)?, link));
        }
        let (connection, _) = self.connection.as_mut().expect("just connected");
        let (kind, bytes) = match payload {
            Payload::Text(text) => ("t", text.as_bytes()),
            Payload::Binary(bytes) => ("b", &bytes[..]),
        };
        let ttl = self.history.ttl.map_or(0, |t| t.as_secs().max(1));
        let (epoch, seq): (String, u64) = self
            .script
            .key(self.keys.meta(topic))
            .key(self.keys.history(topic))
            .arg(bytes)
            .arg(kind)
            .arg(self.history.size)
            .arg(ttl)
            .arg(self.hub.fresh_epoch().to_string())
            .arg(self.keys.channel())
            .arg(topic)
            .invoke(connection)?;
        let epoch = epoch.parse().map_err(|_| bad_reply("epoch is not hex"))?;
        let at = Sequenced { epoch, seq };
        self.state.acknowledged(&self.hub, link, topic, at, payload);
        Ok(at)
    }
}

fn bad_reply(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, what))
}

/// Receives the cluster's messages and keeps the hub in step, reconnecting with backoff.
struct Subscriber {
    client: Client,
    keys: Keys,
    hub: Arc<Hub>,
    state: Arc<LinkState>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    fn run(self) {
        let mut backoff = BACKOFF.0;
        while !self.stop.load(Ordering::Relaxed) {
            let followed = self.follow(&mut backoff);
            self.state.end_link(&self.hub);
            let error = match followed {
                Ok(()) => return,
                Err(error) => error,
            };
            self.state.down(&error);
            let mut waited = Duration::ZERO;
            while waited < backoff && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL.min(backoff));
                waited += POLL.min(backoff);
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// Connects, subscribes, resyncs, then takes messages until the link fails (`Err`) or the
    /// backplane stops (`Ok`).
    fn follow(&self, backoff: &mut Duration) -> redis::RedisResult<()> {
        let mut data = connect(&self.client)?;
        let mut listening = connect(&self.client)?;
        let mut pubsub = listening.as_pubsub();
        pubsub.subscribe(self.keys.channel())?;
        pubsub.set_read_timeout(Some(POLL))?;
        // From here every message Redis sequences reaches this node; the resync reads what
        // came before, and the channel's copies of what it read are dropped as duplicates.
        self.state.start_link();
        self.resync(&mut data)?;
        drop(data);
        self.state.connects.fetch_add(1, Ordering::Relaxed);
        self.state.up.store(true, Ordering::Relaxed);
        tracing::info!(
            event = "redis_connected",
            "Redis connected: publishes are sequenced there and reach every node"
        );
        *backoff = BACKOFF.0;
        let mut quiet = Duration::ZERO;
        while !self.stop.load(Ordering::Relaxed) {
            match pubsub.get_message() {
                Ok(message) => {
                    quiet = Duration::ZERO;
                    self.take(message.get_payload_bytes());
                }
                Err(error) if error.is_timeout() => {
                    quiet += POLL;
                    if quiet >= QUIET_PING {
                        // A quiet channel or a dead link: a link that cannot answer a ping is down.
                        quiet = Duration::ZERO;
                        pubsub.set_read_timeout(Some(IO_TIMEOUT))?;
                        pubsub.ping::<String>()?;
                        pubsub.set_read_timeout(Some(POLL))?;
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// One message from the channel: `KIND EPOCH SEQ TOPIC\nPAYLOAD`.
    fn take(&self, message: &[u8]) {
        self.state.received.fetch_add(1, Ordering::Relaxed);
        match parse_channel_message(message) {
            Some((topic, at, payload)) => {
                if let Err(error) = self.state.take(&self.hub, topic, at, &payload) {
                    tracing::warn!(event = "redis_message_dropped", topic, error = %error);
                }
            }
            None => tracing::warn!(
                event = "redis_message_malformed",
                len = message.len(),
                "ignored a malformed message on the channel"
            ),
        }
    }

    /// Reads, for every topic in Redis or held here, the history entries this node lacks.
    fn resync(&self, data: &mut Connection) -> redis::RedisResult<()> {
        let meta_prefix = self.keys.meta("");
        let keys: Vec<String> = data
            .scan_match::<_, String>(format!("{meta_prefix}*"))?
            .collect::<redis::RedisResult<_>>()?;
        let mut topics: Vec<String> = keys
            .iter()
            .filter_map(|key| key.strip_prefix(&meta_prefix).map(str::to_owned))
            .collect();
        let held = self.hub.positions();
        topics.extend(held.iter().map(|p| p.topic.to_string()));
        topics.sort();
        topics.dedup();
        for topic in topics {
            let (epoch, last): (Option<String>, Option<u64>) = redis::cmd("HMGET")
                .arg(self.keys.meta(&topic))
                .arg("epoch")
                .arg("seq")
                .query(data)?;
            let (Some(epoch), Some(last)) = (epoch.and_then(|e| e.parse::<Epoch>().ok()), last) else {
                continue;
            };
            let here = held.iter().find(|p| *p.topic == *topic).and_then(|p| p.redis);
            let from = match here {
                Some(last) if last.epoch == epoch => last.seq + 1,
                _ => 1,
            };
            if from > last {
                continue;
            }
            let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
                .arg(self.keys.history(&topic))
                .arg(format!("{from}-0"))
                .arg("+")
                .query(data)?;
            for (id, fields) in entries {
                let Some((seq, payload)) = parse_history_entry(&id, &fields) else {
                    continue;
                };
                let _ = self.state.take(&self.hub, &topic, Sequenced { epoch, seq }, &payload);
            }
        }
        Ok(())
    }
}

/// Parses `KIND EPOCH SEQ TOPIC\nPAYLOAD` (what the script publishes).
fn parse_channel_message(message: &[u8]) -> Option<(&str, Sequenced, Payload)> {
    let newline = message.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&message[..newline]).ok()?;
    let mut fields = head.splitn(4, ' ');
    let kind = fields.next()?;
    let epoch = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let topic = fields.next()?;
    let payload = payload_of(kind, &message[newline + 1..])?;
    Some((topic, Sequenced { epoch, seq }, payload))
}

/// Parses a history stream entry: id `SEQ-1`, fields `k KIND p PAYLOAD`.
fn parse_history_entry(id: &str, fields: &[Vec<u8>]) -> Option<(u64, Payload)> {
    let seq = id.split_once('-')?.0.parse().ok()?;
    let field = |name: &[u8]| fields.chunks(2).find(|kv| kv[0] == name).and_then(|kv| kv.get(1));
    let kind = std::str::from_utf8(field(b"k")?).ok()?;
    Some((seq, payload_of(kind, field(b"p")?)?))
}

fn payload_of(kind: &str, bytes: &[u8]) -> Option<Payload> {
    match kind {
        "t" => String::from_utf8(bytes.to_vec()).ok().map(Payload::Text),
        "b" => Some(Payload::Binary(bytes.to_vec())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages_and_history_entries_parse() {
        let (topic, at, payload) = parse_channel_message(b"t 00000000000000ff 7 news/eu\nhello\nworld").unwrap();
        assert_eq!(topic, "news/eu");
        assert_eq!(
            at,
            Sequenced {
                epoch: Epoch(255),
                seq: 7
            }
        );
        assert_eq!(payload, Payload::Text("hello\nworld".into()));
        assert_eq!(
            parse_channel_message(b"b 1 2 t\n\xff").unwrap().2,
            Payload::Binary(vec![0xff])
        );
        assert!(parse_channel_message(b"x 1 2 t\n").is_none());
        assert!(parse_channel_message(b"t 1 2 t").is_none());
        let fields = vec![b"k".to_vec(), b"t".to_vec(), b"p".to_vec(), b"hi".to_vec()];
        assert_eq!(
            parse_history_entry("12-1", &fields),
            Some((12, Payload::Text("hi".into())))
        );
        assert_eq!(parse_history_entry("x-1", &fields), None);
    }

    #[test]
    fn acknowledged_publishes_the_channel_never_brought_reach_the_hub_when_the_link_ends() {
        let hub = Hub::new(HistorySettings {
            size: 16,
            ttl: None,
            max_topics: 64,
        });
        let state = LinkState::default();
        let at = |seq| Sequenced { epoch: Epoch(7), seq };
        let text = |s: &str| Payload::Text(s.into());
        state.start_link();
        // 1 comes on the channel after its acknowledgement, 2 before it: neither is kept.
        state.acknowledged(&hub, 1, "t", at(1), &text("a"));
        assert_eq!(state.take(&hub, "t", at(1), &text("a")), Ok(true));
        assert_eq!(state.take(&hub, "t", at(2), &text("b")), Ok(true));
        state.acknowledged(&hub, 1, "t", at(2), &text("b"));
        assert!(state.handoff().unseen.is_empty());
        // 3 and 4 are acknowledged, then Redis goes away before writing them to the channel.
        state.acknowledged(&hub, 1, "t", at(3), &text("c"));
        state.acknowledged(&hub, 1, "t", at(4), &text("d"));
        std::thread::scope(|scope| {
            let publisher = scope.spawn(|| state.wait_all_seen());
            state.end_link(&hub);
            publisher.join().unwrap();
        });
        assert_eq!(hub.positions()[0].redis, Some(at(4)));
        assert_eq!(hub.held_messages(), 4);
        // An acknowledgement that comes after its subscription ended goes to the hub at once.
        state.acknowledged(&hub, 1, "t", at(5), &text("e"));
        assert_eq!(hub.positions()[0].redis, Some(at(5)));
        assert!(state.handoff().unseen.is_empty());
        // The next subscription has a number of its own (the publisher's connection made
        // during subscription 1 is not reused in it).
        state.start_link();
        assert_eq!(state.live_link(), Some(2));
    }
}
