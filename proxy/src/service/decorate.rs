//! Stage 5, decorate: what every response head gets, local or proxied.
//!
//! Contract: [`response_plugins`] runs the plugins' `on-response` once per
//! request and returns the response that replaces this one, if a plugin chose
//! one; [`head`] adds the domain's response header rules, its security
//! headers, the rate limits' advertisement and the request id;
//! [`cache_status`] adds `Cache-Status` (RFC 9211) to responses of cached
//! routes. None of them writes anything.

use std::time::SystemTime;

use pingora::cache::CachePhase;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::admit::X_REQUEST_ID;
use super::ctx::RequestCtx;
use super::guard::chain_stop;
use crate::cache;
use crate::headers;
use crate::local::LocalResponse;
use crate::plugin::run_response;

/// Runs `on-response` once, if the request's `on-request` chain completed.
/// Returns the response that replaces `response` when the chain stopped (a
/// plugin's answer, or a fail-closed failure, whose refusal is recorded).
pub(super) async fn response_plugins(
    ctx: &mut RequestCtx,
    response: &mut ResponseHeader,
) -> Option<LocalResponse> {
    let state = &mut ctx.plugins;
    if !std::mem::take(&mut state.response_pending) {
        return None;
    }
    let (Some(chain), Some((head, props))) = (&state.chain, &mut state.head) else {
        return None;
    };
    let stop = run_response(chain, head, props, response, &mut state.instances)
        .await
        .err()?;
    Some(match chain_stop(stop) {
        Ok(resp) => resp,
        Err(refusal) => ctx.refuse(refusal).response(),
    })
}

/// Adds the common response headers: the domain's rules and security
/// headers, the rate limits' advertisement and the request id.
pub(super) fn head(ctx: &RequestCtx, head: &mut ResponseHeader) {
    if let Some(snap) = &ctx.snapshot {
        if let Some(d) = ctx.domain_policy(snap) {
            headers::apply(&d.response_headers, head, &ctx.vars);
            let https = ctx.vars.scheme == "https";
            headers::apply_security(&d.security_headers, head, https);
        }
    }
    if let Some(advertised) = &ctx.rate_limit_headers {
        for (name, value) in advertised.headers() {
            let _ = head.insert_header(name, value);
        }
    }
    // Empty only for requests refused before an id was assigned.
    if !ctx.vars.request_id.is_empty() {
        let _ = head.insert_header(X_REQUEST_ID, ctx.vars.request_id.as_str());
    }
}

/// `Cache-Status` for a response of a cached route, and the cache result
/// for the metrics and the access log.
pub(super) fn cache_status(
    session: &Session,
    ctx: &mut RequestCtx,
    head: &mut ResponseHeader,
) -> pingora::Result<()> {
    if ctx.cache.policy.is_none() {
        return Ok(());
    }
    let outcome = match ctx.cache.bypass {
        Some(rule) => cache::status::bypassed(rule),
        None => {
            let phase = session.cache.phase();
            let meta = matches!(
                phase,
                CachePhase::Hit
                    | CachePhase::Stale
                    | CachePhase::StaleUpdating
                    | CachePhase::Revalidated
            )
            .then(|| session.cache.cache_meta());
            cache::status::outcome(
                phase,
                meta,
                ctx.cache.stored,
                head.status.as_u16(),
                SystemTime::now(),
            )
        }
    };
    head.insert_header("cache-status", outcome.header)?;
    ctx.cache.result = Some(outcome.result);
    Ok(())
}
