//! The I/O layer: per-core monoio runtimes, listeners, handshake tasks, and the per-core data
//! paths (io_uring, or epoll as the fallback) that drive open connections.
//!
//! [`Server`] binds the listeners, starts one pinned thread per selected core, and runs the
//! application [`Handler`] built for each core. Everything a connection does happens on the
//! core that accepted it; frames for a connection on another core travel through that core's
//! inbox.
//!
//! Layers, each importing only those below it: `conn` (the per-connection state machine) and
//! `outbound`; `core` (per-core state) and `inbox`; `input` (bytes to session to handler);
//! `socket` and `closing` (synchronous socket work and the closing phase); the two thin drivers
//! `uring` and `epoll`; `upgrade` (the handshake); `run` and `runtime` (a core's life).

mod accepted;
mod closing;
pub(crate) mod conn;
mod core;
mod ending;
mod epoll;
pub(crate) mod http;
pub(crate) mod inbox;
mod input;
mod latch;
mod listener;
pub(crate) mod observer;
mod outbound;
pub mod router;
mod run;
mod runtime;
mod sched;
mod shared;
mod socket;
mod sys;
mod upgrade;
mod uring;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::access::Access;
use crate::config::{Config, CoreSelectionError, IoMode};
use crate::handler::Handler;
use crate::metrics::{MetricSource, PrometheusExport, Registry};
use crate::observe;
use crate::proto::handshake::Request;
use inbox::Inboxes;
use listener::{ListenerRole, Placement};
use router::{Response, Router};
use shared::Shared;

pub use inbox::DeliveryHandle;
pub use run::IoDriver;
pub use runtime::build_uring_runtime;
pub use uring::probe as probe_uring_data_path;

/// Requests a graceful shutdown of a running server from any thread (signal handlers use it).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown: every core stops accepting within one timer tick, sends
    /// its close frame (`shutdown_close_code`) after what is queued, and exits once its
    /// connections are gone or `shutdown_timeout` has passed.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// A server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration has a setting that cannot work.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The core selection does not fit this machine.
    #[error("cannot select cores: {0}")]
    Cores(#[from] CoreSelectionError),
    /// A listener could not be bound.
    #[error("cannot bind listeners: {0}")]
    Bind(std::io::Error),
    /// `io = "uring"` was asked for but io_uring (or its data path) cannot run here.
    #[error("io_uring is unavailable ({0}); use --io auto or --io epoll")]
    IoUringUnavailable(String),
    /// The per-core inboxes could not be created.
    #[error("cannot create the cross-core inboxes: {0}")]
    Inbox(std::io::Error),
    /// A core's runtime could not be built.
    #[error("cannot start the runtime on core {core}: {source}")]
    Runtime {
        /// The core index.
        core: usize,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] crate::tls::TlsConfigError),
    /// A core thread could not be spawned.
    #[error("cannot spawn a core thread: {0}")]
    Spawn(std::io::Error),
}

/// The topics an upgrade request asks to subscribe to (see [`Server::subscription_topics`]).
pub type SubscriptionTopics = Arc<dyn Fn(&Request) -> Vec<String> + Send + Sync>;

/// A readiness detail: `Ok(line)` while that part is fine, `Err(line)` while it is degraded
/// (the node still serves; `/readyz` stays 200 and prints the line).
pub type ReadinessCheck = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Builds and starts the engine.
pub struct Server {
    config: Config,
    router: Router,
    metric_sources: Vec<Arc<dyn MetricSource>>,
    readiness: Vec<ReadinessCheck>,
    subscription_topics: Option<SubscriptionTopics>,
}

impl Server {
    /// A server with `config` and the built-in routes (`/healthz`, `/readyz`, `/metrics`).
    pub fn new(config: Config) -> Server {
        let mut router = Router::default();
        router.add("/healthz", Arc::new(|_: &Request| Response::text(200, "ok\n")));
        Server {
            config,
            router,
            metric_sources: Vec::new(),
            readiness: Vec::new(),
            subscription_topics: None,
        }
    }

    /// Tells the engine which topics an upgrade request asks to subscribe to (push mode:
    /// `?topics=`), so that a token whose `sub_topics` claim does not cover one of them is
    /// refused with 403 before the `101`. Called after `Handler::check_upgrade` accepted the
    /// request, only for upgrades that carry a token.
    pub fn subscription_topics(mut self, topics: impl Fn(&Request) -> Vec<String> + Send + Sync + 'static) -> Server {
        self.subscription_topics = Some(Arc::new(topics));
        self
    }

    /// Adds metrics reported at every `/metrics` scrape (see [`MetricSource`]).
    pub fn metric_source(mut self, source: Arc<dyn MetricSource>) -> Server {
        self.metric_sources.push(source);
        self
    }

    /// Adds a line to `/readyz` (see [`ReadinessCheck`]).
    pub fn readiness_check(mut self, check: ReadinessCheck) -> Server {
        self.readiness.push(check);
        self
    }

    /// Adds a plain-HTTP route (exact path, GET/HEAD).
    pub fn route(mut self, path: &str, route: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        self.router.add(path, Arc::new(route));
        self
    }

    /// Binds the listeners and starts one thread per core; `handler_for_core(i)` builds core
    /// `i`'s handler on that core's thread.
    pub fn start<H, F>(self, handler_for_core: F) -> Result<RunningServer, ServerError>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.start_with(|_: &DeliveryHandle| handler_for_core)
    }

    /// Like [`Server::start`], for handlers that deliver to other cores from the start:
    /// `build` gets the server's [`DeliveryHandle`] (and its core count) before any core runs,
    /// and returns the per-core handler factory.
    pub fn start_with<H, F, B>(self, build: B) -> Result<RunningServer, ServerError>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
        B: FnOnce(&DeliveryHandle) -> F,
    {
        self.config.validate()?;
        let allowed: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let cpus = self.config.cores.resolve(&allowed)?;
        let driver = runtime::choose_driver(self.config.io)?;
        let access = Access::from_config(&self.config)?;
        let tls = match self.config.tls_cert.is_empty() {
            true => None,
            false => Some(crate::tls::server_config(&self.config.tls_cert, &self.config.tls_key)?),
        };
        let mut per_core: Vec<Vec<(std::net::TcpListener, ListenerRole)>> = cpus.iter().map(|_| Vec::new()).collect();
        let mut bound: [Vec<SocketAddr>; 3] = Default::default();
        for role in ListenerRole::ALL {
            let (listeners, addrs) =
                listener::bind_all(role.addrs(&self.config), cpus.len()).map_err(ServerError::Bind)?;
            for (core, listeners) in per_core.iter_mut().zip(listeners) {
                core.extend(listeners.into_iter().map(|l| (l, role)));
            }
            bound[role as usize] = addrs;
        }
        let registry = Registry::new(cpus.len());
        let inboxes = Arc::new(Inboxes::new(cpus.len()).map_err(ServerError::Inbox)?);
        let shutdown = Arc::new(AtomicBool::new(false));
        let export = PrometheusExport::new(driver.build_info(), self.metric_sources);
        let (readiness, checks) = (ShutdownHandle { flag: shutdown.clone() }, self.readiness);
        let dashboard = self.config.dashboard;
        let routers = routers(
            self.router,
            Arc::new(move |_: &Request| readyz(&readiness, &checks)),
            Placement::of(&self.config),
            |router| add_observability_routes(router, export, &registry, dashboard),
        );
        let mut shared = Shared::new(
            self.config,
            access,
            registry.clone(),
            routers,
            inboxes.clone(),
            shutdown.clone(),
        );
        shared.subscription_topics = self.subscription_topics;
        shared.tls = tls;
        let shared = Arc::new(shared);
        let delivery = DeliveryHandle::new(inboxes);
        let factory = Arc::new(build(&delivery));
        let mut threads = Vec::with_capacity(cpus.len());
        for (index, (cpu, listeners)) in cpus.into_iter().zip(per_core).enumerate() {
            let (shared, factory) = (shared.clone(), factory.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ringcast-core-{index}"))
                .spawn(move || runtime::run_core_thread(index, cpu, driver, shared, listeners, move || factory(index)))
                .map_err(ServerError::Spawn)?;
            threads.push(thread);
        }
        let [local_addrs, metrics_addrs, admin_addrs] = bound;
        tracing::info!(
            event = "started", cores = threads.len(), driver = driver.as_str(), listen = ?local_addrs,
            metrics_listen = ?metrics_addrs, admin_listen = ?admin_addrs,
        );
        Ok(RunningServer {
            local_addrs,
            metrics_addrs,
            admin_addrs,
            threads,
            registry,
            driver,
            delivery,
            shutdown: ShutdownHandle { flag: shutdown },
        })
    }
}

/// The routes of each listener role: `/healthz` and `/readyz` on all, the application's routes
/// on the WebSocket port, the observability endpoints where `placement` puts them.
fn routers(
    mut websocket: Router,
    readyz: Arc<router::RouteFn>,
    placement: Placement,
    add_observability: impl FnOnce(&mut Router),
) -> [Router; 3] {
    websocket.add("/readyz", readyz);
    let mut routers: [Router; 3] = ListenerRole::ALL.map(|role| match role {
        ListenerRole::WebSocket => websocket.clone(),
        _ => {
            let mut router = Router::default();
            for path in ["/healthz", "/readyz"] {
                router.add(path, websocket.route(path).expect("added above"));
            }
            router
        }
    });
    add_observability(&mut routers[placement.observability as usize]);
    routers
}

/// Adds `/metrics`, `/debug/latency` and (if enabled) `/dashboard` to `router`.
fn add_observability_routes(router: &mut Router, export: PrometheusExport, registry: &Registry, dashboard: bool) {
    let scrape = registry.clone();
    router.add(
        "/metrics",
        Arc::new(move |_: &Request| Response {
            status: 200,
            content_type: "text/plain; version=0.0.4".into(),
            body: export.render(&scrape).into_bytes(),
        }),
    );
    let histograms = registry.clone();
    router.add(
        observe::DEBUG_LATENCY_PATH,
        Arc::new(move |request: &Request| observe::debug_latency(&histograms, request)),
    );
    if dashboard {
        router.add(
            observe::DASHBOARD_PATH,
            Arc::new(|_: &Request| observe::dashboard_page()),
        );
    }
}

/// `/readyz`: 503 while shutting down, else 200 with one line per readiness check (a degraded
/// part says so but keeps the node in service).
fn readyz(shutdown: &ShutdownHandle, checks: &[ReadinessCheck]) -> Response {
    if shutdown.is_shutting_down() {
        return Response::text(503, "shutting down\n");
    }
    let mut body = String::from("ready\n");
    for check in checks {
        match check() {
            Ok(line) => body += &format!("{line}\n"),
            Err(line) => body += &format!("degraded: {line}\n"),
        }
    }
    Response::text(200, body)
}

/// A started server: its bound addresses and its core threads.
pub struct RunningServer {
    local_addrs: Vec<SocketAddr>,
    metrics_addrs: Vec<SocketAddr>,
    admin_addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<Result<(), ServerError>>>,
    registry: Registry,
    driver: IoDriver,
    delivery: DeliveryHandle,
    shutdown: ShutdownHandle,
}

impl RunningServer {
    /// A handle that sends pre-encoded frames to connections on any core, from any thread.
    pub fn delivery_handle(&self) -> DeliveryHandle {
        self.delivery.clone()
    }

    /// A handle that starts the graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The `metrics_listen` addresses actually bound (empty when the observability endpoints
    /// are on the WebSocket addresses).
    pub fn metrics_addrs(&self) -> &[SocketAddr] {
        &self.metrics_addrs
    }

    /// The `admin_listen` addresses actually bound (empty when publishing is on the WebSocket
    /// addresses).
    pub fn admin_addrs(&self) -> &[SocketAddr] {
        &self.admin_addrs
    }

    /// The io driver the cores run on.
    pub fn driver(&self) -> IoDriver {
        self.driver
    }

    /// The per-core counters.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Waits for every core thread; returns the first core's error.
    pub fn join(self) -> Result<(), ServerError> {
        let mut result = Ok(());
        for thread in self.threads {
            if let Ok(Err(e)) = thread.join() {
                result = result.and(Err(e));
            }
        }
        result
    }
}

impl IoMode {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Auto => "auto",
            IoMode::Uring => "uring",
            IoMode::Epoll => "epoll",
        }
    }
}
