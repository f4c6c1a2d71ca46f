//! `/v1/tenants`: the tenants that own domains, pools, certificates and
//! plugins. Platform admins create and delete them; a tenant's own tokens read
//! it and, from `admin` up, rename it; writes check `If-Match` (412 when stale).
//! Imports `release` and `infra`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::infra::audit::{self, Event};
use crate::infra::auth::{Principal, RequestMeta, Role};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::release::publish::unpublish_tenant;

/// The tenants' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// Identifier: lowercase letters, digits and `-`, 1 to 63 characters.
    pub name: String,
    /// Name for people.
    pub display_name: String,
    /// Revision, increased by every change (also the `ETag`).
    pub revision: i64,
    /// Creation time (Unix milliseconds).
    pub created_ms: i64,
    /// Last change (Unix milliseconds).
    pub updated_ms: i64,
}

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Identifier: lowercase letters, digits and `-`, 1 to 63 characters, starting with a
    /// letter and not ending with `-`.
    #[schema(pattern = "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Name for people (defaults to `name`): 1 to 200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub display_name: Option<String>,
}

/// Body of `PATCH /v1/tenants/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// New name for people: 1 to 200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub display_name: Option<String>,
}

/// A list of tenants.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    /// Tenants the token can see, by name.
    pub tenants: Vec<Tenant>,
}

/// Checks a tenant identifier.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1-63 lowercase letters, digits or '-', starting with a letter and not ending with '-'",
        ))
    }
}

fn check_display_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "display_name",
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        revision: row.try_get("revision")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

async fn load(conn: &mut sqlx::AnyConnection, name: &str) -> Result<Option<Tenant>, ApiError> {
    let row = sqlx::query(
        "SELECT name, display_name, revision, created_ms, updated_ms FROM tenants WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits are a valid header value")
}

/// Fails with 412 when `If-Match` is present and names another revision.
pub fn check_if_match(headers: &HeaderMap, revision: i64) -> Result<(), ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("").trim();
    if v == "*" || v.trim_start_matches("W/").trim_matches('"') == revision.to_string() {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed(v.to_string()))
    }
}

fn with_etag(status: StatusCode, tenant: Tenant) -> Response {
    let tag = etag(tenant.revision);
    let mut resp = (status, Json(tenant)).into_response();
    resp.headers_mut().insert(header::ETAG, tag);
    resp
}

/// Creates a tenant (platform admins).
#[utoipa::path(
    post, path = "/v1/tenants", request_body = CreateTenant,
    responses(
        (status = 201, body = Tenant, headers(("ETag" = String, description = "Revision"))),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<Response, ApiError> {
    let target = format!("tenant/{}", body.name);
    if let Err(e) = who.platform("create tenants") {
        return Err(audit::refused(&state, &who, &meta, "tenant.create", None, target, e).await);
    }
    check_name("name", &body.name)?;
    let display_name = body.display_name.unwrap_or_else(|| body.name.clone());
    check_display_name(&display_name)?;
    let now = now_ms();
    let tenant = Tenant {
        name: body.name,
        display_name,
        revision: 1,
        created_ms: now,
        updated_ms: now,
    };
    let mut tx = state.store.begin_write().await?;
    if load(&mut tx, &tenant.name).await?.is_some() {
        return Err(ApiError::Conflict {
            message: format!("tenant {} already exists", tenant.name),
            field: Some("name".into()),
        });
    }
    let reserved = crate::draft::hostnames::reserved(&mut tx).await?;
    if reserved.tenants.contains(&tenant.name) {
        return Err(ApiError::Conflict {
            message: format!("tenant name {} is reserved by the platform", tenant.name),
            field: Some("name".into()),
        });
    }
    let retired = sqlx::query("SELECT name FROM retired_tenants WHERE name = $1")
        .bind(&tenant.name)
        .fetch_optional(&mut *tx)
        .await?;
    if retired.is_some() {
        return Err(ApiError::Conflict {
            message: format!(
                "{} was the name of a deleted tenant; names are not reused (old versions hold its objects)",
                tenant.name
            ),
            field: Some("name".into()),
        });
    }
    sqlx::query(
        "INSERT INTO tenants (name, display_name, revision, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&tenant.name)
    .bind(&tenant.display_name)
    .bind(tenant.revision)
    .bind(tenant.created_ms)
    .bind(tenant.updated_ms)
    .execute(&mut *tx)
    .await?;
    let event = Event::ok("tenant.create", Some(&tenant.name), target).after(&tenant);
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::CREATED, tenant))
}

/// Lists the tenants the token can see.
#[utoipa::path(
    get, path = "/v1/tenants",
    responses((status = 200, body = TenantList), ),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<TenantList>, ApiError> {
    let rows = sqlx::query(
        "SELECT name, display_name, revision, created_ms, updated_ms FROM tenants \
         WHERE $1 IS NULL OR name = $1 ORDER BY name",
    )
    .bind(match who.role {
        Role::PlatformAdmin => None,
        _ => who.tenant.clone(),
    })
    .fetch_all(state.store.pool())
    .await?;
    let tenants = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(Json(TenantList { tenants }))
}

/// Reads a tenant.
#[utoipa::path(
    get, path = "/v1/tenants/{name}", params(("name" = String, Path, description = "Tenant")),
    responses(
        (status = 200, body = Tenant, headers(("ETag" = String, description = "Revision"))),
    ),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let not_found = || format!("tenant {name}");
    who.read(&name, not_found)?;
    let mut conn = state.store.pool().acquire().await?;
    let tenant = load(&mut conn, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(not_found()))?;
    Ok(with_etag(StatusCode::OK, tenant))
}

/// Changes a tenant (its `admin` and up).
#[utoipa::path(
    patch, path = "/v1/tenants/{name}", request_body = UpdateTenant,
    params(
        ("name" = String, Path, description = "Tenant"),
        ("If-Match" = Option<String>, Header, description = "Revision the change is based on"),
    ),
    responses(
        (status = 200, body = Tenant, headers(("ETag" = String, description = "Revision"))),
        (status = 403, body = ErrorBody),
        (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Response, ApiError> {
    let target = format!("tenant/{name}");
    let not_found = || format!("tenant {name}");
    if let Err(e) = who.require(&name, Role::Admin, "change the tenant", not_found) {
        return Err(
            audit::refused(&state, &who, &meta, "tenant.update", Some(&name), target, e).await,
        );
    }
    if let Some(d) = &body.display_name {
        check_display_name(d)?;
    }
    let mut tx = state.store.begin_write().await?;
    let before = load(&mut tx, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(not_found()))?;
    if let Err(e) = check_if_match(&headers, before.revision) {
        drop(tx);
        return Err(
            audit::refused(&state, &who, &meta, "tenant.update", Some(&name), target, e).await,
        );
    }
    let after = Tenant {
        display_name: body
            .display_name
            .unwrap_or_else(|| before.display_name.clone()),
        revision: before.revision + 1,
        updated_ms: now_ms(),
        ..before.clone()
    };
    sqlx::query(
        "UPDATE tenants SET display_name = $1, revision = $2, updated_ms = $3 WHERE name = $4",
    )
    .bind(&after.display_name)
    .bind(after.revision)
    .bind(after.updated_ms)
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    let event = Event::ok("tenant.update", Some(&name), target)
        .before(&before)
        .after(&after);
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, after))
}

/// Deletes a tenant and everything it owns (platform admins).
#[utoipa::path(
    delete, path = "/v1/tenants/{name}",
    params(
        ("name" = String, Path, description = "Tenant"),
        ("If-Match" = Option<String>, Header, description = "Revision the deletion is based on"),
    ),
    responses(
        (status = 204), (status = 403, body = ErrorBody),
        (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let target = format!("tenant/{name}");
    let not_found = || format!("tenant {name}");
    who.read(&name, not_found)?;
    if let Err(e) = who.platform("delete tenants") {
        return Err(
            audit::refused(&state, &who, &meta, "tenant.delete", Some(&name), target, e).await,
        );
    }
    let mut tx = state.store.begin_write().await?;
    let before = load(&mut tx, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(not_found()))?;
    if let Err(e) = check_if_match(&headers, before.revision) {
        drop(tx);
        return Err(
            audit::refused(&state, &who, &meta, "tenant.delete", Some(&name), target, e).await,
        );
    }
    sqlx::query("DELETE FROM tenants WHERE name = $1")
        .bind(&name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO retired_tenants (name, retired_ms) VALUES ($1, $2)")
        .bind(&name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    let event = Event::ok("tenant.delete", Some(&name), target).before(&before);
    audit::record(&mut tx, &who, &meta, event).await?;
    // Its domains stop being served now, not at someone's next publish.
    let version = unpublish_tenant(&mut tx, &who, &meta, &name).await?;
    tx.commit().await?;
    if let Some(v) = version {
        state.published.send_replace(v);
    }
    Ok(StatusCode::NO_CONTENT)
}
