//! Command-line flags. Each flag overrides the same key of the configuration file, which
//! overrides the embedded default (`src/config/default.toml`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ringcast::config::{Config, ConfigError, CoreSelection, IoMode, LogFormat, SlowConsumerPolicy};
use ringcast::logging::{LogGuard, LogWriter};
use tracing_subscriber::EnvFilter;

/// ringcast: a thread-per-core io_uring WebSocket server.
///
/// With no flags it runs the embedded default configuration: echo mode on 127.0.0.1:9001,
/// one thread per available core.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// TOML configuration file laid over the embedded default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Address to listen on (repeatable). Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Address for /metrics, /debug/latency and /dashboard instead of the WebSocket port
    /// (repeatable). /healthz and /readyz stay on both.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Vec<SocketAddr>,
    /// Serve the live dashboard (/dashboard) and its stats stream: true or false.
    #[arg(long, value_name = "BOOL")]
    dashboard: Option<bool>,
    /// Cores to run on: "all", a count such as 2, or a list such as 0,2-3.
    #[arg(long, value_name = "SEL")]
    cores: Option<CoreSelection>,
    /// io driver: auto (io_uring, else epoll), uring, epoll.
    #[arg(long, value_enum)]
    io: Option<IoMode>,
    /// Built-in application: echo, or push (topics, POST /publish/{topic}, history, Redis).
    #[arg(long)]
    mode: Option<String>,
    /// Path that accepts WebSocket upgrades (repeatable; "*" for any).
    #[arg(long = "ws-path", value_name = "PATH")]
    ws_paths: Vec<String>,
    /// Subprotocol to offer, in preference order (repeatable).
    #[arg(long = "subprotocol", value_name = "NAME")]
    subprotocols: Vec<String>,
    /// Request header to keep for handlers (repeatable).
    #[arg(long = "keep-header", value_name = "NAME")]
    keep_headers: Vec<String>,
    /// Largest message or frame in bytes; larger ones close with 1009.
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<usize>,
    /// Most open WebSocket connections in the process; more get 503.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Largest request head in bytes; larger ones get 431.
    #[arg(long, value_name = "BYTES")]
    max_request_head: Option<usize>,
    /// Most open WebSocket connections per client IP; more get 429 (0: unlimited).
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// Bytes queued for one connection beyond which it is a slow consumer (closed, or in push
    /// mode with --push-slow-consumer drop, loses its oldest queued messages).
    #[arg(long, value_name = "BYTES")]
    max_queued_bytes: Option<usize>,
    /// Close code for slow consumers: 1008 (policy) or 1013 (try again later).
    #[arg(long, value_name = "CODE")]
    slow_consumer_close_code: Option<u16>,
    /// Largest plain-HTTP request body (POST /publish); larger gets 413.
    #[arg(long, value_name = "BYTES")]
    max_http_body: Option<usize>,
    /// Longest wait for a deferred HTTP response (a publish through Redis) before 504.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    http_reply_timeout: Option<Duration>,
    /// Push mode: messages of history kept per topic for resuming clients (0: none).
    #[arg(long, value_name = "N")]
    push_history_size: Option<usize>,
    /// Push mode: longest a message stays in history (0s: no age limit).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    push_history_ttl: Option<Duration>,
    /// Push mode: most topics held; more are refused with 503 after evicting unsubscribed ones.
    #[arg(long, value_name = "N")]
    push_max_topics: Option<usize>,
    /// Push mode: most topics one connection may subscribe to.
    #[arg(long, value_name = "N")]
    push_max_topics_per_connection: Option<usize>,
    /// Push mode: let WebSocket clients publish ({"op":"publish",...}).
    #[arg(long)]
    push_ws_publish: bool,
    /// Push mode: what happens to a subscriber too slow to drain its queue.
    #[arg(long, value_enum)]
    push_slow_consumer: Option<SlowConsumerPolicy>,
    /// Push mode: Redis for fan-out across nodes, redis://HOST:PORT[/DB].
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Push mode: prefix of every Redis key and channel this cluster uses.
    #[arg(long, value_name = "PREFIX")]
    redis_prefix: Option<String>,
    /// Ping a connection that has sent nothing for this long (0s: never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    /// Close a connection still silent this long after its first unanswered ping.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pong_timeout: Option<Duration>,
    /// Close a connection that has sent nothing for this long, pinged or not (0s: off).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Resolution of the per-core timer wheel (heartbeats, idle timeouts).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timer_tick: Option<Duration>,
    /// Close code sent to every connection on SIGTERM/SIGINT: 1001 (going away) or 1012 (restart).
    #[arg(long, value_name = "CODE")]
    shutdown_close_code: Option<u16>,
    /// How long a graceful shutdown waits for peers' close frames before exiting.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    shutdown_timeout: Option<Duration>,
    /// io_uring data path: completion queue entries per core.
    #[arg(long, value_name = "N")]
    uring_cq_entries: Option<u32>,
    /// io_uring data path: provided buffers per core (a power of two).
    #[arg(long, value_name = "N")]
    uring_buffers: Option<u16>,
    /// io_uring data path: bytes per provided buffer.
    #[arg(long, value_name = "BYTES")]
    uring_buffer_size: Option<u32>,
    /// Drop clients that have not sent a complete upgrade request in this time (e.g. 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    handshake_timeout: Option<Duration>,
    /// Wait this long for the peer's close frame before closing TCP (e.g. 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    close_timeout: Option<Duration>,
    /// Log level: error, warn, info, debug, trace (or an EnvFilter directive).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Bytes of log lines buffered for the stderr writer thread; lines beyond are dropped.
    #[arg(long, value_name = "BYTES")]
    log_buffer_bytes: Option<usize>,
    /// PEM certificate chain for native TLS on the --listen addresses (wss://); needs --tls-key.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
    /// Address for POST /publish (the application's plain HTTP) and, unless --metrics-listen is
    /// set, the observability endpoints, instead of the WebSocket port (repeatable).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Vec<SocketAddr>,
    /// Bearer token every plain request but /healthz and /readyz needs (at least 16 characters).
    #[arg(long, value_name = "TOKEN", env = "RINGCAST_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Web origin allowed to connect (repeatable): https://app.example.com, https://*.example.com
    /// or *.example.com (any scheme); others get 403.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Refuse upgrades without an Origin header (403).
    #[arg(long)]
    require_origin: bool,
    /// HS256 secret of the JWTs upgrades must carry (at least 32 bytes).
    #[arg(long, value_name = "SECRET", env = "RINGCAST_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// RS256 public key (PEM file) of the JWTs upgrades must carry.
    #[arg(long, value_name = "FILE")]
    jwt_public_key: Option<String>,
    /// Query parameter that may carry the JWT (when there is no Authorization header).
    #[arg(long, value_name = "NAME")]
    jwt_query_param: Option<String>,
    /// Slack given to a token's exp and nbf (whole seconds, at most 300s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    jwt_leeway: Option<Duration>,
    /// Accepted aud of the JWTs (repeatable); without it, tokens with an aud are refused.
    #[arg(long, value_name = "AUD")]
    jwt_audience: Vec<String>,
    /// Upgrade requests per client address: N/s or N/m (0: off); beyond it 429.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    handshake_rate_per_ip: Option<f64>,
    /// Upgrade requests one address may make at once before the rate applies.
    #[arg(long, value_name = "N")]
    handshake_burst_per_ip: Option<u32>,
    /// Most client addresses the handshake rate limit tracks at a time.
    #[arg(long, value_name = "N")]
    handshake_rate_max_ips: Option<usize>,
    /// Proxy whose X-Forwarded-For is believed: an address or CIDR range (repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ringcast::config::parse_duration(text)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    ringcast::config::parse_rate(text)
}

impl Args {
    /// The effective configuration: embedded default, then `--config`, then flags; validated
    /// once all are applied.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if self.print_default_config {
            print!("{}", ringcast::config::DEFAULT_CONFIG_TOML);
            std::process::exit(0);
        }
        let mut config = Config::load(self.config.as_deref())?;
        if !self.listen.is_empty() {
            config.listen = self.listen;
        }
        if !self.metrics_listen.is_empty() {
            config.metrics_listen = self.metrics_listen;
        }
        set(&mut config.dashboard, self.dashboard);
        if !self.ws_paths.is_empty() {
            config.ws_paths = self.ws_paths;
        }
        if !self.subprotocols.is_empty() {
            config.subprotocols = self.subprotocols;
        }
        if !self.keep_headers.is_empty() {
            config.keep_headers = self.keep_headers;
        }
        set(&mut config.cores, self.cores);
        set(&mut config.io, self.io);
        set(&mut config.mode, self.mode);
        set(&mut config.max_message_size, self.max_message_size);
        set(&mut config.max_connections, self.max_connections);
        set(&mut config.max_request_head, self.max_request_head);
        set(&mut config.max_connections_per_ip, self.max_connections_per_ip);
        set(&mut config.max_queued_bytes, self.max_queued_bytes);
        set(&mut config.slow_consumer_close_code, self.slow_consumer_close_code);
        set(&mut config.max_http_body, self.max_http_body);
        set(&mut config.http_reply_timeout, self.http_reply_timeout);
        set(&mut config.push_history_size, self.push_history_size);
        set(&mut config.push_history_ttl, self.push_history_ttl);
        set(&mut config.push_max_topics, self.push_max_topics);
        set(
            &mut config.push_max_topics_per_connection,
            self.push_max_topics_per_connection,
        );
        set(&mut config.push_ws_publish, self.push_ws_publish.then_some(true));
        set(&mut config.push_slow_consumer, self.push_slow_consumer);
        set(&mut config.redis, self.redis);
        set(&mut config.redis_prefix, self.redis_prefix);
        set(&mut config.ping_interval, self.ping_interval);
        set(&mut config.pong_timeout, self.pong_timeout);
        set(&mut config.idle_timeout, self.idle_timeout);
        set(&mut config.timer_tick, self.timer_tick);
        set(&mut config.shutdown_close_code, self.shutdown_close_code);
        set(&mut config.shutdown_timeout, self.shutdown_timeout);
        set(&mut config.handshake_timeout, self.handshake_timeout);
        set(&mut config.close_timeout, self.close_timeout);
        set(&mut config.log_level, self.log_level);
        set(&mut config.log_format, self.log_format);
        set(&mut config.uring_cq_entries, self.uring_cq_entries);
        set(&mut config.uring_buffers, self.uring_buffers);
        set(&mut config.uring_buffer_size, self.uring_buffer_size);
        set(&mut config.log_buffer_bytes, self.log_buffer_bytes);
        if !self.admin_listen.is_empty() {
            config.admin_listen = self.admin_listen;
        }
        if !self.allowed_origins.is_empty() {
            config.allowed_origins = self.allowed_origins;
        }
        if !self.jwt_audience.is_empty() {
            config.jwt_audience = self.jwt_audience;
        }
        if !self.trusted_proxies.is_empty() {
            config.trusted_proxies = self.trusted_proxies;
        }
        set(&mut config.admin_token, self.admin_token);
        set(&mut config.require_origin, self.require_origin.then_some(true));
        set(&mut config.tls_cert, self.tls_cert);
        set(&mut config.tls_key, self.tls_key);
        set(&mut config.jwt_secret, self.jwt_secret);
        set(&mut config.jwt_public_key, self.jwt_public_key);
        set(&mut config.jwt_query_param, self.jwt_query_param);
        set(&mut config.jwt_leeway, self.jwt_leeway);
        set(&mut config.handshake_rate_per_ip, self.handshake_rate_per_ip);
        set(&mut config.handshake_burst_per_ip, self.handshake_burst_per_ip);
        set(&mut config.handshake_rate_max_ips, self.handshake_rate_max_ips);
        config.validate()?;
        Ok(config)
    }
}

fn set<T>(slot: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *slot = value;
    }
}

/// Installs the `tracing` subscriber: text or JSON at the configured level, to stderr through
/// the non-blocking writer (a blocked stderr drops lines instead of stalling a core). Keep the
/// guard until exit: dropping it writes out what is still buffered.
pub fn init_logging(config: &Config) -> Result<LogGuard, String> {
    let filter =
        EnvFilter::try_new(&config.log_level).map_err(|e| format!("invalid log level {:?}: {e}", config.log_level))?;
    let (writer, guard) = LogWriter::stderr(config.log_buffer_bytes, config.log_format)
        .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    Ok(guard)
}

/// How long a forced exit waits for buffered log lines (its own included) to reach stderr.
const FORCED_EXIT_LOG_FLUSH: Duration = Duration::from_millis(500);

/// SIGTERM or SIGINT starts the graceful shutdown; a second one exits at once (after at most
/// [`FORCED_EXIT_LOG_FLUSH`] writing out buffered log lines through `logs`).
pub fn install_signal_handlers(handle: ringcast::server::ShutdownHandle, logs: LogWriter) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("ringcast-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if handle.is_shutting_down() {
                    tracing::warn!(event = "shutdown_forced", signal, "second signal: exiting now");
                    logs.flush(FORCED_EXIT_LOG_FLUSH);
                    std::process::exit(1);
                }
                tracing::info!(
                    event = "shutdown",
                    signal,
                    "graceful shutdown started; send the signal again to exit at once"
                );
                handle.shutdown();
            }
        })?;
    Ok(())
}
