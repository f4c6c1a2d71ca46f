//! `/v1/tenants/{tenant}/domains/{host}/routes`: a domain's routes, each an
//! object of its own so that automation can own one route without rewriting
//! the domain (routes match by longest path, so their order does not matter).
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

use crate::api::domains::existing;
use crate::api::object::{with_etag, Object};
use crate::draft::access;
use crate::draft::objects::{self, Kind, Stored, Write};
use crate::draft::references::check_plugin_refs;
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::infra::names;
use crate::infra::state::AppState;
use crate::model::domain;
use crate::model::route::RouteSpec;
use crate::release::validate::check_alone;

/// The routes' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, put, delete))
}

/// A list of routes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RouteList {
    /// The domain's routes by name.
    pub routes: Vec<Object<RouteSpec>>,
}

/// Routes are stored as `<host>/<route>`; the API shows the route's own name.
fn response(o: &Stored) -> Result<Object<RouteSpec>, ApiError> {
    let mut out = Object::new(o, o.spec()?);
    if let Some((_, route)) = o.name.split_once('/') {
        out.name = route.to_string();
    }
    Ok(out)
}

fn canonical(host: &str) -> Result<String, ApiError> {
    existing(host)
}

/// Lists a domain's routes.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/domains/{host}/routes",
    params(("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, body = RouteList)),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
) -> Result<Json<RouteList>, ApiError> {
    who.read(&tenant, || format!("domain {host}"))?;
    let host = canonical(&host)?;
    let mut conn = state.store.pool().acquire().await?;
    if !objects::exists(&mut conn, &tenant, Kind::Domain, &host).await? {
        return Err(ApiError::NotFound(format!("domain {host}")));
    }
    let routes = objects::list(&mut conn, &tenant, Kind::Route, Some(&format!("{host}/")))
        .await?
        .iter()
        .map(response)
        .collect::<Result<_, _>>()?;
    Ok(Json(RouteList { routes }))
}

/// Reads a route.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/domains/{host}/routes/{route}",
    params(
        ("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("route" = String, Path, description = "Route", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
    ),
    responses((status = 200, body = Object<RouteSpec>, headers(("ETag" = String, description = "Revision")))),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, host, route)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    who.read(&tenant, || format!("route {route}"))?;
    let host = canonical(&host)?;
    let name = format!("{host}/{route}");
    let key = objects::Key {
        kind: Kind::Route,
        tenant: &tenant,
        name: &name,
    };
    let o = access::read_one(&state, &who, key).await?;
    Ok(with_etag(StatusCode::OK, o.revision, response(&o)?))
}

/// Creates or replaces a route (operator and up). Its pool and plugins must
/// exist in the tenant's draft.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/domains/{host}/routes/{route}", request_body = RouteSpec,
    params(
        ("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("route" = String, Path, description = "Route", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the change is based on"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only create"),
    ),
    responses(
        (status = 200, body = Object<RouteSpec>, description = "Replaced"),
        (status = 201, body = Object<RouteSpec>, description = "Created"),
        (status = 403, body = ErrorBody), (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, host, route)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<RouteSpec>,
) -> Result<Response, ApiError> {
    access::authorize_write(&state, &who, &meta, Kind::Route, &tenant, &route, "put").await?;
    let host = canonical(&host)?;
    names::check("route", &route)?;
    let check_spec = spec.clone();
    let check_tenant = tenant.clone();
    check_alone(
        &state,
        &tenant,
        move |cfg| {
            // References are checked against the draft below: stand-ins here.
            let mut r = check_spec.render(&check_tenant);
            r.pool = r.pool.map(|_| "x".to_string());
            r.plugins.iter_mut().for_each(|b| b.plugin = "x".into());
            cfg.pools.push(file::Pool {
                name: "x".into(),
                tenant: check_tenant.clone(),
                targets: vec![file::Target {
                    addr: "127.0.0.1:1".into(),
                    weight: None,
                }],
                algorithm: Default::default(),
                hash_key: None,
                tls: None,
                http2: false,
                host_header: None,
                timeouts: Default::default(),
                retries: None,
                health_check: Default::default(),
                published: false,
            });
            cfg.plugins.push(file::Plugin {
                name: "x".into(),
                tenant: check_tenant.clone(),
                path: "x.wasm".into(),
                sha256: None,
            });
            let mut d = domain::render(
                &check_tenant,
                "check.invalid",
                &Default::default(),
                Vec::new(),
            );
            d.routes.push(r);
            cfg.domains.push(d);
        },
        "domains[0].routes[0].",
    )
    .await?;
    let name = format!("{host}/{route}");
    let target = format!("tenants/{tenant}/routes/{name}");
    let (stored, created) =
        access::audited(&state, &who, &meta, "route.put", &tenant, target, async {
            let mut tx = state.store.begin_write().await?;
            if !objects::exists(&mut tx, &tenant, Kind::Domain, &host).await? {
                return Err(ApiError::NotFound(format!("domain {host}")));
            }
            if let Some(pool) = &spec.pool {
                if !objects::exists(&mut tx, &tenant, Kind::Pool, pool).await? {
                    return Err(ApiError::invalid(
                        "pool",
                        format!("no pool {pool:?} in this tenant"),
                    ));
                }
            }
            check_plugin_refs(&mut tx, &tenant, &spec.plugins).await?;
            let write = Write {
                kind: Kind::Route,
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

/// Deletes a route (operator and up).
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/domains/{host}/routes/{route}",
    params(
        ("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("route" = String, Path, description = "Route", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the deletion is based on"),
    ),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, host, route)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    who.read(&tenant, || format!("route {route}"))?;
    access::authorize_write(&state, &who, &meta, Kind::Route, &tenant, &route, "delete").await?;
    let host = canonical(&host)?;
    let name = format!("{host}/{route}");
    let target = format!("tenants/{tenant}/routes/{name}");
    access::audited(
        &state,
        &who,
        &meta,
        "route.delete",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            objects::delete(
                &mut tx,
                &who,
                &meta,
                &headers,
                objects::Key {
                    kind: Kind::Route,
                    tenant: &tenant,
                    name: &name,
                },
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
