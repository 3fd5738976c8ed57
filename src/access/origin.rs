//! The `Origin` check of an upgrade (`allowed_origins`, `require_origin`): which web pages may
//! open WebSocket connections to this server.
//!
//! An allowed origin is `[SCHEME://]HOST[:PORT]`, where HOST is a name or address, or
//! `*.DOMAIN` for every name below DOMAIN (one label or more, not DOMAIN itself). Schemes and
//! hosts compare case-insensitively. With a scheme, only that scheme matches; without one, any
//! scheme does. With a port, only that port matches; without one, only the default port of the
//! origin's scheme (80 for http and ws, 443 for https and wss), written or not. So
//! `https://*.example.com` admits `https://a.example.com` and `https://a.example.com:443`, but not
//! `http://a.example.com` or `https://a.example.com:8443`; `*.example.com` also admits
//! `http://a.example.com`.

use super::{Denied, DenyReason};
use crate::proto::handshake::Request;

/// The configured origin rules.
#[derive(Debug)]
pub(crate) struct OriginPolicy {
    rules: Vec<OriginRule>,
    require: bool,
}

impl OriginPolicy {
    /// Rules from `allowed_origins` entries; an entry that does not parse is refused, named.
    pub fn new(entries: &[String], require: bool) -> Result<OriginPolicy, String> {
        let rules = entries
            .iter()
            .map(|e| OriginRule::parse(e).map_err(|problem| format!("entry {e:?}: {problem}")))
            .collect::<Result<_, _>>()?;
        Ok(OriginPolicy { rules, require })
    }

    /// Admits the request, or refuses it with 403: an `Origin` no rule matches (when there are
    /// rules), more than one `Origin`, or none when `require_origin` is on. With neither rules
    /// nor `require_origin`, the header is not even looked at.
    pub fn check(&self, request: &Request) -> Result<(), Denied> {
        if self.rules.is_empty() && !self.require {
            return Ok(());
        }
        let mut values = request.header_values("origin");
        let (value, extra) = (values.next(), values.next());
        let refuse = |reason: String| Err(Denied::new(DenyReason::Origin, 403, reason));
        if extra.is_some() {
            return refuse("more than one Origin header".into());
        }
        let Some(value) = value else {
            return match self.require {
                true => refuse("an Origin header is required".into()),
                false => Ok(()),
            };
        };
        if self.rules.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(value);
        match Origin::parse(&text) {
            Some(origin) if self.rules.iter().any(|r| r.matches(&origin)) => Ok(()),
            _ => refuse(format!(
                "origin {:?} is not allowed",
                text.chars().take(100).collect::<String>()
            )),
        }
    }
}

/// The host part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// This host only (lowercase).
    Exact(String),
    /// Every host ending in this suffix (lowercase, starting with `.`), with a label before it.
    Below(String),
}

/// One `allowed_origins` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

impl OriginRule {
    fn parse(text: &str) -> Result<OriginRule, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, text),
        };
        if let Some(scheme) = scheme.filter(|s| !is_scheme(s)) {
            return Err(format!("{scheme:?} is not a URL scheme"));
        }
        let (host, port) = split_port(rest).ok_or("the port is not a number from 1 to 65535")?;
        let host = host.to_ascii_lowercase();
        let host = match host.strip_prefix("*.") {
            Some(domain) if is_host(domain) => HostPattern::Below(format!(".{domain}")),
            None if is_host(&host) => HostPattern::Exact(host),
            _ => return Err("expected [SCHEME://]HOST[:PORT], HOST a name, an address or *.DOMAIN (no path)".into()),
        };
        Ok(OriginRule {
            scheme: scheme.map(str::to_ascii_lowercase),
            host,
            port,
        })
    }

    fn matches(&self, origin: &Origin) -> bool {
        let scheme = self.scheme.as_ref().is_none_or(|s| *s == origin.scheme);
        let port = match self.port {
            Some(port) => origin.port.or(default_port(&origin.scheme)) == Some(port),
            None => origin.port.is_none() || origin.port == default_port(&origin.scheme),
        };
        let host = match &self.host {
            HostPattern::Exact(host) => *host == origin.host,
            HostPattern::Below(suffix) => origin.host.len() > suffix.len() && origin.host.ends_with(suffix.as_str()),
        };
        scheme && port && host
    }
}

/// An `Origin` header value (RFC 6454): `scheme://host[:port]`, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// `None` for anything else, `null` included.
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let (host, port) = split_port(rest)?;
        let host = host.to_ascii_lowercase();
        (is_scheme(scheme) && is_host(&host)).then(|| Origin {
            scheme: scheme.to_ascii_lowercase(),
            host,
            port,
        })
    }
}

/// Splits `host[:port]` (an IPv6 host in brackets); `None` if the port is not a number in 1..=65535.
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    let colon = match text.rfind(':') {
        Some(at) if !text[at..].contains(']') => at,
        _ => return Some((text, None)),
    };
    let port = text[colon + 1..].parse().ok().filter(|&p| p != 0)?;
    Some((&text[..colon], Some(port)))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// A host name of non-empty labels (letters, digits, `-`, `_`), or a bracketed IPv6 address.
fn is_host(text: &str) -> bool {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !text.is_empty()
        && text
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::test_get;

    fn policy(entries: &[&str], require: bool) -> OriginPolicy {
        OriginPolicy::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>(), require).unwrap()
    }

    fn with_origins(origins: &[&str]) -> Request {
        let headers: String = origins.iter().map(|o| format!("Origin: {o}\r\n")).collect();
        test_get("/", &headers)
    }

    fn admits(policy: &OriginPolicy, origin: &str) -> bool {
        policy.check(&with_origins(&[origin])).is_ok()
    }

    #[test]
    fn exact_origins_match_scheme_host_and_default_port_case_insensitively() {
        let p = policy(&["https://app.example.com"], false);
        for ok in [
            "https://app.example.com",
            "HTTPS://App.Example.COM",
            "https://app.example.com:443",
        ] {
            assert!(admits(&p, ok), "{ok}");
        }
        for refused in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://evil.app.example.com",
            "https://app.example.com.evil.net",
            "https://xapp.example.com",
            "null",
            "app.example.com",
            "https://app.example.com/",
        ] {
            assert!(!admits(&p, refused), "{refused}");
        }
    }

    #[test]
    fn star_patterns_match_names_below_the_domain_with_or_without_a_scheme() {
        let with_scheme = policy(&["https://*.example.com"], false);
        assert!(admits(&with_scheme, "https://a.example.com"));
        assert!(admits(&with_scheme, "https://a.b.example.com:443"));
        for refused in [
            "https://example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://aexample.com",
            "https://a.example.com.evil.net",
        ] {
            assert!(!admits(&with_scheme, refused), "{refused}");
        }
        let any_scheme = policy(&["*.example.com"], false);
        assert!(admits(&any_scheme, "http://a.example.com"));
        assert!(admits(&any_scheme, "https://A.Example.com"));
        assert!(!admits(&any_scheme, "https://a.example.com:8443"));
        let with_port = policy(&["*.example.com:8443", "http://localhost:3000"], false);
        assert!(admits(&with_port, "https://a.example.com:8443"));
        assert!(!admits(&with_port, "https://a.example.com"));
        assert!(admits(&with_port, "http://localhost:3000"));
        assert!(!admits(&with_port, "http://localhost"));
        let v6 = policy(&["http://[::1]:8080"], false);
        assert!(admits(&v6, "http://[::1]:8080"));
        assert!(!admits(&v6, "http://[::1]"));
    }

    #[test]
    fn no_origin_is_admitted_unless_required_and_no_rules_admit_every_origin() {
        assert!(policy(&["https://a.example"], false).check(&with_origins(&[])).is_ok());
        let required = policy(&[], true);
        let refusal = required.check(&with_origins(&[])).unwrap_err();
        assert_eq!((refusal.reason, refusal.error.status), (DenyReason::Origin, 403));
        assert!(admits(&required, "https://anything.example"));
        assert!(admits(&policy(&[], false), "null"));
        let two = policy(&["https://a"], false).check(&with_origins(&["https://a", "https://a"]));
        assert!(two.unwrap_err().error.reason.contains("more than one"));
        assert!(
            policy(&[], false).check(&with_origins(&["x", "y"])).is_ok(),
            "off is off"
        );
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "https://",
            "https://a.example.com/path",
            "https://*",
            "https://a.*.example.com",
            "https://a..b",
            "1http://a.example",
            "https://a.example:0",
            "https://a.example:99999",
            "https://a.example:x",
            "http://[zz]:80",
        ] {
            let strings = [bad.to_string()];
            assert!(OriginPolicy::new(&strings, false).is_err(), "{bad}");
        }
    }
}
