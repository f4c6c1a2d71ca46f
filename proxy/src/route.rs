//! Host and path routing.
//!
//! Host lookup is two hash probes: the exact name, then the parent of the
//! first label against one-label wildcards (`*.example.com` matches
//! `a.example.com`, not `example.com` nor `a.b.example.com`, like TLS
//! wildcards). Within a domain, routes are tried exact-first, then by
//! longest prefix; a route whose methods exclude the request's is skipped,
//! and if only such routes matched the path the answer is 405.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_config::model::{
    Config, Domain, HeaderEdits, HostPattern, PathMatch, PluginBinding, RouteAction,
};
use http::Method;

use crate::plugin::{BoundPlugin, CompiledPlugin};

/// A compiled domain: everything a request needs once its host is known.
#[derive(Debug)]
pub struct DomainPolicy {
    /// Owning tenant.
    pub tenant: Arc<str>,
    /// Redirect plain HTTP to HTTPS.
    pub force_https: bool,
    /// Request header edits.
    pub request_headers: HeaderEdits,
    /// Response header edits.
    pub response_headers: HeaderEdits,
    /// Security headers added to responses.
    pub security_headers: gatehouse_config::model::SecurityHeaders,
    /// Client addresses allowed and denied.
    pub ip_rules: gatehouse_config::model::IpRules,
    /// Automatic bans.
    pub bans: Option<gatehouse_config::model::BanPolicy>,
    /// Request inspection, unless off.
    pub waf: Option<Arc<crate::waf::Waf>>,
    /// Routes, most specific first.
    routes: Vec<CompiledRoute>,
}

/// One route of a domain.
#[derive(Debug)]
pub struct CompiledRoute {
    /// Path as configured.
    pub path: String,
    /// Match kind.
    pub path_match: PathMatch,
    /// Allowed methods (empty = all).
    pub methods: Vec<Method>,
    /// Action.
    pub action: RouteAction,
    /// Plugins to run: the domain's chain, then the route's.
    pub plugins: Arc<[BoundPlugin]>,
    /// Rate limits: the domain's, then the route's.
    pub rate_limits: Vec<crate::ratelimit::BoundLimit>,
    /// Edge cache policy (only on routes that forward to a pool).
    pub cache: Option<Arc<gatehouse_config::cache::CachePolicy>>,
}

impl CompiledRoute {
    fn matches_path(&self, path: &str) -> bool {
        match self.path_match {
            PathMatch::Exact => path == self.path,
            PathMatch::Prefix => {
                let p = self.path.as_str();
                path.starts_with(p)
                    && (path.len() == p.len()
                        || p.ends_with('/')
                        || path.as_bytes()[p.len()] == b'/')
            }
        }
    }
}

/// Outcome of matching a path within a domain.
#[derive(Debug)]
pub enum RouteMatch<'a> {
    /// The route to use.
    Found(&'a CompiledRoute),
    /// Routes matched the path but none allows the method; carries the allowed ones.
    MethodNotAllowed(Vec<Method>),
    /// No route matched the path.
    NotFound,
}

impl DomainPolicy {
    fn new(d: &Domain, plugins: &[Arc<CompiledPlugin>], waf: Option<Arc<crate::waf::Waf>>) -> Self {
        // Where each rule sits, so that a reload keeping it keeps its buckets.
        let hosts: Vec<String> = d.hosts.iter().map(|h| format!("{h:?}")).collect();
        let domain_scope = format!("domain:{}:{}", d.tenant, hosts.join(","));
        let domain_limits: Vec<crate::ratelimit::BoundLimit> = d
            .rate_limits
            .iter()
            .map(|r| crate::ratelimit::bind(&domain_scope, r))
            .collect();
        let bind = |b: &PluginBinding| {
            plugins.get(b.plugin).map(|p| BoundPlugin {
                plugin: p.clone(),
                binding: b.clone(),
            })
        };
        let mut routes: Vec<CompiledRoute> = d
            .routes
            .iter()
            .map(|r| CompiledRoute {
                path: r.path.clone(),
                path_match: r.path_match,
                methods: r.methods.clone(),
                action: r.action.clone(),
                cache: r.cache.clone().map(Arc::new),
                plugins: d
                    .plugins
                    .iter()
                    .chain(&r.plugins)
                    .filter_map(bind)
                    .collect(),
                rate_limits: {
                    let scope = format!("{domain_scope}:route:{:?}:{}", r.path_match, r.path);
                    domain_limits
                        .iter()
                        .cloned()
                        .chain(
                            r.rate_limits
                                .iter()
                                .map(|l| crate::ratelimit::bind(&scope, l)),
                        )
                        .collect()
                },
            })
            .collect();
        // Stable sort keeps file order among equally specific routes.
        routes.sort_by_key(|r| {
            (
                r.path_match != PathMatch::Exact,
                std::cmp::Reverse(r.path.len()),
            )
        });
        DomainPolicy {
            tenant: Arc::from(d.tenant.as_str()),
            force_https: d.force_https,
            request_headers: d.request_headers.clone(),
            response_headers: d.response_headers.clone(),
            security_headers: d.security_headers.clone(),
            ip_rules: d.ip_rules.clone(),
            bans: d.bans.clone(),
            waf,
            routes,
        }
    }

    /// Finds the route for `method` and `path` (without query).
    pub fn match_route(&self, method: &Method, path: &str) -> RouteMatch<'_> {
        let mut allowed: Vec<Method> = Vec::new();
        for r in &self.routes {
            if !r.matches_path(path) {
                continue;
            }
            if r.methods.is_empty() || r.methods.contains(method) {
                return RouteMatch::Found(r);
            }
            for m in &r.methods {
                if !allowed.contains(m) {
                    allowed.push(m.clone());
                }
            }
        }
        if allowed.is_empty() {
            RouteMatch::NotFound
        } else {
            RouteMatch::MethodNotAllowed(allowed)
        }
    }
}

/// A domain found for a host, with the host pattern that matched (a bounded metrics label).
#[derive(Debug, Clone, Copy)]
pub struct HostMatch<'a> {
    /// The domain.
    pub domain: &'a DomainPolicy,
    /// Index into [`Router::domains`].
    pub index: usize,
    /// Matched pattern as configured, e.g. `*.example.com`.
    pub label: &'a Arc<str>,
}

/// Host → domain table.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, (usize, Arc<str>)>,
    wildcard: HashMap<String, (usize, Arc<str>)>,
    domains: Vec<DomainPolicy>,
    /// Tenants' aggregate ceilings.
    tenant_limits: HashMap<String, Arc<crate::ratelimit::Limiter>>,
}

impl Router {
    /// Compiles the routing table of `cfg`; `plugins` are the loaded
    /// `cfg.plugins`, in order (bindings refer to them by index).
    /// `wafs[i]` is domain `i`'s compiled WAF.
    pub fn new(
        cfg: &Config,
        plugins: &[Arc<CompiledPlugin>],
        wafs: &[Option<Arc<crate::waf::Waf>>],
    ) -> Self {
        let mut r = Router::default();
        for (tenant, quota) in &cfg.tenant_rate_limits {
            let limiter = crate::ratelimit::tenant_limiter(tenant, *quota);
            r.tenant_limits.insert(tenant.clone(), limiter);
        }
        for (i, d) in cfg.domains.iter().enumerate() {
            let waf = wafs.get(i).cloned().flatten();
            r.domains.push(DomainPolicy::new(d, plugins, waf));
            for h in &d.hosts {
                let label: Arc<str> = Arc::from(h.to_string().as_str());
                match h {
                    HostPattern::Exact(name) => r.exact.insert(name.clone(), (i, label)),
                    HostPattern::Wildcard(suffix) => r.wildcard.insert(suffix.clone(), (i, label)),
                };
            }
        }
        r
    }

    /// Looks up a normalised host (see [`normalize_host`]).
    pub fn lookup(&self, host: &str) -> Option<HostMatch<'_>> {
        let (index, label) = self.exact.get(host).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            self.wildcard.get(parent)
        })?;
        Some(HostMatch {
            domain: &self.domains[*index],
            index: *index,
            label,
        })
    }

    /// The domain at `index` (as returned in [`HostMatch::index`]).
    pub fn domain(&self, index: usize) -> Option<&DomainPolicy> {
        self.domains.get(index)
    }

    /// The aggregate ceiling of `tenant`, if it has one.
    pub fn tenant_limit(&self, tenant: &str) -> Option<&Arc<crate::ratelimit::Limiter>> {
        self.tenant_limits.get(tenant)
    }
}

/// Lowercases a Host header or authority and strips the port and a trailing dot.
/// Returns `None` unless it is a syntactically valid host (RFC 3986 §3.2.2:
/// DNS-style labels, an IPv4 address, or a bracketed IPv6 literal), so that a
/// value like `1.2.3.4#.example.com` can neither match a wildcard nor end up
/// in a redirect.
pub fn normalize_host(raw: &str) -> Option<String> {
    let (host, bracketed, rest) = if let Some(inner) = raw.strip_prefix('[') {
        let (h, rest) = inner.split_once(']')?;
        (h, true, rest)
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) => (h, false, port),
            None => (raw, false, ""),
        }
    };
    let port = rest.strip_prefix(':').unwrap_or(rest);
    if !port.bytes().all(|b| b.is_ascii_digit())
        || (bracketed && !rest.is_empty() && !rest.starts_with(':'))
    {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let valid = if bracketed {
        host.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    valid.then(|| host.to_ascii_lowercase())
}

/// Why a request path cannot be routed.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidPath;

/// Normalises a request path before routing (RFC 3986 §6.2.2): percent-encoded
/// unreserved characters are decoded, other escapes upper-cased, dot segments
/// removed and repeated slashes merged. Routing and the upstream then see the
/// same path, so `/%61dmin`, `//admin`, `/x/../admin` and `/x/..;/admin`
/// cannot slip past an `/admin` route. Encoded slashes (`%2F`) stay encoded. Borrowed when the
/// path is already normal (the common case).
pub fn normalize_path(path: &str) -> Result<std::borrow::Cow<'_, str>, InvalidPath> {
    if !path.starts_with('/') {
        return Err(InvalidPath);
    }
    let needs_work = path.contains('%') || path.contains("//") || path.contains("/.");
    if !needs_work {
        return Ok(std::borrow::Cow::Borrowed(path));
    }
    // Pass 1: escapes.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(InvalidPath)?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(InvalidPath)?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                decoded.push(value as char);
            } else {
                decoded.push('%');
                decoded.push_str(&String::from_utf8_lossy(hex).to_ascii_uppercase());
            }
            i += 3;
        } else {
            decoded.push(bytes[i] as char);
            i += 1;
        }
    }
    // Pass 2: segments.
    let trailing_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        // A dot segment with path parameters (`..;x`) is still a dot segment
        // to servlet containers, which drop `;` parameters before resolving
        // dots: `/public/..;/admin` must not pass as a `/public` request.
        let dots = seg.split(';').next().unwrap_or(seg);
        match dots {
            "" if seg.is_empty() => {}
            "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// The path routes, WAF exclusions and cache bypass rules match: `path` (already
/// normalised) with segment parameters (`;jsessionid=…`, RFC 3986 §3.3) cut
/// from every segment. Servlet containers and Spring serve `/admin;x` as
/// `/admin`, so matching the path with them would let a client step round an
/// `/admin` route's protections. The request is forwarded unchanged. A
/// segment that is only parameters disappears (`/;x/admin` is `/admin`).
/// Borrowed when there are none (the common case).
pub fn without_segment_params(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(';') {
        return std::borrow::Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out = String::with_capacity(path.len());
    for (i, seg) in segments.iter().enumerate() {
        let name = seg.split(';').next().unwrap_or_default();
        let last = i + 1 == segments.len();
        if !name.is_empty() || last {
            out.push('/');
            out.push_str(name);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router() -> Router {
        let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: t }]
domains:
  - hosts: [example.com]
    tenant: t
    routes:
      - { path: /, respond: { body: root } }
      - { path: /api, respond: { body: api } }
      - { path: /api/v2, methods: [POST], respond: { body: v2 } }
      - { path: /exact, match: exact, respond: { body: exact } }
      - { path: /only-get, methods: [GET], respond: { body: og } }
  - hosts: ["*.example.com"]
    tenant: t
    routes: [{ path: /only, respond: { body: wild } }]
"#;
        Router::new(
            &gatehouse_config::load_str(yaml, Path::new(".")).unwrap(),
            &[],
            &[],
        )
    }

    fn body(r: &Router, host: &str, method: &str, path: &str) -> String {
        let h = r.lookup(&normalize_host(host).unwrap()).expect("host");
        match h
            .domain
            .match_route(&Method::from_bytes(method.as_bytes()).unwrap(), path)
        {
            RouteMatch::Found(route) => match &route.action {
                RouteAction::Respond(resp) => resp.body.clone(),
                _ => unreachable!(),
            },
            RouteMatch::MethodNotAllowed(m) => format!("405 {m:?}"),
            RouteMatch::NotFound => "404".into(),
        }
    }

    #[test]
    fn hosts_exact_before_wildcard_case_and_port_insensitive() {
        let r = router();
        assert_eq!(&**r.lookup("example.com").unwrap().label, "example.com");
        assert_eq!(
            r.lookup(&normalize_host("A.Example.COM:8080").unwrap())
                .unwrap()
                .label
                .as_ref(),
            "*.example.com"
        );
        assert!(r.lookup("a.b.example.com").is_none());
        assert!(r.lookup("example.org").is_none());
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(
            normalize_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host(""), None);
        for bad in [
            "1.2.3.4#.example.com",
            "a@b.example.com",
            "a:b.example.com",
            "a..com",
            "[::1]x",
            "a b",
            "a.com:8o",
        ] {
            assert_eq!(normalize_host(bad), None, "{bad}");
        }
        assert_eq!(
            normalize_host("A_b-1.Example.com:443").as_deref(),
            Some("a_b-1.example.com")
        );
    }

    #[test]
    fn paths_are_normalised_before_routing() {
        let n = |p: &str| normalize_path(p).map(|c| c.into_owned());
        assert_eq!(n("/api/v1").unwrap(), "/api/v1");
        assert!(matches!(
            normalize_path("/api/v1"),
            Ok(std::borrow::Cow::Borrowed(_))
        ));
        assert_eq!(n("/%61dmin").unwrap(), "/admin");
        assert_eq!(n("//admin//x").unwrap(), "/admin/x");
        assert_eq!(n("/x/../admin").unwrap(), "/admin");
        assert_eq!(n("/x/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/../../etc").unwrap(), "/etc");
        assert_eq!(n("/a/./b/").unwrap(), "/a/b/");
        // Servlet-style path parameters on dot segments.
        assert_eq!(n("/public/..;/admin").unwrap(), "/admin");
        assert_eq!(n("/public/..;jsessionid=x/admin").unwrap(), "/admin");
        assert_eq!(n("/public/.;x/admin").unwrap(), "/public/admin");
        assert_eq!(n("/a;v=1/b").unwrap(), "/a;v=1/b");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/a%2fb").unwrap(), "/a%2Fb");
        assert_eq!(n("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        assert_eq!(n("/bad%zz"), Err(InvalidPath));
        assert_eq!(n("/bad%4"), Err(InvalidPath));
        assert_eq!(n("*"), Err(InvalidPath));
    }

    #[test]
    fn segment_parameters_are_not_part_of_the_matched_path() {
        let m = |p: &str| without_segment_params(p).into_owned();
        assert!(matches!(
            without_segment_params("/admin/x"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(m("/admin;x"), "/admin");
        assert_eq!(m("/admin;a=1;b=2/users;v=3"), "/admin/users");
        assert_eq!(m("/;x/admin"), "/admin");
        assert_eq!(m("/admin/;x"), "/admin/");
        assert_eq!(m("/;x"), "/");
        assert_eq!(m("/a%3Bb"), "/a%3Bb");
    }

    #[test]
    fn longest_prefix_exact_first_and_methods() {
        let r = router();
        assert_eq!(body(&r, "example.com", "GET", "/"), "root");
        assert_eq!(body(&r, "example.com", "GET", "/api"), "api");
        assert_eq!(body(&r, "example.com", "GET", "/api/x"), "api");
        assert_eq!(body(&r, "example.com", "GET", "/apix"), "root");
        assert_eq!(body(&r, "example.com", "POST", "/api/v2/x"), "v2");
        // GET /api/v2 falls through to the less specific /api route.
        assert_eq!(body(&r, "example.com", "GET", "/api/v2"), "api");
        assert_eq!(body(&r, "example.com", "GET", "/exact"), "exact");
        assert_eq!(body(&r, "example.com", "GET", "/exact/more"), "root");
        assert_eq!(body(&r, "x.example.com", "GET", "/only"), "wild");
        assert_eq!(body(&r, "x.example.com", "GET", "/other"), "404");
    }

    #[test]
    fn method_not_allowed_when_only_restricted_routes_match() {
        let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: t }]
domains:
  - hosts: [a.com]
    tenant: t
    routes: [{ path: /w, methods: [PUT, DELETE], respond: { body: w } }]
"#;
        let r = Router::new(
            &gatehouse_config::load_str(yaml, Path::new(".")).unwrap(),
            &[],
            &[],
        );
        assert_eq!(body(&r, "a.com", "GET", "/w"), "405 [PUT, DELETE]");
    }
}
