//! `/v1/tenants/{tenant}/rate-limit`: the tenant's rate ceiling, the
//! platform's cap on all its traffic together (`tenants[].rate_limit`): only
//! platform admins change it, the tenant's tokens read it, and it reaches the
//! proxies with the next publish. Imports `release`, `draft`, `model`, `infra`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_config::file;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::object::{with_etag, Object};
use crate::draft::access;
use crate::draft::objects::{self, Kind, Stored, Write};
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::infra::state::AppState;
use crate::model::rate_ceiling::NAME;
use crate::release::validate::check_alone;

/// The rate ceiling's routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get, put, delete))
}

fn response(o: &Stored) -> Result<Object<file::Quota>, ApiError> {
    Ok(Object::new(o, o.spec()?))
}

fn key(tenant: &str) -> objects::Key<'_> {
    objects::Key {
        kind: Kind::RateCeiling,
        tenant,
        name: NAME,
    }
}

/// Reads the tenant's request ceiling (draft); 404 when it has none.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/rate-limit",
    params(("tenant" = String, Path, description = "Tenant")),
    responses((status = 200, body = Object<file::Quota>, headers(("ETag" = String, description = "Revision")))),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Response, ApiError> {
    let o = access::read_one(&state, &who, key(&tenant)).await?;
    Ok(with_etag(StatusCode::OK, o.revision, response(&o)?))
}

/// Sets the tenant's request ceiling (platform admins only): `requests` per
/// `per` (1s to 1d) with `burst` (default `requests`), for all its traffic.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/rate-limit", request_body = file::Quota,
    params(
        ("tenant" = String, Path, description = "Tenant"),
        ("If-Match" = Option<String>, Header, description = "Revision the change is based on"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only create"),
    ),
    responses(
        (status = 200, body = Object<file::Quota>, description = "Replaced"),
        (status = 201, body = Object<file::Quota>, description = "Created"),
        (status = 403, body = ErrorBody), (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(tenant): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(quota): ApiJson<file::Quota>,
) -> Result<Response, ApiError> {
    access::authorize_write(&state, &who, &meta, Kind::RateCeiling, &tenant, NAME, "put").await?;
    check_alone(
        &state,
        &tenant,
        |cfg| cfg.tenants[0].rate_limit = Some(quota.clone()),
        "tenants[0].rate_limit.",
    )
    .await?;
    let target = format!("tenants/{tenant}/rate-limit");
    let (stored, created) = access::audited(
        &state,
        &who,
        &meta,
        "rate_limit.put",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            objects::require_tenant(&mut tx, &tenant).await?;
            let write = Write {
                kind: Kind::RateCeiling,
                tenant: &tenant,
                name: NAME,
                spec: serde_json::to_value(&quota).map_err(|e| ApiError::Internal(e.into()))?,
                status: None,
            };
            let out =
                objects::put(&mut tx, &who, &meta, &headers, write, objects::no_secrets).await?;
            tx.commit().await?;
            Ok(out)
        },
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, stored.revision, response(&stored)?))
}

/// Removes the tenant's request ceiling (platform admins only).
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/rate-limit",
    params(
        ("tenant" = String, Path, description = "Tenant"),
        ("If-Match" = Option<String>, Header, description = "Revision the deletion is based on"),
    ),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])), tag = "tenants"
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(tenant): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    who.read(&tenant, || "rate limit".to_string())?;
    access::authorize_write(
        &state,
        &who,
        &meta,
        Kind::RateCeiling,
        &tenant,
        NAME,
        "delete",
    )
    .await?;
    let target = format!("tenants/{tenant}/rate-limit");
    access::audited(
        &state,
        &who,
        &meta,
        "rate_limit.delete",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            objects::delete(
                &mut tx,
                &who,
                &meta,
                &headers,
                key(&tenant),
                objects::no_secrets,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
