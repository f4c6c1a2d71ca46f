//! The Pingora `ProxyHttp` implementation: the request path of the data plane,
//! read as named stages.
//!
//! [`request_filter`](Gatehouse::request_filter) sequences the stages, each a
//! module with its contract: `admit` (limits, request id, client, path, host)
//! → the ACME challenge (`answer`) → `routing` (domain, connection, HTTPS,
//! route) with `guard`'s client admission (IP rules, bans) after the domain →
//! `guard` (rate limits, the WAF in `inspect`, plugins) → `answer` (the
//! route's action: a pool, or a local response). A stage refuses with a
//! [`Refusal`](refusal::Refusal) or answers with a `Stop`, both written by
//! `answer::write` after `decorate`.
//!
//! The other phases, in the order Pingora calls them (see `pingora_proxy::ProxyHttp`):
//! - cache phases (`request_cache_filter`, `cache_key_callback`,
//!   `response_cache_filter`, ...): `caching`.
//! - [`upstream_peer`](Gatehouse::upstream_peer), the body, the upstream
//!   request, failures and retries: `forward`.
//! - [`response_filter`](Gatehouse::response_filter): plugins' `on-response`
//!   and the common headers (`decorate`).
//! - [`fail_to_proxy`](Gatehouse::fail_to_proxy): the JSON error for a failed exchange.
//! - [`logging`](Gatehouse::logging): the final status's strikes toward bans
//!   (`guard`), metrics and the access log (`access_log`).
//!
//! Every phase reads the one `Arc<Snapshot>` taken in `request_filter`.

mod access_log;
mod admit;
mod answer;
mod caching;
mod ctx;
mod decorate;
mod forward;
mod guard;
mod inspect;
mod refusal;
mod routing;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::local::LocalResponse;
use crate::node::NodeState;
use crate::snapshot::SnapshotStore;
use answer::Stop;
pub use ctx::RequestCtx;
use guard::Phase;
use refusal::Refusal;

/// The data plane's request handler.
pub struct Gatehouse {
    store: Arc<SnapshotStore>,
    node: Arc<NodeState>,
}

impl Gatehouse {
    /// A handler serving whatever snapshot `store` holds, with the node's
    /// bans and ACME challenges.
    pub fn new(store: Arc<SnapshotStore>, node: Arc<NodeState>) -> Self {
        Gatehouse { store, node }
    }

    /// Every stage up to the upstream, in order. `Ok(pool)` proxies the
    /// request to that pool; a [`Stop`] ends it here.
    async fn decide(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<usize, Stop> {
        let snap = self.store.load();
        ctx.snapshot = Some(snap.clone());
        let path = admit::admit(session, ctx, &snap)?;
        answer::acme_challenge(&self.node, ctx, &path)?;
        let path = crate::route::without_segment_params(&path);
        let found = routing::find_domain(ctx, &snap)?;
        guard::admit_client(&self.node, ctx, &found)?;
        routing::check_connection(session, ctx, &snap)?;
        routing::force_https(ctx, &snap, found.domain)?;
        let route = routing::match_route(session, found.domain, &path)?;
        ctx.cache.policy = route.cache.clone();
        guard::throttle(session, ctx, &snap, route, Phase::BeforePlugins)?;
        // The WAF after routing and rate limits: a request that gets a
        // redirect, a 404/405 or a 429 forwards nothing, so it need not pay
        // for inspection (nor make the proxy read its body), and a flood of
        // attacks is throttled before it costs WAF time.
        if let Some(waf) = found.domain.waf.clone().filter(|_| !ctx.background) {
            inspect::inspect_request(session, ctx, waf, &path).await?;
        }
        let plugins = guard::run_plugins(session, ctx, &snap, route).await;
        guard::throttle(session, ctx, &snap, route, Phase::AfterPlugins)?;
        plugins?;
        answer::action(session, ctx, route, &path).await
    }
}

#[async_trait]
impl ProxyHttp for Gatehouse {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::new()
    }

    /// Routes the request and answers everything that does not go upstream.
    /// Returns `Ok(true)` when a response was written, `Ok(false)` to proxy.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        match self.decide(session, ctx).await {
            Ok(pool) => {
                ctx.upstream.pool = Some(pool);
                Ok(false)
            }
            Err(Stop::Respond(resp)) => answer::write(session, ctx, *resp).await,
            Err(Stop::Refuse(refusal)) => answer::refuse(session, ctx, refusal).await,
            Err(Stop::Fail(e)) => Err(e),
        }
    }

    /// Turns the cache on for requests of a cached route that no bypass
    /// rule keeps away from it.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        caching::enable(session, ctx);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Self::CTX) -> Result<CacheKey> {
        caching::key(session, ctx)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        Ok(caching::cacheable(session, resp, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Self::CTX,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        crate::cache::policy::variance(meta, req)
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
        forward::choose_peer(session, ctx)
    }

    /// Counts streamed request body bytes against `limits.max_body_bytes`
    /// and holds a body the WAF has yet to see.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        forward::count_body(ctx, body.as_ref().map_or(0, |c| c.len()))?;
        if ctx.waf.hold.is_some() {
            inspect::inspect_streamed_body(session, body, end_of_stream, ctx)?;
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
        forward::upstream_request(session, ctx, upstream_request)
    }

    /// A response head arrived: the target is working.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        forward::response_arrived(ctx);
        Ok(())
    }

    /// Runs `on-response` and adds the common headers and `Cache-Status`.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(replacement) = decorate::response_plugins(ctx, upstream_response).await {
            // The head is not sent yet. Failing the exchange is how Pingora
            // lets a filter drop the upstream's body and abort the cache fill
            // it feeds; `fail_to_proxy` writes the replacement instead.
            let status = replacement.head.status.as_u16();
            ctx.plugins.replacement = Some(replacement);
            ctx.plugins.replaced = true;
            return Error::e_explain(
                ErrorType::HTTPStatus(status),
                "response replaced by a plugin",
            );
        }
        decorate::head(ctx, upstream_response);
        decorate::cache_status(session, ctx, upstream_response)?;
        Ok(())
    }

    /// Connecting failed: count it against the target and retry on another
    /// one for idempotent requests while the pool's retry budget lasts.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        forward::connect_failed(session, ctx, e)
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
        forward::exchange_failed(peer, session, e, ctx, client_reused)
    }

    /// A client that goes away mid-request is routine at an edge (it is in the
    /// access log as status 0 with its reason); keep it out of the error log.
    fn suppress_error_log(&self, _session: &Session, ctx: &Self::CTX, error: &Error) -> bool {
        // A plugin replacing the response is policy, not an error (it is logged there).
        if ctx.plugins.replaced {
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

    /// The request failed for good: write a plugin's replacement, or answer
    /// 502 (upstream unreachable or broken), 504 (upstream timeout) or the
    /// fitting 4xx/5xx, with a JSON body.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        if let Some(resp) = ctx.plugins.replacement.take() {
            let code = resp.head.status.as_u16();
            session.set_keepalive(None);
            let _ = answer::write(session, ctx, resp).await;
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        let (code, label) = forward::classify(e, ctx.refusal.as_ref());
        if ctx.refusal.is_none() {
            ctx.refuse(Refusal::Failed {
                status: code,
                code: label,
                kind: e.etype().as_str(),
            });
        }
        if code > 0 && session.response_written().is_none() {
            if let Ok(status) = http::StatusCode::from_u16(code) {
                let resp = match &ctx.refusal {
                    Some(r) if r.code() == label => r.response(),
                    _ => LocalResponse::json_error(status, label),
                };
                // Pingora closes the client connection after a proxy failure;
                // say so, or an HTTP/1.1 client may send its next request into a closing socket.
                session.set_keepalive(None);
                let _ = answer::write(session, ctx, resp).await;
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// The request is over: its final status counts toward the domain's ban
    /// policy (`guard`), then the access log line and request metrics.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = access_log::final_status(session, ctx);
        guard::count_strikes(&self.node, ctx, status);
        access_log::record(session, e, ctx, status);
    }
}
