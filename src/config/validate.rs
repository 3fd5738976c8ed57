//! The rules a configuration must satisfy to work: values that parse but cannot serve, and
//! combinations that contradict each other. Each rule is documented next to its key in
//! `default.toml`.

use std::time::Duration;

use super::{Config, ConfigError};

/// The smallest `max_request_head` accepted: a minimal upgrade request (request line, Host,
/// Upgrade, Connection, key and version) is about 140 bytes, real clients send 300 to 800.
pub const MIN_REQUEST_HEAD: usize = 256;

/// The smallest `log_buffer_bytes` accepted: room for a few log lines.
pub const MIN_LOG_BUFFER: usize = 4096;

/// The smallest `handshake_rate_max_ips` accepted: one address per shard of the table.
const MIN_RATE_TABLE: usize = 16;

/// The longest `jwt_leeway` accepted.
const MAX_JWT_LEEWAY: Duration = Duration::from_secs(300);

impl Config {
    /// Checks the values that parse but cannot work, and the settings that contradict each
    /// other; the first rule broken is returned, naming the setting. Run it on the final
    /// configuration (after every override): [`Config::load`] does not, so that a flag can
    /// still repair what a file sets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_endpoints()?;
        self.check_sizes()?;
        self.check_liveness()?;
        self.check_phases()?;
        self.check_uring()?;
        self.check_push()?;
        self.check_access()
    }

    /// Access control: the rules must parse and the keys load (`Access::from_config` is the
    /// judge), and the rate limit needs room.
    fn check_access(&self) -> Result<(), ConfigError> {
        if self.handshake_rate_per_ip > 0.0 && self.handshake_burst_per_ip == 0 {
            return invalid(
                "handshake_burst_per_ip",
                "must be at least 1 while handshake_rate_per_ip is on (0 would refuse every upgrade)",
            );
        }
        if self.handshake_rate_max_ips < MIN_RATE_TABLE {
            return invalid("handshake_rate_max_ips", format!("must be at least {MIN_RATE_TABLE}"));
        }
        if self.jwt_query_param.is_empty() || self.jwt_query_param.contains(['&', '=', '#', '?', ' ']) {
            return invalid("jwt_query_param", "must be a non-empty name without & = # ? or spaces");
        }
        if self.jwt_leeway > MAX_JWT_LEEWAY {
            return invalid(
                "jwt_leeway",
                format!(
                    "{} is more than {}: expired tokens would be honoured too long",
                    show(self.jwt_leeway),
                    show(MAX_JWT_LEEWAY)
                ),
            );
        }
        crate::access::Access::from_config(self).map(|_| ())
    }

    /// Push mode, Redis, and the HTTP side it uses.
    fn check_push(&self) -> Result<(), ConfigError> {
        if ![1008, 1013].contains(&self.slow_consumer_close_code) {
            return invalid("slow_consumer_close_code", "must be 1008 or 1013");
        }
        if self.http_reply_timeout.is_zero() {
            return invalid("http_reply_timeout", "must be above 0");
        }
        if !(1..=1 << 23).contains(&self.push_max_topics) {
            return invalid("push_max_topics", "must be from 1 to 8388608");
        }
        if self.push_max_topics_per_connection == 0 {
            return invalid("push_max_topics_per_connection", "must be above 0");
        }
        if !self.redis.is_empty() && !self.redis.starts_with("redis://") {
            return invalid(
                "redis",
                format!("{:?} must be a redis://HOST:PORT URL (or empty)", self.redis),
            );
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return invalid("redis_prefix", "must be a non-empty word without spaces");
        }
        Ok(())
    }

    /// The io_uring data path's ring and buffer pool.
    fn check_uring(&self) -> Result<(), ConfigError> {
        if !self.uring_buffers.is_power_of_two() || self.uring_buffers > 1 << 15 {
            return invalid("uring_buffers", "must be a power of two from 1 to 32768");
        }
        if !(64..=1 << 20).contains(&self.uring_buffer_size) {
            return invalid("uring_buffer_size", "must be from 64 bytes to 1 MiB");
        }
        if !(1..=1 << 20).contains(&self.uring_cq_entries) {
            return invalid("uring_cq_entries", "must be from 1 to 1048576");
        }
        Ok(())
    }

    /// Addresses, paths and subprotocols.
    fn check_endpoints(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return invalid("listen", "needs at least one address");
        }
        let groups = [
            ("listen", &self.listen),
            ("metrics_listen", &self.metrics_listen),
            ("admin_listen", &self.admin_listen),
        ];
        for (i, (_, addrs)) in groups.iter().enumerate() {
            for (setting, others) in &groups[i + 1..] {
                if let Some(addr) = addrs.iter().find(|a| a.port() != 0 && others.contains(a)) {
                    return invalid(
                        setting,
                        format!("{addr} is also in {}: each address serves one role", groups[i].0),
                    );
                }
            }
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            let (setting, other) = match self.tls_cert.is_empty() {
                true => ("tls_cert", "tls_key"),
                false => ("tls_key", "tls_cert"),
            };
            return invalid(setting, format!("is needed with {other}: give both or neither"));
        }
        if self.ws_paths.is_empty() {
            return invalid(
                "ws_paths",
                "needs at least one path (or \"*\"); without one no upgrade is accepted",
            );
        }
        if let Some(path) = self.ws_paths.iter().find(|p| *p != "*" && !p.starts_with('/')) {
            return invalid("ws_paths", format!("entry {path:?} must start with / (or be *)"));
        }
        if let Some(name) = self.subprotocols.iter().find(|p| !is_token(p)) {
            return invalid(
                "subprotocols",
                format!(
                    "{name:?} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~), so no client could select it"
                ),
            );
        }
        Ok(())
    }

    /// Size and count limits.
    fn check_sizes(&self) -> Result<(), ConfigError> {
        if self.max_message_size == 0 {
            return invalid("max_message_size", "must be above 0 (0 would refuse every message)");
        }
        if self.max_queued_bytes == 0 {
            return invalid("max_queued_bytes", "must be above 0 (0 would refuse every reply)");
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be above 0 (0 would refuse every upgrade)");
        }
        if self.max_request_head < MIN_REQUEST_HEAD {
            return invalid(
                "max_request_head",
                format!(
                    "{} bytes is too small for an upgrade request; at least {MIN_REQUEST_HEAD}",
                    self.max_request_head
                ),
            );
        }
        if self.log_buffer_bytes < MIN_LOG_BUFFER {
            return invalid(
                "log_buffer_bytes",
                format!(
                    "{} bytes cannot hold a few log lines; at least {MIN_LOG_BUFFER}",
                    self.log_buffer_bytes
                ),
            );
        }
        Ok(())
    }

    /// Heartbeats and idle timeouts on the timer wheel.
    fn check_liveness(&self) -> Result<(), ConfigError> {
        let tick = self.timer_tick;
        if tick.is_zero() {
            return invalid("timer_tick", "must be above 0");
        }
        let pings = !self.ping_interval.is_zero();
        if pings && self.ping_interval < tick {
            return invalid(
                "timer_tick",
                format!(
                    "{} is longer than ping_interval {}: heartbeats could not be checked on time",
                    show(tick),
                    show(self.ping_interval)
                ),
            );
        }
        if pings && self.pong_timeout < tick {
            return invalid(
                "pong_timeout",
                format!(
                    "{} is shorter than timer_tick {} while pings are on (ping_interval {}): \
                     a client could not answer in time",
                    show(self.pong_timeout),
                    show(tick),
                    show(self.ping_interval)
                ),
            );
        }
        let idle = !self.idle_timeout.is_zero();
        if idle && self.idle_timeout < tick {
            return invalid(
                "timer_tick",
                format!(
                    "{} is longer than idle_timeout {}: idle connections could not be closed on time",
                    show(tick),
                    show(self.idle_timeout)
                ),
            );
        }
        if idle && pings && self.idle_timeout <= self.ping_interval {
            return invalid(
                "idle_timeout",
                format!(
                    "{} is not longer than ping_interval {}: every silent connection would be closed \
                     as idle before its first ping",
                    show(self.idle_timeout),
                    show(self.ping_interval)
                ),
            );
        }
        Ok(())
    }

    /// The handshake, close and shutdown phases.
    fn check_phases(&self) -> Result<(), ConfigError> {
        if self.handshake_timeout.is_zero() {
            return invalid("handshake_timeout", "must be above 0 (0 would drop every client)");
        }
        if self.close_timeout.is_zero() {
            return invalid(
                "close_timeout",
                "must be above 0 (it also bounds writing our close frame, which 0 would never allow)",
            );
        }
        if !matches!(self.shutdown_close_code, 1001 | 1012) {
            return invalid(
                "shutdown_close_code",
                format!("must be 1001 or 1012, not {}", self.shutdown_close_code),
            );
        }
        Ok(())
    }
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        setting,
        problem: problem.into(),
    })
}

/// A duration as the config file and flags write it (`100ms`, `30s`, `1.5s`).
fn show(duration: Duration) -> String {
    if duration.is_zero() {
        "0s".to_owned()
    } else {
        format!("{duration:?}")
    }
}

/// Whether `name` is an HTTP token (RFC 7230 section 3.2.6), as RFC 6455 requires of a
/// subprotocol name.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setting named by the error of `config.validate()`, with its message.
    fn broken(config: &Config) -> (&'static str, String) {
        match config.validate() {
            Err(error @ ConfigError::Invalid { setting, .. }) => (setting, error.to_string()),
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    fn with(change: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config::embedded();
        change(&mut config);
        config
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_embedded_default_is_valid() {
        Config::embedded().validate().unwrap();
    }

    #[test]
    fn endpoints_need_an_address_a_path_and_token_subprotocols() {
        assert_eq!(broken(&with(|c| c.listen.clear())).0, "listen");
        assert_eq!(broken(&with(|c| c.ws_paths.clear())).0, "ws_paths");
        let (setting, message) = broken(&with(|c| c.ws_paths = vec!["ws".into()]));
        assert_eq!(setting, "ws_paths");
        assert!(message.contains("\"ws\""), "{message}");
        for bad in ["", "chat, v2", "chat v2", "caf\u{e9}"] {
            let (setting, message) = broken(&with(|c| c.subprotocols = vec!["ok".into(), bad.into()]));
            assert_eq!(setting, "subprotocols", "{bad:?}");
            assert!(message.contains("not an HTTP token"), "{message}");
        }
        with(|c| c.subprotocols = vec!["graphql-ws".into(), "v2.chat_x".into()])
            .validate()
            .unwrap();
    }

    #[test]
    fn sizes_and_counts_must_be_usable() {
        assert_eq!(broken(&with(|c| c.max_message_size = 0)).0, "max_message_size");
        assert_eq!(broken(&with(|c| c.max_queued_bytes = 0)).0, "max_queued_bytes");
        assert_eq!(broken(&with(|c| c.max_connections = 0)).0, "max_connections");
        assert_eq!(
            broken(&with(|c| c.max_request_head = MIN_REQUEST_HEAD - 1)).0,
            "max_request_head"
        );
        with(|c| c.max_request_head = MIN_REQUEST_HEAD).validate().unwrap();
        assert_eq!(broken(&with(|c| c.log_buffer_bytes = 100)).0, "log_buffer_bytes");
    }

    #[test]
    fn a_queue_cap_below_the_message_size_is_allowed() {
        // An empty queue always admits one message, so this combination works.
        with(|c| {
            c.max_queued_bytes = 1024;
            c.max_message_size = 1 << 20;
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn the_timer_tick_must_be_positive_and_fit_the_intervals() {
        assert_eq!(broken(&with(|c| c.timer_tick = Duration::ZERO)).0, "timer_tick");
        let (setting, message) = broken(&with(|c| {
            c.timer_tick = ms(100);
            c.ping_interval = ms(50);
        }));
        assert_eq!(setting, "timer_tick");
        assert!(
            message.contains("100ms") && message.contains("ping_interval 50ms"),
            "{message}"
        );
        let (setting, message) = broken(&with(|c| {
            c.ping_interval = Duration::ZERO;
            c.timer_tick = ms(100);
            c.idle_timeout = ms(50);
        }));
        assert_eq!(setting, "timer_tick");
        assert!(message.contains("idle_timeout 50ms"), "{message}");
        // Off is off: a zero interval or timeout does not constrain the tick.
        with(|c| {
            c.ping_interval = Duration::ZERO;
            c.pong_timeout = Duration::ZERO;
            c.idle_timeout = Duration::ZERO;
            c.timer_tick = Duration::from_secs(5);
        })
        .validate()
        .unwrap();
        // Equal is enough.
        with(|c| {
            c.timer_tick = ms(20);
            c.ping_interval = ms(20);
            c.pong_timeout = ms(20);
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn pings_need_a_pong_timeout_of_at_least_one_tick() {
        let (setting, message) = broken(&with(|c| c.pong_timeout = Duration::ZERO));
        assert_eq!(setting, "pong_timeout");
        assert!(message.contains("while pings are on"), "{message}");
        assert_eq!(broken(&with(|c| c.pong_timeout = ms(99))).0, "pong_timeout");
        with(|c| {
            c.ping_interval = Duration::ZERO;
            c.pong_timeout = Duration::ZERO;
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn an_idle_timeout_with_pings_must_outlast_the_ping_interval() {
        let (setting, message) = broken(&with(|c| {
            c.ping_interval = Duration::from_secs(30);
            c.idle_timeout = Duration::from_secs(30);
        }));
        assert_eq!(setting, "idle_timeout");
        assert!(message.contains("before its first ping"), "{message}");
        with(|c| {
            c.ping_interval = Duration::from_secs(30);
            c.idle_timeout = Duration::from_secs(31);
        })
        .validate()
        .unwrap();
        with(|c| {
            c.ping_interval = Duration::ZERO;
            c.idle_timeout = ms(300);
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn phases_need_time_and_a_shutdown_code_for_going_away() {
        assert_eq!(
            broken(&with(|c| c.handshake_timeout = Duration::ZERO)).0,
            "handshake_timeout"
        );
        assert_eq!(broken(&with(|c| c.close_timeout = Duration::ZERO)).0, "close_timeout");
        let (setting, message) = broken(&with(|c| c.shutdown_close_code = 1000));
        assert_eq!(setting, "shutdown_close_code");
        assert!(message.contains("not 1000"), "{message}");
        with(|c| c.shutdown_close_code = 1012).validate().unwrap();
        // A shutdown that does not wait for peers is a choice, not a contradiction.
        with(|c| c.shutdown_timeout = Duration::ZERO).validate().unwrap();
    }

    #[test]
    fn access_rules_must_parse_and_fit() {
        let (setting, message) = broken(&with(|c| c.allowed_origins = vec!["https://a.example/x".into()]));
        assert_eq!(setting, "allowed_origins");
        assert!(message.contains("a.example/x"), "{message}");
        assert_eq!(
            broken(&with(|c| c.trusted_proxies = vec!["10.0.0.0/40".into()])).0,
            "trusted_proxies"
        );
        assert_eq!(broken(&with(|c| c.jwt_secret = "short".into())).0, "jwt_secret");
        assert_eq!(broken(&with(|c| c.admin_token = "short".into())).0, "admin_token");
        let (setting, message) = broken(&with(|c| c.jwt_public_key = "/nonexistent/key.pem".into()));
        assert_eq!(setting, "jwt_public_key");
        assert!(message.contains("cannot read /nonexistent/key.pem"), "{message}");
        assert_eq!(
            broken(&with(|c| c.jwt_query_param = "to ken".into())).0,
            "jwt_query_param"
        );
        assert_eq!(
            broken(&with(|c| c.jwt_leeway = Duration::from_secs(301))).0,
            "jwt_leeway"
        );
        assert_eq!(
            broken(&with(|c| {
                c.handshake_rate_per_ip = 1.0;
                c.handshake_burst_per_ip = 0;
            }))
            .0,
            "handshake_burst_per_ip"
        );
        assert_eq!(
            broken(&with(|c| c.handshake_rate_max_ips = 15)).0,
            "handshake_rate_max_ips"
        );
        with(|c| {
            c.allowed_origins = vec!["https://*.example.com".into(), "localhost:3000".into()];
            c.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
            c.jwt_secret = "0123456789abcdef0123456789abcdef".into();
            c.admin_token = "0123456789abcdef".into();
            c.handshake_rate_per_ip = 0.5;
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn tls_needs_both_the_certificate_and_the_key() {
        let (setting, message) = broken(&with(|c| c.tls_cert = "cert.pem".into()));
        assert_eq!(setting, "tls_key");
        assert!(message.contains("tls_cert"), "{message}");
        assert_eq!(broken(&with(|c| c.tls_key = "key.pem".into())).0, "tls_cert");
    }

    #[test]
    fn an_address_serves_one_role() {
        let addr: std::net::SocketAddr = "127.0.0.1:9100".parse().unwrap();
        let (setting, message) = broken(&with(|c| {
            c.metrics_listen = vec![addr];
            c.admin_listen = vec![addr];
        }));
        assert_eq!(setting, "admin_listen");
        assert!(message.contains("also in metrics_listen"), "{message}");
        assert_eq!(
            broken(&with(|c| c.metrics_listen = c.listen.clone())).0,
            "metrics_listen"
        );
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        with(|c| {
            c.listen = vec![any];
            c.admin_listen = vec![any];
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn the_message_names_the_setting() {
        let error = with(|c| c.max_queued_bytes = 0).validate().unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid configuration: max_queued_bytes must be above 0 (0 would refuse every reply)"
        );
    }
}
