//! The small internal HTTP router: plain (non-upgrade) requests on the WebSocket port.
//!
//! Routes match exact paths and answer GET/HEAD. Built in: `/healthz`, `/readyz` and
//! `/metrics`; an embedding application adds its own with [`crate::server::Server::route`].
//! Requests a handler takes first ([`crate::handler::Handler::on_http`], e.g. `POST /publish`)
//! never reach the router.

use std::sync::Arc;

pub use crate::api::Response;
use crate::proto::handshake::{http_response, HttpError, Request};

/// A route's handler; it runs on the core that accepted the request.
pub type RouteFn = dyn Fn(&Request) -> Response + Send + Sync;

/// Exact-path routes for plain HTTP requests.
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<(String, Arc<RouteFn>)>,
}

impl Router {
    /// Adds (or replaces) the route for `path`.
    pub fn add(&mut self, path: &str, route: Arc<RouteFn>) {
        self.routes.retain(|(p, _)| p != path);
        self.routes.push((path.to_owned(), route));
    }

    /// The route for `path`, if any.
    pub fn route(&self, path: &str) -> Option<Arc<RouteFn>> {
        self.routes.iter().find(|(p, _)| p == path).map(|(_, r)| r.clone())
    }

    /// The full HTTP response for a plain request; `upgrades_at(path)` says whether the
    /// listener takes WebSocket upgrades at a path without a route (426 there, else 404).
    pub fn respond(&self, request: &Request, upgrades_at: impl Fn(&str) -> bool) -> Vec<u8> {
        let route = self.routes.iter().find(|(p, _)| *p == request.path);
        let error = match route {
            Some((_, route)) if matches!(request.method.as_str(), "GET" | "HEAD") => {
                return encode_response(request, &route(request));
            }
            Some(_) => HttpError::new(405, "method not allowed").with_header("Allow", "GET, HEAD"),
            None if upgrades_at(&request.path) => {
                HttpError::new(426, "this path serves WebSocket; send an upgrade request")
                    .with_header("Upgrade", "websocket")
                    .with_header("Sec-WebSocket-Version", "13")
            }
            None => HttpError::new(404, "not found"),
        };
        error.to_response()
    }
}

/// The bytes of `response` to `request` (no body for HEAD).
pub(crate) fn encode_response(request: &Request, response: &Response) -> Vec<u8> {
    let body = if request.method == "HEAD" {
        &[][..]
    } else {
        &response.body[..]
    };
    http_response(response.status, &response.content_type, &[], body)
}
