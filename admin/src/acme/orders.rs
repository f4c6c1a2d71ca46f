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

/// How long an order may hold a domain (one order at a time per domain).
const LEASE: Duration = Duration::from_secs(15 * 60);

/// Where a domain's ACME certificate stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AcmeState {
    /// The certificate object it lives in.
    pub certificate: String,
    /// `pending_validation`, `pending_issuance`, `active`,
    /// `pending_validation_timed_out`, `pending_issuance_timed_out` or `failed`.
    pub status: String,
    /// Why the last order failed (the CA's words), while not active.
    pub error: Option<String>,
    /// End of the current certificate (Unix milliseconds).
    pub not_after_ms: Option<i64>,
    /// When it is renewed (two thirds into its lifetime).
    pub renew_at_ms: Option<i64>,
    /// Failed orders since the last success.
    pub attempts: i64,
    /// Earliest retry after a failure.
    pub next_attempt_ms: Option<i64>,
    pub updated_ms: i64,
}

/// Takes `host`'s order lease (creating its row); false when another order
/// for it is running.
async fn take_lease(
    state: &AppState,
    tenant: &str,
    host: &str,
    certificate: &str,
) -> Result<bool, ApiError> {
    let now = now_ms();
    let until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
    let mut tx = state.store.begin_write().await?;
    sqlx::query(
        "INSERT INTO acme_domains (tenant, host, certificate, status, updated_ms) \
         VALUES ($1, $2, $3, 'pending_validation', $4) ON CONFLICT (tenant, host) DO NOTHING",
    )
    .bind(tenant)
    .bind(host)
    .bind(certificate)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let taken = sqlx::query(
        "UPDATE acme_domains SET lease_until_ms = $1 WHERE tenant = $2 AND host = $3 \
         AND (lease_until_ms IS NULL OR lease_until_ms < $4)",
    )
    .bind(until)
    .bind(tenant)
    .bind(host)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(taken)
}

/// Records `status` (and `error`) for the domain's order.
async fn set_status(
    state: &AppState,
    tenant: &str,
    host: &str,
    status: &str,
    error: Option<&str>,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE acme_domains SET status = $1, error = $2, updated_ms = $3 WHERE tenant = $4 AND host = $5")
        .bind(status)
        .bind(error)
        .bind(now_ms())
        .bind(tenant)
        .bind(host)
        .execute(state.store.pool())
        .await?;
    Ok(())
}

/// A failed order: its state, one more attempt, the next one after an
/// exponential backoff (1 minute doubling, at most a day) with jitter; the
/// lease is released.
async fn record_failure(
    state: &AppState,
    tenant: &str,
    host: &str,
    status: &str,
    error: &str,
) -> Result<(), ApiError> {
    let attempts: i64 =
        sqlx::query("SELECT attempts FROM acme_domains WHERE tenant = $1 AND host = $2")
            .bind(tenant)
            .bind(host)
            .fetch_one(state.store.pool())
            .await?
            .try_get("attempts")?;
    let backoff_s = 60i64
        .saturating_mul(1 << attempts.clamp(0, 10))
        .min(24 * 3600);
    let jitter = i64::from(ring_jitter()) % (backoff_s / 4 + 1);
    let next = now_ms() + (backoff_s + jitter) * 1000;
    sqlx::query(
        "UPDATE acme_domains SET status = $1, error = $2, attempts = attempts + 1, \
         next_attempt_ms = $3, lease_until_ms = NULL, updated_ms = $4 WHERE tenant = $5 AND host = $6",
    )
    .bind(status)
    .bind(error)
    .bind(next)
    .bind(now_ms())
    .bind(tenant)
    .bind(host)
    .execute(state.store.pool())
    .await?;
    Ok(())
}

/// Random bits for retry jitter.
fn ring_jitter() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b)
}

/// A certificate in force: when it ends and when to renew it (two thirds
/// into its lifetime); attempts reset, the lease released.
async fn record_success(
    state: &AppState,
    tenant: &str,
    host: &str,
    info: &CertificateInfo,
) -> Result<(), ApiError> {
    let lifetime = (info.not_after_ms - info.not_before_ms).max(0);
    let renew_at = info.not_before_ms + lifetime * 2 / 3;
    sqlx::query(
        "UPDATE acme_domains SET status = 'active', error = NULL, not_after_ms = $1, renew_at_ms = $2, \
         attempts = 0, next_attempt_ms = NULL, lease_until_ms = NULL, updated_ms = $3 \
         WHERE tenant = $4 AND host = $5",
    )
    .bind(info.not_after_ms)
    .bind(renew_at)
    .bind(now_ms())
    .bind(tenant)
    .bind(host)
    .execute(state.store.pool())
    .await?;
    Ok(())
}

/// Where the domain's ACME certificate stands (tenant tokens read it).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/domains/{host}/acme",
    params(("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, body = AcmeState), (status = 404, body = ErrorBody)),
    security(("bearer" = [])), tag = "acme"
)]
pub async fn status(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
) -> Result<Json<AcmeState>, ApiError> {
    who.read(&tenant, || format!("domain {host}"))?;
    let host = crate::hostname::canonical(&host).map_err(|m| ApiError::invalid("host", m))?;
    let row = sqlx::query(
        "SELECT certificate, status, error, not_after_ms, renew_at_ms, attempts, next_attempt_ms, updated_ms \
         FROM acme_domains WHERE tenant = $1 AND host = $2",
    )
    .bind(&tenant)
    .bind(&host)
    .fetch_optional(state.store.pool())
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("ACME certificate for {host}")))?;
    Ok(Json(AcmeState {
        certificate: row.try_get("certificate")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        not_after_ms: row.try_get("not_after_ms")?,
        renew_at_ms: row.try_get("renew_at_ms")?,
        attempts: row.try_get("attempts")?,
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    }))
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
    let issued = obtain(&state, &who, &meta, &tenant, &host).await?;
    Ok((StatusCode::OK, Json(issued)).into_response())
}

/// Orders (or renews) `host`'s certificate and deploys it; what the order
/// endpoint and the renewal loop share.
pub async fn obtain(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    host: &str,
) -> Result<AcmeIssued, ApiError> {
    let (state, who, meta) = (state.clone(), who.clone(), meta.clone());
    let (tenant, host) = (tenant.to_string(), host.to_string());
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
    let name = certificate_name(&host);
    if !take_lease(&state, &tenant, &host, &name).await? {
        return Err(ApiError::Conflict {
            message: format!("an order for {host} is running"),
            field: None,
        });
    }
    let issued = match run_order(&state, &settings, &tenant, &host).await {
        Ok(i) => i,
        Err((status, e)) => {
            let why = e.to_string();
            record_failure(&state, &tenant, &host, status, &why).await?;
            return Err(e);
        }
    };

    // The chain and sealed key as the tenant's certificate; the domain uses it.
    let upload = CertificateUpload {
        cert_pem: issued.chain_pem,
        key_pem: issued.key_pem,
    };
    let info = match certificates::inspect(&upload, now_ms()) {
        Ok(i) => i,
        Err(e) => {
            record_failure(&state, &tenant, &host, "failed", &e.to_string()).await?;
            return Err(e);
        }
    };
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
    record_success(&state, &tenant, &host, &info).await?;
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
    Ok(AcmeIssued {
        certificate: name,
        info,
        published_version: version,
    })
}

/// Renews what is due: active certificates past their renewal time and
/// failed orders past their retry time, one domain at a time (each takes
/// the domain's lease, so admins sharing a store never order twice).
pub async fn renew_due(state: &AppState) -> Result<usize, ApiError> {
    let now = now_ms();
    let mut due: Vec<(String, String)> = Vec::new();
    // Verified domains that asked for ACME and have no order yet (verified
    // while the admin was down, or before ACME was configured).
    let domains = sqlx::query(
        "SELECT o.tenant, o.name, o.spec FROM objects o WHERE o.kind = 'domain' AND o.status = 'active' \
         AND NOT EXISTS (SELECT 1 FROM acme_domains a WHERE a.tenant = o.tenant AND a.host = o.name)",
    )
    .fetch_all(state.store.pool())
    .await?;
    for d in domains {
        let spec: String = d.try_get("spec")?;
        let wants = serde_json::from_str::<StoredDomain>(&spec).is_ok_and(|s| s.spec.acme);
        if wants {
            due.push((d.try_get("tenant")?, d.try_get("name")?));
        }
    }
    let rows = sqlx::query(
        "SELECT tenant, host FROM acme_domains \
         WHERE ((status = 'active' AND renew_at_ms <= $1) \
            OR (status <> 'active' AND next_attempt_ms IS NOT NULL AND next_attempt_ms <= $1)) \
           AND (lease_until_ms IS NULL OR lease_until_ms < $1) \
         ORDER BY updated_ms LIMIT 20",
    )
    .bind(now)
    .fetch_all(state.store.pool())
    .await?;
    let who = Principal {
        token_id: "system".into(),
        prefix: "acme-renewal".into(),
        role: crate::auth::Role::PlatformAdmin,
        tenant: None,
    };
    for row in rows {
        due.push((row.try_get("tenant")?, row.try_get("host")?));
    }
    let mut renewed = 0;
    for (tenant, host) in due {
        let meta = RequestMeta {
            request_id: format!("acme-renewal-{}", uuid::Uuid::new_v4().simple()),
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        };
        match obtain(state, &who, &meta, &tenant, &host).await {
            Ok(issued) => {
                tracing::info!(
                    tenant,
                    host,
                    certificate = issued.certificate,
                    not_after_ms = issued.info.not_after_ms,
                    "renewed an ACME certificate"
                );
                renewed += 1;
            }
            Err(ApiError::NotFound(_)) => {
                // The domain is gone: nothing to renew any more.
                sqlx::query("DELETE FROM acme_domains WHERE tenant = $1 AND host = $2")
                    .bind(&tenant)
                    .bind(&host)
                    .execute(state.store.pool())
                    .await?;
            }
            Err(e) => {
                tracing::warn!(tenant, host, error = %e, "renewing an ACME certificate failed; retried later");
                // Failures before the order started (the domain is no longer
                // verified, ...) must not be retried at every pass either.
                sqlx::query(
                    "UPDATE acme_domains SET next_attempt_ms = $1 WHERE tenant = $2 AND host = $3 \
                     AND (next_attempt_ms IS NULL OR next_attempt_ms <= $4)",
                )
                .bind(now_ms() + 3_600_000)
                .bind(&tenant)
                .bind(&host)
                .bind(now_ms())
                .execute(state.store.pool())
                .await?;
            }
        }
    }
    Ok(renewed)
}

/// Warns about ACME certificates within 14 days of their end whose
/// renewal has not succeeded (the proxies warn about every certificate).
pub async fn warn_expiring(state: &AppState) -> Result<(), ApiError> {
    let soon = now_ms() + 14 * 24 * 3_600_000;
    let rows = sqlx::query(
        "SELECT tenant, host, status, error, not_after_ms FROM acme_domains \
         WHERE not_after_ms IS NOT NULL AND not_after_ms < $1",
    )
    .bind(soon)
    .fetch_all(state.store.pool())
    .await?;
    for r in rows {
        let tenant: String = r.try_get("tenant")?;
        let host: String = r.try_get("host")?;
        let status: String = r.try_get("status")?;
        let error: Option<String> = r.try_get("error")?;
        let not_after_ms: i64 = r.try_get("not_after_ms")?;
        tracing::warn!(
            tenant,
            host,
            status,
            error = error.unwrap_or_default(),
            not_after_ms,
            "ACME certificate within 14 days of its end without a successful renewal"
        );
    }
    Ok(())
}

/// Runs [`renew_due`] every `every` until the process ends.
pub async fn renewal_loop(state: AppState, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = renew_due(&state).await {
            tracing::warn!(error = %e, "looking for ACME renewals failed");
        }
        if let Err(e) = warn_expiring(&state).await {
            tracing::warn!(error = %e, "looking for expiring ACME certificates failed");
        }
    }
}

/// Opens the order, has every node serve its challenges, validates and
/// issues, recording each stage; withdraws the challenges whatever happened.
/// A failure comes with the state to record.
async fn run_order(
    state: &AppState,
    settings: &Arc<acme::Settings>,
    tenant: &str,
    host: &str,
) -> Result<acme::Issued, (&'static str, ApiError)> {
    let failed = |e: ApiError| ("failed", e);
    let acme_failure = |e: acme::AcmeError, timed_out: &'static str| match e {
        acme::AcmeError::TimedOut(_) => (timed_out, upstream(e)),
        other => ("failed", upstream(other)),
    };
    set_status(state, tenant, host, "pending_validation", None)
        .await
        .map_err(failed)?;
    let account = account(state, settings).await.map_err(failed)?;
    let mut pending = acme::begin(&account, &[host.to_string()])
        .await
        .map_err(|e| acme_failure(e, "pending_validation_timed_out"))?;
    let tokens: Vec<String> = pending.challenges.iter().map(|c| c.token.clone()).collect();
    let outcome = async {
        let mut version = 0;
        for c in &pending.challenges {
            let challenge = Challenge {
                host: c.host.clone(),
                token: c.token.clone(),
                key_authorization: c.key_authorization.clone(),
            };
            version = challenges::put(state, &challenge, settings.timeout * 4)
                .await
                .map_err(failed)?;
        }
        if let Err(waiting) = challenges::wait_for_nodes(state, version, NODES_TIMEOUT).await {
            return Err((
                "pending_validation_timed_out",
                ApiError::Conflict {
                    message: format!(
                        "nodes did not start serving the challenge in time: {}",
                        waiting.join(", ")
                    ),
                    field: None,
                },
            ));
        }
        acme::validate(&mut pending, settings.timeout)
            .await
            .map_err(|e| acme_failure(e, "pending_validation_timed_out"))?;
        set_status(state, tenant, host, "pending_issuance", None)
            .await
            .map_err(failed)?;
        acme::issue(pending, settings.timeout)
            .await
            .map_err(|e| acme_failure(e, "pending_issuance_timed_out"))
    }
    .await;
    for t in &tokens {
        if let Err(e) = challenges::remove(state, t).await {
            tracing::warn!(error = %e, "withdrawing an ACME challenge failed; it expires on its own");
        }
    }
    outcome
}
