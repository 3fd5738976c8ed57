//! Trusted proxies (`trusted_proxies`): the client address of a request that came through one.
//!
//! `X-Forwarded-For` is read only when the TCP peer is in a trusted range; then its entries are
//! walked from the right (the hop nearest to us), skipping trusted addresses, and the first
//! untrusted one is the client. If every entry is trusted, the leftmost is. An entry that is not
//! an address ends the walk at the last address read (a trusted proxy's). Without a trusted peer
//! or without the header, the client is the TCP peer. A forwarded client's port is unknown and
//! given as 0.

use std::net::{IpAddr, SocketAddr};

use super::cidr::Cidr;
use crate::proto::handshake::Request;

/// The configured trusted proxy ranges.
#[derive(Debug)]
pub(crate) struct TrustedProxies {
    ranges: Vec<Cidr>,
}

impl TrustedProxies {
    /// Ranges from `trusted_proxies` entries.
    pub fn new(entries: &[String]) -> Result<TrustedProxies, String> {
        let ranges = entries.iter().map(|e| Cidr::parse(e)).collect::<Result<_, _>>()?;
        Ok(TrustedProxies { ranges })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The client of `request`, which arrived from `peer`.
    pub fn client(&self, peer: SocketAddr, request: &Request) -> SocketAddr {
        if self.ranges.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let headers: Vec<&[u8]> = request.header_values("x-forwarded-for").collect();
        let mut nearest = None;
        for entry in headers.iter().rev().flat_map(|value| value.rsplit(|&b| b == b',')) {
            let Some(ip) = std::str::from_utf8(entry).ok().and_then(forwarded_ip) else {
                break;
            };
            nearest = Some(ip);
            if !self.trusts(ip) {
                break;
            }
        }
        nearest.map_or(peer, |ip| SocketAddr::new(ip, 0))
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`) or
/// in brackets.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::test_get;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn forwarded(values: &[&str]) -> Request {
        let headers: String = values.iter().map(|v| format!("X-Forwarded-For: {v}\r\n")).collect();
        test_get("/", &headers)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_behind_a_trusted_peer() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        let via = addr("10.0.0.5:4000");
        let client = |values: &[&str]| p.client(via, &forwarded(values));
        assert_eq!(client(&["203.0.113.7"]), addr("203.0.113.7:0"));
        // A client's own (spoofed) entries are left of the hop our proxy appended.
        assert_eq!(client(&["1.1.1.1, 203.0.113.7"]), addr("203.0.113.7:0"));
        assert_eq!(
            client(&["1.1.1.1, 203.0.113.7, 192.168.1.1, 10.2.2.2"]),
            addr("203.0.113.7:0")
        );
        // Several headers are one list, in order.
        assert_eq!(client(&["1.1.1.1", "203.0.113.7, 10.2.2.2"]), addr("203.0.113.7:0"));
        // Every hop trusted: the leftmost.
        assert_eq!(client(&["10.9.9.9, 10.2.2.2"]), addr("10.9.9.9:0"));
        // Garbage ends the walk at the last address read.
        assert_eq!(client(&["203.0.113.7, unknown, 10.2.2.2"]), addr("10.2.2.2:0"));
        assert_eq!(client(&["garbage"]), via);
        assert_eq!(client(&[]), via, "no header: the proxy itself");
        assert_eq!(client(&["[2001:db8::1]:443, 10.2.2.2"]), addr("[2001:db8::1]:0"));
        assert_eq!(client(&["198.51.100.2:1234"]), addr("198.51.100.2:0"));
    }

    #[test]
    fn an_untrusted_peer_or_no_configuration_ignores_the_header() {
        let spoofed = forwarded(&["203.0.113.7"]);
        let direct = addr("198.51.100.9:5555");
        assert_eq!(proxies(&["10.0.0.0/8"]).client(direct, &spoofed), direct);
        assert_eq!(proxies(&[]).client(addr("10.0.0.5:1"), &spoofed), addr("10.0.0.5:1"));
    }
}
