//! The I/O layer: per-core monoio runtimes, listeners, and connection tasks.
//!
//! [`Server`] binds the listeners, starts one pinned thread per selected core, and runs the
//! application [`Handler`] built for each core. Everything a connection does happens on the
//! core that accepted it.

mod conn;
pub(crate) mod conn_state;
mod core;
mod listener;
mod outbound;
pub mod router;
mod runtime;
mod sys;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{Config, CoreSelectionError, IoMode};
use crate::handler::Handler;
use crate::metrics::{PrometheusExport, Registry};
use crate::proto::handshake::Request;
use router::{Response, Router};

pub use runtime::IoDriver;

/// State shared by all cores (read-mostly; touched on connect and close, never per message).
pub(crate) struct Shared {
    pub config: Config,
    pub registry: Registry,
    pub router: Router,
    open_connections: AtomicUsize,
}

impl Shared {
    /// Reserves a slot under `max_connections`; false when the server is full.
    pub fn try_open_connection(&self) -> bool {
        let before = self.open_connections.fetch_add(1, Ordering::Relaxed);
        if before >= self.config.max_connections {
            self.open_connections.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Releases a slot taken by `try_open_connection`.
    pub fn close_connection(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The core selection does not fit this machine.
    #[error("cannot select cores: {0}")]
    Cores(#[from] CoreSelectionError),
    /// A listener could not be bound.
    #[error("cannot bind listeners: {0}")]
    Bind(std::io::Error),
    /// `io = "uring"` was asked for but io_uring cannot be set up here.
    #[error("io_uring is unavailable ({0}); use --io auto or --io epoll")]
    IoUringUnavailable(std::io::Error),
    /// A core's runtime could not be built.
    #[error("cannot start the runtime on core {core}: {source}")]
    Runtime {
        /// The core index.
        core: usize,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A core thread could not be spawned.
    #[error("cannot spawn a core thread: {0}")]
    Spawn(std::io::Error),
}

/// Builds and starts the engine.
pub struct Server {
    config: Config,
    router: Router,
}

impl Server {
    /// A server with `config` and the built-in routes (`/healthz`, `/metrics`).
    pub fn new(config: Config) -> Server {
        let mut router = Router::default();
        router.add("/healthz", Arc::new(|_: &Request| Response::text(200, "ok\n")));
        Server { config, router }
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
        let allowed: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let cpus = self.config.cores.resolve(&allowed)?;
        let driver = runtime::choose_driver(self.config.io)?;
        let (listeners, local_addrs) =
            listener::bind_all(&self.config.listen, cpus.len()).map_err(ServerError::Bind)?;
        let registry = Registry::new(cpus.len());
        let mut router = self.router;
        let export = Arc::new(PrometheusExport::new());
        let scrape = registry.clone();
        router.add(
            "/metrics",
            Arc::new(move |_: &Request| Response {
                status: 200,
                content_type: "text/plain; version=0.0.4".into(),
                body: export.render(&scrape).into_bytes(),
            }),
        );
        let shared = Arc::new(Shared {
            config: self.config,
            registry: registry.clone(),
            router,
            open_connections: AtomicUsize::new(0),
        });
        let factory = Arc::new(handler_for_core);
        let mut threads = Vec::with_capacity(cpus.len());
        for (index, (cpu, listeners)) in cpus.into_iter().zip(listeners).enumerate() {
            let (shared, factory) = (shared.clone(), factory.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ringcast-core-{index}"))
                .spawn(move || runtime::run_core_thread(index, cpu, driver, shared, listeners, move || factory(index)))
                .map_err(ServerError::Spawn)?;
            threads.push(thread);
        }
        tracing::info!(event = "started", cores = threads.len(), driver = driver.as_str(), listen = ?local_addrs);
        Ok(RunningServer {
            local_addrs,
            threads,
            registry,
            driver,
        })
    }
}

/// A started server: its bound addresses and its core threads.
pub struct RunningServer {
    local_addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<Result<(), ServerError>>>,
    registry: Registry,
    driver: IoDriver,
}

impl RunningServer {
    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
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
