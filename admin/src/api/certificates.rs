//! `/v1/tenants/{tenant}/certificates`: uploaded certificate chains and keys.
//!
//! An upload is accepted only if the chain parses, the key matches the leaf
//! (checked by the proxy's own loader), the leaf is valid now, and it names at
//! least one DNS name. Domains that use a certificate must be covered by its
//! names, checked when either side changes. The private key is sealed
//! (`secrets`) before it reaches the store, bound to the certificate's tenant
//! and name, and no API response or audit event ever contains it.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Principal, RequestMeta};
use crate::domains::StoredDomain;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::objects::{self, Kind, Object, Stored, Write};
use crate::store::now_ms;
use crate::{names, AppState};

/// Body of a certificate upload.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// PEM certificate chain, leaf first.
    pub cert_pem: String,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1). Never returned.
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateUpload")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// What the API shows of a certificate (never its key).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificateInfo {
    /// DNS names of the leaf (subject alternative names).
    pub names: Vec<String>,
    /// Leaf subject.
    pub subject: String,
    /// Leaf issuer.
    pub issuer: String,
    /// Start of validity (Unix milliseconds).
    pub not_before_ms: i64,
    /// End of validity (Unix milliseconds).
    pub not_after_ms: i64,
    /// SHA-256 of the leaf (DER), hex.
    pub fingerprint_sha256: String,
    /// Certificates in the chain, leaf included.
    pub chain_length: usize,
    /// The PEM chain (public).
    pub cert_pem: String,
}

/// What is stored: the public part and the sealed key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCertificate {
    /// Public information and chain.
    #[serde(flatten)]
    pub info: CertificateInfo,
    /// The private key, sealed (`gh1.<key id>.<hex>`).
    pub key_sealed: String,
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

/// The associated data binding a sealed key to its certificate.
pub fn seal_context(tenant: &str, name: &str) -> String {
    format!("certificate/{tenant}/{name}")
}

fn response(o: &Stored) -> Result<Object<CertificateInfo>, ApiError> {
    let stored: StoredCertificate = o.spec()?;
    Ok(Object::new(o, stored.info))
}

/// Audit view: the public part only.
pub(crate) fn redact(o: &Stored) -> serde_json::Value {
    let mut v = o.spec.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("key_sealed");
        map.remove("cert_pem");
    }
    v
}

/// Checks an upload and describes its leaf.
pub fn inspect(upload: &CertificateUpload, now_ms: i64) -> Result<CertificateInfo, ApiError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(upload.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::invalid("cert_pem", format!("invalid PEM certificate: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| ApiError::invalid("cert_pem", "no PEM certificate found"))?;
    gatehouse_proxy::tls::certified_key_from_pem(
        upload.cert_pem.as_bytes(),
        upload.key_pem.as_bytes(),
    )
    .map_err(|e| ApiError::invalid("key_pem", e))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| ApiError::invalid("cert_pem", format!("invalid certificate: {e}")))?;
    let not_before_ms = cert.validity().not_before.timestamp() * 1000;
    let not_after_ms = cert.validity().not_after.timestamp() * 1000;
    if not_after_ms <= now_ms {
        return Err(ApiError::invalid("cert_pem", "the certificate has expired"));
    }
    if not_before_ms > now_ms {
        return Err(ApiError::invalid(
            "cert_pem",
            "the certificate is not valid yet",
        ));
    }
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        return Err(ApiError::invalid(
            "cert_pem",
            "the certificate names no DNS name (subject alternative names)",
        ));
    }
    Ok(CertificateInfo {
        names,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before_ms,
        not_after_ms,
        fingerprint_sha256: hex(ring::digest::digest(&ring::digest::SHA256, leaf).as_ref()),
        chain_length: chain.len(),
        cert_pem: upload.cert_pem.clone(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether certificate `names` cover `host`: equal, or a `*.` name covering
/// exactly one more label. A wildcard host needs the same wildcard.
pub fn covers(names: &[String], host: &str) -> bool {
    names.iter().any(|n| {
        n == host
            || (!host.starts_with("*.")
                && n.strip_prefix("*.").is_some_and(|suffix| {
                    host.split_once('.')
                        .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
                }))
    })
}

/// Requires certificate `cert` of `tenant` to exist and cover `host`.
pub async fn check_covers(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    cert: &str,
    host: &str,
) -> Result<(), ApiError> {
    let o = objects::load(conn, tenant, Kind::Certificate, cert)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "certificate",
                format!("no certificate {cert:?} in this tenant"),
            )
        })?;
    let stored: StoredCertificate = o.spec()?;
    if covers(&stored.info.names, host) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "certificate",
            format!(
                "certificate {cert:?} does not cover {host} (it names {})",
                stored.info.names.join(", ")
            ),
        ))
    }
}

/// The domains of `tenant` that use certificate `cert`.
async fn users(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    cert: &str,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for d in objects::list(conn, tenant, Kind::Domain, None).await? {
        if d.spec::<StoredDomain>()?.spec.certificate.as_deref() == Some(cert) {
            out.push(d.name);
        }
    }
    Ok(out)
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
    let horizon =
        match &query.expiring_within {
            Some(text) => {
                let d: Duration = crate::duration::parse(text, &["s", "m", "h", "d", "w"])
                    .ok_or_else(|| ApiError::Invalid {
                        code: "invalid_query",
                        message: "expected a number and a unit (s, m, h, d, w), like 30d".into(),
                        field: Some("expiring_within".into()),
                    })?;
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                Some(now_ms().saturating_add(ms))
            }
            None => None,
        };
    let mut certificates = Vec::new();
    for o in objects::read_all(&state, &who, &tenant, Kind::Certificate, None).await? {
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
    let o = objects::read_one(&state, &who, key).await?;
    Ok(objects::with_etag(
        StatusCode::OK,
        o.revision,
        response(&o)?,
    ))
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
    objects::authorize_write(
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
    let (o, created) = objects::audited(
        &state,
        &who,
        &meta,
        "certificate.put",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            objects::require_tenant(&mut tx, &tenant).await?;
            for host in users(&mut tx, &tenant, &name).await? {
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
            let out = objects::put(&mut tx, &who, &meta, &headers, write, redact).await?;
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
    Ok(objects::with_etag(status, o.revision, response(&o)?))
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
    objects::authorize_write(
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
    objects::audited(
        &state,
        &who,
        &meta,
        "certificate.delete",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            let using = users(&mut tx, &tenant, &name).await?;
            if !using.is_empty() {
                let using: Vec<String> = using.into_iter().map(|d| format!("domain {d}")).collect();
                return Err(objects::in_use(&format!("certificate {name}"), &using));
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
                redact,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_exactly_one_label() {
        let names = vec!["*.example.com".to_string(), "example.com".to_string()];
        assert!(covers(&names, "example.com"));
        assert!(covers(&names, "www.example.com"));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "example.org"));
        assert!(covers(&names, "*.example.com"));
        assert!(!covers(&["www.example.com".to_string()], "*.example.com"));
    }
}
