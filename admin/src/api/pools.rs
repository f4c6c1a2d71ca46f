//! `/v1/tenants/{tenant}/pools`: upstream pools and their targets.
//!
//! A pool's spec is the config file's pool without `name` and `tenant` (they
//! come from the path) and without file paths (a CA bundle would have to exist
//! on every node). Each write is checked by the very validation the proxy
//! runs, on a one-pool config, so a bad target fails here with its field path
//! and not at publish time.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Principal, RequestMeta};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::objects::{self, Kind, Object, Stored, Write};
use crate::{names, publish, AppState};

/// TLS towards a pool's targets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolTls {
    /// SNI and verified name (default: the target's host part).
    pub sni: Option<String>,
    /// Verify the upstream certificate chain and name against the system roots (default true).
    pub verify: Option<bool>,
}

/// An upstream pool.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Upstream servers (`ip:port` or `hostname:port`), at least one.
    pub targets: Vec<file::Target>,
    /// Load-balancing algorithm (default `round_robin`).
    #[serde(default)]
    pub algorithm: file::Algorithm,
    /// Key for `consistent_hash`: `$client_ip`, `$request_uri`, `$host`, or `header:<name>`.
    pub hash_key: Option<String>,
    /// TLS to the targets (default off).
    pub tls: Option<PoolTls>,
    /// Speak HTTP/2 to the targets.
    #[serde(default)]
    pub http2: bool,
    /// Host header sent upstream (default: the client's).
    pub host_header: Option<String>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: file::Timeouts,
    /// Extra attempts on another target after a connect failure (default 1).
    pub retries: Option<u32>,
    /// Active and passive health checking.
    #[serde(default)]
    pub health_check: file::HealthCheck,
}

impl PoolSpec {
    /// The config file's pool for `tenant`'s pool `name`.
    pub fn render(&self, tenant: &str, name: &str) -> file::Pool {
        file::Pool {
            name: names::qualified(tenant, name),
            tenant: tenant.to_string(),
            targets: self.targets.clone(),
            algorithm: self.algorithm,
            hash_key: self.hash_key.clone(),
            tls: self.tls.as_ref().map(|t| file::UpstreamTls {
                sni: t.sni.clone(),
                verify: t.verify,
                ca_path: None,
            }),
            http2: self.http2,
            host_header: self.host_header.clone(),
            timeouts: self.timeouts.clone(),
            retries: self.retries,
            health_check: self.health_check.clone(),
        }
    }
}

/// Whether `ip` is an address of this machine or its link: loopback (the
/// admin API itself), unspecified, link-local (cloud metadata services at
/// 169.254.169.254), multicast or broadcast. Private networks are not: tenants'
/// upstreams often live there.
pub fn is_internal(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unicast_link_local()
                    || v6.is_multicast()
            }
        },
    }
}

/// Refuses targets that are, or resolve to, internal addresses (see
/// [`is_internal`]): a tenant must not reach the edge's own services.
async fn check_public_targets(targets: &[file::Target]) -> Result<(), ApiError> {
    for (i, t) in targets.iter().enumerate() {
        // Validation already checked the form and that it resolves.
        let addrs = tokio::net::lookup_host(t.addr.as_str())
            .await
            .map_err(|e| ApiError::invalid(format!("targets[{i}].addr"), e.to_string()))?;
        for a in addrs {
            if is_internal(a.ip()) {
                return Err(ApiError::invalid(
                    format!("targets[{i}].addr"),
                    format!(
                        "{} is (or resolves to) {}, an address of the edge itself; targets must be elsewhere",
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
    let pools = objects::read_all(&state, &who, &tenant, Kind::Pool, None)
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
    let o = objects::read_one(&state, &who, key).await?;
    Ok(objects::with_etag(
        StatusCode::OK,
        o.revision,
        response(&o)?,
    ))
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
    objects::authorize_write(&state, &who, &meta, Kind::Pool, &tenant, &name, "put").await?;
    names::check("name", &name)?;
    publish::check_alone(
        &tenant,
        |cfg| cfg.pools.push(spec.render(&tenant, &name)),
        "pools[0].",
    )
    .await?;
    if !state.internal_targets {
        check_public_targets(&spec.targets).await?;
    }
    let target = format!("tenants/{tenant}/pools/{name}");
    let (stored, created) =
        objects::audited(&state, &who, &meta, "pool.put", &tenant, target, async {
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
    Ok(objects::with_etag(
        status,
        stored.revision,
        response(&stored)?,
    ))
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
    objects::authorize_write(&state, &who, &meta, Kind::Pool, &tenant, &name, "delete").await?;
    let target = format!("tenants/{tenant}/pools/{name}");
    objects::audited(&state, &who, &meta, "pool.delete", &tenant, target, async {
        let mut tx = state.store.begin_write().await?;
        let users: Vec<String> = objects::list(&mut tx, &tenant, Kind::Route, None)
            .await?
            .into_iter()
            .filter(|r| r.spec.get("pool").and_then(|p| p.as_str()) == Some(name.as_str()))
            .map(|r| format!("route {}", r.name))
            .collect();
        if !users.is_empty() {
            return Err(objects::in_use(&format!("pool {name}"), &users));
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
