//! `/v1/publish`, `/v1/versions` and `/v1/diff`: publish the draft, list and
//! read versions, roll back, compare. The work is `release`'s; this is its
//! HTTP face. Imports `release`, `draft` and `infra`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::object::with_etag;
use crate::draft::objects;
use crate::infra::auth::{Principal, RequestMeta, Role};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::infra::state::AppState;
use crate::release::diff::{visible, visible_diff, Change};
use crate::release::document::{self, Document};
use crate::release::publish::{self, Published, Request, Source};
use crate::release::versions::{self, Version};

/// The versions' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(rollback))
        .routes(routes!(compare))
}

/// A version with its content.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionDetail {
    /// The version.
    #[serde(flatten)]
    pub version: Version,
    /// Tenant → kind → name → object (private keys omitted). A tenant token
    /// sees its own tenant only.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
}

/// A list of versions, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    /// Versions.
    pub versions: Vec<Version>,
}

/// Body of `POST /v1/publish`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Tenant to publish (a tenant token's own by default; a platform admin
    /// without it publishes every tenant's draft).
    pub tenant: Option<String>,
    /// A note kept with the version (at most 500 characters).
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// Body of a rollback.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Tenant to roll back (a tenant token's own; a platform admin without it
    /// rolls back every tenant).
    pub tenant: Option<String>,
    /// A note kept with the new version.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// A diff between two configurations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Diff {
    /// Older side: a version number (0 = empty).
    pub from: i64,
    /// Newer side: a version number, or absent for the draft.
    pub to: Option<i64>,
    /// Objects that differ.
    pub changes: Vec<Change>,
}

/// Publishes the draft (operator and up for their tenant; platform admins for
/// one tenant or all). `If-Match` with the current version number refuses the
/// publish (412) when someone else published since.
#[utoipa::path(
    post, path = "/v1/publish", request_body = PublishRequest,
    params(("If-Match" = Option<String>, Header, description = "The version the publish is based on")),
    responses(
        (status = 201, body = Published, description = "Published as a new version"),
        (status = 200, body = Published, description = "Nothing changed"),
        (status = 403, body = ErrorBody), (status = 412, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The configuration is invalid: every problem in `details`"),
    ),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn publish(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishRequest>,
) -> Result<Response, ApiError> {
    let request = Request {
        source: Source::Draft,
        tenant: body.tenant,
        note: body.note,
        if_match: Some(headers),
    };
    published(publish::publish(&state, &who, &meta, request).await?)
}

/// Rolls back: publishes version `n`'s configuration (of the token's tenant,
/// or of `tenant` / everyone for platform admins) as a new version, and
/// resets the draft to it.
#[utoipa::path(
    post, path = "/v1/versions/{version}/rollback", request_body = RollbackRequest,
    params(("version" = i64, Path, description = "Version to restore")),
    responses(
        (status = 201, body = Published), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The old configuration no longer validates"),
    ),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn rollback(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(n): ApiPath<i64>,
    ApiJson(body): ApiJson<RollbackRequest>,
) -> Result<Response, ApiError> {
    let request = Request {
        source: Source::Version(n),
        tenant: body.tenant,
        note: body.note,
        if_match: None,
    };
    published(publish::publish(&state, &who, &meta, request).await?)
}

/// Paging of the version list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// Only versions older than this one.
    pub before: Option<i64>,
    /// At most this many (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Lists published versions, newest first (`ETag`: the current version). A
/// tenant token sees the versions that published its tenant or everyone.
#[utoipa::path(
    get, path = "/v1/versions", params(VersionQuery),
    responses((status = 200, body = VersionList, headers(("ETag" = String, description = "Current version")))),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Invalid {
            code: "invalid_query",
            message: "must be 1 to 500".into(),
            field: Some("limit".into()),
        });
    }
    let mine = match who.role {
        Role::PlatformAdmin => None,
        _ => who.tenant.clone(),
    };
    let versions = versions::page(state.store.pool(), q.before, mine.as_deref(), limit).await?;
    let current = versions::current(state.store.pool()).await?;
    Ok(with_etag(
        StatusCode::OK,
        current.unwrap_or(0),
        VersionList { versions },
    ))
}

/// Reads a version with its content (a tenant token sees its own part).
#[utoipa::path(
    get, path = "/v1/versions/{version}",
    params(("version" = i64, Path, description = "Version")),
    responses((status = 200, body = VersionDetail)),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(n): ApiPath<i64>,
) -> Result<Json<VersionDetail>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let (version, doc) = versions::load_version(&mut conn, n)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("version {n}")))?;
    // Like the list: a tenant sees versions of its own scope or everyone's.
    let foreign = match (&version.scope, who.role) {
        (_, Role::PlatformAdmin) | (None, _) => false,
        (Some(s), _) => who.tenant.as_ref() != Some(s),
    };
    if foreign {
        return Err(ApiError::NotFound(format!("version {n}")));
    }
    Ok(Json(VersionDetail {
        version,
        document: serde_json::to_value(visible(&who, &doc))
            .map_err(|e| ApiError::Internal(e.into()))?,
    }))
}

/// What to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// Older side (default: the current version; 0 = empty).
    pub from: Option<i64>,
    /// Newer side (default: the draft of `tenant` or of the token's tenant).
    pub to: Option<i64>,
    /// Tenant whose draft is the newer side (platform admins; default: every tenant's).
    pub tenant: Option<String>,
}

/// Compares two versions, or a version with the draft (a preview of what
/// publishing would change). A tenant token sees its own objects only.
#[utoipa::path(
    get, path = "/v1/diff", params(DiffQuery),
    responses((status = 200, body = Diff)),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn compare(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<Diff>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let load = |doc: Option<(Version, Document)>, n: i64| {
        doc.map(|(_, d)| d)
            .ok_or_else(|| ApiError::NotFound(format!("version {n}")))
    };
    let (from, old) = match q.from {
        Some(0) => (0, Document::default()),
        Some(n) => (n, load(versions::load_version(&mut conn, n).await?, n)?),
        None => {
            let (v, d) = versions::latest(&mut conn).await?;
            (v.map_or(0, |v| v.version), d)
        }
    };
    let new = match q.to {
        Some(0) => Document::default(),
        Some(n) => load(versions::load_version(&mut conn, n).await?, n)?,
        None => {
            let tenants: Vec<String> = match (who.role, &who.tenant, &q.tenant) {
                (Role::PlatformAdmin, _, Some(t)) => vec![t.clone()],
                (Role::PlatformAdmin, _, None) => sqlx::query("SELECT name FROM tenants")
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| r.try_get("name"))
                    .collect::<Result<_, _>>()?,
                (_, Some(mine), Some(t)) if mine != t => {
                    return Err(ApiError::NotFound(format!("tenant {t}")))
                }
                (_, Some(mine), _) => vec![mine.clone()],
                (_, None, _) => Vec::new(),
            };
            let mut draft = Document::default();
            for t in tenants {
                let part = document::part_of(objects::all_of_tenant(&mut conn, &t).await?);
                if !part.is_empty() {
                    draft.tenants.insert(t, part);
                }
            }
            // Compare like with like: only the drafted tenants' published parts.
            let old_scoped = Document {
                tenants: old
                    .tenants
                    .iter()
                    .filter(|(t, _)| {
                        q.tenant.is_none()
                            || q.tenant.as_ref() == Some(*t)
                            || who.role != Role::PlatformAdmin
                    })
                    .map(|(t, p)| (t.clone(), p.clone()))
                    .collect(),
            };
            return Ok(Json(Diff {
                from,
                to: None,
                changes: visible_diff(&who, &old_scoped, &draft),
            }));
        }
    };
    Ok(Json(Diff {
        from,
        to: q.to,
        changes: visible_diff(&who, &old, &new),
    }))
}

/// A publish's or rollback's answer: 201 with the new version, 200 when
/// nothing changed; the `ETag` is the version now current.
fn published(published: Published) -> Result<Response, ApiError> {
    let status = if published.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, published.version.version, published))
}
