//! The edge cache on the request path: turning it on for a request, its key,
//! and whether a response may be stored. The policy itself (bypass rules,
//! keys, RFC 9111 cacheability) lives in `crate::cache::policy`.

use std::time::SystemTime;

use gatehouse_config::cache::QueryKey;
use pingora::cache::{CacheKey, CacheOptionOverrides, NoCacheReason, RespCacheable};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use crate::cache;

/// Turns the cache on for requests of a cached route that no bypass rule
/// keeps away from it.
pub(super) fn enable(session: &mut Session, ctx: &mut RequestCtx) {
    let (Some(policy), Some(snap)) = (ctx.cache.policy.clone(), ctx.snapshot.clone()) else {
        return;
    };
    let req = session.req_header();
    if let Some(rule) = cache::policy::bypass_reason(
        &policy,
        req,
        &crate::route::without_segment_params(req.uri.path()),
    ) {
        ctx.cache.bypass = Some(rule);
        return;
    }
    let mut overrides = CacheOptionOverrides::default();
    overrides.wait_timeout = Some(policy.lock_timeout);
    session.cache.enable(
        cache::store(),
        None,
        Some(cache::predictor()),
        Some(cache::lock()),
        Some(overrides),
    );
    let max = usize::try_from(snap.config.limits.cache_object_bytes).unwrap_or(usize::MAX);
    session.cache.set_max_file_size_bytes(max);
}

/// The request's cache key: the policy's key, with the plugins' key or edits
/// (two requests a plugin treats differently never share an object).
pub(super) fn key(session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
    let policy = ctx
        .cache
        .policy
        .as_ref()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "cache without a policy"))?;
    let req = session.req_header();
    let edits = &ctx.plugins.edits;
    let plugin_edits = (edits.cache_key.is_none()
        && (edits.path.is_some() || edits.pool.is_some() || !edits.headers.is_empty()))
    .then(|| format!("{:?}|{:?}|{:?}", edits.path, edits.pool, edits.headers));
    let context = cache::policy::KeyContext {
        scheme: ctx.vars.scheme,
        port: host_port(&ctx.client.raw_host),
        plugin_key: edits.cache_key.as_deref(),
        plugin_edits: plugin_edits.as_deref(),
    };
    if policy.query != QueryKey::All && edits.cache_key.is_none() {
        ctx.cache.query = Some(cache::policy::keyed_query(&policy.query, req.uri.query()));
    }
    Ok(cache::policy::cache_key(
        policy,
        &ctx.vars.tenant,
        &ctx.vars.host,
        req.uri.path(),
        req,
        context,
    ))
}

/// Whether the response may be stored, per the route's policy and RFC 9111.
pub(super) fn cacheable(
    session: &Session,
    resp: &ResponseHeader,
    ctx: &mut RequestCtx,
) -> RespCacheable {
    let Some(policy) = ctx.cache.policy.as_ref() else {
        return RespCacheable::Uncacheable(NoCacheReason::NeverEnabled);
    };
    let verdict =
        cache::policy::cacheability(policy, session.req_header(), resp, SystemTime::now());
    ctx.cache.stored = verdict.is_cacheable();
    verdict
}

/// The port of a Host value (`shop.example:8080`, `[::1]:8443`), if any.
fn host_port(raw: &str) -> Option<&str> {
    let after_brackets = raw.rsplit_once(']').map_or(raw, |(_, rest)| rest);
    let (_, port) = after_brackets.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}
