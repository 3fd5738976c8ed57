//! Engine configuration: an embedded default, an optional TOML file over it, flags over both.

mod cores;
mod duration;
mod rate;
mod validate;

pub use duration::parse as parse_duration;
pub use rate::parse as parse_rate;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use cores::{CoreSelection, CoreSelectionError};
pub use validate::{MIN_LOG_BUFFER, MIN_REQUEST_HEAD};

/// The configuration compiled into the binary; see `src/config/default.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// Which io driver each core's monoio runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// io_uring, or epoll with a log line when io_uring cannot be set up.
    Auto,
    /// io_uring only; fail to start without it.
    Uring,
    /// The legacy epoll driver.
    Epoll,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of the engine. Field docs live in `default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub metrics_listen: Vec<SocketAddr>,
    pub dashboard: bool,
    pub cores: CoreSelection,
    pub io: IoMode,
    pub mode: String,
    pub ws_paths: Vec<String>,
    pub subprotocols: Vec<String>,
    pub keep_headers: Vec<String>,
    pub max_message_size: usize,
    pub max_connections: usize,
    pub max_request_head: usize,
    pub max_connections_per_ip: usize,
    pub max_queued_bytes: usize,
    pub slow_consumer_close_code: u16,
    pub max_http_body: usize,
    #[serde(with = "duration")]
    pub http_reply_timeout: Duration,
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    #[serde(with = "duration")]
    pub pong_timeout: Duration,
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    #[serde(with = "duration")]
    pub timer_tick: Duration,
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    #[serde(with = "duration")]
    pub close_timeout: Duration,
    pub shutdown_close_code: u16,
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    pub log_level: String,
    pub log_format: LogFormat,
    pub uring_cq_entries: u32,
    pub uring_buffers: u16,
    pub uring_buffer_size: u32,
    pub log_buffer_bytes: usize,
    pub push_history_size: usize,
    #[serde(with = "duration")]
    pub push_history_ttl: Duration,
    pub push_max_topics: usize,
    pub push_max_topics_per_connection: usize,
    pub push_ws_publish: bool,
    pub push_slow_consumer: SlowConsumerPolicy,
    pub redis: String,
    pub redis_prefix: String,
    pub admin_listen: Vec<SocketAddr>,
    pub admin_token: String,
    pub allowed_origins: Vec<String>,
    pub require_origin: bool,
    pub jwt_secret: String,
    pub jwt_public_key: String,
    pub jwt_query_param: String,
    #[serde(with = "duration")]
    pub jwt_leeway: Duration,
    pub jwt_audience: Vec<String>,
    #[serde(with = "rate")]
    pub handshake_rate_per_ip: f64,
    pub handshake_burst_per_ip: u32,
    pub handshake_rate_max_ips: usize,
    pub trusted_proxies: Vec<String>,
    pub tls_cert: String,
    pub tls_key: String,
}

/// What push mode does with a subscriber too slow to drain its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SlowConsumerPolicy {
    /// Close it with `slow_consumer_close_code`.
    Close,
    /// Drop its oldest queued messages and send it a gap notice.
    Drop,
}

/// A configuration that could not be read or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys or wrong types.
    #[error("invalid configuration in {origin}: {message}")]
    Parse {
        /// Which layer was wrong (the embedded default or the file).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value that parses but cannot work, or settings that contradict each other.
    #[error("invalid configuration: {setting} {problem}")]
    Invalid {
        /// The setting (its key in the file) to change.
        setting: &'static str,
        /// What is wrong with it, with the values involved.
        problem: String,
    },
}

impl Config {
    /// The embedded default configuration (valid as it is).
    pub fn embedded() -> Config {
        let config = Config::load(None).expect("the embedded default configuration parses");
        config.validate().expect("the embedded default configuration is valid");
        config
    }

    /// The embedded default with the keys of `file` (if any) laid over it. Only parsing is
    /// checked here; call [`validate`](Config::validate) on the final configuration, once every
    /// override (flags, code) has been applied.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut table = parse_table(DEFAULT_CONFIG_TOML, "the embedded default")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let origin = path.display().to_string();
            for (key, value) in parse_table(&text, &origin)? {
                table.insert(key, value);
            }
        }
        let origin = file.map_or("the embedded default".to_owned(), |p| p.display().to_string());
        table.try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            origin,
            message: e.to_string(),
        })
    }

    /// Whether an upgrade to `path` is served.
    pub fn accepts_ws_path(&self, path: &str) -> bool {
        self.ws_paths.iter().any(|p| p == "*" || p == path)
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let config = Config::embedded();
        assert_eq!(config.max_message_size, 16 * 1024 * 1024);
        assert_eq!(config.io, IoMode::Auto);
        assert_eq!(config.handshake_timeout, Duration::from_secs(10));
        assert!(config.accepts_ws_path("/anything"));
    }

    #[test]
    fn file_overrides_default_and_unknown_keys_are_errors() {
        let dir = std::env::temp_dir().join(format!("ringcast-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "max_connections = 5\nws_paths = [\"/ws\"]\nclose_timeout = \"250ms\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&good)).unwrap();
        assert_eq!(config.max_connections, 5);
        assert!(config.accepts_ws_path("/ws") && !config.accepts_ws_path("/"));
        assert_eq!(config.close_timeout, Duration::from_millis(250));
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "max_conections = 5\n").unwrap();
        let err = Config::load(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
        let missing = Config::load(Some(&dir.join("missing.toml"))).unwrap_err().to_string();
        assert!(missing.contains("cannot read config file"), "{missing}");
    }

    #[test]
    fn a_file_may_be_contradictory_until_an_override_repairs_it() {
        let dir = std::env::temp_dir().join(format!("ringcast-config-repair-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fast.toml");
        std::fs::write(&file, "ping_interval = \"50ms\"\n").unwrap();
        let mut config = Config::load(Some(&file)).expect("loading does not validate");
        assert!(
            config.validate().is_err(),
            "a 100 ms tick cannot check a 50 ms interval"
        );
        config.timer_tick = Duration::from_millis(10);
        config.validate().unwrap();
    }
}
