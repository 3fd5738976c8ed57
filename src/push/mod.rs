//! Push mode: topics, publishing, encode-once fan-out across cores, history and resume, and a
//! Redis backplane for several nodes. The protocol is in the README ("Push mode").
//!
//! Layers: [`topic`] (names), [`envelope`] (what subscribers receive), [`query`] and
//! [`control`] (what clients ask), [`publish`] (HTTP publishing), [`hub`] (the process-wide
//! topic log: sequencing, history, which cores subscribe), `subscribers` (one core's topic
//! table), [`policy`] (application decisions), `service` (the per-core [`Handler`]) and `redis`
//! (the backplane). [`PushServer`] puts them together; `ringcast --mode push` runs it with
//! [`OpenPolicy`].
//!
//! [`Handler`]: crate::handler::Handler

pub mod control;
pub mod envelope;
pub mod hub;
pub mod policy;
pub mod publish;
pub mod query;
mod redis;
mod service;
mod subscribers;
pub mod topic;

use std::sync::Arc;

use crate::config::Config;
use crate::metrics::MetricSource;
use crate::server::{RunningServer, Server, ServerError};
use hub::{HistorySettings, Hub, MAX_PUSH_CORES};
use query::parse_initial_topics;
use redis::{Backplane, LinkState};
use service::PushSettings;

pub use policy::{
    token_allows_publish, token_allows_subscribe, OpenPolicy, Publish, PublishSource, PushPolicy, Refusal,
};
pub use service::PushService;

/// Why a push server could not start.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The engine could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The Redis link could not start: the `redis` setting is not a usable Redis URL (or its
    /// threads could not be spawned).
    #[error("cannot start the Redis link for {url:?}: {source}")]
    RedisLink {
        /// The URL as configured.
        url: String,
        /// What the client library said.
        source: ::redis::RedisError,
    },
    /// More cores than push mode supports.
    #[error("push mode runs on at most {MAX_PUSH_CORES} cores; {0} selected")]
    TooManyCores(usize),
}

/// A push server: the engine with a [`PushService`] on every core, the topic hub, and the
/// Redis backplane when `redis` is set.
pub struct PushServer<F> {
    config: Config,
    policy_for_core: F,
    server: Server,
}

impl PushServer<fn(usize) -> OpenPolicy> {
    /// A push server with the [`OpenPolicy`] (what `--mode push` runs).
    pub fn new(config: Config) -> Self {
        PushServer {
            server: Server::new(config.clone()),
            config,
            policy_for_core: |_| OpenPolicy,
        }
    }
}

impl<F> PushServer<F> {
    /// Uses `policy_for_core(i)` as core `i`'s policy.
    pub fn with_policy<P: PushPolicy, G: Fn(usize) -> P + Send + Sync + 'static>(
        self,
        policy_for_core: G,
    ) -> PushServer<G> {
        PushServer {
            config: self.config,
            policy_for_core,
            server: self.server,
        }
    }

    /// Changes the underlying engine before it starts (routes, metric sources, ...).
    pub fn engine(mut self, change: impl FnOnce(Server) -> Server) -> Self {
        self.server = change(self.server);
        self
    }

    /// Starts the cores (and the Redis link, which connects in the background).
    pub fn start<P>(self) -> Result<RunningPush, PushError>
    where
        P: PushPolicy,
        F: Fn(usize) -> P + Send + Sync + 'static,
    {
        let config = self.config;
        let history = HistorySettings {
            size: config.push_history_size,
            ttl: (!config.push_history_ttl.is_zero()).then_some(config.push_history_ttl),
            max_topics: config.push_max_topics,
        };
        let hub = Arc::new(Hub::new(history));
        let max_topics = config.push_max_topics_per_connection;
        // `?topics=` against a token's `sub_topics` claim, before the 101 (a query that does not
        // parse was refused by the service's check_upgrade already).
        let mut server = self
            .server
            .metric_source(hub.clone())
            .subscription_topics(move |request| {
                parse_initial_topics(request.query.as_deref(), max_topics)
                    .map(|initial| initial.topics.into_iter().map(|(topic, _)| topic).collect())
                    .unwrap_or_default()
            });
        let mut backplane = None;
        let mut link = None;
        if !config.redis.is_empty() {
            let state = Arc::new(LinkState::default());
            let (started, handle) =
                Backplane::start(&config.redis, &config.redis_prefix, hub.clone(), history, state.clone()).map_err(
                    |source| PushError::RedisLink {
                        url: config.redis.clone(),
                        source,
                    },
                )?;
            let readiness = state.clone();
            server = server
                .metric_source(state)
                .readiness_check(Arc::new(move || readiness.readiness()));
            backplane = Some(started);
            link = Some(handle);
        }
        let settings = PushSettings::from_config(&config);
        let policy_for_core = self.policy_for_core;
        let service_hub = hub.clone();
        let running = server.start_with(move |delivery| {
            service_hub.attach(delivery.clone());
            move |core| PushService::new(core, service_hub.clone(), link.clone(), policy_for_core(core), settings)
        })?;
        let cores = running.registry().core_count();
        if cores > MAX_PUSH_CORES {
            running.shutdown_handle().shutdown();
            let _ = running.join();
            return Err(PushError::TooManyCores(cores));
        }
        Ok(RunningPush {
            server: running,
            hub,
            _backplane: backplane,
        })
    }
}

/// A running push server.
pub struct RunningPush {
    server: RunningServer,
    hub: Arc<Hub>,
    _backplane: Option<Backplane>,
}

impl RunningPush {
    /// The engine underneath (addresses, shutdown, counters).
    pub fn server(&self) -> &RunningServer {
        &self.server
    }

    /// The topic hub: the embedding application publishes with [`Hub::publish_local`]. That is
    /// this node's sequencing: with Redis configured it takes the topic off Redis's line (a new
    /// local epoch), so a multi-node application publishes through `POST /publish` instead.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Waits for every core to stop, then stops the Redis link.
    pub fn join(self) -> Result<(), ServerError> {
        self.server.join()
    }
}

impl MetricSource for Hub {
    fn describe(&self) {
        metrics::describe_gauge!("ringcast_push_topics", "Topics held (push mode).");
        metrics::describe_gauge!(
            "ringcast_push_history_messages",
            "Messages held in topic histories for resuming clients (push mode)."
        );
    }

    fn record(&self) {
        metrics::gauge!("ringcast_push_topics").set(self.topic_count() as f64);
        metrics::gauge!("ringcast_push_history_messages").set(self.held_messages() as f64);
    }
}
