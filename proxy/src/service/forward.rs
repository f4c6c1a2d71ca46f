//! Forwarding to the route's pool: choosing a target per attempt, the
//! upstream copy of the request, passive health accounting, retries, and
//! what a failed exchange answers.
//!
//! Contract: [`choose_peer`] picks a target not tried yet (or refuses with
//! [`Refusal::NoUpstreamAvailable`]); [`upstream_request`] builds the upstream
//! request's forwarding headers, Host, the domain's request rules, the cache
//! key's query and the plugins' edits; [`connect_failed`] and
//! [`exchange_failed`] count failures against targets and decide retries;
//! [`classify`] maps Pingora's final error to the status and code sent.

use std::time::Instant;

use http::header;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use super::admit::X_REQUEST_ID;
use super::ctx::RequestCtx;
use super::refusal::Refusal;
use crate::plugin::apply_request_edits;
use crate::snapshot::Snapshot;
use crate::upstream::HashInput;

/// Chooses the target for this attempt (called again for each retry).
pub(super) fn choose_peer(session: &Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let snap = ctx
        .snapshot
        .clone()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no snapshot"))?;
    let pool = ctx
        .pool(&snap)
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no pool for route"))?;
    let req = session.req_header();
    let input = HashInput {
        client_ip: &ctx.vars.client_ip,
        request_uri: &ctx.vars.request_uri,
        host: &ctx.vars.host,
        headers: &req.headers,
    };
    let up = &mut ctx.upstream;
    let Some(selection) = pool.select(&up.tried, &mut up.rotation, &input) else {
        // Nothing was tried: no target can take traffic (every one without
        // an address). After failed attempts the last failure is the answer.
        if up.tried.is_empty() {
            ctx.refuse(Refusal::NoUpstreamAvailable);
        }
        return Err(Error::explain(
            ErrorType::ConnectNoRoute,
            "every target of the pool was tried",
        )
        .into_up());
    };
    let Some(peer) = pool.peer(selection.index) else {
        ctx.refuse(Refusal::NoUpstreamAvailable);
        return Err(
            Error::explain(ErrorType::ConnectNoRoute, "the target has no address").into_up(),
        );
    };
    up.started.get_or_insert_with(Instant::now);
    // A retry replays the buffered body through `request_body_filter`.
    up.body_bytes = 0;
    if let Some(hold) = ctx.waf.hold.as_mut() {
        hold.restart();
    }
    up.tried.push(selection.index);
    up.attempt = Some(selection);
    Ok(Box::new(peer))
}

/// Counts streamed request body bytes against `limits.max_body_bytes`
/// (chunked or HTTP/2 bodies declare no length up front).
pub(super) fn count_body(ctx: &mut RequestCtx, chunk_len: usize) -> Result<()> {
    ctx.upstream.body_bytes += chunk_len as u64;
    let max = ctx
        .snapshot
        .as_ref()
        .and_then(|s| s.config.limits.max_body_bytes);
    if max.is_some_and(|max| ctx.upstream.body_bytes > max) {
        ctx.refuse(Refusal::PayloadTooLarge);
        return Error::e_explain(
            ErrorType::HTTPStatus(413),
            "request body over limits.max_body_bytes",
        );
    }
    Ok(())
}

/// Adds forwarding headers and applies the domain's request rules, the cache
/// key's query and the plugins' edits to the upstream copy.
pub(super) fn upstream_request(
    session: &Session,
    ctx: &RequestCtx,
    upstream_request: &mut RequestHeader,
) -> Result<()> {
    let Some(snap) = &ctx.snapshot else {
        return Ok(());
    };
    let v = &ctx.vars;
    forwarding_headers(session, ctx, snap, upstream_request)?;
    upstream_request.insert_header(X_REQUEST_ID, v.request_id.as_str())?;
    // The upstream's Host is the authority we routed on (RFC 9112 §3.2.2: an
    // absolute-form target overrides Host), never a different Host header
    // that would name another tenant's domain. HTTP/2 clients send none at all.
    match ctx.pool(snap).and_then(|p| p.config.host_header.clone()) {
        Some(h) => upstream_request.insert_header(header::HOST, h)?,
        None => upstream_request.insert_header(header::HOST, ctx.client.raw_host.as_str())?,
    }
    if let Some(d) = ctx.domain_policy(snap) {
        crate::headers::apply(&d.request_headers, upstream_request, v);
    }
    if let Some(query) = &ctx.cache.query {
        let path = upstream_request.uri.path();
        let target = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        if let Ok(uri) = http::Uri::try_from(target) {
            upstream_request.set_uri(uri);
        }
    }
    if ctx.plugins.chain.is_some() {
        apply_request_edits(upstream_request, &ctx.plugins.edits);
    }
    Ok(())
}

/// The forwarding headers: what the origin learns of the client and of how
/// it reached us. `X-Forwarded-For` appends the connecting hop (the origin
/// takes the rightmost entries it trusts). `Forwarded` (RFC 7239) gets our
/// element; a client's own elements are dropped unless the peer is a trusted
/// proxy (`client_ip.trusted_proxies`), as are its `X-Forwarded-Port` and
/// `X-Forwarded-Prefix`: origins build absolute URLs from them, and none is
/// in the cache key, so a client's value would be cached for everyone.
/// `X-Original-URL` and `X-Rewrite-URL` override the path at IIS and
/// Symfony origins, after we routed on the path: they never pass.
fn forwarding_headers(
    session: &Session,
    ctx: &RequestCtx,
    snap: &Snapshot,
    upstream_request: &mut RequestHeader,
) -> Result<()> {
    let v = &ctx.vars;
    let peer = ctx.client.peer_ip;
    let trusted = peer.is_some_and(|ip| snap.config.client_ip.trusted_proxies.contains(ip));
    let peer_ip = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let xff = match session
        .req_header()
        .headers
        .get("x-forwarded-for")
        .and_then(|h| h.to_str().ok())
    {
        Some(prev) if !prev.is_empty() => format!("{prev}, {peer_ip}"),
        _ => peer_ip,
    };
    upstream_request.insert_header("x-forwarded-for", xff)?;
    upstream_request.insert_header("x-forwarded-proto", v.scheme)?;
    upstream_request.insert_header("x-forwarded-host", ctx.client.raw_host.as_str())?;

    let node = match peer {
        Some(std::net::IpAddr::V6(ip)) => format!("\"[{ip}]\""),
        Some(ip) => ip.to_string(),
        None => "unknown".to_string(),
    };
    let host = ctx.client.raw_host.replace(['"', '\\'], "");
    let ours = format!("for={node};host=\"{host}\";proto={}", v.scheme);
    let theirs = trusted
        .then(|| joined(upstream_request, "forwarded"))
        .flatten();
    let forwarded = match theirs {
        Some(prev) => format!("{prev}, {ours}"),
        None => ours,
    };
    upstream_request.insert_header("forwarded", forwarded)?;
    let port_sent = trusted && upstream_request.headers.contains_key("x-forwarded-port");
    if !port_sent {
        let port = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port());
        match port {
            Some(port) => upstream_request.insert_header("x-forwarded-port", port.to_string())?,
            None => {
                upstream_request.remove_header("x-forwarded-port");
            }
        }
    }
    if !trusted {
        upstream_request.remove_header("x-forwarded-prefix");
    }
    upstream_request.remove_header("x-original-url");
    upstream_request.remove_header("x-rewrite-url");
    if !trusted {
        upstream_request.remove_header("x-real-ip");
    }
    // RFC 8586: every pass adds our token, so a loop back to the edge is
    // seen (and refused) after a few rounds.
    let cdn_loop = match joined(upstream_request, "cdn-loop") {
        Some(prev) => format!("{prev}, {}", super::admit::CDN_LOOP_TOKEN),
        None => super::admit::CDN_LOOP_TOKEN.to_string(),
    };
    upstream_request.insert_header("cdn-loop", cdn_loop)?;
    Ok(())
}

/// Every field named `name`, joined with commas (RFC 9110 §5.3), if any is
/// text.
fn joined(req: &RequestHeader, name: &str) -> Option<String> {
    let parts: Vec<&str> = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A response head arrived: the target is working.
pub(super) fn response_arrived(ctx: &mut RequestCtx) {
    ctx.upstream.response_time = ctx.upstream.started.map(|t| t.elapsed());
    if let (Some(snap), Some(a)) = (&ctx.snapshot, &ctx.upstream.attempt) {
        if let Some(pool) = ctx.pool(snap) {
            pool.targets[a.index].state.record_success();
        }
    }
}

/// Connecting failed: count it against the target and retry on another
/// one for idempotent requests while the pool's retry budget lasts.
pub(super) fn connect_failed(
    session: &Session,
    ctx: &mut RequestCtx,
    mut e: Box<Error>,
) -> Box<Error> {
    let Some(snap) = ctx.snapshot.clone() else {
        return e;
    };
    let Some(pool) = ctx.pool(&snap) else {
        return e;
    };
    let kind = if matches!(e.etype(), ErrorType::ConnectTimedout) {
        "connect_timeout"
    } else {
        "connect"
    };
    pool.record_failure(ctx.upstream.attempt.take().map(|a| a.index), kind);
    let attempts = ctx.upstream.tried.len() as u32;
    let retry = session.req_header().method.is_idempotent()
        && attempts <= pool.config.retries
        && attempts < pool.targets.len() as u32;
    e.set_retry(retry);
    e
}

/// An established upstream exchange failed (timeout, reset): count it;
/// retry only as Pingora's default allows (idempotent, reused connection).
pub(super) fn exchange_failed(
    peer: &HttpPeer,
    session: &mut Session,
    e: Box<Error>,
    ctx: &mut RequestCtx,
    client_reused: bool,
) -> Box<Error> {
    let mut e = e.more_context(format!("Peer: {peer}"));
    if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    if client_reused && e.retry() {
        // A pooled connection the upstream had already closed (its keep-alive
        // was shorter than ours): not the target's fault. Retry on a fresh
        // connection, to the same target if need be, without a failure mark.
        ctx.upstream.tried.pop();
        return e;
    }
    if let (Some(snap), Some(a)) = (ctx.snapshot.clone(), ctx.upstream.attempt.as_ref()) {
        if let Some(pool) = ctx.pool(&snap) {
            if e.esource() == &ErrorSource::Upstream {
                let kind = if is_timeout(e.etype()) {
                    "timeout"
                } else {
                    "error"
                };
                pool.record_failure(Some(a.index), kind);
            }
        }
    }
    e
}

/// The status and JSON error code for a request that failed for good: 502
/// (upstream unreachable or broken), 504 (upstream timeout), the refusal a
/// filter failed the request with, or the fitting 4xx/5xx; 0 when the client
/// went away.
pub(super) fn classify(e: &Error, refusal: Option<&Refusal>) -> (u16, &'static str) {
    match e.etype() {
        ErrorType::HTTPStatus(413) => (413, Refusal::PayloadTooLarge.code()),
        ErrorType::HTTPStatus(403) if refusal == Some(&Refusal::WafBlocked) => {
            (403, Refusal::WafBlocked.code())
        }
        ErrorType::HTTPStatus(503) if refusal == Some(&Refusal::WafBusy) => {
            (503, Refusal::WafBusy.code())
        }
        ErrorType::HTTPStatus(code) => (*code, "http_status"),
        ErrorType::ConnectNoRoute if refusal == Some(&Refusal::NoUpstreamAvailable) => {
            (502, Refusal::NoUpstreamAvailable.code())
        }
        t if e.esource() == &ErrorSource::Upstream && is_timeout(t) => (504, "upstream_timeout"),
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "bad_gateway"),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    (0, "client_closed")
                }
                ErrorType::ReadTimedout => (408, "client_timeout"),
                _ => (400, "bad_request"),
            },
            ErrorSource::Internal | ErrorSource::Unset => (500, "internal_error"),
        },
    }
}

fn is_timeout(t: &ErrorType) -> bool {
    matches!(
        t,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
    )
}
