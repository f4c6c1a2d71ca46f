//! `/v1/tenants/{tenant}/plugins`: WebAssembly policy plugins, uploaded as the
//! component itself and checked by the proxy's own loader before anything is
//! stored. Bytes are kept once per SHA-256 in `blobs`, where nodes fetch them.
//! Imports `draft`, `model` and `infra`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::api::object::{with_etag, Object};
use crate::draft::access;
use crate::draft::objects::{self, Kind, Stored, Write};
use crate::draft::references::{self, plugin_users};
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::{ApiError, ApiPath, ErrorBody};
use crate::infra::names;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::model::plugin::PluginInfo;

/// The plugins' routes; uploads have a body limit of their own.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, delete))
        .routes(routes!(put).layer(upload_limit()))
}

/// Largest plugin upload accepted (the proxy's own cap).
const MAX_UPLOAD_BYTES: usize = gatehouse_plugin_host::MAX_PLUGIN_BYTES as usize;

/// The body limit layer for the upload route.
fn upload_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_UPLOAD_BYTES)
}

/// A list of plugins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    /// Plugins by name.
    pub plugins: Vec<Object<PluginInfo>>,
}

fn response(o: &Stored) -> Result<Object<PluginInfo>, ApiError> {
    Ok(Object::new(o, o.spec()?))
}

/// Lists a tenant's plugins.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/plugins",
    params(("tenant" = String, Path, description = "Tenant")),
    responses((status = 200, body = PluginList)),
    security(("bearer" = [])), tag = "plugins"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<PluginList>, ApiError> {
    let plugins = access::read_all(&state, &who, &tenant, Kind::Plugin, None)
        .await?
        .iter()
        .map(response)
        .collect::<Result<_, _>>()?;
    Ok(Json(PluginList { plugins }))
}

/// Reads a plugin's description.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/plugins/{name}",
    params(("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Plugin", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = Object<PluginInfo>, headers(("ETag" = String, description = "Revision")))),
    security(("bearer" = [])), tag = "plugins"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = objects::Key {
        kind: Kind::Plugin,
        tenant: &tenant,
        name: &name,
    };
    let o = access::read_one(&state, &who, key).await?;
    Ok(with_etag(StatusCode::OK, o.revision, response(&o)?))
}

/// Uploads or replaces a plugin (tenant admin and up): the body is the
/// component (`application/wasm`), validated as the proxy would load it.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/plugins/{name}",
    request_body(description = "The component", content(
        (Vec<u8> = "application/wasm"), (Vec<u8> = "application/octet-stream"),
    )),
    params(
        ("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Plugin", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the change is based on"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only create"),
    ),
    responses(
        (status = 200, body = Object<PluginInfo>, description = "Replaced"),
        (status = 201, body = Object<PluginInfo>, description = "Created"),
        (status = 403, body = ErrorBody), (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "plugins"
)]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    access::authorize_write(&state, &who, &meta, Kind::Plugin, &tenant, &name, "put").await?;
    names::check("name", &name)?;
    let is_wasm = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let media = v.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("application/wasm")
                || media.eq_ignore_ascii_case("application/octet-stream")
        });
    if !is_wasm {
        return Err(ApiError::Invalid {
            code: "unsupported_media_type",
            message: "upload the component itself with Content-Type: application/wasm (or application/octet-stream)".into(),
            field: None,
        });
    }
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::invalid("body", e.body_text())
        }
    })?;
    let check = bytes.clone();
    let inspection =
        tokio::task::spawn_blocking(move || gatehouse_plugin_host::inspect_bytes(&check))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| ApiError::invalid("body", format!("not a loadable plugin: {e}")))?;
    let info = PluginInfo {
        sha256: inspection.sha256,
        size: inspection.size,
        version: inspection.version,
        imports: inspection.imports,
        exports: inspection.exports,
    };
    let target = format!("tenants/{tenant}/plugins/{name}");
    let (o, created) = access::audited(&state, &who, &meta, "plugin.put", &tenant, target, async {
        let mut tx = state.store.begin_write().await?;
        objects::require_tenant(&mut tx, &tenant).await?;
        let size = info.size as u64;
        let after =
            crate::draft::blobs::tenant_usage_with(&mut tx, &tenant, &name, &info.sha256, size)
                .await?;
        let quota = state.plugin_storage_bytes;
        if after > quota {
            return Err(ApiError::Conflict {
                message: format!(
                    "plugin storage quota: with this component ({size} bytes) the tenant's plugins would use {after} of {quota} bytes"
                ),
                field: Some("body".into()),
            });
        }
        // Claims a stored copy (unmarking it for collection, and waiting for
        // a collection deleting it right now), or stores the bytes.
        let known = sqlx::query("UPDATE blobs SET unreferenced_since_ms = NULL WHERE sha256 = $1")
            .bind(&info.sha256)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if !known {
            sqlx::query(
                "INSERT INTO blobs (sha256, bytes, size, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(&info.sha256)
            .bind(bytes.to_vec())
            .bind(info.size as i64)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        let write = Write {
            kind: Kind::Plugin,
            tenant: &tenant,
            name: &name,
            spec: serde_json::to_value(&info).map_err(|e| ApiError::Internal(e.into()))?,
            status: None,
        };
        let out = objects::put(&mut tx, &who, &meta, &headers, write, objects::no_secrets).await?;
        tx.commit().await?;
        Ok(out)
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, o.revision, response(&o)?))
}

/// Deletes a plugin (tenant admin and up); refused while a domain or route binds it.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/plugins/{name}",
    params(
        ("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Plugin", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the deletion is based on"),
    ),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])), tag = "plugins"
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    who.read(&tenant, || format!("plugin {name}"))?;
    access::authorize_write(&state, &who, &meta, Kind::Plugin, &tenant, &name, "delete").await?;
    let target = format!("tenants/{tenant}/plugins/{name}");
    access::audited(
        &state,
        &who,
        &meta,
        "plugin.delete",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            let using = plugin_users(&mut tx, &tenant, &name).await?;
            if !using.is_empty() {
                return Err(references::in_use(&format!("plugin {name}"), &using));
            }
            objects::delete(
                &mut tx,
                &who,
                &meta,
                &headers,
                objects::Key {
                    kind: Kind::Plugin,
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
