//! `/v1/tenants/{tenant}/certificates`: uploaded chains and keys. The key is
//! sealed before it reaches the store, bound to the certificate's tenant and
//! name, and no response or audit event ever contains it; domains using a
//! certificate must stay covered by its names. Imports `draft`, `model`, `infra`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::object::{with_etag, Object};
use crate::draft::access;
use crate::draft::objects::{self, certificate_public, Kind, Stored, Write};
use crate::draft::references::{self, certificate_users};
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::duration;
use crate::infra::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::infra::names;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::model::certificate::{
    covers, inspect, seal_context, CertificateInfo, CertificateUpload, StoredCertificate,
};

/// The certificates' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, put, delete))
}

/// A list of certificates.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CertificateList {
    /// Certificates by name.
    pub certificates: Vec<Object<CertificateInfo>>,
}

/// Filters of the certificate list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CertificateQuery {
    /// Only certificates that expire within this duration (`30d`, `12h`).
    #[param(pattern = r"^[0-9]{1,6}(s|m|h|d|w)$")]
    pub expiring_within: Option<String>,
}

fn response(o: &Stored) -> Result<Object<CertificateInfo>, ApiError> {
    let stored: StoredCertificate = o.spec()?;
    Ok(Object::new(o, stored.info))
}

/// Lists a tenant's certificates, optionally only those expiring soon.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/certificates",
    params(("tenant" = String, Path, description = "Tenant"), CertificateQuery),
    responses((status = 200, body = CertificateList)),
    security(("bearer" = [])), tag = "certificates"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(query): ApiQuery<CertificateQuery>,
) -> Result<Json<CertificateList>, ApiError> {
    who.read(&tenant, || format!("tenant {tenant}"))?;
    let horizon = match &query.expiring_within {
        Some(text) => {
            let d: Duration =
                duration::parse(text, &["s", "m", "h", "d", "w"]).ok_or_else(|| {
                    ApiError::Invalid {
                        code: "invalid_query",
                        message: "expected a number and a unit (s, m, h, d, w), like 30d".into(),
                        field: Some("expiring_within".into()),
                    }
                })?;
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            Some(now_ms().saturating_add(ms))
        }
        None => None,
    };
    let mut certificates = Vec::new();
    for o in access::read_all(&state, &who, &tenant, Kind::Certificate, None).await? {
        let r = response(&o)?;
        if horizon.is_none_or(|h| r.spec.not_after_ms <= h) {
            certificates.push(r);
        }
    }
    Ok(Json(CertificateList { certificates }))
}

/// Reads a certificate (its public part).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/certificates/{name}",
    params(("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Certificate", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = Object<CertificateInfo>, headers(("ETag" = String, description = "Revision")))),
    security(("bearer" = [])), tag = "certificates"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = objects::Key {
        kind: Kind::Certificate,
        tenant: &tenant,
        name: &name,
    };
    let o = access::read_one(&state, &who, key).await?;
    Ok(with_etag(StatusCode::OK, o.revision, response(&o)?))
}

/// Uploads or replaces a certificate (tenant admin and up). A replacement must
/// still cover every domain that uses it.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/certificates/{name}", request_body = CertificateUpload,
    params(
        ("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Certificate", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the change is based on"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only create"),
    ),
    responses(
        (status = 200, body = Object<CertificateInfo>, description = "Replaced"),
        (status = 201, body = Object<CertificateInfo>, description = "Created"),
        (status = 403, body = ErrorBody), (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "certificates"
)]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(upload): ApiJson<CertificateUpload>,
) -> Result<Response, ApiError> {
    access::authorize_write(
        &state,
        &who,
        &meta,
        Kind::Certificate,
        &tenant,
        &name,
        "put",
    )
    .await?;
    names::check("name", &name)?;
    let info = inspect(&upload, now_ms())?;
    let stored = StoredCertificate {
        key_sealed: state
            .keys
            .seal(upload.key_pem.as_bytes(), &seal_context(&tenant, &name)),
        info,
    };
    let target = format!("tenants/{tenant}/certificates/{name}");
    let (o, created) = access::audited(
        &state,
        &who,
        &meta,
        "certificate.put",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            objects::require_tenant(&mut tx, &tenant).await?;
            for host in certificate_users(&mut tx, &tenant, &name).await? {
                if !covers(&stored.info.names, &host) {
                    return Err(ApiError::invalid(
                        "cert_pem",
                        format!("domain {host} uses this certificate and is not covered by it"),
                    ));
                }
            }
            let write = Write {
                kind: Kind::Certificate,
                tenant: &tenant,
                name: &name,
                spec: serde_json::to_value(&stored).map_err(|e| ApiError::Internal(e.into()))?,
                status: None,
            };
            let out =
                objects::put(&mut tx, &who, &meta, &headers, write, certificate_public).await?;
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
    Ok(with_etag(status, o.revision, response(&o)?))
}

/// Deletes a certificate (tenant admin and up); refused while a domain uses it.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/certificates/{name}",
    params(
        ("tenant" = String, Path, description = "Tenant"), ("name" = String, Path, description = "Certificate", pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"),
        ("If-Match" = Option<String>, Header, description = "Revision the deletion is based on"),
    ),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])), tag = "certificates"
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    who.read(&tenant, || format!("certificate {name}"))?;
    access::authorize_write(
        &state,
        &who,
        &meta,
        Kind::Certificate,
        &tenant,
        &name,
        "delete",
    )
    .await?;
    let target = format!("tenants/{tenant}/certificates/{name}");
    access::audited(
        &state,
        &who,
        &meta,
        "certificate.delete",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            let using = certificate_users(&mut tx, &tenant, &name).await?;
            if !using.is_empty() {
                let using: Vec<String> = using.into_iter().map(|d| format!("domain {d}")).collect();
                return Err(references::in_use(&format!("certificate {name}"), &using));
            }
            objects::delete(
                &mut tx,
                &who,
                &meta,
                &headers,
                objects::Key {
                    kind: Kind::Certificate,
                    tenant: &tenant,
                    name: &name,
                },
                certificate_public,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
