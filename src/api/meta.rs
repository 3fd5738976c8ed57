//! [`ConnMeta`]: what the engine kept from a connection's upgrade request.

use std::net::{IpAddr, SocketAddr};

use crate::access::TokenGrants;

/// What the engine knows about a connection from its upgrade request.
///
/// Stored compactly (it lives as long as the connection): the request target in one
/// allocation, the subprotocol and kept headers in a second one only when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnMeta {
    /// The peer's address and port (an IPv6 flow label and scope id are not kept).
    peer_ip: IpAddr,
    peer_port: u16,
    target: Box<str>,
    path_len: u32,
    extras: Option<Box<Extras>>,
}

/// The parts of a request most connections do not have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extras {
    protocol: Option<Box<str>>,
    headers: Box<[(Box<str>, Box<str>)]>,
    token: Option<Box<TokenGrants>>,
}

impl ConnMeta {
    /// Metadata for a connection from `peer` that requested `path` (and `query`).
    pub fn new(
        peer: SocketAddr,
        path: &str,
        query: Option<&str>,
        protocol: Option<String>,
        headers: Vec<(String, String)>,
    ) -> ConnMeta {
        let target = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        ConnMeta {
            peer_ip: peer.ip(),
            peer_port: peer.port(),
            target: target.into_boxed_str(),
            path_len: path.len() as u32,
            extras: (protocol.is_some() || !headers.is_empty()).then(|| {
                Box::new(Extras {
                    protocol: protocol.map(String::into_boxed_str),
                    headers: headers
                        .into_iter()
                        .map(|(n, v)| (n.into_boxed_str(), v.into_boxed_str()))
                        .collect(),
                    token: None,
                })
            }),
        }
    }

    /// The same metadata for a connection admitted with a token that grants `token`.
    pub fn with_token(mut self, token: TokenGrants) -> ConnMeta {
        self.extras.get_or_insert_with(Box::default).token = Some(Box::new(token));
        self
    }

    /// What the connection's token grants, if it was admitted with one (`jwt_secret` or
    /// `jwt_public_key` set).
    pub fn token(&self) -> Option<&TokenGrants> {
        self.extras.as_ref()?.token.as_deref()
    }

    /// The client's address: the TCP peer, or behind a trusted proxy the address it forwarded
    /// (with port 0).
    pub fn peer(&self) -> SocketAddr {
        SocketAddr::new(self.peer_ip, self.peer_port)
    }

    /// The request path (without the query).
    pub fn path(&self) -> &str {
        &self.target[..self.path_len as usize]
    }

    /// The query string, if any (without the token parameter when tokens are required).
    pub fn query(&self) -> Option<&str> {
        let path_len = self.path_len as usize;
        (self.target.len() > path_len).then(|| &self.target[path_len + 1..])
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.extras.as_ref()?.protocol.as_deref()
    }

    /// The kept header `name` (case-insensitive; see the `keep_headers` setting).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.extras
            .as_ref()?
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }
}
