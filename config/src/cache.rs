//! The edge cache policy of a domain or route: the file type operators write
//! (`domains[].cache`, `domains[].routes[].cache`) and the checked policy the
//! proxy applies.
//!
//! A route's block refines its domain's field by field (a route that sets
//! only `force_ttl` keeps the domain's key and bypass rules); `enabled: false`
//! on a route switches caching off there. Only routes that forward to a pool
//! are cached: local responses cost nothing to make again.

use std::time::Duration;

use http::{HeaderName, Method};
use serde::{Deserialize, Serialize};

use crate::check::{parse_header_name, parse_method};

/// `cache:` on a domain or a route.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Cache))]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Cache responses here (default true when the block is present).
    pub enabled: Option<bool>,
    /// Freshness for responses the origin gives none (no `max-age`, `s-maxage` or
    /// `Expires`), for statuses RFC 9111 lets a cache store heuristically
    /// (200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501). Default: 10% of
    /// the time since `Last-Modified` (at most 1 day), otherwise not stored.
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5m"))]
    pub default_ttl: Option<Duration>,
    /// Freshness that replaces the origin's `max-age`/`s-maxage`/`no-cache`/`Expires`
    /// (e.g. `1s` to microcache dynamic pages). `no-store` and `private` are still honoured.
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "1s"))]
    pub force_ttl: Option<Duration>,
    /// How long a stale response may be served while one background request refreshes
    /// it, when the origin does not say (`stale-while-revalidate`). Default 0.
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "30s"))]
    pub stale_while_revalidate: Option<Duration>,
    /// How long a stale response may be served when the origin fails (connection error,
    /// timeout or 5xx), when the origin does not say (`stale-if-error`). Default 0.
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "1h"))]
    pub stale_if_error: Option<Duration>,
    /// Responses carrying `Set-Cookie`: `refuse` (default: not stored) or `strip`
    /// (stored without the cookie; the client that fetched it still gets it).
    pub set_cookie: Option<SetCookie>,
    /// How long requests for an object being fetched wait for it before going to
    /// the origin themselves (default 5s, 100ms to 60s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub lock_timeout: Option<Duration>,
    /// Requests that skip the cache (neither served from nor stored in it). A route's
    /// rules add to its domain's.
    pub bypass: Option<Bypass>,
    /// What the cache key is made of besides the host and path.
    pub key: Option<Key>,
}

/// What happens to a response with `Set-Cookie`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::CacheSetCookie))]
#[serde(rename_all = "snake_case")]
pub enum SetCookie {
    /// Not stored (default).
    #[default]
    Refuse,
    /// Stored without its `Set-Cookie` headers.
    Strip,
}

/// Requests that bypass the cache.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::CacheBypass))]
#[serde(deny_unknown_fields)]
pub struct Bypass {
    /// Requests carrying any of these cookies (e.g. a session cookie).
    #[serde(default)]
    pub cookies: Vec<String>,
    /// Requests carrying any of these headers.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Requests with these methods (only GET and HEAD are ever cached).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Requests whose path starts with one of these.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// The cache key's parts besides host and path. With `query: none`,
/// `query_only` or `query_except` the origin receives the query the key
/// keeps, so nothing left out of the key can change a stored response.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::CacheKey))]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// `all` (default: the query string as sent) or `none` (every query string
    /// shares one object).
    pub query: Option<QueryMode>,
    /// Only these query parameters are part of the key, in the order sent.
    #[serde(default)]
    pub query_only: Vec<String>,
    /// Every query parameter except these (e.g. tracking parameters) is part of the key.
    #[serde(default)]
    pub query_except: Vec<String>,
    /// Request headers whose values are part of the key.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Request cookies whose values are part of the key.
    #[serde(default)]
    pub cookies: Vec<String>,
}

/// Whether the query string is part of the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::CacheQueryMode))]
#[serde(rename_all = "snake_case")]
pub enum QueryMode {
    /// The whole query string, as sent.
    #[default]
    All,
    /// No query string.
    None,
}

/// Which query parameters are part of the key (checked form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueryKey {
    #[default]
    All,
    None,
    Only(Vec<String>),
    Except(Vec<String>),
}

/// A checked cache policy (a route's, merged with its domain's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub default_ttl: Option<Duration>,
    pub force_ttl: Option<Duration>,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub set_cookie: SetCookie,
    pub lock_timeout: Duration,
    pub bypass_cookies: Vec<String>,
    pub bypass_headers: Vec<HeaderName>,
    pub bypass_methods: Vec<Method>,
    pub bypass_paths: Vec<String>,
    pub query: QueryKey,
    pub key_headers: Vec<HeaderName>,
    pub key_cookies: Vec<String>,
}

/// Longest TTL or stale window accepted.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Merges a domain's and a route's (checked) blocks into the route's
/// policy; `None` when caching is off for the route.
pub fn merge(domain: Option<&Cache>, route: Option<&Cache>) -> Option<CachePolicy> {
    let (d, r) = (domain, route);
    let pick = |f: fn(&Cache) -> Option<Duration>| r.and_then(f).or_else(|| d.and_then(f));
    let enabled = match (d, r) {
        (_, Some(r)) if r.enabled.is_some() => r.enabled == Some(true),
        (Some(d), _) => d.enabled != Some(false),
        (None, Some(_)) => true,
        (None, None) => false,
    };
    if !enabled {
        return None;
    }
    // A route's bypass rules add to its domain's: a route refining the paths
    // must not drop the domain's session-cookie rule by accident.
    let mut bypass = d.and_then(|c| c.bypass.clone()).unwrap_or_default();
    if let Some(rb) = r.and_then(|c| c.bypass.as_ref()) {
        for (mine, theirs) in [
            (&mut bypass.cookies, &rb.cookies),
            (&mut bypass.headers, &rb.headers),
            (&mut bypass.methods, &rb.methods),
            (&mut bypass.paths, &rb.paths),
        ] {
            for v in theirs {
                if !mine.contains(v) {
                    mine.push(v.clone());
                }
            }
        }
    }
    let key = r
        .and_then(|c| c.key.as_ref())
        .or_else(|| d.and_then(|c| c.key.as_ref()))
        .cloned()
        .unwrap_or_default();
    Some(CachePolicy {
        default_ttl: pick(|c| c.default_ttl),
        force_ttl: pick(|c| c.force_ttl),
        stale_while_revalidate: pick(|c| c.stale_while_revalidate).unwrap_or_default(),
        stale_if_error: pick(|c| c.stale_if_error).unwrap_or_default(),
        set_cookie: r
            .and_then(|c| c.set_cookie)
            .or_else(|| d.and_then(|c| c.set_cookie))
            .unwrap_or_default(),
        lock_timeout: pick(|c| c.lock_timeout).unwrap_or(DEFAULT_LOCK_TIMEOUT),
        bypass_cookies: bypass.cookies,
        bypass_headers: header_names(&bypass.headers),
        bypass_methods: bypass
            .methods
            .iter()
            .filter_map(|m| parse_method(m).ok())
            .collect(),
        bypass_paths: bypass.paths,
        query: if !key.query_only.is_empty() {
            QueryKey::Only(key.query_only)
        } else if !key.query_except.is_empty() {
            QueryKey::Except(key.query_except)
        } else if key.query == Some(QueryMode::None) {
            QueryKey::None
        } else {
            QueryKey::All
        },
        key_headers: header_names(&key.headers),
        key_cookies: key.cookies,
    })
}

fn header_names(names: &[String]) -> Vec<HeaderName> {
    names
        .iter()
        .filter_map(|h| parse_header_name(h).ok())
        .collect()
}

/// Checks one `cache` block at `path`, reporting every problem to `err`
/// with its field path.
pub fn check(c: &Cache, path: &str, err: &mut dyn FnMut(String, String)) {
    let mut ttl = |v: Option<Duration>, field: &str, least: Duration| {
        if let Some(d) = v {
            if d < least || d > MAX_TTL {
                err(
                    format!("{path}.{field}"),
                    format!(
                        "must be between {} and 365 days",
                        humantime_serde::re::humantime::format_duration(least)
                    ),
                );
            }
        }
    };
    ttl(c.default_ttl, "default_ttl", Duration::from_secs(1));
    ttl(c.force_ttl, "force_ttl", Duration::from_secs(1));
    ttl(
        c.stale_while_revalidate,
        "stale_while_revalidate",
        Duration::ZERO,
    );
    ttl(c.stale_if_error, "stale_if_error", Duration::ZERO);
    if let Some(t) = c.lock_timeout {
        if t < Duration::from_millis(100) || t > Duration::from_secs(60) {
            err(
                format!("{path}.lock_timeout"),
                "must be between 100ms and 60s".into(),
            );
        }
    }
    if c.default_ttl.is_some() && c.force_ttl.is_some() {
        err(
            format!("{path}.default_ttl"),
            "has no effect next to `force_ttl` (which applies to every response); set one".into(),
        );
    }
    if let Some(b) = &c.bypass {
        let bpath = format!("{path}.bypass");
        for (i, name) in b.cookies.iter().enumerate() {
            cookie_name(name, &format!("{bpath}.cookies[{i}]"), err);
        }
        for (i, h) in b.headers.iter().enumerate() {
            header_name(h, &format!("{bpath}.headers[{i}]"), err);
        }
        for (i, m) in b.methods.iter().enumerate() {
            if let Err(message) = parse_method(m) {
                err(format!("{bpath}.methods[{i}]"), message);
            }
        }
        for (i, p) in b.paths.iter().enumerate() {
            if !p.starts_with('/') {
                err(
                    format!("{bpath}.paths[{i}]"),
                    format!("path {p:?} must start with '/'"),
                );
            }
        }
    }
    if let Some(k) = &c.key {
        let kpath = format!("{path}.key");
        let chosen = [
            k.query == Some(QueryMode::None),
            !k.query_only.is_empty(),
            !k.query_except.is_empty(),
        ];
        if chosen.iter().filter(|c| **c).count() > 1 {
            err(
                format!("{kpath}.query_only"),
                "choose one of `query: none`, `query_only` and `query_except`".into(),
            );
        }
        for (field, names) in [
            ("query_only", &k.query_only),
            ("query_except", &k.query_except),
        ] {
            for (i, n) in names.iter().enumerate() {
                if n.is_empty() || n.contains(['&', '=', '#']) {
                    err(
                        format!("{kpath}.{field}[{i}]"),
                        format!("invalid query parameter name {n:?}"),
                    );
                }
            }
        }
        for (i, h) in k.headers.iter().enumerate() {
            header_name(h, &format!("{kpath}.headers[{i}]"), err);
        }
        for (i, name) in k.cookies.iter().enumerate() {
            cookie_name(name, &format!("{kpath}.cookies[{i}]"), err);
        }
    }
}

fn header_name(h: &str, path: &str, err: &mut dyn FnMut(String, String)) {
    if let Err(message) = parse_header_name(h) {
        err(path.into(), message);
    }
}

/// A cookie name is an RFC 6265 token.
fn cookie_name(name: &str, path: &str, err: &mut dyn FnMut(String, String)) {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    if !token {
        err(path.into(), format!("invalid cookie name {name:?}"));
    }
}
