//! The Pingora `ProxyHttp` implementation: the request path of the data plane.
//!
//! Phases, in the order Pingora calls them (see `pingora_proxy::ProxyHttp`):
//! - [`request_filter`](Gatehouse::request_filter): take the snapshot, enforce
//!   limits, assign the request id, route by host and path, run the route's
//!   plugins' `on-request`, and answer locally (`respond`, `redirect`,
//!   `static`, errors, `force_https`, plugin responses). `Ok(true)` means the
//!   response was written and Pingora stops; `Ok(false)` proxies upstream.
//! - [`upstream_peer`](Gatehouse::upstream_peer): pick a target of the route's pool.
//! - [`upstream_request_filter`](Gatehouse::upstream_request_filter): forwarding
//!   headers, the domain's request header rules and plugin edits on the upstream copy.
//! - [`fail_to_connect`](Gatehouse::fail_to_connect) / [`error_while_proxy`](Gatehouse::error_while_proxy):
//!   passive health accounting and the retry decision.
//! - [`response_filter`](Gatehouse::response_filter): plugins' `on-response`,
//!   response header rules, request id. Local responses get the same in `send_local`.
//! - [`fail_to_proxy`](Gatehouse::fail_to_proxy): 502/504 with a JSON body.
//! - [`logging`](Gatehouse::logging): metrics and the JSON access log.
//!
//! Every phase reads the one `Arc<Snapshot>` taken in `request_filter`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use gatehouse_config::model::{RateLimitKey, RouteAction};
use http::{header, HeaderValue, StatusCode};
use pingora::cache::key::HashBinary;
use pingora::cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, NoCacheReason, RespCacheable,
};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::cache;
use crate::headers::{self, RequestVars};
use crate::local::{self, LocalResponse, StaticTarget};
use crate::metrics::{metrics, status_class};
use crate::plugin::{
    apply_request_edits, run_request, run_response, wit_headers, ChainStop, Instance, Properties,
    RequestEdits, RequestLine, RequestView,
};
use crate::route::{
    normalize_host, normalize_path, BoundPlugin, CompiledRoute, InvalidPath, RouteMatch,
};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::tls::TlsSni;
use crate::upstream::{HashInput, Selection};

mod inspect;

use inspect::WafHold;

const X_REQUEST_ID: &str = "x-request-id";

/// The data plane's request handler.
pub struct Gatehouse {
    store: Arc<SnapshotStore>,
}

impl Gatehouse {
    /// A handler serving whatever snapshot `store` holds.
    pub fn new(store: Arc<SnapshotStore>) -> Self {
        Gatehouse { store }
    }
}

/// Per-request state shared by all phases.
pub struct RequestCtx {
    started: Instant,
    snapshot: Option<Arc<Snapshot>>,
    vars: RequestVars,
    /// Host (with port) as the client sent it.
    raw_host: String,
    /// The connection's peer (the client, or the proxy in front of us).
    peer_ip: Option<std::net::IpAddr>,
    /// The client, from a trusted proxy's forwarding header or the peer.
    client_addr: Option<std::net::IpAddr>,
    /// `RateLimit-Policy` and `RateLimit` values for the response.
    rate_limit_headers: Option<crate::ratelimit::Advertised>,
    /// The request target as received, when path normalisation rewrote it
    /// (the WAF inspects what the client sent).
    original_uri: Option<Vec<u8>>,
    /// A body still to be inspected as it streams in (too big to replay).
    waf_hold: Option<WafHold>,
    /// The WAF's score and the rules that fired, for the access log.
    waf_outcome: Option<(u32, String)>,
    /// The WAF blocked this request (counts toward `bans.waf_blocks`).
    waf_blocked: bool,
    /// The route's edge cache policy (routes to a pool only).
    cache: Option<Arc<gatehouse_config::cache::CachePolicy>>,
    /// The bypass rule that kept this request away from the cache.
    cache_bypass: Option<&'static str>,
    /// The response was found storable.
    cache_stored: bool,
    /// How the cache served the request (metrics and access log).
    cache_result: Option<&'static str>,
    /// The query the cache key kept, which is also what the origin gets.
    cache_query: Option<String>,
    /// A background refresh of a stale object (stale-while-revalidate), made
    /// by the cache on behalf of a request that was already admitted.
    background: bool,
    /// Matched domain (index into the router) and its metrics label.
    domain: Option<usize>,
    domain_label: Option<Arc<str>>,
    /// Pool of the matched route.
    pool: Option<usize>,
    /// Targets already tried for this request (indices into the pool).
    tried: Vec<usize>,
    /// This request's position in the pool's rotation, kept across retries.
    rotation: Option<usize>,
    /// The current attempt's target, holding its in-flight count.
    attempt: Option<Selection>,
    /// Why the request failed, for the access log.
    failure: Option<String>,
    /// Status of a locally generated response.
    local_status: Option<u16>,
    /// Request body bytes received so far (for `limits.max_body_bytes`).
    body_bytes: u64,
    /// When the first upstream attempt started, and how long until the response head arrived.
    upstream_started: Option<Instant>,
    upstream_response_time: Option<std::time::Duration>,
    /// The route's plugin chain, once its `on-request` ran.
    plugins: Option<Arc<[BoundPlugin]>>,
    /// The request as the plugins saw it, and its properties, for `on-response`.
    plugin_head: Option<(RequestView, Arc<Properties>)>,
    /// Checked `on-request` edits, applied to the upstream request.
    plugin_edits: RequestEdits,
    /// `on-response` still has to run on the response about to be sent.
    response_plugins_pending: bool,
    /// A response that replaces the upstream's (chosen by `on-response`, or
    /// its fail-closed error), written by `fail_to_proxy`.
    plugin_response: Option<LocalResponse>,
    /// Plugin instances kept from `on-request` for `on-response`, one per binding.
    plugin_instances: Vec<Option<Instance>>,
    /// A plugin replaced the upstream response (not an error worth logging as one).
    plugin_replaced: bool,
}

impl RequestCtx {
    fn pool<'s>(&self, snap: &'s Snapshot) -> Option<&'s crate::upstream::UpstreamPool> {
        self.pool.map(|i| &snap.pools[i])
    }

    /// The peer's address as forwarding headers carry it.
    fn peer_ip_text(&self) -> String {
        self.peer_ip.map(|ip| ip.to_string()).unwrap_or_default()
    }

    fn domain_policy<'s>(&self, snap: &'s Snapshot) -> Option<&'s crate::route::DomainPolicy> {
        self.domain.and_then(|i| snap.router.domain(i))
    }
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// Accepts a client-supplied request id only if it is short and printable.
fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// The address of the connection's peer (a client, or a proxy in front of us).
fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

impl Gatehouse {
    /// Adds the common headers to a local response and writes it.
    async fn send_local(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        mut resp: LocalResponse,
    ) -> Result<bool> {
        if let Err(stop) = self.response_plugins(ctx, &mut resp.head) {
            resp = chain_stop_response(ctx, stop);
        }
        if let Some(snap) = ctx.snapshot.clone() {
            if let Some(d) = ctx.domain_policy(&snap) {
                headers::apply(&d.response_headers, &mut resp.head, &ctx.vars);
                let https = ctx.vars.scheme == "https";
                headers::apply_security(&d.security_headers, &mut resp.head, https);
            }
        }
        if let Some(advertised) = &ctx.rate_limit_headers {
            for (name, value) in advertised.headers() {
                let _ = resp.head.insert_header(name, value);
            }
        }
        if !ctx.vars.request_id.is_empty() {
            let _ = resp
                .head
                .insert_header(X_REQUEST_ID, ctx.vars.request_id.as_str());
        }
        ctx.local_status = Some(resp.head.status.as_u16());
        let head_only = session.req_header().method == http::Method::HEAD;
        resp.write(session, head_only).await?;
        Ok(true)
    }

    /// Takes a token from the tenant's ceiling and from each of the route's
    /// limits (the domain's first). Returns the 429 to send when one is empty;
    /// otherwise remembers the policies for the response headers. Limits
    /// keyed by the plugins' `rate-limit-key` are taken `after_plugins`, the
    /// others before (a refused request costs no plugin call).
    fn rate_limit(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        snap: &Snapshot,
        route: &CompiledRoute,
        after_plugins: bool,
    ) -> Option<LocalResponse> {
        use crate::ratelimit::{ceil_secs, request_key, Advertised, BoundLimit, Outcome};
        let headers = &session.req_header().headers;
        // The tenant's ceiling is never advertised (its name and size are the
        // operator's business).
        let tenant_limit = snap
            .router
            .tenant_limit(&ctx.vars.tenant)
            .filter(|_| !after_plugins)
            .map(|l| BoundLimit {
                limiter: l.clone(),
                headers: gatehouse_config::file::RateLimitHeaders::None,
            });
        let mut advertised = ctx.rate_limit_headers.take().unwrap_or_default();
        let plugin_key = ctx.plugin_edits.rate_limit_key.clone();
        let now = route
            .rate_limits
            .iter()
            .filter(|l| (l.limiter.rule.key == RateLimitKey::Plugin) == after_plugins);
        for limit in tenant_limit.iter().chain(now) {
            let limiter = &limit.limiter;
            let key = request_key(
                &limiter.rule.key,
                &ctx.vars.client_ip,
                headers,
                plugin_key.as_deref(),
            );
            let outcome = limiter.check(&key);
            match outcome {
                Outcome::Allowed { .. } => advertised.add(limit, outcome),
                Outcome::Limited { retry_after } => {
                    let label = ctx.domain_label.clone().unwrap_or_else(|| Arc::from(""));
                    metrics()
                        .rate_limited
                        .with_label_values(&[&*ctx.vars.tenant, &*label, &limiter.rule.name])
                        .inc();
                    ctx.failure = Some("rate_limited".into());
                    let mut resp =
                        LocalResponse::json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
                    let _ = resp
                        .head
                        .insert_header(header::RETRY_AFTER, ceil_secs(retry_after).to_string());
                    // Only the rule that refused is advertised on the 429.
                    let mut refused = Advertised::default();
                    refused.add(limit, outcome);
                    for (name, value) in refused.headers() {
                        let _ = resp.head.insert_header(name, value);
                    }
                    return Some(resp);
                }
            }
        }
        ctx.rate_limit_headers = Some(advertised);
        None
    }

    /// Runs the route's plugin chain (`on-request`). Returns the response to
    /// send when a plugin answers or fails closed.
    fn request_plugins(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        snap: &Snapshot,
        route: &CompiledRoute,
    ) -> Option<LocalResponse> {
        let req = session.req_header();
        let ssl = session.digest().and_then(|d| d.ssl_digest.clone());
        let tls_sni = ssl
            .as_ref()
            .and_then(|d| d.extension.get::<TlsSni>())
            .and_then(|s| s.0.clone());
        let pool = match &route.action {
            RouteAction::Pool(i) => Some(snap.config.pools[*i].name.clone()),
            _ => None,
        };
        let props = Arc::new(Properties {
            request_id: ctx.vars.request_id.clone(),
            client_ip: ctx.vars.client_ip.clone(),
            tls_sni,
            tls_version: ssl.as_ref().map(|d| d.version.to_string()),
            http_version: if session.is_http2() {
                "HTTP/2"
            } else {
                "HTTP/1.1"
            },
            domain: ctx.domain_label.clone().unwrap_or_else(|| Arc::from("")),
            route: route.path.clone(),
            pool,
            tenant: ctx.vars.tenant.clone(),
        });
        let mut head = RequestView {
            line: RequestLine {
                method: req.method.as_str().to_string(),
                scheme: ctx.vars.scheme.to_string(),
                authority: ctx.vars.host.clone(),
                path: ctx.vars.request_uri.clone(),
            },
            headers: wit_headers(&req.headers),
        };
        let tenant = ctx.vars.tenant.clone();
        // A pool hint may only name a pool of the request's own tenant.
        let pool_of_tenant = |name: &str| {
            snap.config
                .pools
                .iter()
                .position(|p| p.name == name && *p.tenant == *tenant)
        };
        let chain = route.plugins.clone();
        let result = run_request(
            &chain,
            &mut head,
            &props,
            &pool_of_tenant,
            &mut ctx.plugin_edits,
            &mut ctx.plugin_instances,
        );
        ctx.plugins = Some(chain);
        ctx.plugin_head = Some((head, props));
        match result {
            Ok(()) => {
                ctx.response_plugins_pending = true;
                None
            }
            Err(stop) => Some(chain_stop_response(ctx, stop)),
        }
    }

    /// Runs `on-response` once, if the request's `on-request` chain completed.
    fn response_plugins(
        &self,
        ctx: &mut RequestCtx,
        response: &mut ResponseHeader,
    ) -> std::result::Result<(), ChainStop> {
        if !std::mem::take(&mut ctx.response_plugins_pending) {
            return Ok(());
        }
        match (&ctx.plugins, &mut ctx.plugin_head) {
            (Some(chain), Some((head, props))) => {
                run_response(chain, head, props, response, &mut ctx.plugin_instances)
            }
            _ => Ok(()),
        }
    }

    async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: StatusCode,
        code: &str,
    ) -> Result<bool> {
        ctx.failure = Some(code.to_string());
        self.send_local(session, ctx, LocalResponse::json_error(status, code))
            .await
    }

    /// RFC 9110 §15.5.15 (414) and RFC 6585 §5 (431).
    fn limit_violation(
        &self,
        snap: &Snapshot,
        req: &RequestHeader,
    ) -> Option<(StatusCode, &'static str)> {
        let limits = &snap.config.limits;
        let uri_len = req.raw_path().len();
        if uri_len > limits.max_uri_bytes {
            return Some((StatusCode::URI_TOO_LONG, "uri_too_long"));
        }
        if req.headers.len() > limits.max_header_count {
            return Some((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too_many_headers",
            ));
        }
        let bytes: usize = req
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        if bytes > limits.max_header_bytes {
            return Some((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ));
        }
        None
    }
}

#[async_trait]
impl ProxyHttp for Gatehouse {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            started: Instant::now(),
            snapshot: None,
            vars: RequestVars::default(),
            raw_host: String::new(),
            domain: None,
            domain_label: None,
            pool: None,
            tried: Vec::new(),
            rotation: None,
            attempt: None,
            failure: None,
            local_status: None,
            body_bytes: 0,
            upstream_started: None,
            upstream_response_time: None,
            plugins: None,
            plugin_head: None,
            plugin_edits: RequestEdits::default(),
            response_plugins_pending: false,
            plugin_response: None,
            plugin_replaced: false,
            plugin_instances: Vec::new(),
            peer_ip: None,
            client_addr: None,
            rate_limit_headers: None,
            original_uri: None,
            waf_hold: None,
            waf_outcome: None,
            waf_blocked: false,
            cache: None,
            cache_bypass: None,
            cache_stored: false,
            cache_result: None,
            cache_query: None,
            background: false,
        }
    }

    /// Routes the request and answers everything that does not go upstream.
    /// Returns `Ok(true)` when a response was written, `Ok(false)` to proxy.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let snap = self.store.load();
        ctx.snapshot = Some(snap.clone());
        let limits = &snap.config.limits;
        // Body reads and response writes are bounded; idle keep-alive connections close.
        session.set_read_timeout(Some(limits.client_read_timeout));
        session.set_write_timeout(Some(limits.client_write_timeout));
        session.set_keepalive(Some(limits.keepalive_timeout.as_secs().max(1)));

        ctx.background = session.subrequest_ctx.is_some();
        let tls = is_tls(session);
        ctx.vars.scheme = if tls { "https" } else { "http" };
        let req = session.req_header();
        ctx.peer_ip = peer_ip(session);
        ctx.client_addr = ctx
            .peer_ip
            .map(|peer| crate::client_ip::resolve(peer, &req.headers, &snap.config.client_ip));
        ctx.vars.client_ip = ctx.client_addr.map(|a| a.to_string()).unwrap_or_default();

        ctx.vars.request_id = match req.headers.get(X_REQUEST_ID) {
            Some(v) if valid_request_id(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            _ => uuid::Uuid::new_v4().simple().to_string(),
        };
        if let Some((status, code)) = self.limit_violation(&snap, req).or_else(|| {
            // A declared length over the limit is refused before any byte is read.
            let max = limits.max_body_bytes?;
            let declared = req
                .headers
                .get(header::CONTENT_LENGTH)?
                .to_str()
                .ok()?
                .parse::<u64>()
                .ok()?;
            (declared > max).then_some((StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"))
        }) {
            return self.reject(session, ctx, status, code).await;
        }
        // Route on, and forward, the normalised path (see `route::normalize_path`).
        let path = match normalize_path(req.uri.path()) {
            Ok(Cow::Borrowed(p)) => p.to_string(),
            Ok(Cow::Owned(p)) => {
                let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                match http::Uri::try_from(format!("{p}{query}")) {
                    Ok(uri) => {
                        ctx.original_uri = Some(req.raw_path().to_vec());
                        session.req_header_mut().set_uri(uri);
                        p
                    }
                    Err(_) => {
                        return self
                            .reject(session, ctx, StatusCode::BAD_REQUEST, "invalid_path")
                            .await
                    }
                }
            }
            Err(InvalidPath) => {
                return self
                    .reject(session, ctx, StatusCode::BAD_REQUEST, "invalid_path")
                    .await
            }
        };
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
            let code = if raw_host.is_empty() {
                "missing_host"
            } else {
                "invalid_host"
            };
            return self
                .reject(session, ctx, StatusCode::BAD_REQUEST, code)
                .await;
        };
        ctx.raw_host = raw_host;
        ctx.vars.host = host;

        // ACME HTTP-01 validation comes before routing, redirects, the WAF and
        // rate limits: the name may not be served yet, or only over HTTPS.
        if let Some(key) = crate::acme::answer(&ctx.vars.host, &path) {
            let resp = LocalResponse::from_parts(
                StatusCode::OK,
                vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                )],
                key.into(),
            );
            return self.send_local(session, ctx, resp).await;
        }

        let Some(found) = snap.router.lookup(&ctx.vars.host) else {
            return self
                .reject(session, ctx, StatusCode::NOT_FOUND, "unknown_host")
                .await;
        };
        let domain = found.domain;
        ctx.domain = Some(found.index);
        ctx.domain_label = Some(found.label.clone());
        ctx.vars.tenant = domain.tenant.clone();
        let admitted = match ctx.client_addr {
            Some(ip) => domain.ip_rules.admits(ip),
            // A background refresh was admitted as the request it serves.
            None => ctx.background || domain.ip_rules.allow.is_none(),
        };
        if !admitted {
            return self
                .reject(session, ctx, StatusCode::FORBIDDEN, "ip_denied")
                .await;
        }
        if let (Some(_), Some(ip)) = (&domain.bans, ctx.client_addr) {
            if crate::bans::is_banned(found.label, ip) {
                return self
                    .reject(session, ctx, StatusCode::FORBIDDEN, "banned")
                    .await;
            }
        }

        // A TLS connection may only carry requests for names its certificate
        // covers: otherwise a connection made for one tenant's name could
        // address another tenant's domain (RFC 9110 §15.5.20).
        if tls {
            let sni = session
                .digest()
                .and_then(|d| d.ssl_digest.as_ref())
                .and_then(|d| d.extension.get::<TlsSni>())
                .and_then(|s| s.0.as_deref());
            if !snap.certs.same_certificate(sni, &ctx.vars.host) {
                return self
                    .reject(
                        session,
                        ctx,
                        StatusCode::MISDIRECTED_REQUEST,
                        "misdirected_request",
                    )
                    .await;
            }
        }

        if domain.force_https && !tls {
            if let Some(https) = snap.config.listeners.https {
                let port = match https.port() {
                    443 => String::new(),
                    p => format!(":{p}"),
                };
                let host = &ctx.vars.host;
                let location = if host.contains(':') {
                    format!("https://[{host}]{port}{}", ctx.vars.request_uri)
                } else {
                    format!("https://{host}{port}{}", ctx.vars.request_uri)
                };
                // 308 keeps the method and body (RFC 9110 §15.4.9).
                return self
                    .send_local(
                        session,
                        ctx,
                        LocalResponse::redirect(StatusCode::PERMANENT_REDIRECT, &location),
                    )
                    .await;
            }
        }

        let method = session.req_header().method.clone();
        let route = match domain.match_route(&method, &path) {
            RouteMatch::Found(r) => r,
            RouteMatch::NotFound => {
                return self
                    .reject(session, ctx, StatusCode::NOT_FOUND, "no_route")
                    .await
            }
            RouteMatch::MethodNotAllowed(allowed) => {
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut resp =
                    LocalResponse::json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
                let _ = resp.head.insert_header(header::ALLOW, allow);
                ctx.failure = Some("method_not_allowed".into());
                return self.send_local(session, ctx, resp).await;
            }
        };
        ctx.cache = route.cache.clone();
        // A background refresh was limited as the request it serves.
        let limited = !ctx.background;
        if limited {
            if let Some(resp) = self.rate_limit(session, ctx, &snap, route, false) {
                return self.send_local(session, ctx, resp).await;
            }
        }
        // The WAF after routing and rate limits: a request that gets a
        // redirect, a 404/405 or a 429 forwards nothing, so it need not pay
        // for inspection (nor make the proxy read its body), and a flood of
        // attacks is throttled before it costs WAF time.
        if let Some(waf) = domain.waf.clone().filter(|_| !ctx.background) {
            if let Some(resp) = self.inspect_request(session, ctx, waf, &path).await? {
                return self.send_local(session, ctx, resp).await;
            }
        }
        if !route.plugins.is_empty() {
            if let Some(resp) = self.request_plugins(session, ctx, &snap, route) {
                // Requests a plugin refuses count too (under the client's
                // address when no key was set): otherwise guessing
                // credentials would never be throttled.
                if limited {
                    if let Some(resp) = self.rate_limit(session, ctx, &snap, route, true) {
                        return self.send_local(session, ctx, resp).await;
                    }
                }
                return self.send_local(session, ctx, resp).await;
            }
        }
        if limited {
            if let Some(resp) = self.rate_limit(session, ctx, &snap, route, true) {
                return self.send_local(session, ctx, resp).await;
            }
        }
        if !route.plugins.is_empty() {
            // A plugin's pool hint proxies the request, whatever the route's action.
            if let Some(pool) = ctx.plugin_edits.pool {
                ctx.pool = Some(pool);
                return Ok(false);
            }
        }
        match &route.action {
            RouteAction::Pool(i) => {
                ctx.pool = Some(*i);
                Ok(false)
            }
            RouteAction::Respond(r) => self.send_local(session, ctx, local::respond(r)).await,
            RouteAction::Redirect(r) => {
                let resp = local::redirect(r, &ctx.vars.request_uri);
                self.send_local(session, ctx, resp).await
            }
            RouteAction::Static(s) => {
                let resp = match local::resolve_static(s, &route.path, route.path_match, &path)
                    .await
                {
                    StaticTarget::File(f) => local::serve_file(s, &f, session.req_header()).await,
                    StaticTarget::AddSlash => {
                        let query = session
                            .req_header()
                            .uri
                            .query()
                            .map(|q| format!("?{q}"))
                            .unwrap_or_default();
                        LocalResponse::redirect(
                            StatusCode::MOVED_PERMANENTLY,
                            &format!("{path}/{query}"),
                        )
                    }
                    StaticTarget::NotFound => {
                        LocalResponse::json_error(StatusCode::NOT_FOUND, "not_found")
                    }
                };
                self.send_local(session, ctx, resp).await
            }
        }
    }

    /// Turns the cache on for requests of a cached route that no bypass
    /// rule keeps away from it.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        let (Some(policy), Some(snap)) = (ctx.cache.clone(), ctx.snapshot.clone()) else {
            return Ok(());
        };
        let req = session.req_header();
        if let Some(rule) = cache::policy::bypass_reason(&policy, req, req.uri.path()) {
            ctx.cache_bypass = Some(rule);
            return Ok(());
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
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Self::CTX) -> Result<CacheKey> {
        let policy = ctx
            .cache
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "cache without a policy"))?;
        let req = session.req_header();
        let edits = &ctx.plugin_edits;
        let plugin_edits = (edits.cache_key.is_none()
            && (edits.path.is_some() || edits.pool.is_some() || !edits.headers.is_empty()))
        .then(|| format!("{:?}|{:?}|{:?}", edits.path, edits.pool, edits.headers));
        let context = cache::policy::KeyContext {
            scheme: ctx.vars.scheme,
            port: host_port(&ctx.raw_host),
            plugin_key: edits.cache_key.as_deref(),
            plugin_edits: plugin_edits.as_deref(),
        };
        if policy.query != gatehouse_config::cache::QueryKey::All && edits.cache_key.is_none() {
            ctx.cache_query = Some(cache::policy::keyed_query(&policy.query, req.uri.query()));
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

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        let Some(policy) = ctx.cache.as_ref() else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        let verdict =
            cache::policy::cacheability(policy, session.req_header(), resp, SystemTime::now());
        ctx.cache_stored = verdict.is_cacheable();
        Ok(verdict)
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Self::CTX,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::policy::variance(meta, req)
    }

    /// Stale objects are served while one request refreshes them (within
    /// their stale-while-revalidate window, checked by the cache) and when
    /// the origin fails (within stale-if-error): connection errors,
    /// timeouts and 5xx answers.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
        error: Option<&Error>,
    ) -> bool {
        match error {
            None => true,
            Some(e) => {
                e.esource() == &ErrorSource::Upstream
                    || matches!(e.etype(), ErrorType::HTTPStatus(code) if *code >= 500)
            }
        }
    }

    /// Chooses the target for this attempt (called again for each retry).
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
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
        let Some(selection) = pool.select(&ctx.tried, &mut ctx.rotation, &input) else {
            ctx.failure = Some("no_upstream_available".into());
            return Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "every target of the pool was tried",
            )
            .into_up());
        };
        let peer = pool.peer(selection.index);
        ctx.upstream_started.get_or_insert_with(Instant::now);
        // A retry replays the buffered body through `request_body_filter`.
        ctx.body_bytes = 0;
        if let Some(hold) = ctx.waf_hold.as_mut() {
            hold.restart();
        }
        ctx.tried.push(selection.index);
        ctx.attempt = Some(selection);
        Ok(Box::new(peer))
    }

    /// Counts streamed request body bytes against `limits.max_body_bytes`
    /// (chunked or HTTP/2 bodies declare no length up front).
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let chunk_len = body.as_ref().map_or(0, |c| c.len());
        ctx.body_bytes += chunk_len as u64;
        let max = ctx
            .snapshot
            .as_ref()
            .and_then(|s| s.config.limits.max_body_bytes);
        if max.is_some_and(|max| ctx.body_bytes > max) {
            ctx.failure = Some("payload_too_large".into());
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over limits.max_body_bytes",
            );
        }
        if ctx.waf_hold.is_some() {
            self.inspect_streamed_body(session, body, end_of_stream, ctx)?;
        }
        Ok(())
    }

    /// Adds forwarding headers and applies the domain's request rules to the upstream copy.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(snap) = ctx.snapshot.clone() else {
            return Ok(());
        };
        let v = &ctx.vars;
        let xff = match session
            .req_header()
            .headers
            .get("x-forwarded-for")
            .and_then(|h| h.to_str().ok())
        {
            Some(prev) if !prev.is_empty() => format!("{prev}, {}", ctx.peer_ip_text()),
            _ => ctx.peer_ip_text(),
        };
        upstream_request.insert_header("x-forwarded-for", xff)?;
        upstream_request.insert_header("x-forwarded-proto", v.scheme)?;
        upstream_request.insert_header("x-forwarded-host", ctx.raw_host.as_str())?;
        upstream_request.insert_header(X_REQUEST_ID, v.request_id.as_str())?;
        let pool = ctx.pool(&snap);
        // The upstream's Host is the authority we routed on (RFC 9112 §3.2.2: an
        // absolute-form target overrides Host), never a different Host header
        // that would name another tenant's domain. HTTP/2 clients send none at all.
        match pool.and_then(|p| p.config.host_header.clone()) {
            Some(h) => upstream_request.insert_header(header::HOST, h)?,
            None => upstream_request.insert_header(header::HOST, ctx.raw_host.as_str())?,
        }
        if let Some(d) = ctx.domain_policy(&snap) {
            headers::apply(&d.request_headers, upstream_request, v);
        }
        if let Some(query) = &ctx.cache_query {
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
        if ctx.plugins.is_some() {
            apply_request_edits(upstream_request, &ctx.plugin_edits);
        }
        Ok(())
    }

    /// A response head arrived: the target is working.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        ctx.upstream_response_time = ctx.upstream_started.map(|t| t.elapsed());
        if let (Some(snap), Some(a)) = (&ctx.snapshot, &ctx.attempt) {
            if let Some(pool) = ctx.pool(snap) {
                pool.targets[a.index].state.record_success();
            }
        }
        Ok(())
    }

    /// Applies the domain's response header rules and echoes the request id.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Err(stop) = self.response_plugins(ctx, upstream_response) {
            // The head is not sent yet: fail the proxying and let
            // `fail_to_proxy` write the replacement instead.
            let resp = chain_stop_response(ctx, stop);
            let status = resp.head.status.as_u16();
            ctx.plugin_response = Some(resp);
            ctx.plugin_replaced = true;
            return Error::e_explain(
                ErrorType::HTTPStatus(status),
                "response replaced by a plugin",
            );
        }
        if let Some(snap) = ctx.snapshot.clone() {
            if let Some(d) = ctx.domain_policy(&snap) {
                headers::apply(&d.response_headers, upstream_response, &ctx.vars);
                let https = ctx.vars.scheme == "https";
                headers::apply_security(&d.security_headers, upstream_response, https);
            }
        }
        if let Some(advertised) = &ctx.rate_limit_headers {
            for (name, value) in advertised.headers() {
                upstream_response.insert_header(name, value)?;
            }
        }
        upstream_response.insert_header(X_REQUEST_ID, ctx.vars.request_id.as_str())?;
        if ctx.cache.is_some() {
            let outcome = match ctx.cache_bypass {
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
                        ctx.cache_stored,
                        upstream_response.status.as_u16(),
                        SystemTime::now(),
                    )
                }
            };
            upstream_response.insert_header("cache-status", outcome.header)?;
            ctx.cache_result = Some(outcome.result);
        }
        Ok(())
    }

    /// Connecting failed: count it against the target and retry on another
    /// one for idempotent requests while the pool's retry budget lasts.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
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
        pool.record_failure(ctx.attempt.take().map(|a| a.index), kind);
        let attempts = ctx.tried.len() as u32;
        let retry = session.req_header().method.is_idempotent()
            && attempts <= pool.config.retries
            && attempts < pool.targets.len() as u32;
        e.set_retry(retry);
        e
    }

    /// An established upstream exchange failed (timeout, reset): count it;
    /// retry only as Pingora's default allows (idempotent, reused connection).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        if client_reused && e.retry() {
            // A pooled connection the upstream had already closed (its keep-alive
            // was shorter than ours): not the target's fault. Retry on a fresh
            // connection, to the same target if need be, without a failure mark.
            ctx.tried.pop();
            return e;
        }
        if let (Some(snap), Some(a)) = (ctx.snapshot.clone(), ctx.attempt.as_ref()) {
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

    /// A client that goes away mid-request is routine at an edge (it is in the
    /// access log as status 0 with its reason); keep it out of the error log.
    fn suppress_error_log(&self, _session: &Session, ctx: &Self::CTX, error: &Error) -> bool {
        // A plugin replacing the response is policy, not an error (it is logged there).
        if ctx.plugin_replaced {
            return true;
        }
        error.esource() == &ErrorSource::Downstream
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }

    /// The request line Pingora's own error and retry logs use: no query
    /// string (it may carry credentials), plus the request id to correlate.
    fn request_summary(&self, session: &Session, ctx: &Self::CTX) -> String {
        let req = session.req_header();
        format!(
            "{} {}, Host: {}, request_id: {}",
            req.method,
            req.uri.path(),
            ctx.vars.host,
            ctx.vars.request_id
        )
    }

    /// The request failed for good: answer 502 (upstream unreachable or
    /// broken), 504 (upstream timeout) or the fitting 4xx/5xx, with a JSON body.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        if let Some(resp) = ctx.plugin_response.take() {
            let code = resp.head.status.as_u16();
            session.set_keepalive(None);
            let _ = self.send_local(session, ctx, resp).await;
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        let (code, label) = match e.etype() {
            ErrorType::HTTPStatus(413) => (413, "payload_too_large"),
            ErrorType::HTTPStatus(403) if ctx.waf_blocked => (403, "waf_blocked"),
            ErrorType::HTTPStatus(503) if ctx.failure.as_deref() == Some(inspect::WAF_BUSY) => {
                (503, inspect::WAF_BUSY)
            }
            ErrorType::HTTPStatus(code) => (*code, "http_status"),
            t if e.esource() == &ErrorSource::Upstream && is_timeout(t) => {
                (504, "upstream_timeout")
            }
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
        };
        if ctx.failure.is_none() {
            ctx.failure = Some(format!("{label}: {}", e.etype().as_str()));
        }
        if code > 0 && session.response_written().is_none() {
            if let Ok(status) = StatusCode::from_u16(code) {
                let resp = if label == inspect::WAF_BUSY {
                    inspect::busy_response()
                } else {
                    LocalResponse::json_error(status, label)
                };
                // Pingora closes the client connection after a proxy failure;
                // say so, or an HTTP/1.1 client may send its next request into a closing socket.
                session.set_keepalive(None);
                let _ = self.send_local(session, ctx, resp).await;
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Access log line and request metrics.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.local_status)
            .unwrap_or(0);
        let elapsed = ctx.started.elapsed();
        let tenant: &str = &ctx.vars.tenant;
        let domain = ctx.domain_label.as_deref().unwrap_or("unknown");
        let m = metrics();
        let already_banned = ctx.failure.as_deref() == Some("banned");
        if let (Some(snap), Some(label), Some(ip), false) = (
            &ctx.snapshot,
            &ctx.domain_label,
            ctx.client_addr,
            already_banned,
        ) {
            let policy = ctx.domain_policy(snap).and_then(|d| d.bans.as_ref());
            if let Some(policy) = policy {
                let waf = ctx
                    .waf_blocked
                    .then_some(gatehouse_config::model::BanPolicy::WAF_BLOCK);
                // Only real failures count (0: the client went away before a response).
                let failed = (status >= 400).then_some(status);
                for strike in failed.into_iter().chain(waf) {
                    if crate::bans::strike(label, ip, strike, policy) {
                        m.bans.with_label_values(&[tenant, domain]).inc();
                    }
                }
            }
        }
        if let Some(result) = ctx.cache_result {
            // A background refresh is no client's request: counted apart.
            let result = if ctx.background { "refresh" } else { result };
            m.cache_requests.with_label_values(&[tenant, result]).inc();
        }
        if ctx.background {
            // A refresh no client waits for: counted above, not as a request.
            tracing::debug!(
                target: "gatehouse::access",
                host = %ctx.vars.host,
                path = %session.req_header().uri.path(),
                status,
                cache = ctx.cache_result.unwrap_or(""),
                "background cache refresh"
            );
            return;
        }
        m.requests
            .with_label_values(&[tenant, domain, status_class(status)])
            .inc();
        m.request_duration
            .with_label_values(&[tenant])
            .observe(elapsed.as_secs_f64());

        let req = session.req_header();
        let (pool, upstream) = match (&ctx.snapshot, ctx.tried.last()) {
            (Some(snap), Some(&i)) => match ctx.pool(snap) {
                Some(p) => (p.config.name.as_str(), p.targets[i].config.name.as_str()),
                None => ("", ""),
            },
            _ => ("", ""),
        };
        let error = match (&ctx.failure, e) {
            (Some(f), _) => f.clone(),
            (None, Some(e)) => e.to_string(),
            (None, None) => String::new(),
        };
        // Never log Authorization, Cookie or query strings: they carry credentials.
        tracing::info!(
            target: "gatehouse::access",
            request_id = %ctx.vars.request_id,
            client_ip = %ctx.vars.client_ip,
            method = %req.method,
            scheme = ctx.vars.scheme,
            host = %ctx.vars.host,
            path = %req.uri.path(),
            version = ?req.version,
            status,
            bytes_sent = session.as_ref().body_bytes_sent(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            upstream_response_ms = ctx.upstream_response_time.map(|d| d.as_secs_f64() * 1000.0),
            tenant,
            domain,
            pool,
            upstream,
            attempts = ctx.tried.len(),
            error = %error,
            waf_score = ctx.waf_outcome.as_ref().map(|w| w.0),
            waf_rules = ctx.waf_outcome.as_ref().map(|w| w.1.as_str()),
            cache = ctx.cache_result,
            user_agent = req.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
        );
    }
}

/// The port of a Host value (`shop.example:8080`, `[::1]:8443`), if any.
fn host_port(raw: &str) -> Option<&str> {
    let after_brackets = raw.rsplit_once(']').map_or(raw, |(_, rest)| rest);
    let (_, port) = after_brackets.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

/// The response for a chain that stopped: the plugin's own answer, or a
/// JSON error for a fail-closed failure (details go to the log, not the client).
fn chain_stop_response(ctx: &mut RequestCtx, stop: ChainStop) -> LocalResponse {
    match stop {
        ChainStop::Respond(r) => LocalResponse::from_parts(r.status, r.headers, r.body),
        ChainStop::Failed {
            plugin,
            failure,
            status,
        } => {
            ctx.failure = Some(format!("plugin {plugin}: {failure}"));
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            LocalResponse::json_error(status, "plugin_failed")
        }
    }
}

fn is_timeout(t: &ErrorType) -> bool {
    matches!(
        t,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
    )
}
