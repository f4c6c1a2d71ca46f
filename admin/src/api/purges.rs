//! Cache purges: `POST /v1/tenants/{tenant}/cache/purge` and the nodes' feed
//! `GET /v1/dataplane/purges`. A purge is not configuration: it reaches every
//! node at once, with no publish, numbered in one sequence nodes long-poll.
//! Imports `draft` and `infra` (and `api::dataplane`'s poll helpers).

// The write transaction serialises purges, so their numbers become visible
// in order; nodes long-poll for the ones after their last. A node starting up
// asks from "now": its cache is empty, so earlier purges mean nothing to it.
// Rows older than a day are dropped. The tenant comes from the path, so a
// purge can only ever name its own tenant's objects; nodes apply it to that
// tenant's part of the cache alone.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_config::published::{Purge, PurgeTarget, Purges};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::dataplane::poll_wait;
use crate::draft::objects;
use crate::infra::audit::{self, Event};
use crate::infra::auth::{NodeCaller, Principal, RequestMeta, Role};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::infra::state::AppState;
use crate::infra::store::{now_ms, Backend};

/// The purges' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(purge))
        .routes(routes!(feed))
}

/// How long purge rows are kept.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often a waiting poll looks at the database (for purges made through
/// another admin).
const RECHECK: Duration = Duration::from_secs(1);

/// A purge accepted for every node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgeAccepted {
    /// The purge's number; nodes apply purges in this order.
    pub id: u64,
    pub tenant: String,
    pub target: PurgeTarget,
}

/// Purges cached objects of the tenant on every node (operator and up): one
/// URL with all its variants, a URL prefix, a tag from the origin's
/// `Cache-Tag`/`Surrogate-Key`, a host, or everything. Nodes apply it within
/// about a second; the answer does not wait for them.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/cache/purge", request_body = PurgeTarget,
    params(("tenant" = String, Path, description = "Tenant")),
    responses(
        (status = 202, body = PurgeAccepted, description = "Queued for every node"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 400, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "cache"
)]
pub async fn purge(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(target): ApiJson<PurgeTarget>,
) -> Result<Response, ApiError> {
    let what = || format!("tenant {tenant}");
    let audit_target = format!("tenants/{tenant}/cache");
    if let Err(e) = who.require(&tenant, Role::Operator, "purge the cache", what) {
        return Err(audit::refused(
            &state,
            &who,
            &meta,
            "cache.purge",
            Some(&tenant),
            audit_target,
            e,
        )
        .await);
    }
    if let Err((field, message)) = target.check() {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message,
            field: Some(field.into()),
        });
    }
    let mut tx = state.store.begin_write().await?;
    objects::require_tenant(&mut tx, &tenant).await?;
    if state.store.backend() == Backend::Postgres {
        // Numbers must become visible in order, or a node could pass one by.
        sqlx::query("LOCK TABLE cache_purges IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
    }
    let id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS id FROM cache_purges")
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
    let now = now_ms();
    let body = serde_json::to_string(&target)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding a purge: {e}")))?;
    sqlx::query(
        "INSERT INTO cache_purges (id, tenant, target, created_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(&tenant)
    .bind(&body)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let keep_ms = i64::try_from(KEEP.as_millis()).unwrap_or(i64::MAX);
    // Keep the newest row whatever its age: it holds the sequence's position.
    sqlx::query("DELETE FROM cache_purges WHERE created_ms < $1 AND id < $2")
        .bind(now - keep_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let mut event = Event::ok("cache.purge", Some(&tenant), audit_target);
    event.after = serde_json::to_value(&target).ok();
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    state.purged.send_replace(id);
    let accepted = PurgeAccepted {
        id: id as u64,
        tenant,
        target,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// Parameters of a purge poll.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PurgePoll {
    /// The last purge the node applied.
    #[param(minimum = 0)]
    pub after: Option<u64>,
    /// Without `after`: the purges made since this time (ms since the epoch), e.g.
    /// since the node started; without either, none (just the latest number).
    pub since_ms: Option<i64>,
    /// How long to wait for a purge after `after` (`30s`; at most 60s; default 0).
    #[param(pattern = r"^[0-9]{1,6}(ms|s|m)$")]
    pub wait: Option<String>,
}

async fn latest(state: &AppState) -> Result<i64, ApiError> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM cache_purges")
            .fetch_one(state.store.pool())
            .await?
            .try_get("id")?,
    )
}

fn decode(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Purge>, ApiError> {
    rows.iter()
        .map(|r| {
            let target: String = r.try_get("target")?;
            Ok(Purge {
                id: r.try_get::<i64, _>("id")? as u64,
                tenant: r.try_get("tenant")?,
                target: serde_json::from_str(&target)
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("a stored purge: {e}")))?,
            })
        })
        .collect()
}

/// The purges after `after` (nodes only), waiting up to `wait` for one.
#[utoipa::path(
    get, path = "/v1/dataplane/purges", params(PurgePoll),
    responses(
        (status = 200, body = Purges, description = "Purges after `after`, oldest first"),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "dataplane"
)]
pub async fn feed(
    State(state): State<AppState>,
    NodeCaller(_who): NodeCaller,
    ApiQuery(q): ApiQuery<PurgePoll>,
) -> Result<Json<Purges>, ApiError> {
    let Some(after) = q.after else {
        let latest = latest(&state).await?;
        let purges = match q.since_ms {
            Some(since) => {
                let rows = sqlx::query(
                    "SELECT id, tenant, target FROM cache_purges \
                     WHERE created_ms >= $1 AND id <= $2 ORDER BY id LIMIT 1000",
                )
                .bind(since)
                .bind(latest)
                .fetch_all(state.store.pool())
                .await?;
                decode(&rows)?
            }
            None => Vec::new(),
        };
        // A capped batch ends at its last row; the next poll goes on from there.
        let latest = match purges.last() {
            Some(p) if purges.len() == 1000 => p.id,
            _ => latest as u64,
        };
        return Ok(Json(Purges { latest, purges }));
    };
    let after = i64::try_from(after).map_err(|_| ApiError::Invalid {
        code: "invalid_query",
        message: "out of range".into(),
        field: Some("after".into()),
    })?;
    let wait = poll_wait(q.wait.as_deref())?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut purged = state.purged.subscribe();
    loop {
        let rows = sqlx::query(
            "SELECT id, tenant, target FROM cache_purges WHERE id > $1 ORDER BY id LIMIT 1000",
        )
        .bind(after)
        .fetch_all(state.store.pool())
        .await?;
        if !rows.is_empty() {
            let purges = decode(&rows)?;
            let latest = purges.last().map_or(0, |p| p.id);
            return Ok(Json(Purges { latest, purges }));
        }
        let latest = latest(&state).await?;
        let now = tokio::time::Instant::now();
        if latest < after || now >= deadline {
            // Behind the node (a restored database): the node restarts from here.
            return Ok(Json(Purges {
                latest: latest as u64,
                purges: Vec::new(),
            }));
        }
        let nap = (deadline - now).min(RECHECK);
        tokio::select! {
            _ = purged.changed() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}
