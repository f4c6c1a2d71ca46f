//! `POST /v1/tenants/{tenant}/domains/{host}/acme`: a certificate for a
//! verified domain from the platform's ACME CA, on demand.
//!
//! The order runs while the request waits: the platform account (created
//! on first use, its credentials sealed in the store), HTTP-01 challenges
//! published to every node ([`crate::challenges`]) and declared ready only
//! once every live node serves them, validation, issuance with a fresh key.
//! The chain and the sealed key become the tenant's certificate
//! `acme-<host>` and the domain uses it; when the domain is published
//! already, exactly those two objects are published on top of the latest
//! version (the rest of the tenant's draft stays a draft), so nodes serve
//! the certificate within a second. Scheduled renewal and a per-domain
//! lifecycle are not here yet.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::acme;
use crate::audit::{self, Event};
use crate::auth::{Principal, RequestMeta};
use crate::certificates::{self, CertificateInfo, CertificateUpload, StoredCertificate};
use crate::challenges::{self, Challenge};
use crate::domains::StoredDomain;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::objects::{self, Kind, Write};
use crate::store::now_ms;
use crate::AppState;

/// How long every node has to start serving the challenges.
const NODES_TIMEOUT: Duration = Duration::from_secs(30);

/// The certificate an order produced.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcmeIssued {
    /// The tenant's certificate object now holding it (and used by the domain).
    pub certificate: String,
    pub info: CertificateInfo,
    /// The version that deployed it (the domain was published already), or
    /// none: it goes live with the tenant's next publish.
    pub published_version: Option<i64>,
}

/// The certificate object's name for `host`: `acme-` and the host with dots
/// as dashes, cut to the 63 characters names may have.
fn certificate_name(host: &str) -> String {
    let mut name = format!("acme-{}", host.replace('.', "-"));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// The platform's account for `settings`, created on first use.
async fn account(
    state: &AppState,
    settings: &acme::Settings,
) -> Result<instant_acme::Account, ApiError> {
    let context = format!("acme-account:{}", settings.directory_url);
    let stored: Option<String> =
        sqlx::query("SELECT credentials_sealed FROM acme_accounts WHERE directory_url = $1")
            .bind(&settings.directory_url)
            .fetch_optional(state.store.pool())
            .await?
            .map(|r| r.try_get("credentials_sealed"))
            .transpose()?;
    if let Some(sealed) = stored {
        let json = state
            .keys
            .open(&sealed, &context)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("opening the ACME account: {e}")))?;
        let json = String::from_utf8(json)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("the ACME account: {e}")))?;
        let (account, _) = acme::account(settings, Some(&json))
            .await
            .map_err(upstream)?;
        return Ok(account);
    }
    let (account, json) = acme::account(settings, None).await.map_err(upstream)?;
    let sealed = state.keys.seal(json.as_bytes(), &context);
    sqlx::query(
        "INSERT INTO acme_accounts (directory_url, credentials_sealed, created_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (directory_url) DO NOTHING",
    )
    .bind(&settings.directory_url)
    .bind(sealed)
    .bind(now_ms())
    .execute(state.store.pool())
    .await?;
    Ok(account)
}

/// An ACME failure as the API shows it: the CA's own words.
fn upstream(e: acme::AcmeError) -> ApiError {
    match e {
        acme::AcmeError::Rejected { detail } => ApiError::Conflict {
            message: format!("the ACME server refused: {detail}"),
            field: None,
        },
        other => ApiError::Conflict {
            message: other.to_string(),
            field: None,
        },
    }
}

/// Orders a certificate for a verified domain from the platform's ACME CA
/// (tenant admin and up) and makes the domain use it in the draft; publish
/// to deploy it. 409 with the CA's reason when validation or issuance fails.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/domains/{host}/acme",
    params(("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses(
        (status = 200, body = AcmeIssued),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "acme"
)]
pub async fn order(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    objects::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "acme").await?;
    let host = crate::hostname::canonical(&host).map_err(|m| ApiError::invalid("host", m))?;
    let Some(settings) = state.acme.clone() else {
        return Err(ApiError::Conflict {
            message: "no ACME CA is configured on this admin (gatehouse admin --acme-directory)"
                .into(),
            field: None,
        });
    };
    let domain = {
        let mut conn = state.store.pool().acquire().await?;
        objects::load(&mut conn, &tenant, Kind::Domain, &host)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("domain {host}")))?
    };
    if domain.status.as_deref() != Some("active") {
        return Err(ApiError::Conflict {
            message: format!("verify ownership of {host} first (POST …/verify)"),
            field: None,
        });
    }
    if host.starts_with("*.") {
        return Err(ApiError::Conflict {
            message: "a wildcard needs DNS-01, which is not offered yet".into(),
            field: None,
        });
    }
    let issued = run_order(&state, &settings, &host).await?;

    // The chain and sealed key as the tenant's certificate; the domain uses it.
    let name = certificate_name(&host);
    let upload = CertificateUpload {
        cert_pem: issued.chain_pem,
        key_pem: issued.key_pem,
    };
    let info = certificates::inspect(&upload, now_ms())?;
    let stored = StoredCertificate {
        key_sealed: state.keys.seal(
            upload.key_pem.as_bytes(),
            &certificates::seal_context(&tenant, &name),
        ),
        info: info.clone(),
    };
    let no_preconditions = HeaderMap::new();
    let mut tx = state.store.begin_write().await?;
    objects::put(
        &mut tx,
        &who,
        &meta,
        &no_preconditions,
        Write {
            kind: Kind::Certificate,
            tenant: &tenant,
            name: &name,
            spec: serde_json::to_value(&stored).map_err(|e| ApiError::Internal(e.into()))?,
            status: None,
        },
        certificates::redact,
    )
    .await?;
    let current = objects::load(&mut tx, &tenant, Kind::Domain, &host)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("domain {host}")))?;
    let mut domain: StoredDomain = current.spec()?;
    domain.spec.certificate = Some(name.clone());
    objects::put(
        &mut tx,
        &who,
        &meta,
        &no_preconditions,
        Write {
            kind: Kind::Domain,
            tenant: &tenant,
            name: &host,
            spec: serde_json::to_value(&domain).map_err(|e| ApiError::Internal(e.into()))?,
            status: None,
        },
        objects::no_secrets,
    )
    .await?;
    let mut event = Event::ok(
        "domain.acme",
        Some(&tenant),
        format!("tenants/{tenant}/domains/{host}"),
    );
    event.after =
        Some(serde_json::json!({ "certificate": name, "not_after_ms": info.not_after_ms }));
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    // Live at once when the domain is published: the certificate and the
    // published domain's use of it, nothing else of the tenant's draft.
    let published = {
        let mut conn = state.store.pool().acquire().await?;
        let (_, doc) = crate::publish::latest(&mut conn).await?;
        doc.tenants
            .get(&tenant)
            .and_then(|part| part.get(Kind::Domain.as_str()))
            .is_some_and(|domains| domains.contains_key(&host))
    };
    let version = if published {
        crate::publish::publish_certificate(&state, &who, &meta, &tenant, &name, &host)
            .await?
            .map(|v| v.version)
    } else {
        None
    };
    Ok((
        StatusCode::OK,
        Json(AcmeIssued {
            certificate: name,
            info,
            published_version: version,
        }),
    )
        .into_response())
}

/// Opens the order, has every node serve its challenges, completes it, and
/// withdraws the challenges whatever happened.
async fn run_order(
    state: &AppState,
    settings: &Arc<acme::Settings>,
    host: &str,
) -> Result<acme::Issued, ApiError> {
    let account = account(state, settings).await?;
    let pending = acme::begin(&account, &[host.to_string()])
        .await
        .map_err(upstream)?;
    let tokens: Vec<String> = pending.challenges.iter().map(|c| c.token.clone()).collect();
    let outcome = async {
        let mut version = 0;
        for c in &pending.challenges {
            let challenge = Challenge {
                host: c.host.clone(),
                token: c.token.clone(),
                key_authorization: c.key_authorization.clone(),
            };
            version = challenges::put(state, &challenge, settings.timeout * 4).await?;
        }
        if let Err(waiting) = challenges::wait_for_nodes(state, version, NODES_TIMEOUT).await {
            return Err(ApiError::Conflict {
                message: format!(
                    "nodes did not start serving the challenge in time: {}",
                    waiting.join(", ")
                ),
                field: None,
            });
        }
        acme::complete(pending, settings.timeout)
            .await
            .map_err(upstream)
    }
    .await;
    for t in &tokens {
        if let Err(e) = challenges::remove(state, t).await {
            tracing::warn!(error = %e, "withdrawing an ACME challenge failed; it expires on its own");
        }
    }
    outcome
}
