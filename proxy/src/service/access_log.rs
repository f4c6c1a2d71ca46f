//! The end of every request: its metrics and its JSON access log line.
//!
//! Reads the context, decides nothing: refusals and cache results were
//! recorded by the stages that decided them.

use http::header;
use pingora::proxy::Session;
use pingora::Error;

use super::ctx::RequestCtx;
use crate::metrics::{metrics, status_class};

/// The status the client got: the head written, else the local response's;
/// 0 when none was sent (the client went away first).
pub(super) fn final_status(session: &Session, ctx: &RequestCtx) -> u16 {
    session
        .response_written()
        .map(|r| r.status.as_u16())
        .or(ctx.local_status)
        .unwrap_or(0)
}

/// Counts the request and writes its access log line (a background cache
/// refresh is counted apart and logged at debug level only).
pub(super) fn record(session: &Session, e: Option<&Error>, ctx: &RequestCtx, status: u16) {
    let elapsed = ctx.started.elapsed();
    let tenant: &str = &ctx.vars.tenant;
    let domain = ctx.domain_label.as_deref().unwrap_or("unknown");
    let m = metrics();
    if let Some(result) = ctx.cache.result {
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
            cache = ctx.cache.result.unwrap_or(""),
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
    let (pool, upstream) = match (&ctx.snapshot, ctx.upstream.tried.last()) {
        (Some(snap), Some(&i)) => match ctx.pool(snap) {
            Some(p) => (p.config.name.as_str(), p.targets[i].config.name.as_str()),
            None => ("", ""),
        },
        _ => ("", ""),
    };
    let error = match (&ctx.refusal, e) {
        (Some(r), _) => r.to_string(),
        (None, Some(e)) => e.to_string(),
        (None, None) => String::new(),
    };
    let waf = ctx.waf.outcome.as_ref();
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
        upstream_response_ms = ctx.upstream.response_time.map(|d| d.as_secs_f64() * 1000.0),
        tenant,
        domain,
        pool,
        upstream,
        attempts = ctx.upstream.tried.len(),
        error = %error,
        waf_score = waf.map(|w| w.0),
        waf_rules = waf.map(|w| w.1.as_str()),
        cache = ctx.cache.result,
        user_agent = req.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
    );
}
