//! What the edge cache does with one request and its response: whether the
//! request may use the cache at all (bypass rules), the key it is stored
//! under, which request headers a stored response varies on, and whether and
//! for how long a response is stored (RFC 9111 with the route's overrides).
//!
//! Freshness, in order: the route's `force_ttl`; the origin's `s-maxage`,
//! `max-age` or `no-cache` (stored, but stale at once: every use is
//! revalidated); `Expires`; and only for statuses RFC 9111 §4.2.2 calls
//! heuristically cacheable, the route's `default_ttl` or 10% of the time since
//! `Last-Modified` (at most a day). Never stored: `no-store`, `private`,
//! `Vary: *`, responses to requests with `Authorization` unless the response
//! says `public`, `s-maxage` or `must-revalidate`, and (by default) responses
//! setting cookies. Request `Cache-Control` directives are not obeyed, as at
//! most CDNs: a client cannot make the edge refetch.

use std::time::{Duration, SystemTime};

use gatehouse_config::cache::{CachePolicy, QueryKey, SetCookie};
use http::{header, HeaderMap, Method, StatusCode};
use pingora::cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora::cache::filters::{calculate_expires_header_time, calculate_serve_stale_durations};
use pingora::cache::key::HashBinary;
use pingora::cache::VarianceBuilder;
use pingora::cache::{CacheKey, CacheMeta, CacheMetaDefaults, NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};

use super::storage::primary_key;

/// Longest heuristic freshness taken from `Last-Modified`.
const MAX_HEURISTIC: Duration = Duration::from_secs(24 * 3600);

/// Why a request does not use the cache, if it does not.
pub fn bypass_reason(
    policy: &CachePolicy,
    req: &RequestHeader,
    path: &str,
) -> Option<&'static str> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Some("method");
    }
    // A body is not part of the key: such a request must not share objects.
    let has_body = req.headers.contains_key(header::TRANSFER_ENCODING)
        || req
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        return Some("body");
    }
    if policy.bypass_methods.contains(&req.method) {
        return Some("method");
    }
    if policy
        .bypass_paths
        .iter()
        .any(|p| path.starts_with(p.as_str()))
    {
        return Some("path");
    }
    if policy
        .bypass_headers
        .iter()
        .any(|h| req.headers.contains_key(h))
    {
        return Some("header");
    }
    if policy
        .bypass_cookies
        .iter()
        .any(|c| cookies(&req.headers, c).next().is_some())
    {
        return Some("cookie");
    }
    None
}

/// Every value of cookie `name` in the request's `Cookie` headers (origins
/// differ on which of repeated cookies they read, so the key takes all).
fn cookies<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// The query string as the policy keys it (without `?`; empty for none).
/// With `none`, `only` or `except` the origin receives this same query, so
/// a parameter the key leaves out (or spells differently: `%69d` for `id`)
/// can never change a stored response.
pub fn keyed_query(query: &QueryKey, raw: Option<&str>) -> String {
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let name = |pair: &str| pair.split_once('=').map_or(pair, |(n, _)| n).to_string();
    let keep = |pair: &&str| match query {
        QueryKey::All => true,
        QueryKey::None => false,
        QueryKey::Only(names) => names.contains(&name(pair)),
        QueryKey::Except(names) => !names.contains(&name(pair)),
    };
    match query {
        QueryKey::All => raw.to_string(),
        _ => raw.split('&').filter(keep).collect::<Vec<_>>().join("&"),
    }
}

/// What besides the URL a request's key depends on.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyContext<'a> {
    /// `http` or `https`: an origin may answer them differently.
    pub scheme: &'a str,
    /// The port the client named in its Host, if any: it reaches the origin
    /// (`Host`, `X-Forwarded-Host`), which may build links from it.
    pub port: Option<&'a str>,
    /// A plugin's `cache-key`: replaces the query, header and cookie parts.
    pub plugin_key: Option<&'a str>,
    /// What plugins changed in the upstream request (path, pool, headers)
    /// without giving a key: the response depends on it.
    pub plugin_edits: Option<&'a str>,
}

/// The cache key of a request: tenant (as the key's tag, which keeps tenants
/// apart in the store), host, normalised path, the query as the policy keeps
/// it, the values of the key headers and cookies, and the [`KeyContext`].
pub fn cache_key(
    policy: &CachePolicy,
    tenant: &str,
    host: &str,
    path: &str,
    req: &RequestHeader,
    context: KeyContext<'_>,
) -> CacheKey {
    let query = if context.plugin_key.is_some() {
        String::new()
    } else {
        keyed_query(&policy.query, req.uri.query())
    };
    let mut url = String::with_capacity(path.len() + query.len() + 1);
    url.push_str(path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    // Each extra part names what it is, so a header and a cookie with the
    // same value never make the same key; a missing one is empty.
    let mut extra = Vec::with_capacity(policy.key_headers.len() + policy.key_cookies.len() + 4);
    extra.push(format!("s:{}", context.scheme));
    if let Some(port) = context.port {
        extra.push(format!("p:{port}"));
    }
    if let Some(edits) = context.plugin_edits {
        extra.push(format!("e:{edits}"));
    }
    if let Some(key) = context.plugin_key {
        extra.push(format!("k:{key}"));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        return CacheKey::new(primary_key(host, &url, &extra), tenant);
    }
    for h in &policy.key_headers {
        let values: Vec<&[u8]> = req
            .headers
            .get_all(h)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        extra.push(format!(
            "h:{}:{}",
            h.as_str(),
            String::from_utf8_lossy(&values.join(&b","[..]))
        ));
    }
    for c in &policy.key_cookies {
        let values: Vec<&[u8]> = cookies(&req.headers, c).collect();
        extra.push(format!(
            "c:{c}:{}",
            String::from_utf8_lossy(&values.join(&b";"[..]))
        ));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    CacheKey::new(primary_key(host, &url, &extra), tenant)
}

/// The secondary key of a stored response with `Vary`: the values of the
/// named request headers. `None` when the response does not vary.
pub fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    let mut names: Vec<String> = meta
        .headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    names.dedup();
    let mut builder = VarianceBuilder::new();
    for name in names {
        let value: Vec<u8> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| v.as_bytes())
            .collect::<Vec<_>>()
            .join(&b","[..]);
        builder.add_owned_name_value(name, value);
    }
    builder.finalize()
}

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1).
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The `Age` the origin (or a cache before it) reported, in seconds.
fn upstream_age(resp: &ResponseHeader) -> Duration {
    resp.headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(365 * 24 * 3600)))
        .unwrap_or_default()
}

fn http_date(resp: &ResponseHeader, name: header::HeaderName) -> Option<SystemTime> {
    let v = resp.headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v).ok()
}

/// Whether and how long `resp` (the answer to `req`) is stored.
pub fn cacheability(
    policy: &CachePolicy,
    req: &RequestHeader,
    resp: &ResponseHeader,
    now: SystemTime,
) -> RespCacheable {
    let custom = |why: &'static str| RespCacheable::Uncacheable(NoCacheReason::Custom(why));
    let status = resp.status;
    // Partial content cannot stand for the whole object; informational and
    // 304 answers are not responses to store.
    if status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        return custom("status");
    }
    let vary_star = resp.headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|n| n.trim_ascii() == b"*")
    });
    if vary_star {
        return custom("vary");
    }
    let cc = CacheControl::from_resp_headers(resp);
    if cc.as_ref().is_some_and(|c| c.no_store() || c.private()) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    if req.headers.contains_key(header::AUTHORIZATION)
        && !cc
            .as_ref()
            .is_some_and(|c| c.allow_caching_authorized_req())
    {
        return custom("authorization");
    }
    let mut stored = resp.clone();
    if resp.headers.contains_key(header::SET_COOKIE) {
        match policy.set_cookie {
            SetCookie::Refuse => return custom("set-cookie"),
            SetCookie::Strip => {
                stored.remove_header(&header::SET_COOKIE);
            }
        }
    }

    // Seconds already spent in caches before this one count against freshness.
    let created = now.checked_sub(upstream_age(resp)).unwrap_or(now);
    let fresh_until = if let Some(ttl) = policy.force_ttl {
        now + ttl
    } else if let Some(ttl) = cc.as_ref().and_then(|c| c.fresh_duration()) {
        if ttl.is_zero() {
            // `no-cache` or `max-age=0`: stored, but revalidated before each use.
            now - Duration::from_secs(1)
        } else {
            created + ttl
        }
    } else if let Some(expires) = calculate_expires_header_time(resp) {
        expires
    } else if heuristically_cacheable(status) || cc.as_ref().is_some_and(|c| c.public()) {
        if let Some(ttl) = policy.default_ttl {
            now + ttl
        } else {
            let Some(modified) = http_date(resp, header::LAST_MODIFIED) else {
                return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
            };
            let date = http_date(resp, header::DATE).unwrap_or(now);
            let since = date.duration_since(modified).unwrap_or_default();
            let ttl = (since / 10).min(MAX_HEURISTIC);
            if ttl.is_zero() {
                return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
            }
            now + ttl
        }
    } else {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    };

    let defaults = CacheMetaDefaults::new(
        |_| None,
        secs(policy.stale_while_revalidate),
        secs(policy.stale_if_error),
    );
    let (mut swr, mut sie) = calculate_serve_stale_durations(cc.as_ref(), &defaults);
    if policy.force_ttl.is_none() && cc.as_ref().is_some_and(|c| c.no_cache()) {
        // `no-cache`: never used without a successful revalidation (RFC 9111
        // §5.2.2.4), so never served stale either.
        (swr, sie) = (0, 0);
    }
    if let Some(c) = &cc {
        c.strip_private_headers(&mut stored);
    }
    // The age is kept in `created`; a stored `Age` would be counted again at
    // each revalidation and sent stale to clients.
    stored.remove_header(&header::AGE);
    RespCacheable::Cacheable(CacheMeta::new(fresh_until, created, swr, sie, stored))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
