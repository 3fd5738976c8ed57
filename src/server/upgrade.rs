//! The handshake task of an accepted socket: read the request head, answer plain HTTP through
//! the router or validate the upgrade, then hand the socket to the core's data path.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use monoio::net::TcpStream;

use super::accepted::{Accepted, ReadFailure};
use super::conn::{ConnRole, OpenParts};
use super::core::CoreCtx;
use super::http::{body_length, BodyLength};
use super::listener::ListenerRole;
use super::router::encode_response;
use super::shared::LimitHit;
use crate::access::{check_subscribe_grants, Access, Denied, DenyReason, TokenGrants};
use crate::api::{ConnMeta, HttpReply};
use crate::handler::Handler;
use crate::metrics::Counter;
use crate::observe;
use crate::proto::handshake::{parse_request, upgrade_response, validate_upgrade, HttpError, Request, Upgrade};
use crate::proto::session::{Role, Session};

/// Serves one accepted TCP connection up to its upgrade (or its HTTP response).
pub(crate) async fn serve<H: Handler>(core: Rc<CoreCtx<H>>, stream: TcpStream, peer: SocketAddr, role: ListenerRole) {
    let accepted_at = Instant::now();
    let _ = stream.set_nodelay(true);
    let mut conn = match (&core.shared.tls, role) {
        (Some(config), ListenerRole::WebSocket) => match Accepted::tls(stream, config.clone()) {
            Ok(conn) => conn,
            Err(error) => {
                core.counters().inc(Counter::TlsHandshakeFailures);
                tracing::error!(event = "tls_session_failed", core = core.index, peer = %peer, %error);
                return;
            }
        },
        _ => Accepted::plain(stream),
    };
    let (request, mut buffer) = match read_request(&core, &mut conn).await {
        Ok(found) => found,
        Err(HeadFailure::Http(error)) => return reject(&core, &mut conn, peer, &error.into()).await,
        Err(failure) => return count_head_failure(&core, peer, failure),
    };
    // From here `peer` is the client: the TCP peer, or the address a trusted proxy forwarded.
    let peer = core.shared.access.client(peer, &request);
    if !request.wants_websocket() {
        core.counters().inc(Counter::HttpRequests);
        if let Err(denied) = core.shared.access.check_admin(&request) {
            return reject(&core, &mut conn, peer, &denied.into()).await;
        }
        let response = match answer_http(&core, &mut conn, &request, buffer, role).await {
            Ok(response) => response,
            Err(HeadFailure::Http(error)) => return reject(&core, &mut conn, peer, &error.into()).await,
            Err(HeadFailure::Tls(error)) => return count_head_failure(&core, peer, HeadFailure::Tls(error)),
            Err(HeadFailure::Timeout | HeadFailure::Aborted) => {
                core.counters().inc(Counter::HandshakeAborted);
                return;
            }
        };
        if conn.write_response(&core, peer, &response).await.is_ok() {
            conn.linger_close(&core).await;
        }
        return;
    }
    let config = &core.shared.config;
    let (upgrade, conn_role, token) = match admit(&core, &request, peer, role) {
        Ok(admitted) => admitted,
        Err(refusal) => return reject(&core, &mut conn, peer, &refusal).await,
    };
    if conn.write_all(&upgrade_response(&upgrade)).await.is_err() {
        core.shared.close_connection(peer.ip());
        core.counters().inc(Counter::HandshakeAborted);
        return;
    }
    let meta = connection_meta(
        &core.shared.access,
        &request,
        peer,
        upgrade.protocol,
        &config.keep_headers,
    );
    let meta = match token {
        Some(token) => meta.with_token(token),
        None => meta,
    };
    let session = Session::new(Role::Server, config.max_message_size);
    let handshake = accepted_at.elapsed();
    core.observer
        .record(crate::metrics::LatencyMetric::HandshakeDuration, handshake);
    let handshake_us = handshake.as_micros() as u64;
    let tls = conn.is_tls();
    // From here the engine owns the socket (and its TLS session): the core's data path drives
    // it while it is open.
    let (fd, tls_session) = conn.into_parts();
    let parts = Box::new(OpenParts {
        session,
        meta,
        peer_close: None,
        role: conn_role,
    });
    let id = core
        .conns
        .insert(fd, tls_session, core.now_tick(), core.now_ms(), parts);
    core.arm_liveness(id);
    core.counters().inc(Counter::Upgrades);
    core.counters().set_open_connections(core.conns.len());
    core.conns.with(id, |c| {
        let Some(meta) = c.parts.as_ref().map(|p| &p.meta) else {
            return;
        };
        tracing::info!(
            event = "open", conn = %id, core = core.index, peer = %peer, path = meta.path(),
            protocol = meta.protocol().unwrap_or(""), tls, handshake_us,
        );
    });
    // Frames that came with the request are fed to the session before anything else is read.
    let early = buffer.split_off(request.head_len);
    drop((request, buffer));
    core.opened(id, early);
}

/// A request refused before the upgrade: the response, and why when access control refused it.
struct Refusal {
    error: HttpError,
    access: Option<DenyReason>,
}

impl From<HttpError> for Refusal {
    fn from(error: HttpError) -> Refusal {
        Refusal { error, access: None }
    }
}

impl From<Denied> for Refusal {
    fn from(denied: Denied) -> Refusal {
        Refusal {
            error: denied.error,
            access: Some(denied.reason),
        }
    }
}

/// Decides an upgrade from `peer` (the client): path, handshake rate, RFC 6455 rules, origin,
/// token, the handler's check and the token's topics (not for the engine's own dashboard
/// stream, which needs the admin token instead), shutdown, and the connection limits.
fn admit<H: Handler>(
    core: &CoreCtx<H>,
    request: &Request,
    peer: SocketAddr,
    role: ListenerRole,
) -> Result<(Upgrade, ConnRole, Option<TokenGrants>), Refusal> {
    let shared = &core.shared;
    let (config, access) = (&shared.config, &shared.access);
    let conn_role =
        match request.path == observe::STATS_STREAM_PATH && config.dashboard && shared.serves_observability(role) {
            true => ConnRole::Dashboard,
            false if role == ListenerRole::WebSocket && config.accepts_ws_path(&request.path) => ConnRole::Application,
            false => return Err(HttpError::new(404, "no WebSocket endpoint at this path").into()),
        };
    access.check_rate(peer.ip())?;
    let (upgrade, token) = match conn_role {
        ConnRole::Application => {
            let upgrade = validate_upgrade(request, &config.subprotocols)?;
            access.check_origin(request)?;
            let token = access.verify_token(request)?;
            core.call_for_core(|h| h.check_upgrade(request))
                .unwrap_or_else(|| Err(HttpError::new(500, "internal error")))?;
            if let (Some(token), Some(topics_of)) = (&token, &shared.subscription_topics) {
                check_subscribe_grants(token, topics_of(request).iter().map(String::as_str))?;
            }
            (upgrade, token)
        }
        ConnRole::Dashboard => {
            access.check_admin(request)?;
            (validate_upgrade(request, &[])?, None)
        }
    };
    if core.shutdown.is_fired() {
        return Err(HttpError::new(503, "server is shutting down")
            .with_header("Retry-After", "1")
            .into());
    }
    match shared.try_open_connection(peer.ip()) {
        Ok(()) => Ok((upgrade, conn_role, token)),
        Err(LimitHit::Total) => Err(HttpError::new(503, "connection limit reached")
            .with_header("Retry-After", "1")
            .into()),
        Err(LimitHit::PerIp) => Err(HttpError::new(429, "too many connections from this address")
            .with_header("Retry-After", "1")
            .into()),
    }
}

/// The whole response to a plain request: the handler's if it takes the request (its body
/// read first), else the router's.
async fn answer_http<H: Handler>(
    core: &CoreCtx<H>,
    conn: &mut Accepted,
    request: &Request,
    mut buffer: Vec<u8>,
    role: ListenerRole,
) -> Result<Vec<u8>, HeadFailure> {
    let config = &core.shared.config;
    let router = core.shared.router(role);
    let upgrades_at = |path: &str| role == ListenerRole::WebSocket && config.accepts_ws_path(path);
    if !core.shared.serves_application_http(role) {
        // This address serves its routes only, never the handler.
        return Ok(router.respond(request, upgrades_at));
    }
    let mut body = buffer.split_off(request.head_len);
    if let BodyLength::Exactly(length) = body_length(request, config.max_http_body).map_err(HeadFailure::Http)? {
        let read = read_more(core, conn, &mut body, length);
        monoio::time::timeout(config.handshake_timeout, read)
            .await
            .map_err(|_| HeadFailure::Timeout)??;
    } else {
        body.clear();
    }
    let reply = core.call_for_core(|h| h.on_http(&mut core.core_context(), request, &body));
    let response = match reply {
        None => return Err(HeadFailure::Http(HttpError::new(500, "internal error"))),
        Some(None) => return Ok(router.respond(request, upgrades_at)),
        Some(Some(HttpReply::Ready(response))) => response,
        Some(Some(HttpReply::Pending(token))) => {
            match monoio::time::timeout(config.http_reply_timeout, core.http.wait(token)).await {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => {
                    core.http.abandon(token);
                    return Err(HeadFailure::Http(HttpError::new(
                        504,
                        "no response in time (http_reply_timeout)",
                    )));
                }
            }
        }
    };
    Ok(encode_response(request, &response))
}

/// Reads until `body` holds `length` bytes (bytes beyond it are dropped: one request per
/// connection).
async fn read_more<H>(
    core: &CoreCtx<H>,
    conn: &mut Accepted,
    body: &mut Vec<u8>,
    length: usize,
) -> Result<(), HeadFailure> {
    while body.len() < length {
        conn.read_available(core, body).await?;
    }
    body.truncate(length);
    Ok(())
}

/// Why the upgrade request could not be read.
enum HeadFailure {
    Http(HttpError),
    Tls(crate::tls::TlsError),
    Timeout,
    Aborted,
}

impl From<ReadFailure> for HeadFailure {
    fn from(failure: ReadFailure) -> HeadFailure {
        match failure {
            ReadFailure::Aborted => HeadFailure::Aborted,
            ReadFailure::Tls(error) => HeadFailure::Tls(error),
            ReadFailure::PlainOnTlsPort => {
                HeadFailure::Http(HttpError::new(400, "this port speaks TLS: use wss:// or https://"))
            }
        }
    }
}

/// Counts and logs a request head that never came: a timeout, a failed TLS handshake, a
/// client that went away.
fn count_head_failure<H>(core: &CoreCtx<H>, peer: SocketAddr, failure: HeadFailure) {
    match failure {
        HeadFailure::Timeout => {
            core.counters().inc(Counter::HandshakeTimeouts);
            tracing::info!(event = "handshake_timeout", core = core.index, peer = %peer, "no complete upgrade request in time");
        }
        HeadFailure::Tls(error) => {
            core.counters().inc(Counter::TlsHandshakeFailures);
            tracing::info!(event = "tls_handshake_failed", core = core.index, peer = %peer, reason = error.reason(), %error);
        }
        HeadFailure::Aborted | HeadFailure::Http(_) => core.counters().inc(Counter::HandshakeAborted),
    }
}

/// Reads until a full request head has arrived; returns it with the buffer (early frames included).
async fn read_request<H>(core: &CoreCtx<H>, conn: &mut Accepted) -> Result<(Request, Vec<u8>), HeadFailure> {
    let max_head = core.shared.config.max_request_head;
    let read = async {
        let mut head = Vec::new();
        loop {
            // Read first: the request usually came with the connection, and waiting for
            // readability costs a trip through the runtime's ring.
            conn.read_available(core, &mut head).await?;
            if let Some(request) = parse_request(&head, max_head).map_err(HeadFailure::Http)? {
                return Ok((request, head));
            }
        }
    };
    monoio::time::timeout(core.shared.config.handshake_timeout, read)
        .await
        .map_err(|_| HeadFailure::Timeout)?
}

/// Answers a refused request with its status and a one-line reason, counts it (by status, and
/// by reason when access control refused it), logs it, closes.
async fn reject<H>(core: &CoreCtx<H>, conn: &mut Accepted, peer: SocketAddr, refusal: &Refusal) {
    let error = &refusal.error;
    core.counters().inc(Counter::for_rejection(error.status));
    match refusal.access {
        Some(access) => {
            core.counters().inc(access.counter());
            tracing::info!(
                event = "rejected", core = core.index, peer = %peer, status = error.status, reason = %error.reason,
                access = access.as_str(),
            );
        }
        None => {
            tracing::info!(event = "rejected", core = core.index, peer = %peer, status = error.status, reason = %error.reason)
        }
    }
    if conn.write_all(&error.to_response()).await.is_ok() {
        conn.linger_close(core).await;
    }
}

/// What the connection keeps of its request: the client, the target (without the token), the
/// subprotocol and the kept headers.
fn connection_meta(
    access: &Access,
    request: &Request,
    peer: SocketAddr,
    protocol: Option<String>,
    keep: &[String],
) -> ConnMeta {
    let headers = keep
        .iter()
        .filter_map(|name| {
            let value = request.header(name)?;
            Some((name.to_ascii_lowercase(), String::from_utf8_lossy(value).into_owned()))
        })
        .collect();
    let query = access.kept_query(request.query.as_deref());
    ConnMeta::new(peer, &request.path, query.as_deref(), protocol, headers)
}
