//! The process-wide topic log: per topic its epoch, its last sequence number, its recent
//! history (encoded frames, ready to replay) and which cores have subscribers.
//!
//! A publish takes one short lock on its topic's shard: it is sequenced, framed **once**, kept
//! in history, and the frame is handed to every core with subscribers through the inboxes
//! (one [`Fanout`] post per core, one wake-up per batch). Holding the shard lock while handing
//! it over keeps every core's inbox in sequence order for the topic. Deliveries to
//! subscribers happen on their cores and take no lock.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::envelope::{message_frame, Epoch, Payload};
use super::query::Since;
use crate::server::DeliveryHandle;

/// How many independently locked shards the topics are spread over.
const SHARDS: usize = 64;

/// The most cores a push server runs on (one bit per core in each topic).
pub const MAX_PUSH_CORES: usize = 64;

/// History retention and the topic limit.
#[derive(Debug, Clone, Copy)]
pub struct HistorySettings {
    /// Messages kept per topic (0: none).
    pub size: usize,
    /// Longest a message is kept (`None`: no age limit).
    pub ttl: Option<Duration>,
    /// Most topics held.
    pub max_topics: usize,
}

/// One message on its way to a core's subscribers of `topic`.
#[derive(Debug)]
pub struct Fanout {
    /// The topic.
    pub topic: Arc<str>,
    /// Its epoch.
    pub epoch: Epoch,
    /// The message's sequence number.
    pub seq: u64,
    /// The encoded frame every subscriber gets (shared, not copied).
    pub frame: Bytes,
    /// When the hub sequenced it (where the fan-out latency counts from).
    pub published_at: Instant,
}

/// Where a publish landed in its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequenced {
    /// The topic's epoch.
    pub epoch: Epoch,
    /// The message's sequence number.
    pub seq: u64,
}

/// Why a topic could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicLimit {
    /// `push_max_topics` topics exist and every one has subscribers.
    #[error("topic limit reached (push_max_topics) and every topic has subscribers")]
    Reached,
}

/// A subscription as the hub saw it when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The topic's epoch now.
    pub epoch: Epoch,
    /// Its last sequence number now: later messages come through the inbox, earlier ones (up to
    /// this) are in `replay` or missed.
    pub seq: u64,
    /// Messages the client missed, in order.
    pub replay: Vec<Bytes>,
    /// Set when the client asked to resume but some messages are no longer held: the first
    /// sequence number it will get.
    pub gap: Option<u64>,
}

/// Who sequences a topic's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This node.
    Local,
    /// Redis; this node mirrors them.
    Redis,
}

/// A topic's state for a resync with Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPosition {
    /// The topic.
    pub topic: Arc<str>,
    /// Its epoch here.
    pub epoch: Epoch,
    /// Its last sequence number here.
    pub seq: u64,
    /// Who sequenced it last.
    pub origin: Origin,
    /// The last position Redis sequenced that this node has taken (also while the topic runs
    /// a local epoch): a resync reads what follows it.
    pub redis: Option<Sequenced>,
}

/// The topics of one shard, by name.
type Shard = HashMap<Arc<str>, TopicLog>;

struct Held {
    seq: u64,
    at: Instant,
    frame: Bytes,
}

struct TopicLog {
    name: Arc<str>,
    epoch: Epoch,
    seq: u64,
    history: VecDeque<Held>,
    /// Bit `i`: core `i` has subscribers.
    cores: u64,
    origin: Origin,
    /// The last position Redis sequenced that this node took. Kept while the topic runs a
    /// local epoch (Redis unreachable), so that once Redis is back what was delivered before
    /// the outage is neither read again by the resync nor delivered twice.
    redis_last: Option<Sequenced>,
}

impl TopicLog {
    /// Forgets the history (a new line starts in `epoch`).
    fn restart(&mut self, epoch: Epoch, origin: Origin) {
        self.epoch = epoch;
        self.seq = 0;
        self.history.clear();
        self.origin = origin;
    }

    fn trim(&mut self, settings: &HistorySettings, now: Instant) {
        while self.history.len() > settings.size {
            self.history.pop_front();
        }
        if let Some(ttl) = settings.ttl {
            while self.history.front().is_some_and(|h| now.duration_since(h.at) > ttl) {
                self.history.pop_front();
            }
        }
    }
}

/// The topic log shared by every core (and the Redis link).
pub struct Hub {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    settings: HistorySettings,
    /// Set once the server has its inboxes, before any core runs: until then no core can
    /// have subscribers.
    delivery: OnceLock<DeliveryHandle>,
    hasher: RandomState,
    epochs: AtomicU64,
}

impl Hub {
    /// An empty hub; [`Hub::attach`] it to the server's cores.
    pub fn new(settings: HistorySettings) -> Hub {
        Hub {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: settings.max_topics.div_ceil(SHARDS),
            settings,
            delivery: OnceLock::new(),
            hasher: RandomState::new(),
            epochs: AtomicU64::new(0),
        }
    }

    /// Connects the hub to the cores it hands fan-outs to (once, before they run).
    pub fn attach(&self, delivery: DeliveryHandle) {
        let _ = self.delivery.set(delivery);
    }

    /// Hands `post` to core `core`'s handler (dropped before [`Hub::attach`], when no core runs).
    pub(crate) fn post(&self, core: usize, post: crate::api::Post) {
        if let Some(delivery) = self.delivery.get() {
            // Cores are checked against MAX_PUSH_CORES and the server's count at start.
            let _ = delivery.post(core, post);
        }
    }

    /// A fresh epoch: random per process (the hasher's keys), distinct within it.
    pub fn fresh_epoch(&self) -> Epoch {
        let mut hasher = self.hasher.build_hasher();
        hasher.write_u64(self.epochs.fetch_add(1, Ordering::Relaxed));
        Epoch(hasher.finish())
    }

    /// Sequences a publish here (no Redis, or Redis unreachable), keeps it and fans it out.
    /// A topic Redis sequenced so far starts a new local epoch.
    pub fn publish_local(&self, topic: &str, payload: &Payload) -> Result<Sequenced, TopicLimit> {
        let mut shard = self.shard(topic);
        let log = self.topic(&mut shard, topic, Origin::Local)?;
        if log.origin == Origin::Redis {
            log.restart(self.fresh_epoch(), Origin::Local);
        }
        let seq = log.seq + 1;
        Ok(self.append(log, seq, payload))
    }

    /// Takes a message Redis sequenced (from the channel or a resync). Returns false for a
    /// duplicate (a sequence number already held in that epoch). A new epoch restarts the
    /// topic's history here.
    pub fn accept_sequenced(&self, topic: &str, at: Sequenced, payload: &Payload) -> Result<bool, TopicLimit> {
        let mut shard = self.shard(topic);
        let log = self.topic(&mut shard, topic, Origin::Redis)?;
        if log
            .redis_last
            .is_some_and(|last| last.epoch == at.epoch && at.seq <= last.seq)
        {
            // Held, or delivered before the topic went local.
            return Ok(false);
        }
        if log.epoch != at.epoch || log.origin != Origin::Redis {
            log.restart(at.epoch, Origin::Redis);
        }
        self.append(log, at.seq, payload);
        log.redis_last = Some(at);
        Ok(true)
    }

    /// Whether this node has taken `at` of `topic` from Redis already (or a later message of
    /// that epoch, which Redis sequenced after it).
    pub fn has_taken(&self, topic: &str, at: Sequenced) -> bool {
        let shard = self.shard(topic);
        shard
            .get(topic)
            .and_then(|log| log.redis_last)
            .is_some_and(|last| last.epoch == at.epoch && at.seq <= last.seq)
    }

    /// Subscribes core `core` to `topic` (creating it), resuming from `since`: the messages
    /// the client missed, or the gap it must know about. The shard lock covers both, so every
    /// message is either in `replay`/the gap or comes later through the inbox.
    pub fn join(&self, topic: &str, core: usize, since: Option<Since>) -> Result<Joined, TopicLimit> {
        let mut shard = self.shard(topic);
        let log = self.topic(&mut shard, topic, Origin::Local)?;
        log.cores |= 1 << core;
        log.trim(&self.settings, Instant::now());
        let mut joined = Joined {
            epoch: log.epoch,
            seq: log.seq,
            replay: Vec::new(),
            gap: None,
        };
        let Some(since) = since else {
            return Ok(joined);
        };
        if since.epoch != log.epoch {
            joined.gap = Some(log.seq + 1);
            return Ok(joined);
        }
        let first_held = log.history.front().map_or(log.seq + 1, |h| h.seq);
        if since.seq + 1 < first_held {
            joined.gap = Some(first_held);
        }
        joined.replay = log
            .history
            .iter()
            .filter(|h| h.seq > since.seq)
            .map(|h| h.frame.clone())
            .collect();
        Ok(joined)
    }

    /// Core `core` has no subscriber of `topic` any more. A topic nobody subscribes to and
    /// that holds no history is forgotten.
    pub fn leave(&self, topic: &str, core: usize) {
        let mut shard = self.shard(topic);
        if let Some(log) = shard.get_mut(topic) {
            log.cores &= !(1 << core);
            log.trim(&self.settings, Instant::now());
            if log.cores == 0 && log.history.is_empty() {
                shard.remove(topic);
            }
        }
    }

    /// Every topic's position (for a resync with Redis).
    pub fn positions(&self) -> Vec<TopicPosition> {
        self.shards
            .iter()
            .flat_map(|shard| {
                let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                shard
                    .values()
                    .map(|log| TopicPosition {
                        topic: log.name.clone(),
                        epoch: log.epoch,
                        seq: log.seq,
                        origin: log.origin,
                        redis: log.redis_last,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// How many topics are held.
    pub fn topic_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Messages held in history, over all topics.
    pub fn held_messages(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(|e| e.into_inner());
                shard.values().map(|log| log.history.len()).sum::<usize>()
            })
            .sum()
    }

    fn shard(&self, topic: &str) -> MutexGuard<'_, Shard> {
        let index = self.hasher.hash_one(topic) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The topic's log, created (with a fresh epoch) if absent; a full shard first evicts a
    /// topic nobody subscribes to.
    fn topic<'s>(&self, shard: &'s mut Shard, topic: &str, origin: Origin) -> Result<&'s mut TopicLog, TopicLimit> {
        if !shard.contains_key(topic) {
            if shard.len() >= self.per_shard {
                let idle = shard
                    .iter()
                    .find(|(_, log)| log.cores == 0)
                    .map(|(name, _)| name.clone());
                shard.remove(&idle.ok_or(TopicLimit::Reached)?);
            }
            let name: Arc<str> = topic.into();
            let log = TopicLog {
                name: name.clone(),
                epoch: self.fresh_epoch(),
                seq: 0,
                history: VecDeque::new(),
                cores: 0,
                origin,
                redis_last: None,
            };
            shard.insert(name, log);
        }
        Ok(shard.get_mut(topic).expect("present or just inserted"))
    }

    /// Keeps message `seq` and hands it to every core with subscribers.
    fn append(&self, log: &mut TopicLog, seq: u64, payload: &Payload) -> Sequenced {
        log.seq = seq;
        let now = Instant::now();
        let frame = message_frame(&log.name, log.epoch, seq, payload);
        if self.settings.size > 0 {
            log.history.push_back(Held {
                seq,
                at: now,
                frame: frame.clone(),
            });
            log.trim(&self.settings, now);
        }
        let mut cores = log.cores;
        if cores != 0 {
            let fanout: Arc<Fanout> = Arc::new(Fanout {
                topic: log.name.clone(),
                epoch: log.epoch,
                seq,
                frame,
                published_at: now,
            });
            while cores != 0 {
                let core = cores.trailing_zeros() as usize;
                cores &= cores - 1;
                self.post(core, fanout.clone());
            }
        }
        Sequenced { epoch: log.epoch, seq }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("settings", &self.settings).finish()
    }
}
