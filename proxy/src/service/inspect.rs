//! The WAF in the request path: when and how much of the body is read before
//! inspection, and what a verdict does (log lines, metrics, the 403).
//!
//! A body that fits Pingora's replay buffer (64 KiB) and declares its length
//! is read whole in `request_filter`, so a blocked request never opens an
//! upstream connection. Longer or chunked bodies are held back in
//! `request_body_filter` until `inspect_body_bytes` have arrived (or the body
//! ended): nothing of the body is forwarded before the verdict, and a block
//! aborts the upstream request.
//!
//! Held bytes (also the up-front reads) count against one process-wide budget
//! (`limits.waf_held_body_bytes`) and against their tenant's share of it
//! (`limits.waf_held_body_bytes_per_tenant`): a request that would go over
//! either is refused with 503 `waf_busy` rather than held, so many slow
//! uploads cannot make the proxy buffer without bound, slow uploads to one
//! tenant cannot take the budget other tenants need, and nothing goes
//! upstream uninspected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http::header;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::answer::Stop;
use super::ctx::RequestCtx;
use super::refusal::Refusal;
use crate::metrics::metrics;
use crate::waf::{RequestInput, Verdict, Waf};

/// Bodies up to this size are read before proxying (Pingora replays them
/// from its retry buffer, which holds this much).
const REPLAY_LIMIT: u64 = 64 * 1024;

/// Body bytes held for inspection right now, over all requests.
static HELD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Body bytes held right now per tenant (entries leave at zero).
static TENANT_HELD: Mutex<Option<HashMap<Arc<str>, u64>>> = Mutex::new(None);

/// The two budgets a hold draws on.
#[derive(Clone, Copy)]
struct Budget {
    /// All requests together.
    total: u64,
    /// One tenant's requests together.
    tenant: u64,
}

/// One request's share of [`HELD_BYTES`] and of its tenant's, given back
/// when dropped (also when the request ends early).
#[derive(Default)]
pub(super) struct HeldBytes {
    bytes: u64,
    tenant: Option<Arc<str>>,
}

impl HeldBytes {
    /// Takes `n` more bytes for `tenant`; false (taking nothing) when that
    /// would go over either budget.
    fn take(&mut self, n: u64, budget: Budget, tenant: &Arc<str>) -> bool {
        {
            let mut held = TENANT_HELD.lock().unwrap_or_else(|p| p.into_inner());
            let entry = held
                .get_or_insert_with(HashMap::new)
                .entry(tenant.clone())
                .or_default();
            if entry.saturating_add(n) > budget.tenant {
                return false;
            }
            let before = HELD_BYTES.fetch_add(n, Ordering::AcqRel);
            if before.saturating_add(n) > budget.total {
                HELD_BYTES.fetch_sub(n, Ordering::AcqRel);
                return false;
            }
            *entry += n;
        }
        self.bytes += n;
        self.tenant = Some(tenant.clone());
        metrics().waf_held_body_bytes.add(n as i64);
        true
    }

    /// Gives everything back.
    fn release(&mut self) {
        let n = std::mem::take(&mut self.bytes);
        if n == 0 {
            return;
        }
        HELD_BYTES.fetch_sub(n, Ordering::AcqRel);
        metrics().waf_held_body_bytes.sub(n as i64);
        if let Some(tenant) = &self.tenant {
            let mut held = TENANT_HELD.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(map) = held.as_mut() {
                if let Some(left) = map.get_mut(tenant) {
                    *left = left.saturating_sub(n);
                    if *left == 0 {
                        map.remove(tenant);
                    }
                }
            }
        }
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.release();
    }
}

/// A body being held back for inspection.
pub(super) struct WafHold {
    waf: Arc<Waf>,
    path: String,
    buf: BytesMut,
    held: HeldBytes,
}

impl WafHold {
    /// Forgets held bytes: a retry replays the whole body from the start.
    pub(super) fn restart(&mut self) {
        self.buf.clear();
        self.held.release();
    }
}

/// The budgets for held bodies, from the current snapshot.
fn held_budget(ctx: &RequestCtx) -> Budget {
    ctx.snapshot.as_ref().map_or(
        Budget {
            total: u64::MAX,
            tenant: u64::MAX,
        },
        |s| Budget {
            total: s.config.limits.waf_held_body_bytes,
            tenant: s.config.limits.waf_held_body_bytes_per_tenant,
        },
    )
}

/// Counts a request refused for the held-body budget.
fn busy() -> Refusal {
    metrics().waf_busy.inc();
    Refusal::WafBusy
}

/// Whether the client asked for `100 Continue` before sending its body.
fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Detections logged per request at most (the rest are counted only).
const LOGGED_DETECTIONS: usize = 16;

/// Runs the domain's WAF: refuses the request when it blocks, or leaves a
/// hold for a body that is inspected as it streams in.
pub(super) async fn inspect_request(
    session: &mut Session,
    ctx: &mut RequestCtx,
    waf: Arc<Waf>,
    path: &str,
) -> std::result::Result<(), Stop> {
    let limit = waf.inspect_body_bytes();
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = BytesMut::new();
    let mut truncated = false;
    // Released when this returns: the body is inspected by then.
    let mut held = HeldBytes::default();
    if !session.as_mut().is_body_empty() {
        match declared {
            Some(len) if len <= REPLAY_LIMIT => {
                if !held.take(len, held_budget(ctx), &ctx.vars.tenant) {
                    return Err(busy().into());
                }
                if expects_continue(session) {
                    // The client waits for this before it sends the body
                    // (RFC 9110 §10.1.1); without it, clients such as curl
                    // stall for a second first.
                    session.as_mut().write_continue_response().await?;
                }
                session.as_mut().enable_retry_buffering();
                while let Some(chunk) = session.read_request_body().await? {
                    body.extend_from_slice(&chunk);
                }
                if body.len() > limit {
                    body.truncate(limit);
                    truncated = true;
                }
            }
            _ => {
                // Inspect the head now (an attack in the query is refused
                // at once) and the body as it arrives.
                truncated = true;
                ctx.waf.hold = Some(WafHold {
                    waf: waf.clone(),
                    path: path.to_string(),
                    buf: BytesMut::new(),
                    held: HeldBytes::default(),
                });
            }
        }
    }
    let verdict = inspect(session, ctx, &waf, path, &body, truncated);
    if ctx.waf.hold.is_some() && !verdict.blocked {
        // The full verdict comes with the body.
        return Ok(());
    }
    match apply_verdict(ctx, &waf, verdict) {
        Some(refusal) => Err(refusal.into()),
        None => Ok(()),
    }
}

/// Holds body chunks until enough arrived, then inspects them with the
/// head; releases the held bytes upstream or fails the request with 403.
pub(super) fn inspect_streamed_body(
    session: &Session,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let budget = held_budget(ctx);
    let tenant = ctx.vars.tenant.clone();
    let Some(hold) = ctx.waf.hold.as_mut() else {
        return Ok(());
    };
    if let Some(chunk) = body.take() {
        if !hold.held.take(chunk.len() as u64, budget, &tenant) {
            ctx.waf.hold = None;
            ctx.refuse(busy());
            return Error::e_explain(
                ErrorType::HTTPStatus(503),
                "request body over the WAF's held-body budget",
            );
        }
        hold.buf.extend_from_slice(&chunk);
    }
    let limit = hold.waf.inspect_body_bytes();
    if hold.buf.len() < limit && !end_of_stream {
        // Nothing goes upstream yet (Pingora skips empty chunks).
        *body = Some(Bytes::new());
        return Ok(());
    }
    let Some(hold) = ctx.waf.hold.take() else {
        return Ok(());
    };
    let held = hold.buf.freeze();
    let inspected = &held[..held.len().min(limit)];
    let truncated = held.len() > limit || !end_of_stream;
    let verdict = inspect(session, ctx, &hold.waf, &hold.path, inspected, truncated);
    if let Some(refusal) = apply_verdict(ctx, &hold.waf, verdict) {
        ctx.refuse(refusal);
        return Error::e_explain(ErrorType::HTTPStatus(403), "request blocked by the WAF");
    }
    *body = Some(held);
    Ok(())
}

/// Logs and counts a verdict; the refusal when it blocks.
fn apply_verdict(ctx: &mut RequestCtx, waf: &Waf, verdict: Verdict) -> Option<Refusal> {
    if verdict.detections.is_empty() {
        return None;
    }
    let tenant: &str = &ctx.vars.tenant;
    let domain = ctx.domain_label.as_deref().unwrap_or("");
    let action = if verdict.blocked { "blocked" } else { "logged" };
    let m = metrics();
    for (n, d) in verdict.detections.iter().enumerate() {
        m.waf_detections
            .with_label_values(&[tenant, domain, d.family, action])
            .inc();
        if n >= LOGGED_DETECTIONS {
            continue;
        }
        tracing::warn!(
            target: "gatehouse::waf",
            request_id = %ctx.vars.request_id,
            client_ip = %ctx.vars.client_ip,
            tenant,
            domain,
            rule = d.rule,
            family = d.family,
            severity = d.severity,
            variable = %d.variable,
            matched = %d.fragment,
            score = verdict.score,
            threshold = waf.policy().anomaly_threshold,
            action,
            "{}",
            d.description
        );
    }
    let rules = verdict
        .detections
        .iter()
        .map(|d| d.rule.to_string())
        .collect::<Vec<_>>()
        .join(",");
    ctx.waf.outcome = Some((verdict.score, rules));
    if !verdict.blocked {
        return None;
    }
    m.waf_blocked.with_label_values(&[tenant, domain]).inc();
    ctx.waf.blocked = true;
    Some(Refusal::WafBlocked)
}

fn inspect(
    session: &Session,
    ctx: &RequestCtx,
    waf: &Waf,
    path: &str,
    body: &[u8],
    body_truncated: bool,
) -> Verdict {
    let req = session.req_header();
    let input = RequestInput {
        method: req.method.as_str(),
        raw_uri: ctx.client.original_uri.as_deref().unwrap_or(req.raw_path()),
        version: req.version,
        host: Some(ctx.vars.host.as_str()),
        headers: &req.headers,
        body,
        body_truncated,
    };
    waf.inspect(&input, path)
}
