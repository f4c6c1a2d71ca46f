//! `domains[].routes`: a path (and methods) mapped to one action (forward
//! to a pool, respond, redirect, serve files). Holds the file types, the
//! checked route and [`check`], which also resolves the route's pool, plugins,
//! rate limits and merged cache policy.

use http::{HeaderValue, StatusCode};

use super::refs::Refs;
use crate::check::{parse_method, Checker};
use model::{Redirect, Respond, Route, RouteAction, StaticFiles};

pub mod file {
    //! Routes as operators write them.

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use crate::plugins::file::PluginBinding;
    use crate::rate_limits::file::RateLimit;

    /// How a route's `path` is compared with the request path.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::PathMatch))]
    #[serde(rename_all = "snake_case")]
    pub enum PathMatch {
        /// Segment-aware prefix: `/api` matches `/api`, `/api/` and `/api/x` but not `/apix`.
        #[default]
        Prefix,
        /// The path must be equal.
        Exact,
    }

    /// One route: a path (and optional methods) mapped to exactly one action.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Route))]
    #[serde(deny_unknown_fields)]
    pub struct Route {
        /// Path to match, starting with `/` (default `/`).
        pub path: Option<String>,
        /// `prefix` (default) or `exact`.
        #[serde(default, rename = "match")]
        pub path_match: PathMatch,
        /// Allowed methods; empty means all. A path match with another method gets 405.
        #[serde(default)]
        pub methods: Vec<String>,
        /// Forward to this upstream pool (same tenant).
        pub pool: Option<String>,
        /// Answer directly.
        pub respond: Option<Respond>,
        /// Redirect the client.
        pub redirect: Option<Redirect>,
        /// Serve files from a directory.
        #[serde(rename = "static")]
        pub static_files: Option<StaticFiles>,
        /// Plugins run on this route's requests, in order, after the domain's.
        #[serde(default)]
        pub plugins: Vec<PluginBinding>,
        /// Rate limits on this route's requests, after the domain's.
        #[serde(default)]
        pub rate_limits: Vec<RateLimit>,
        /// Edge caching for this route, refining the domain's `cache` field by field.
        #[serde(default)]
        pub cache: Option<crate::cache::Cache>,
    }

    /// A fixed response.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Respond))]
    #[serde(deny_unknown_fields)]
    pub struct Respond {
        /// Status code (default 200).
        pub status: Option<u16>,
        /// Response headers.
        #[serde(default)]
        pub headers: BTreeMap<String, String>,
        /// Response body (default empty).
        #[serde(default)]
        pub body: String,
    }

    /// A redirect.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Redirect))]
    #[serde(deny_unknown_fields)]
    pub struct Redirect {
        /// Target URL. With `keep_path`, the request path and query are appended.
        pub to: String,
        /// 301, 302, 303, 307 or 308 (default 302).
        pub status: Option<u16>,
        /// Append the request path and query to `to` (default false).
        #[serde(default)]
        pub keep_path: bool,
    }

    /// Static file serving from a directory.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::StaticFiles))]
    #[serde(deny_unknown_fields)]
    pub struct StaticFiles {
        /// Directory served. Requests never escape it (no `..`, no symlinks out).
        pub root: String,
        /// Index files tried for a directory (default `[index.html]`).
        pub index: Option<Vec<String>>,
        /// Strip the route's path prefix before mapping to a file (default true).
        pub strip_prefix: Option<bool>,
        /// `Cache-Control` value sent with files (default none).
        pub cache_control: Option<String>,
    }
}

pub mod model {
    //! Routes, checked.

    use std::path::PathBuf;

    use http::{HeaderName, HeaderValue, Method, StatusCode};

    pub use super::file::PathMatch;
    use crate::plugins::model::PluginBinding;
    use crate::rate_limits::model::RateLimitRule;

    /// A route.
    #[derive(Debug, Clone)]
    pub struct Route {
        /// Path, starting with `/`.
        pub path: String,
        /// Prefix or exact.
        pub path_match: PathMatch,
        /// Allowed methods; empty = all.
        pub methods: Vec<Method>,
        /// What to do.
        pub action: RouteAction,
        /// Plugin chain run after the domain's.
        pub plugins: Vec<PluginBinding>,
        /// Rate limits, after the domain's.
        pub rate_limits: Vec<RateLimitRule>,
        /// Edge cache policy (merged with the domain's); `None`: not cached.
        pub cache: Option<crate::cache::CachePolicy>,
    }

    /// What a route does.
    #[derive(Debug, Clone)]
    pub enum RouteAction {
        /// Forward to [`Config::pools`](crate::model::Config::pools)`[i]`.
        Pool(usize),
        /// Fixed response.
        Respond(Respond),
        /// Redirect.
        Redirect(Redirect),
        /// Static files.
        Static(StaticFiles),
    }

    /// A fixed response.
    #[derive(Debug, Clone)]
    pub struct Respond {
        /// Status.
        pub status: StatusCode,
        /// Headers.
        pub headers: Vec<(HeaderName, HeaderValue)>,
        /// Body.
        pub body: String,
    }

    /// A redirect.
    #[derive(Debug, Clone)]
    pub struct Redirect {
        /// Target URL.
        pub to: String,
        /// 3xx status.
        pub status: StatusCode,
        /// Append request path and query.
        pub keep_path: bool,
    }

    /// Static file serving.
    #[derive(Debug, Clone)]
    pub struct StaticFiles {
        /// Canonical root directory.
        pub root: PathBuf,
        /// Index file names.
        pub index: Vec<String>,
        /// Strip the route prefix.
        pub strip_prefix: bool,
        /// `Cache-Control` header value.
        pub cache_control: Option<HeaderValue>,
    }
}

pub(crate) fn check(
    r: &file::Route,
    path: &str,
    tenant: &str,
    domain_cache: Option<&crate::cache::Cache>,
    refs: &Refs<'_>,
    cx: &mut Checker<'_>,
) -> Option<Route> {
    let route_path = r.path.clone().unwrap_or_else(|| "/".to_string());
    if !route_path.starts_with('/') {
        cx.err(
            format!("{path}.path"),
            format!("path {route_path:?} must start with '/'"),
        );
    }
    let mut methods = Vec::new();
    for (mi, m) in r.methods.iter().enumerate() {
        match parse_method(m) {
            Ok(m) => methods.push(m),
            Err(message) => cx.err(format!("{path}.methods[{mi}]"), message),
        }
    }
    let set = [
        r.pool.is_some(),
        r.respond.is_some(),
        r.redirect.is_some(),
        r.static_files.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        cx.err(
            path,
            "exactly one of `pool`, `respond`, `redirect` or `static` must be set",
        );
        return None;
    }
    let action = if let Some(pool) = &r.pool {
        let Some(&pi) = refs.pools.get(pool) else {
            cx.err(format!("{path}.pool"), format!("unknown pool {pool:?}"));
            return None;
        };
        if refs.pool_files[pi].tenant != tenant {
            cx.err(
                format!("{path}.pool"),
                format!("pool {pool:?} belongs to another tenant"),
            );
            return None;
        }
        RouteAction::Pool(pi)
    } else if let Some(resp) = &r.respond {
        RouteAction::Respond(respond(resp, &format!("{path}.respond"), cx)?)
    } else if let Some(red) = &r.redirect {
        RouteAction::Redirect(redirect(red, &format!("{path}.redirect"), cx)?)
    } else {
        let s = r.static_files.as_ref()?;
        RouteAction::Static(static_files(s, &format!("{path}.static"), cx)?)
    };
    let plugins = crate::plugins::chain(
        &r.plugins,
        refs.plugins,
        tenant,
        &format!("{path}.plugins"),
        cx,
    );
    let rate_limits = crate::rate_limits::check(&r.rate_limits, &format!("{path}.rate_limits"), cx);
    if let Some(c) = &r.cache {
        crate::cache::check(c, &format!("{path}.cache"), &mut |p, m| cx.err(p, m));
    }
    let cache = crate::cache::merge(domain_cache, r.cache.as_ref());
    // Local answers cost nothing to make again; only forwarded requests are cached.
    let cache = cache.filter(|_| matches!(action, RouteAction::Pool(_)));
    Some(Route {
        path: route_path,
        path_match: r.path_match,
        methods,
        action,
        plugins,
        rate_limits,
        cache,
    })
}

fn respond(r: &file::Respond, path: &str, cx: &mut Checker<'_>) -> Option<Respond> {
    let code = r.status.unwrap_or(200);
    if !(200..=599).contains(&code) {
        // A 1xx is an interim response: the client would wait for a final one forever.
        cx.err(
            format!("{path}.status"),
            format!("status must be 200..=599, got {code}"),
        );
        return None;
    }
    let status = cx.status(code, &format!("{path}.status"))?;
    if matches!(code, 204 | 304) && !r.body.is_empty() {
        // RFC 9110 §15.3.5, §15.4.5: these responses cannot carry content.
        cx.err(
            format!("{path}.body"),
            format!("a {code} response cannot have a body"),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in &r.headers {
        let hpath = format!("{path}.headers.{name}");
        if let (Some(n), Some(v)) = (
            cx.editable_header_name(name, &hpath),
            cx.header_value(value, &hpath),
        ) {
            headers.push((n, v));
        }
    }
    Some(Respond {
        status,
        headers,
        body: r.body.clone(),
    })
}

fn redirect(r: &file::Redirect, path: &str, cx: &mut Checker<'_>) -> Option<Redirect> {
    let code = r.status.unwrap_or(302);
    if ![301, 302, 303, 307, 308].contains(&code) {
        cx.err(
            format!("{path}.status"),
            format!("redirect status must be 301, 302, 303, 307 or 308, got {code}"),
        );
        return None;
    }
    // An absolute URL, or a path on this host; never `//host` (a
    // scheme-relative URL that, with keep_path, becomes an open redirect).
    let absolute = http::Uri::try_from(r.to.as_str())
        .is_ok_and(|u| u.scheme().is_some() && u.authority().is_some());
    let local_path = r.to.starts_with('/') && !r.to.starts_with("//");
    if HeaderValue::from_str(&r.to).is_err() || !(absolute || local_path) {
        cx.err(
            format!("{path}.to"),
            format!(
                "invalid redirect target {:?}: use an absolute URL (https://host/...) or a path starting with one '/'",
                r.to
            ),
        );
        return None;
    }
    Some(Redirect {
        to: r.to.clone(),
        status: StatusCode::from_u16(code).ok()?,
        keep_path: r.keep_path,
    })
}

fn static_files(s: &file::StaticFiles, path: &str, cx: &mut Checker<'_>) -> Option<StaticFiles> {
    let root = cx.resolve_path(&s.root);
    let root = match std::fs::canonicalize(&root) {
        Ok(r) if r.is_dir() => r,
        Ok(_) => {
            cx.err(
                format!("{path}.root"),
                format!("{} is not a directory", root.display()),
            );
            return None;
        }
        Err(e) => {
            cx.err(
                format!("{path}.root"),
                format!("cannot open {}: {e}", root.display()),
            );
            return None;
        }
    };
    let index = s
        .index
        .clone()
        .unwrap_or_else(|| vec!["index.html".to_string()]);
    for (i, name) in index.iter().enumerate() {
        if name.is_empty() || name.contains('/') || name == ".." || name == "." {
            cx.err(
                format!("{path}.index[{i}]"),
                format!("invalid index file name {name:?}"),
            );
        }
    }
    let cache_control = s
        .cache_control
        .as_ref()
        .and_then(|c| cx.header_value(c, &format!("{path}.cache_control")));
    Some(StaticFiles {
        root,
        index,
        strip_prefix: s.strip_prefix.unwrap_or(true),
        cache_control,
    })
}
