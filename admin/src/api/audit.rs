//! `GET /v1/audit`: reading the audit log, newest first.
//!
//! Writing events is `infra::audit`'s (in each mutation's transaction); this
//! is the read side, with a tenant token held to its own tenant's events.
//! Imports `infra` only.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::infra::auth::{Principal, Role};
use crate::infra::error::{ApiError, ApiQuery};
use crate::infra::state::AppState;

/// The audit log's routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Filters for `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events of this tenant (tenant tokens always see only their own).
    pub tenant: Option<String>,
    /// Only this action (`tenant.create`, ...).
    pub action: Option<String>,
    /// Only events at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only events before this time (Unix milliseconds).
    pub until_ms: Option<i64>,
    /// Only events with an id below this one (the `next_before_id` of the previous page).
    pub before_id: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// One audit event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Event id, increasing.
    pub id: i64,
    /// Time (Unix milliseconds).
    pub at_ms: i64,
    /// Prefix of the token that acted.
    pub actor: String,
    /// Client address.
    pub client_ip: String,
    /// Request id.
    pub request_id: String,
    /// Action.
    pub action: String,
    /// Tenant of the target, if any.
    pub tenant: Option<String>,
    /// Target.
    pub target: String,
    /// The object before (secrets redacted).
    pub before: Option<serde_json::Value>,
    /// The object after (secrets redacted).
    pub after: Option<serde_json::Value>,
    /// `ok`, or why it was refused.
    pub outcome: String,
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `before_id` for the next page; absent on the last page.
    pub next_before_id: Option<i64>,
}

/// Lists audit events, newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
    ),
    security(("bearer" = [])),
    tag = "audit"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    // A tenant token sees its own tenant's events only, whatever it asks for.
    let tenant = match (who.role, &q.tenant) {
        (Role::PlatformAdmin, t) => t.clone(),
        (_, Some(t)) if !who.sees(t) => return Err(ApiError::NotFound(format!("tenant {t}"))),
        _ => who.tenant.clone(),
    };
    let rows = sqlx::query(
        "SELECT id, at_ms, actor, client_ip, request_id, action, tenant, target, before_json, after_json, outcome \
         FROM audit_events \
         WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR action = $2) \
           AND ($3 IS NULL OR at_ms >= $3) AND ($4 IS NULL OR at_ms < $4) \
           AND ($5 IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6",
    )
    .bind(tenant)
    .bind(q.action)
    .bind(q.since_ms)
    .bind(q.until_ms)
    .bind(q.before_id)
    .bind(limit + 1)
    .fetch_all(state.store.pool())
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows.iter().take(limit as usize) {
        let json = |col: &str| -> Result<Option<serde_json::Value>, ApiError> {
            let text: Option<String> = row.try_get(col)?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        };
        events.push(AuditEvent {
            id: row.try_get("id")?,
            at_ms: row.try_get("at_ms")?,
            actor: row.try_get("actor")?,
            client_ip: row.try_get("client_ip")?,
            request_id: row.try_get("request_id")?,
            action: row.try_get("action")?,
            tenant: row.try_get("tenant")?,
            target: row.try_get("target")?,
            before: json("before_json")?,
            after: json("after_json")?,
            outcome: row.try_get("outcome")?,
        });
    }
    let next_before_id = (rows.len() as i64 > limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        events,
        next_before_id,
    }))
}
