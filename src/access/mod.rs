//! Access control, decided before the `101` (or before a plain request is answered) and never
//! per message: who the client is behind a trusted proxy (`proxy`, `cidr`), how fast one
//! address may open connections (`rate`), which web origins may connect (`origin`), the JWT an
//! upgrade must carry (`token`, `bearer`) and what it grants ([`TokenGrants`]), and the admin
//! token of the publishing and observability endpoints (`admin`). The README's "Security"
//! section describes the settings.
//!
//! Every refusal is a `Denied`: an HTTP status with a one-line reason and one of a bounded set
//! of reasons (`DenyReason`), counted in `ringcast_access_refused_total{reason}`.

mod admin;
mod bearer;
mod cidr;
mod grants;
mod origin;
mod proxy;
mod rate;
mod token;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::metrics::Counter;
use crate::proto::handshake::{HttpError, Request};
use admin::AdminToken;
use origin::OriginPolicy;
use proxy::TrustedProxies;
use rate::HandshakeRate;
use token::{TokenSettings, TokenVerifier};

pub use grants::{TokenGrants, TopicPatterns};

/// Why access was refused: the `reason` label of `ringcast_access_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DenyReason {
    /// The `Origin` is not allowed, or missing where one is required (403).
    Origin,
    /// No token where one is required (401).
    TokenMissing,
    /// A token that is malformed, badly signed, of a refused algorithm, not yet valid or for
    /// another audience (401).
    TokenInvalid,
    /// A token past its `exp` (401).
    TokenExpired,
    /// A topic outside the token's `sub_topics` or `pub_topics` (403 before the upgrade, a
    /// `forbidden` notice after it).
    Topic,
    /// A missing or wrong admin token (401).
    AdminToken,
    /// Over the per-address handshake rate (429).
    RateLimit,
}

impl DenyReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Origin => "origin",
            DenyReason::TokenMissing => "token_missing",
            DenyReason::TokenInvalid => "token_invalid",
            DenyReason::TokenExpired => "token_expired",
            DenyReason::Topic => "topic",
            DenyReason::AdminToken => "admin_token",
            DenyReason::RateLimit => "rate_limit",
        }
    }

    /// The counter of refusals for this reason.
    pub fn counter(self) -> Counter {
        match self {
            DenyReason::Origin => Counter::RefusedOrigin,
            DenyReason::TokenMissing => Counter::RefusedTokenMissing,
            DenyReason::TokenInvalid => Counter::RefusedTokenInvalid,
            DenyReason::TokenExpired => Counter::RefusedTokenExpired,
            DenyReason::Topic => Counter::RefusedTopic,
            DenyReason::AdminToken => Counter::RefusedAdminToken,
            DenyReason::RateLimit => Counter::RefusedRateLimit,
        }
    }
}

/// A refusal: why, and the HTTP response that says so.
#[derive(Debug, Clone)]
pub(crate) struct Denied {
    /// The counted reason.
    pub reason: DenyReason,
    /// The status, one-line reason and headers sent.
    pub error: HttpError,
}

impl Denied {
    /// A refusal with `status` and `message`.
    pub fn new(reason: DenyReason, status: u16, message: impl Into<Cow<'static, str>>) -> Denied {
        Denied {
            reason,
            error: HttpError::new(status, message),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Denied {
        self.error = self.error.with_header(name, value);
        self
    }
}

/// The access rules of a server, built once from its configuration and shared by every core.
pub(crate) struct Access {
    proxies: TrustedProxies,
    rate: Option<HandshakeRate>,
    origins: OriginPolicy,
    tokens: Option<TokenVerifier>,
    admin: Option<AdminToken>,
}

impl Access {
    /// The rules of `config`, or the setting that cannot work (a malformed origin or range, a
    /// short secret, an unreadable or unusable key file).
    pub fn from_config(config: &Config) -> Result<Access, ConfigError> {
        let invalid = |setting: &'static str| move |problem: String| ConfigError::Invalid { setting, problem };
        let public_key = match config.jwt_public_key.as_str() {
            "" => None,
            path => {
                Some(std::fs::read(path).map_err(|e| invalid("jwt_public_key")(format!("cannot read {path}: {e}")))?)
            }
        };
        let tokens = match config.jwt_secret.is_empty() && public_key.is_none() {
            true => None,
            false => Some(
                TokenVerifier::new(TokenSettings {
                    secret: &config.jwt_secret,
                    public_key_pem: public_key.as_deref(),
                    query_param: &config.jwt_query_param,
                    leeway_secs: config.jwt_leeway.as_secs(),
                    audience: &config.jwt_audience,
                })
                .map_err(|(setting, problem)| ConfigError::Invalid { setting, problem })?,
            ),
        };
        let admin = match config.admin_token.as_str() {
            "" => None,
            token => Some(AdminToken::new(token).map_err(invalid("admin_token"))?),
        };
        let rate = (config.handshake_rate_per_ip > 0.0).then(|| {
            HandshakeRate::new(
                config.handshake_rate_per_ip,
                config.handshake_burst_per_ip,
                config.handshake_rate_max_ips,
            )
        });
        Ok(Access {
            proxies: TrustedProxies::new(&config.trusted_proxies).map_err(invalid("trusted_proxies"))?,
            rate,
            origins: OriginPolicy::new(&config.allowed_origins, config.require_origin)
                .map_err(invalid("allowed_origins"))?,
            tokens,
            admin,
        })
    }

    /// The client a request from `peer` is for (see the `proxy` module).
    pub fn client(&self, peer: SocketAddr, request: &Request) -> SocketAddr {
        self.proxies.client(peer, request)
    }

    /// Takes a handshake token for `ip`, or 429 with `Retry-After`.
    pub fn check_rate(&self, ip: IpAddr) -> Result<(), Denied> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.take(ip).map_err(|wait| {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            Denied::new(DenyReason::RateLimit, 429, "too many handshakes from this address")
                .with_header("Retry-After", seconds.to_string())
        })
    }

    /// Checks the upgrade's `Origin` (403).
    pub fn check_origin(&self, request: &Request) -> Result<(), Denied> {
        self.origins.check(request)
    }

    /// Verifies the upgrade's token when tokens are required: its grants (`None` when they are
    /// not), or 401.
    pub fn verify_token(&self, request: &Request) -> Result<Option<TokenGrants>, Denied> {
        self.tokens.as_ref().map(|t| t.verify(request)).transpose()
    }

    /// The query the connection keeps: without the token parameter when tokens are on.
    pub fn kept_query<'a>(&self, query: Option<&'a str>) -> Option<Cow<'a, str>> {
        match &self.tokens {
            Some(tokens) => tokens.strip_token(query?).map(Cow::Owned),
            None => query.map(Cow::Borrowed),
        }
    }

    /// How long after its `exp` a token is still honoured.
    pub fn token_leeway(&self) -> Duration {
        Duration::from_secs(self.tokens.as_ref().map_or(0, TokenVerifier::leeway_secs))
    }

    /// Checks the admin token (401) when one is set: every plain request needs it (and the
    /// dashboard's stream) but `/healthz` and `/readyz`, which load balancers probe.
    pub fn check_admin(&self, request: &Request) -> Result<(), Denied> {
        match &self.admin {
            Some(admin) if !matches!(request.path.as_str(), "/healthz" | "/readyz") => admin.check(request),
            _ => Ok(()),
        }
    }
}

/// Refuses the first of `topics` the token does not let the connection subscribe to (403).
pub(crate) fn check_subscribe_grants<'a>(
    grants: &TokenGrants,
    topics: impl IntoIterator<Item = &'a str>,
) -> Result<(), Denied> {
    match topics.into_iter().find(|t| !grants.may_subscribe(t)) {
        Some(topic) => Err(Denied::new(
            DenyReason::Topic,
            403,
            format!("the token does not allow subscribing to {topic:?}"),
        )),
        None => Ok(()),
    }
}
