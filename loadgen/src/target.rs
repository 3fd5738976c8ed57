//! Where connections go: the `ws://` or `wss://` URL, destination ports, and local source
//! addresses.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// A parsed `ws://host:port/path` or `wss://` (for publishing, `http://` or `https://`) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://` or `https://`: TLS, with the host as the server name.
    pub tls: bool,
    /// The host as written (an IPv6 literal keeps its brackets), for the `Host` header.
    pub host: String,
    /// The port from the URL (80, or 443 with TLS, when absent).
    pub port: u16,
    /// Path and query, `/` when absent.
    pub path: String,
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<WsUrl, String> {
        WsUrl::parse_scheme(url, "ws")
    }

    /// Parses an `http://` or `https://` URL of the same shape (HTTP publishing).
    pub fn parse_http(url: &str) -> Result<WsUrl, String> {
        WsUrl::parse_scheme(url, "http")
    }

    fn parse_scheme(url: &str, scheme: &str) -> Result<WsUrl, String> {
        let (tls, rest) = match url.split_once("://") {
            Some((s, rest)) if s == scheme => (false, rest),
            Some((s, rest)) if s.strip_suffix('s') == Some(scheme) => (true, rest),
            _ => return Err(format!("{url}: expected a {scheme}[s]://HOST:PORT/PATH URL")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(format!("{url}: user info in the URL is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inner, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed IPv6 bracket"))?;
            (format!("[{inner}]"), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(format!("{url}: missing host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(WsUrl { tls, host, port, path })
    }

    /// Resolves the host to one address (the first the resolver returns).
    pub fn resolve(&self) -> Result<IpAddr, String> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse() {
            return Ok(ip);
        }
        (bare, self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {bare}: {e}"))?
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| format!("{bare} resolved to no address"))
    }

    /// The `Host` header value for a connection to `port` (without the scheme's default port).
    pub fn host_header(&self, port: u16) -> String {
        if port == if self.tls { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

/// A list of local source addresses given as `A-B` ranges and single addresses, comma separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList(pub Vec<IpAddr>);

impl std::str::FromStr for IpList {
    type Err = String;

    fn from_str(s: &str) -> Result<IpList, String> {
        let mut out = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let parse = |a: &str| a.trim().parse::<IpAddr>().map_err(|_| format!("bad IP address {a:?}"));
            match item.split_once('-') {
                None => out.push(parse(item)?),
                Some((a, b)) => match (parse(a)?, parse(b)?) {
                    (IpAddr::V4(a), IpAddr::V4(b)) if u32::from(a) <= u32::from(b) => {
                        let count = u32::from(b) - u32::from(a) + 1;
                        if count > 65_536 {
                            return Err(format!("range {item} is larger than 65536 addresses"));
                        }
                        out.extend((u32::from(a)..=u32::from(b)).map(|n| IpAddr::V4(n.into())));
                    }
                    _ => return Err(format!("bad range {item:?}: expected ascending IPv4 A-B")),
                },
            }
        }
        if out.is_empty() {
            return Err("empty address list".into());
        }
        Ok(IpList(out))
    }
}

/// A list of ports given as `A-B` ranges and single ports, comma separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortList(pub Vec<u16>);

impl std::str::FromStr for PortList {
    type Err = String;

    fn from_str(s: &str) -> Result<PortList, String> {
        let mut out = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let parse = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("bad port {p:?}"));
            match item.split_once('-') {
                None => out.push(parse(item)?),
                Some((a, b)) => {
                    let (a, b) = (parse(a)?, parse(b)?);
                    if a > b {
                        return Err(format!("bad port range {item:?}"));
                    }
                    out.extend(a..=b);
                }
            }
        }
        if out.is_empty() {
            return Err("empty port list".into());
        }
        Ok(PortList(out))
    }
}

/// Every (source, destination) pair connections are spread over, round-robin.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Destination addresses, one per port.
    pub dests: Vec<SocketAddr>,
    /// Local addresses to bind before connecting; empty means "let the kernel choose".
    pub sources: Vec<IpAddr>,
}

impl Targets {
    /// How many distinct (source, destination) pairs there are.
    pub fn pairs(&self) -> usize {
        self.sources.len().max(1) * self.dests.len()
    }

    /// The source and destination of connection number `global` (0-based over the whole run).
    pub fn pick(&self, global: u64) -> (Option<IpAddr>, SocketAddr) {
        let pair = (global % self.pairs() as u64) as usize;
        let sources = self.sources.len().max(1);
        let source = self.sources.get(pair % sources).copied();
        (source, self.dests[pair / sources])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/chat?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9001, "/chat?x=1")
        );
        let u = WsUrl::parse("ws://localhost").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert_eq!(u.host_header(80), "localhost");
        let u = WsUrl::parse("ws://[::1]:9/?q").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("[::1]", 9, "/?q"));
        assert_eq!(u.host_header(9), "[::1]:9");
        assert_eq!(u.resolve().unwrap(), "::1".parse::<IpAddr>().unwrap());
        let u = WsUrl::parse("ws://h:1?only=query").unwrap();
        assert_eq!(u.path, "/?only=query");
        let u = WsUrl::parse("wss://example.com/s").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "example.com", 443, "/s")
        );
        assert_eq!(
            (u.host_header(443), u.host_header(80)),
            ("example.com".into(), "example.com:80".into())
        );
        let u = WsUrl::parse("wss://127.0.0.1:9443").unwrap();
        assert_eq!(
            (u.tls, u.port, u.host_header(9443).as_str()),
            (true, 9443, "127.0.0.1:9443")
        );
        assert!(!WsUrl::parse("ws://h/").unwrap().tls);
        assert!(WsUrl::parse("wsss://h/").is_err());
        assert!(WsUrl::parse("http://h/").is_err());
        assert!(WsUrl::parse("ws://h:99999/").is_err());
        assert!(WsUrl::parse("ws://:80/").is_err());
        let h = WsUrl::parse_http("http://127.0.0.1:8080").unwrap();
        assert_eq!((h.port, h.path.as_str()), (8080, "/"));
        let h = WsUrl::parse_http("https://h/p").unwrap();
        assert_eq!((h.tls, h.port, h.path.as_str()), (true, 443, "/p"));
        assert!(WsUrl::parse_http("ws://h/").is_err());
    }

    #[test]
    fn parses_ranges() {
        let ips: IpList = "127.0.0.1-127.0.0.3,10.0.0.9".parse().unwrap();
        assert_eq!(ips.0.len(), 4);
        assert_eq!(ips.0[2], "127.0.0.3".parse::<IpAddr>().unwrap());
        assert!("127.0.0.3-127.0.0.1".parse::<IpList>().is_err());
        let ports: PortList = "9001-9004, 9100".parse().unwrap();
        assert_eq!(ports.0, vec![9001, 9002, 9003, 9004, 9100]);
        assert!("9-1".parse::<PortList>().is_err());
        assert!("".parse::<PortList>().is_err());
    }

    #[test]
    fn spreads_connections_over_every_pair() {
        let targets = Targets {
            dests: vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()],
            sources: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
        };
        let picked: std::collections::HashSet<_> = (0..4).map(|g| targets.pick(g)).collect();
        assert_eq!(picked.len(), 4);
        let no_sources = Targets {
            dests: targets.dests.clone(),
            sources: vec![],
        };
        assert_eq!(no_sources.pairs(), 2);
        assert_eq!(no_sources.pick(3), (None, "127.0.0.1:2".parse().unwrap()));
    }
}
