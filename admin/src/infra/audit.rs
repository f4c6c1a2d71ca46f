//! The append-only audit log's writing side: one event per mutation, in the
//! mutation's transaction; refusals each in a transaction of their own.
//! Reading it is `api::audit`'s. Imports `infra`.

// An event records who (token prefix), from where (client IP), the request
// id, the action, its target and tenant, the object before and after (with
// secrets already redacted by the caller) and the outcome. Because the event
// is inserted in the same transaction as the change, there is never a change
// without its event or an event for a change that was rolled back. Refused
// mutations are recorded too, each in its own transaction. The database
// rejects updates and deletes of events (triggers in the migrations).

use serde::Serialize;
use sqlx::AnyConnection;

use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;

/// One audited action, before it is written.
#[derive(Debug)]
pub struct Event<'a> {
    /// Action name (`tenant.create`, `token.revoke`, ...).
    pub action: &'a str,
    /// Tenant the target belongs to, if any.
    pub tenant: Option<&'a str>,
    /// The target (`tenant/acme`, `token/abcd1234`).
    pub target: String,
    /// The object before the change (secrets redacted).
    pub before: Option<serde_json::Value>,
    /// The object after the change (secrets redacted).
    pub after: Option<serde_json::Value>,
    /// `ok`, or why it was refused.
    pub outcome: &'a str,
}

impl<'a> Event<'a> {
    /// A successful `action` on `target`; add the object with `before` / `after`.
    pub fn ok(action: &'a str, tenant: Option<&'a str>, target: String) -> Self {
        Event {
            action,
            tenant,
            target,
            before: None,
            after: None,
            outcome: "ok",
        }
    }

    /// The object before the change (already redacted).
    pub fn before(mut self, object: &impl Serialize) -> Self {
        self.before = serde_json::to_value(object).ok();
        self
    }

    /// The object after the change (already redacted).
    pub fn after(mut self, object: &impl Serialize) -> Self {
        self.after = serde_json::to_value(object).ok();
        self
    }
}

/// Writes `event` on `conn` (the mutation's transaction).
pub async fn record(
    conn: &mut AnyConnection,
    who: &Principal,
    meta: &RequestMeta,
    event: Event<'_>,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO audit_events \
         (at_ms, actor, client_ip, request_id, action, tenant, target, before_json, after_json, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(now_ms())
    .bind(&who.prefix)
    .bind(meta.client_ip.to_string())
    .bind(&meta.request_id)
    .bind(event.action)
    .bind(event.tenant)
    .bind(&event.target)
    .bind(event.before.map(|v| v.to_string()))
    .bind(event.after.map(|v| v.to_string()))
    .bind(event.outcome)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a refused mutation in a transaction of its own, then returns the refusal.
pub async fn refused(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    action: &str,
    tenant: Option<&str>,
    target: String,
    error: ApiError,
) -> ApiError {
    let outcome = match &error {
        ApiError::Forbidden(_) => "forbidden",
        ApiError::NotFound(_) => "not_found",
        ApiError::Conflict { .. } => "conflict",
        ApiError::PreconditionFailed(_) => "precondition_failed",
        ApiError::Invalid { .. } | ApiError::InvalidFields(_) => "invalid",
        _ => "failed",
    };
    record_refusal(state, who, meta, action, tenant, target, outcome).await;
    error
}

/// Longest target recorded for a refusal (the caller chose it).
const MAX_REFUSED_TARGET: usize = 256;

/// Writes a refusal event, in a transaction of its own. It is the caller's:
/// a tenant token's refusals go under its own tenant, whatever tenant it
/// aimed at (a refused attempt on another tenant must not write into that
/// tenant's log, with names the caller made up). At most
/// [`RefusalBudget`]'s share per token is written; the rest are counted.
pub async fn record_refusal(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    action: &str,
    tenant: Option<&str>,
    target: String,
    outcome: &str,
) {
    mark_audited();
    if !state.refusals.allow(&who.token_id) {
        return;
    }
    let tenant = who.tenant.as_deref().or(tenant);
    let mut target = target;
    if target.len() > MAX_REFUSED_TARGET {
        let mut end = MAX_REFUSED_TARGET;
        while !target.is_char_boundary(end) {
            end -= 1;
        }
        target.truncate(end);
    }
    let write = async {
        let mut tx = state.store.begin_write().await?;
        let event = Event {
            outcome,
            ..Event::ok(action, tenant, target)
        };
        record(&mut tx, who, meta, event).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(())
    };
    if let Err(e) = write.await {
        tracing::error!(error = %e, action, "recording a refused mutation in the audit log failed");
    }
}

/// What one request's audit needs to know beyond its handler: who called
/// (once authenticated) and whether a refusal was written already.
#[derive(Default)]
struct RequestAudit {
    caller: std::cell::RefCell<Option<Principal>>,
    audited: std::cell::Cell<bool>,
}

tokio::task_local! {
    static REQUEST: RequestAudit;
}

/// Notes that the current request's refusal is audited (see [`scoped`]).
fn mark_audited() {
    let _ = REQUEST.try_with(|r| r.audited.set(true));
}

/// Notes the authenticated caller of the current request (see [`scoped`]).
pub fn note_caller(who: &Principal) {
    let _ = REQUEST.try_with(|r| *r.caller.borrow_mut() = Some(who.clone()));
}

/// Runs `request`; tells its authenticated caller, if any, and whether it
/// audited a refusal itself.
pub async fn scoped<T>(
    request: impl std::future::Future<Output = T>,
) -> (T, Option<Principal>, bool) {
    REQUEST
        .scope(RequestAudit::default(), async {
            let out = request.await;
            let (caller, audited) =
                REQUEST.with(|r| (r.caller.borrow_mut().take(), r.audited.get()));
            (out, caller, audited)
        })
        .await
}

/// Refusal events written per token and minute at most: any token, even a
/// viewer's, can provoke refusals, and must not be able to grow the
/// append-only log without bound.
pub struct RefusalBudget {
    per_minute: u32,
    windows: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
}

impl Default for RefusalBudget {
    fn default() -> Self {
        RefusalBudget::new(60)
    }
}

impl RefusalBudget {
    /// At most `per_minute` events per token and minute.
    pub fn new(per_minute: u32) -> Self {
        RefusalBudget {
            per_minute,
            windows: Default::default(),
        }
    }

    /// Whether one more refusal of `token` may be written now.
    pub fn allow(&self, token: &str) -> bool {
        let minute = now_ms() / 60_000;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let entry = windows.entry(token.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        if entry.1 == self.per_minute + 1 {
            tracing::warn!(token_id = token, "refused mutations of one token over the audit budget this minute: further ones are not written");
        }
        entry.1 <= self.per_minute
    }
}
