//! `/v1/tenants/{tenant}/pools`: upstream pools and their targets. Each write
//! is checked by the proxy's own validation on a one-pool config, so a bad
//! target fails here with its field path, not at publish time.
//! Imports `release`, `draft`, `model` and `infra`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::object::{with_etag, Object};
use crate::draft::objects::{self, Kind, Stored, Write};
use crate::draft::{access, references};
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::infra::names;
use crate::infra::net::TargetPolicy;
use crate::infra::state::AppState;
use crate::model::pool::PoolSpec;
use crate::release::validate::check_alone;

/// The pools' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, put, delete))
}

/// Refuses targets that are, or now resolve to, addresses the platform's
/// target policy refuses: early feedback, since nodes check every address
/// they resolve. A name that does not resolve (yet) is accepted: it is down
/// until it does.
async fn check_public_targets(
    policy: &TargetPolicy,
    targets: &[file::Target],
) -> Result<(), ApiError> {
    for (i, t) in targets.iter().enumerate() {
        let Ok(addrs) = tokio::net::lookup_host(t.addr.as_str()).await else {
            continue;
        };
        for a in addrs {
            if policy.refuses(a.ip()) {
                return Err(ApiError::invalid(
                    format!("targets[{i}].addr"),
                    format!(
                        "{} is (or resolves to) {}, an address tenants' pools may not reach",
                        t.addr,
                        a.ip()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A list of pools.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolList {
    /// Pools by name.
    pub pools: Vec<Object<PoolSpec>>,
}

fn response(o: &Stored) -> Result<Object<PoolSpec>, ApiError> {
    Ok(Object::new(o, o.spec()?))
}

/// Lists a tenant's pools (draft).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/pools",
    params(("tenant" = String, Path, description = "Tenant")),
    responses((status = 200, body = PoolList)),
    security(("bearer" = [])), tag = "pools"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<PoolList>, ApiError> {
    let pools = access::read_all(&state, &who, &tenant, Kind::Pool, None)
        .await?
        .iter()
        .map(response)
        .collect::<Result<_, _>>()?;
    Ok(Json(PoolList { pools }))
}

/// Reads a pool (draft).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/pools/{name}",
    params(("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Pool", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = Object<PoolSpec>, headers(("ETag" = String, description = "Revision")))),
    security(("bearer" = [])), tag = "pools"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = objects::Key {
        kind: Kind::Pool,
        tenant: &tenant,
        name: &name,
    };
    let o = access::read_one(&state, &who, key).await?;
    Ok(with_etag(StatusCode::OK, o.revision, response(&o)?))
}

/// Creates or replaces a pool (operator and up). `If-Match` guards against
/// lost updates; `If-None-Match: *` makes it create-only.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/pools/{name}", request_body = PoolSpec,
    params(
        ("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Pool", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the change is based on"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only create"),
    ),
    responses(
        (status = 200, body = Object<PoolSpec>, description = "Replaced"),
        (status = 201, body = Object<PoolSpec>, description = "Created"),
        (status = 403, body = ErrorBody), (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "pools"
)]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<PoolSpec>,
) -> Result<Response, ApiError> {
    access::authorize_write(&state, &who, &meta, Kind::Pool, &tenant, &name, "put").await?;
    names::check("name", &name)?;
    check_alone(
        &state,
        &tenant,
        |cfg| cfg.pools.push(spec.render(&tenant, &name)),
        "pools[0].",
    )
    .await?;
    check_public_targets(&state.target_policy, &spec.targets).await?;
    let target = format!("tenants/{tenant}/pools/{name}");
    let (stored, created) =
        access::audited(&state, &who, &meta, "pool.put", &tenant, target, async {
            let mut tx = state.store.begin_write().await?;
            objects::require_tenant(&mut tx, &tenant).await?;
            let write = Write {
                kind: Kind::Pool,
                tenant: &tenant,
                name: &name,
                spec: serde_json::to_value(&spec).map_err(|e| ApiError::Internal(e.into()))?,
                status: None,
            };
            let out =
                objects::put(&mut tx, &who, &meta, &headers, write, objects::no_secrets).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, stored.revision, response(&stored)?))
}

/// Deletes a pool (operator and up); refused while a route forwards to it.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/pools/{name}",
    params(
        ("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Pool", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the deletion is based on"),
    ),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])), tag = "pools"
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    who.read(&tenant, || format!("pool {name}"))?;
    access::authorize_write(&state, &who, &meta, Kind::Pool, &tenant, &name, "delete").await?;
    let target = format!("tenants/{tenant}/pools/{name}");
    access::audited(&state, &who, &meta, "pool.delete", &tenant, target, async {
        let mut tx = state.store.begin_write().await?;
        let users: Vec<String> = objects::list(&mut tx, &tenant, Kind::Route, None)
            .await?
            .into_iter()
            .filter(|r| r.spec.get("pool").and_then(|p| p.as_str()) == Some(name.as_str()))
            .map(|r| format!("route {}", r.name))
            .collect();
        if !users.is_empty() {
            return Err(references::in_use(&format!("pool {name}"), &users));
        }
        objects::delete(
            &mut tx,
            &who,
            &meta,
            &headers,
            objects::Key {
                kind: Kind::Pool,
                tenant: &tenant,
                name: &name,
            },
            objects::no_secrets,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
