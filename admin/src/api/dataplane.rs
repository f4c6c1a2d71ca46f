//! `/v1/dataplane` and `/v1/nodes`: how proxies get their configuration (a
//! long-polled snapshot, plugins by digest), their ACK/NACK reports, and the
//! nodes as last seen. Imports `release` and `infra`.

// A node long-polls `GET /v1/dataplane/snapshot?after=<applied>&wait=30s`
// with a node token. The call returns as soon as the current version differs
// from `after` (newer, or older after a restore of the admin's database: the
// node decides whether to accept an older one), or `304 Not Modified` when the
// wait ends first. A publish on this admin wakes waiting polls at once; a
// publish on another admin sharing the database is seen within a second.
// Plugins are fetched separately by digest. Each poll and report updates the
// node's row, which `GET /v1/nodes` lists.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_config::published::{RefusedPart, Report, Reserved, Sections, Snapshot};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::infra::audit;
use crate::infra::auth::{NodeCaller, Principal, RequestMeta};
use crate::infra::duration;
use crate::infra::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::release::render::render;
use crate::release::versions;

/// The data plane's and the nodes' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(snapshot))
        .routes(routes!(plugin))
        .routes(routes!(report))
        .routes(routes!(nodes))
        .routes(routes!(forget_node))
}

/// Longest wait a poll may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting poll checks the database (for publishes on other admins).
const RECHECK: Duration = Duration::from_secs(1);

/// Parameters of a snapshot poll.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    /// The version the node runs (0 or absent: none).
    #[param(minimum = 0)]
    pub after: Option<u64>,
    /// How long to wait for a different version (`30s`; at most 60s; default 0).
    #[param(pattern = r"^[0-9]{1,6}(ms|s|m)$")]
    pub wait: Option<String>,
    /// The node's id: 1-128 of `A-Z a-z 0-9 . _ -` (default: the token's prefix).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub node: Option<String>,
}

/// A long poll's `wait` parameter (`30s`; absent: no wait), capped at a minute.
pub(crate) fn poll_wait(wait: Option<&str>) -> Result<Duration, ApiError> {
    let wait = match wait {
        Some(w) => duration::parse(w, &["ms", "s", "m"]).ok_or_else(|| ApiError::Invalid {
            code: "invalid_query",
            message: "expected a number and a unit (ms, s, m), like 30s".into(),
            field: Some("wait".into()),
        })?,
        None => Duration::ZERO,
    };
    Ok(wait.min(MAX_WAIT))
}

pub(crate) fn check_node_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            code: "invalid_query",
            message: "node ids are 1-128 of A-Z, a-z, 0-9, '.', '_', '-'".into(),
            field: Some("node".into()),
        })
    }
}

pub(crate) async fn seen(
    state: &AppState,
    node: &str,
    who: &Principal,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO nodes (id, token_prefix, address, last_seen_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET token_prefix = excluded.token_prefix, \
         address = excluded.address, last_seen_ms = excluded.last_seen_ms",
    )
    .bind(node)
    .bind(&who.prefix)
    .bind(meta.client_ip.to_string())
    .bind(now_ms())
    .execute(state.store.pool())
    .await?;
    Ok(())
}

/// Waits for a version other than `after`, then returns it rendered for nodes.
#[utoipa::path(
    get, path = "/v1/dataplane/snapshot", params(PollQuery),
    responses(
        (status = 200, body = Snapshot, description = "A version other than `after`"),
        (status = 304, description = "The wait ended without a new version"),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "dataplane"
)]
pub async fn snapshot(
    State(state): State<AppState>,
    NodeCaller(who): NodeCaller,
    meta: RequestMeta,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> Result<Response, ApiError> {
    let node = q.node.clone().unwrap_or_else(|| who.prefix.clone());
    check_node_id(&node)?;
    let wait = poll_wait(q.wait.as_deref())?;
    let after = i64::try_from(q.after.unwrap_or(0)).map_err(|_| ApiError::Invalid {
        code: "invalid_query",
        message: "out of range".into(),
        field: Some("after".into()),
    })?;
    seen(&state, &node, &who, &meta).await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut published = state.published.subscribe();
    loop {
        if let Some(v) = versions::current(state.store.pool()).await? {
            if v != after {
                return render_version(&state, v).await;
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        let nap = (deadline - now).min(RECHECK);
        tokio::select! {
            _ = published.changed() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

async fn render_version(state: &AppState, v: i64) -> Result<Response, ApiError> {
    let cached = state
        .rendered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .filter(|(version, _)| *version == v)
        .map(|(_, body)| body.clone());
    let body = match cached {
        Some(body) => body,
        None => {
            let body = render_body(state, v).await?;
            *state.rendered.lock().unwrap_or_else(|p| p.into_inner()) = Some((v, body.clone()));
            body
        }
    };
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        // Private keys travel in this body: never cache it anywhere.
        (header::CACHE_CONTROL, "no-store"),
    ];
    Ok((headers, body).into_response())
}

/// Version `v` as the JSON a node receives.
async fn render_body(state: &AppState, v: i64) -> Result<axum::body::Bytes, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let (version, doc) = versions::load_version(&mut conn, v)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("version {v}")))?;
    let policy = published_policy(state, &mut conn).await?;
    drop(conn);
    let (cfg, _) = render(&doc, &state.keys)?;
    let snapshot = Snapshot {
        version: version.version as u64,
        hash: version.hash,
        created_ms: version.created_ms,
        config: Sections {
            tenants: cfg.tenants,
            domains: cfg.domains,
            pools: cfg.pools,
            certificates: cfg.certificates,
            plugins: cfg.plugins,
            target_policy: Some(policy),
        },
    };
    serde_json::to_vec(&snapshot)
        .map(Into::into)
        .map_err(|e| ApiError::Internal(e.into()))
}

/// The target policy nodes receive: the platform's, and — when it refuses
/// nodes' own addresses — every node's address as the admin sees it, so a
/// tenant's pool on one node cannot reach another node's internal listener
/// or services.
async fn published_policy(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
) -> Result<gatehouse_config::file::TargetPolicy, ApiError> {
    let mut policy = state.target_policy.published.clone();
    if policy.node_addresses {
        let rows = sqlx::query("SELECT DISTINCT address FROM nodes")
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            let address: String = r.try_get("address")?;
            if let Ok(ip) = address.parse::<std::net::IpAddr>() {
                let cidr = match ip {
                    std::net::IpAddr::V4(_) => format!("{ip}/32"),
                    std::net::IpAddr::V6(_) => format!("{ip}/128"),
                };
                if !policy.refused.contains(&cidr) {
                    policy.refused.push(cidr);
                }
            }
        }
    }
    Ok(policy)
}

/// Downloads a plugin component by SHA-256.
#[utoipa::path(
    get, path = "/v1/dataplane/plugins/{sha256}",
    params(("sha256" = String, Path, description = "SHA-256 of the component, hex")),
    responses((status = 200, content_type = "application/wasm", body = Vec<u8>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])), tag = "dataplane"
)]
pub async fn plugin(
    State(state): State<AppState>,
    NodeCaller(_who): NodeCaller,
    ApiPath(sha256): ApiPath<String>,
) -> Result<Response, ApiError> {
    let row = sqlx::query("SELECT bytes FROM blobs WHERE sha256 = $1")
        .bind(sha256.to_ascii_lowercase())
        .fetch_optional(state.store.pool())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("plugin {sha256}")))?;
    let bytes: Vec<u8> = row.try_get("bytes")?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
}

/// Records a node's ACK or NACK of a version.
#[utoipa::path(
    post, path = "/v1/dataplane/report", request_body = Report,
    responses((status = 204), (status = 403, body = ErrorBody)),
    security(("bearer" = [])), tag = "dataplane"
)]
pub async fn report(
    State(state): State<AppState>,
    NodeCaller(who): NodeCaller,
    meta: RequestMeta,
    ApiJson(r): ApiJson<Report>,
) -> Result<StatusCode, ApiError> {
    check_node_id(&r.node).map_err(|_| {
        ApiError::invalid("node", "node ids are 1-128 of A-Z, a-z, 0-9, '.', '_', '-'")
    })?;
    let version =
        i64::try_from(r.version).map_err(|_| ApiError::invalid("version", "out of range"))?;
    seen(&state, &r.node, &who, &meta).await?;
    let error: Option<String> = r.error.map(|e| e.chars().take(8192).collect());
    if let Some(reserved) = bounded_reserved(r.reserved) {
        let json = serde_json::to_string(&reserved).map_err(|e| ApiError::Internal(e.into()))?;
        sqlx::query("UPDATE nodes SET reserved = $1 WHERE id = $2")
            .bind(json)
            .bind(&r.node)
            .execute(state.store.pool())
            .await?;
    }
    if r.applied {
        let refused = bounded_refused(r.refused);
        if !refused.is_empty() {
            tracing::warn!(node = %r.node, version, tenants = ?refused.iter().map(|p| &p.tenant).collect::<Vec<_>>(), "node applied a version without some tenant parts");
        }
        let refused = (!refused.is_empty())
            .then(|| serde_json::to_string(&refused))
            .transpose()
            .map_err(|e| ApiError::Internal(e.into()))?;
        sqlx::query(
            "UPDATE nodes SET applied_version = $1, applied_hash = $2, refused = $3 WHERE id = $4",
        )
        .bind(version)
        .bind(&r.hash)
        .bind(refused)
        .bind(&r.node)
        .execute(state.store.pool())
        .await?;
    } else {
        tracing::warn!(node = %r.node, version, error = error.as_deref().unwrap_or(""), "node rejected a snapshot");
        sqlx::query("UPDATE nodes SET last_error = $1, last_error_version = $2, last_error_ms = $3 WHERE id = $4")
            .bind(error.as_deref().unwrap_or("rejected"))
            .bind(version)
            .bind(now_ms())
            .bind(&r.node)
            .execute(state.store.pool())
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// What a node reports is bounded before it is stored (a node token is
/// trusted, but a bug must not grow the table without end).
fn bounded_reserved(reserved: Option<Reserved>) -> Option<Reserved> {
    let cut = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .filter(|s| s.len() <= 253)
            .take(10_000)
            .collect()
    };
    reserved.map(|r| Reserved {
        tenants: cut(r.tenants),
        hosts: cut(r.hosts),
    })
}

fn bounded_refused(refused: Vec<RefusedPart>) -> Vec<RefusedPart> {
    refused
        .into_iter()
        .take(1000)
        .map(|p| RefusedPart {
            tenant: p.tenant.chars().take(128).collect(),
            problems: p
                .problems
                .into_iter()
                .take(20)
                .map(|m| m.chars().take(1024).collect())
                .collect(),
        })
        .collect()
}

/// A proxy node as last seen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// The node's id.
    pub id: String,
    /// Prefix of the token it uses.
    pub token_prefix: String,
    /// Address it polled from.
    pub address: String,
    /// Version it runs (last ACK).
    pub applied_version: Option<i64>,
    /// Hash of that version.
    pub applied_hash: Option<String>,
    /// Last poll or report (Unix milliseconds).
    pub last_seen_ms: i64,
    /// Last rejection: why.
    pub last_error: Option<String>,
    /// Last rejection: which version.
    pub last_error_version: Option<i64>,
    /// Last rejection: when (Unix milliseconds).
    pub last_error_ms: Option<i64>,
    /// Tenant parts the version it runs was applied without, and why (a
    /// name its own config file already has, a bound it sets lower, ...).
    pub refused: Vec<RefusedPart>,
    /// Tenant names and host patterns its own config file defines (kept
    /// from tenants).
    pub reserved: Option<Reserved>,
}

/// The list of nodes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    /// Nodes by id.
    pub nodes: Vec<Node>,
}

/// Lists proxy nodes with the version each applied and its last error (platform admins).
#[utoipa::path(
    get, path = "/v1/nodes",
    responses((status = 200, body = NodeList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])), tag = "dataplane"
)]
pub async fn nodes(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<NodeList>, ApiError> {
    who.platform("list nodes")?;
    let rows = sqlx::query(
        "SELECT id, token_prefix, address, applied_version, applied_hash, last_seen_ms, \
         last_error, last_error_version, last_error_ms, reserved, refused FROM nodes ORDER BY id",
    )
    .fetch_all(state.store.pool())
    .await?;
    let nodes = rows
        .iter()
        .map(|r| {
            Ok(Node {
                id: r.try_get("id")?,
                token_prefix: r.try_get("token_prefix")?,
                address: r.try_get("address")?,
                applied_version: r.try_get("applied_version")?,
                applied_hash: r.try_get("applied_hash")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
                last_error: r.try_get("last_error")?,
                last_error_version: r.try_get("last_error_version")?,
                last_error_ms: r.try_get("last_error_ms")?,
                refused: json_column(r, "refused")?.unwrap_or_default(),
                reserved: json_column(r, "reserved")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Json(NodeList { nodes }))
}

/// A JSON column, `None` when NULL (or unreadable: it is informative only).
fn json_column<T: serde::de::DeserializeOwned>(
    row: &sqlx::any::AnyRow,
    column: &str,
) -> Result<Option<T>, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Forgets a node (platform admins): for decommissioned nodes, which are
/// otherwise listed forever. A node that polls again reappears.
#[utoipa::path(
    delete, path = "/v1/nodes/{id}",
    params(("id" = String, Path, description = "Node id", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    responses((status = 204), (status = 403, body = ErrorBody)),
    security(("bearer" = [])), tag = "dataplane"
)]
pub async fn forget_node(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let target = format!("nodes/{id}");
    if let Err(e) = who.platform("forget nodes") {
        return Err(audit::refused(&state, &who, &meta, "node.delete", None, target, e).await);
    }
    let mut tx = state.store.begin_write().await?;
    let gone = sqlx::query("DELETE FROM nodes WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ApiError::NotFound(format!("node {id}")));
    }
    let event = audit::Event::ok("node.delete", None, target);
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
