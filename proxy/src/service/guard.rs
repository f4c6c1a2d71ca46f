//! Stage 3, guard: the tenant's protections, cheapest first.
//!
//! Contract: [`admit_client`] applies the domain's IP rules and bans (before
//! the route is known); [`throttle`] takes tokens from the tenant's ceiling
//! and the route's rate limits, once per [`Phase`]; the WAF (`inspect`) runs
//! after routing and the first throttle; [`run_plugins`] runs the route's
//! `on-request` chain. Each returns what refuses the request ([`Refusal`]) or
//! answers it ([`Stop`]); none writes a response. [`count_strikes`] is the ban
//! policy's other half: it counts the failing status a request ended with.

use std::sync::Arc;

use gatehouse_config::file::RateLimitHeaders;
use gatehouse_config::model::{BanPolicy, RateLimitKey, RouteAction};
use http::StatusCode;
use pingora::proxy::Session;

use super::answer::Stop;
use super::ctx::RequestCtx;
use super::refusal::Refusal;
use crate::local::LocalResponse;
use crate::metrics::metrics;
use crate::node::NodeState;
use crate::plugin::{
    run_request, wit_headers, ChainStop, Properties, RequestBudget, RequestLine, RequestView,
};
use crate::ratelimit::{ceil_secs, request_key, Advertised, BoundLimit, Outcome};
use crate::route::{CompiledRoute, HostMatch};
use crate::snapshot::Snapshot;

/// The domain's IP rules and bans.
pub(super) fn admit_client(
    node: &NodeState,
    ctx: &RequestCtx,
    found: &HostMatch<'_>,
) -> Result<(), Refusal> {
    let domain = found.domain;
    let admitted = match ctx.client.addr {
        Some(ip) => domain.ip_rules.admits(ip),
        // A background refresh was admitted as the request it serves.
        None => ctx.background || domain.ip_rules.allow.is_none(),
    };
    if !admitted {
        return Err(Refusal::IpDenied);
    }
    if let (Some(_), Some(ip)) = (&domain.bans, ctx.client.addr) {
        if node.bans.is_banned(&domain.tenant, found.label, ip) {
            return Err(Refusal::Banned);
        }
    }
    Ok(())
}

/// When a rate limit takes its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Before the WAF and the plugins (a refused request costs neither): the
    /// tenant's ceiling and every limit not keyed by the plugins.
    BeforePlugins,
    /// After the plugins, for limits keyed by their `rate-limit-key`. Requests
    /// a plugin refuses count too (under the client's address when no key was
    /// set): otherwise guessing credentials would never be throttled.
    AfterPlugins,
}

/// Takes a token from the tenant's ceiling (first phase) and from each of the
/// route's limits of `phase` (the domain's first). Remembers the policies for
/// the response headers; refuses when a bucket is empty.
pub(super) fn throttle(
    session: &Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    route: &CompiledRoute,
    phase: Phase,
) -> Result<(), Refusal> {
    // A background refresh was limited as the request it serves.
    if ctx.background {
        return Ok(());
    }
    let after_plugins = phase == Phase::AfterPlugins;
    let headers = &session.req_header().headers;
    // The tenant's ceiling is never advertised (its name and size are the
    // operator's business).
    let tenant_limit = snap
        .router
        .tenant_limit(&ctx.vars.tenant)
        .filter(|_| !after_plugins)
        .map(|l| BoundLimit {
            limiter: l.clone(),
            headers: RateLimitHeaders::None,
        });
    let mut advertised = ctx.rate_limit_headers.take().unwrap_or_default();
    let plugin_key = ctx.plugins.edits.rate_limit_key.clone();
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
                let mut refused = Advertised::default();
                refused.add(limit, outcome);
                return Err(Refusal::RateLimited {
                    retry_after: ceil_secs(retry_after),
                    advertised: refused.headers(),
                });
            }
        }
    }
    ctx.rate_limit_headers = Some(advertised);
    Ok(())
}

/// Runs the route's plugin chain (`on-request`). A plugin's own answer is a
/// [`Stop::Respond`]; a fail-closed failure a [`Refusal::PluginFailed`], a
/// fail-closed binding of a tenant over its plugin budget a
/// [`Refusal::PluginOverloaded`]. (`session` is taken `&mut` only so that the
/// future stays `Send`: Pingora's session is not `Sync`.)
pub(super) async fn run_plugins(
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    route: &CompiledRoute,
) -> Result<(), Stop> {
    if route.plugins.is_empty() {
        return Ok(());
    }
    let req = session.req_header();
    let ssl = session.digest().and_then(|d| d.ssl_digest.clone());
    let pool = match &route.action {
        RouteAction::Pool(i) => Some(snap.config.pools[*i].name.clone()),
        _ => None,
    };
    let props = Arc::new(Properties {
        budget: RequestBudget::new(&snap.config.limits.plugins),
        request_id: ctx.vars.request_id.clone(),
        client_ip: ctx.vars.client_ip.clone(),
        tls_sni: super::routing::tls_sni(session).map(str::to_string),
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
    let state = &mut ctx.plugins;
    let result = run_request(
        &chain,
        &mut head,
        &props,
        &pool_of_tenant,
        &mut state.edits,
        &mut state.instances,
    )
    .await;
    state.chain = Some(chain);
    state.head = Some((head, props));
    match result {
        Ok(respond) => {
            state.response_pending = respond;
            Ok(())
        }
        Err(stop) => Err(match chain_stop(stop) {
            Ok(resp) => Stop::Respond(Box::new(resp)),
            Err(refusal) => Stop::Refuse(refusal),
        }),
    }
}

/// What a chain that stopped answers: the plugin's own response, or the
/// refusal of a fail-closed failure (details go to the log, not the client).
pub(super) fn chain_stop(stop: ChainStop) -> Result<LocalResponse, Refusal> {
    match stop {
        ChainStop::Respond(r) => Ok(LocalResponse::from_parts(r.status, r.headers, r.body)),
        ChainStop::Overloaded {
            plugin,
            shed,
            retry_after,
        } => Err(Refusal::PluginOverloaded {
            plugin,
            budget: shed.label(),
            retry_after,
        }),
        ChainStop::Failed {
            plugin,
            failure,
            status,
        } => Err(Refusal::PluginFailed {
            plugin,
            failure: failure.to_string(),
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        }),
    }
}

/// Counts a request's final status (and a WAF block) as strikes toward the
/// domain's ban policy; called once per request, when it is over (a block
/// may come after the response head, while a held body streams in).
/// Refusals for a ban already in force do not count again.
pub(super) fn count_strikes(node: &NodeState, ctx: &RequestCtx, status: u16) {
    if ctx.refusal == Some(Refusal::Banned) {
        return;
    }
    let (Some(snap), Some(label), Some(ip)) = (&ctx.snapshot, &ctx.domain_label, ctx.client.addr)
    else {
        return;
    };
    let Some(policy) = ctx.domain_policy(snap).and_then(|d| d.bans.as_ref()) else {
        return;
    };
    let waf = ctx.waf.blocked.then_some(BanPolicy::WAF_BLOCK);
    // Only real failures count (0: the client went away before a response).
    let failed = (status >= 400).then_some(status);
    for strike in failed.into_iter().chain(waf) {
        if node
            .bans
            .strike(&ctx.vars.tenant, label, ip, strike, policy)
        {
            metrics()
                .bans
                .with_label_values(&[&*ctx.vars.tenant, label])
                .inc();
        }
    }
}
