//! Stage 1, admit: what every request gets before anything is looked up.
//!
//! Contract: sets the connection's timeouts, the scheme, the client's address
//! (through trusted proxies), the request id; refuses requests over the size
//! limits (before reading any body byte); normalises the path (the request is
//! routed on, and forwarded with, the normalised path) and the host. Returns
//! the normalised path, or the [`Refusal`]. Reads nothing of the domain.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{header, HeaderValue};
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::refusal::Refusal;
use crate::route::{normalize_host, normalize_path, InvalidPath};
use crate::snapshot::Snapshot;

/// The request id header, taken from the client when valid, else generated.
pub(super) const X_REQUEST_ID: &str = "x-request-id";

/// Admits the request: see the module's contract.
pub(super) fn admit(
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
) -> Result<String, Refusal> {
    let limits = &snap.config.limits;
    // Body reads and response writes are bounded; idle keep-alive connections close.
    session.set_read_timeout(Some(limits.client_read_timeout));
    session.set_write_timeout(Some(limits.client_write_timeout));
    session.set_keepalive(Some(limits.keepalive_timeout.as_secs().max(1)));

    ctx.background = session.subrequest_ctx.is_some();
    ctx.vars.scheme = if is_tls(session) { "https" } else { "http" };
    let req = session.req_header();
    ctx.client.peer_ip = peer_ip(session);
    ctx.client.addr = ctx
        .client
        .peer_ip
        .map(|peer| crate::client_ip::resolve(peer, &req.headers, &snap.config.client_ip));
    ctx.vars.client_ip = ctx.client.addr.map(|a| a.to_string()).unwrap_or_default();
    ctx.vars.request_id = match req.headers.get(X_REQUEST_ID) {
        Some(v) if valid_request_id(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        _ => uuid::Uuid::new_v4().simple().to_string(),
    };
    check_limits(snap, req)?;
    check_loop(req)?;
    let path = normalized_path(session, ctx)?;
    let req = session.req_header();
    ctx.vars.request_uri = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    // HTTP/2 carries the host in :authority; HTTP/1.1 in Host (RFC 9112 §3.2).
    let raw_host = req
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let Some(host) = normalize_host(&raw_host) else {
        return Err(if raw_host.is_empty() {
            Refusal::MissingHost
        } else {
            Refusal::InvalidHost
        });
    };
    ctx.client.raw_host = raw_host;
    ctx.vars.host = host;
    Ok(path)
}

/// RFC 9110 §15.5.15 (414), RFC 6585 §5 (431); a declared body length over
/// the limit is refused before any byte is read.
fn check_limits(snap: &Snapshot, req: &RequestHeader) -> Result<(), Refusal> {
    let limits = &snap.config.limits;
    if req.raw_path().len() > limits.max_uri_bytes {
        return Err(Refusal::UriTooLong);
    }
    if req.headers.len() > limits.max_header_count {
        return Err(Refusal::TooManyHeaders);
    }
    let bytes: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if bytes > limits.max_header_bytes {
        return Err(Refusal::HeadersTooLarge);
    }
    let declared = || {
        req.headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse::<u64>()
            .ok()
    };
    match (limits.max_body_bytes, declared()) {
        (Some(max), Some(len)) if len > max => Err(Refusal::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// Our token in `CDN-Loop` (RFC 8586), added to every upstream request.
pub(super) const CDN_LOOP_TOKEN: &str = "gatehouse";

/// Passes through Gatehouse a request may already have made: a chain of
/// edges is fine, a pool pointing back at the edge is not.
const MAX_PASSES: usize = 8;

/// Refuses (508) a request that already went through Gatehouse
/// [`MAX_PASSES`] times: a tenant's pool aimed at its own hostname (or at
/// another node) would otherwise loop until sockets run out.
fn check_loop(req: &RequestHeader) -> Result<(), Refusal> {
    let passes = req
        .headers
        .get_all("cdn-loop")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|entry| {
            entry
                .split(';')
                .next()
                .is_some_and(|id| id.trim().eq_ignore_ascii_case(CDN_LOOP_TOKEN))
        })
        .count();
    if passes >= MAX_PASSES {
        return Err(Refusal::LoopDetected);
    }
    Ok(())
}

/// The normalised path (see `route::normalize_path`); a rewritten target
/// replaces the request's, and the original is kept for the WAF.
fn normalized_path(session: &mut Session, ctx: &mut RequestCtx) -> Result<String, Refusal> {
    let req = session.req_header();
    match normalize_path(req.uri.path()) {
        Ok(Cow::Borrowed(p)) => Ok(p.to_string()),
        Ok(Cow::Owned(p)) => {
            let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            let uri =
                http::Uri::try_from(format!("{p}{query}")).map_err(|_| Refusal::InvalidPath)?;
            ctx.client.original_uri = Some(req.raw_path().to_vec());
            session.req_header_mut().set_uri(uri);
            Ok(p)
        }
        Err(InvalidPath) => Err(Refusal::InvalidPath),
    }
}

/// Whether the connection is TLS.
pub(super) fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// Accepts a client-supplied request id only if it is short and printable.
fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// The address of the connection's peer (a client, or a proxy in front of us).
fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}
