//! Ordering a certificate for a verified domain from the platform's ACME CA:
//! the platform account, the HTTP-01 challenges every node serves, issuance,
//! the tenant's certificate `acme-<host>` used by the domain, and publishing
//! both at once when the domain is published. Imports `release`, `draft`, `model`, `infra`.

// The order runs while the request waits: the platform account (created on
// first use, its credentials sealed in the store), HTTP-01 challenges
// published to every node (`acme::challenges`) and declared ready only once
// every live node serves them, validation, issuance with a fresh key. When
// the domain is published already, exactly the certificate and the domain's
// use of it are published on top of the latest version (the rest of the
// tenant's draft stays a draft), so nodes serve it within a second.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::acme::challenges::{self, Challenge};
use crate::acme::client::{self, AcmeError, Issued};
use crate::acme::records::{
    issued, record_awaiting_publish, record_deployed, record_failure, record_issued, set_status,
    take_lease,
};
use crate::draft::objects::{self, certificate_public, Kind, Write};
use crate::infra::acme_settings::Settings;
use crate::infra::audit::{self, Event};
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::model::certificate::{self, CertificateInfo, CertificateUpload, StoredCertificate};
use crate::model::domain::StoredDomain;
use crate::release::certificate::publish_certificate;
use crate::release::versions;

/// Longest wait for every node to start serving the challenges.
const NODES_TIMEOUT: Duration = Duration::from_secs(30);

/// How long every node has to start serving the challenges: the CA's own
/// timeout, at most [`NODES_TIMEOUT`].
fn nodes_timeout(settings: &Settings) -> Duration {
    settings.timeout.min(NODES_TIMEOUT)
}

/// How long an order holds its domain: every stage at its longest (nodes,
/// validation, issuance) and a margin. An order still running then has
/// failed; the next attempt is due at the lease's end, so an order the
/// admin never finished (it stopped, the store failed) is taken up again.
fn order_lease(settings: &Settings) -> Duration {
    nodes_timeout(settings) + settings.timeout * 3 + Duration::from_secs(10)
}

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

/// The certificate object's name for `host`, one per host: `acme-`, the host
/// with dots as dashes (cut, for reading), and 16 hex digits of the host's
/// SHA-256, within the 63 characters names may have. Dots as dashes alone
/// made `a-b.example.com` and `a.b-example.com` one name, so one domain's
/// order replaced the other's certificate.
pub fn certificate_name(host: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, host.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut readable = host.replace('.', "-");
    readable.truncate(40);
    format!("acme-{}-{hex}", readable.trim_end_matches('-'))
}

/// Refuses to overwrite a certificate object that is not `host`'s ACME
/// certificate: a name taken by an upload, or (however unlikely) another
/// host's order.
async fn check_replaceable(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    name: &str,
    host: &str,
) -> Result<(), ApiError> {
    let Some(existing) = objects::load(conn, tenant, Kind::Certificate, name).await? else {
        return Ok(());
    };
    let stored: StoredCertificate = existing.spec()?;
    if stored.info.names.iter().any(|n| n == host) {
        return Ok(());
    }
    Err(ApiError::Conflict {
        message: format!("certificate {name} exists and is not {host}'s: not replaced"),
        field: None,
    })
}

/// The platform's account for `settings`, created on first use.
async fn account(state: &AppState, settings: &Settings) -> Result<instant_acme::Account, ApiError> {
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
        let (account, _) = client::account(settings, Some(&json))
            .await
            .map_err(upstream)?;
        return Ok(account);
    }
    let (account, json) = client::account(settings, None).await.map_err(upstream)?;
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
fn upstream(e: AcmeError) -> ApiError {
    match e {
        AcmeError::Rejected { detail } => ApiError::Conflict {
            message: format!("the ACME server refused: {detail}"),
            field: None,
        },
        other => ApiError::Conflict {
            message: other.to_string(),
            field: None,
        },
    }
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
    let lease = order_lease(&settings);
    if !take_lease(&state, &tenant, &host, &name, lease).await? {
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
    let info = match certificate::inspect(&upload, now_ms()) {
        Ok(i) => i,
        Err(e) => {
            record_failure(&state, &tenant, &host, "failed", &e.to_string()).await?;
            return Err(e);
        }
    };
    let stored = StoredCertificate {
        key_sealed: state.keys.seal(
            upload.key_pem.as_bytes(),
            &certificate::seal_context(&tenant, &name),
        ),
        info: info.clone(),
    };
    let no_preconditions = HeaderMap::new();
    let mut tx = state.store.begin_write().await?;
    if let Err(e) = check_replaceable(&mut tx, &tenant, &name, &host).await {
        drop(tx);
        record_failure(&state, &tenant, &host, "failed", &e.to_string()).await?;
        return Err(e);
    }
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
        certificate_public,
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
    // Issued; if deploying it is interrupted, it is tried again after `lease`.
    record_issued(&state, &tenant, &host, &info, lease).await?;
    let version = deploy(&state, &who, &meta, &tenant, &host).await?;
    Ok(AcmeIssued {
        certificate: name,
        info,
        published_version: version,
    })
}

/// Deploys `host`'s issued certificate: live at once when the domain is
/// published (the certificate and the published domain's use of it, nothing
/// else of the tenant's draft), then `active`; for a domain not published,
/// it goes live with the tenant's next publish (looked at again later). A
/// publish that fails leaves it `issued` with a retry after a backoff, and
/// is the error. Returns the version that deployed it.
pub async fn deploy(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    host: &str,
) -> Result<Option<i64>, ApiError> {
    let Some((name, not_after)) = issued(state, tenant, host).await? else {
        return Err(ApiError::NotFound(format!("ACME record of {host}")));
    };
    let (published, deployed) = {
        let mut conn = state.store.pool().acquire().await?;
        let (_, doc) = versions::latest(&mut conn).await?;
        let part = doc.tenants.get(tenant);
        let domain = part
            .and_then(|p| p.get(Kind::Domain.as_str()))
            .and_then(|d| d.get(host));
        let uses_it = domain.is_some_and(|d| d.spec["certificate"] == name.as_str());
        let carried = part
            .and_then(|p| p.get(Kind::Certificate.as_str()))
            .and_then(|c| c.get(&name))
            .is_some_and(|c| c.spec["info"]["not_after_ms"].as_i64() == not_after);
        (domain.is_some(), uses_it && carried)
    };
    if deployed {
        record_deployed(state, tenant, host).await?;
        return Ok(None);
    }
    if !published {
        record_awaiting_publish(state, tenant, host).await?;
        return Ok(None);
    }
    match publish_certificate(state, who, meta, tenant, &name, host).await {
        Ok(version) => {
            record_deployed(state, tenant, host).await?;
            Ok(version.map(|v| v.version))
        }
        Err(e) => {
            let why = format!("the certificate is issued but publishing it failed: {e}");
            record_failure(state, tenant, host, "issued", &why).await?;
            Err(e)
        }
    }
}

/// Opens the order, has every node serve its challenges, validates and
/// issues, recording each stage; withdraws the challenges whatever happened.
/// A failure comes with the state to record.
async fn run_order(
    state: &AppState,
    settings: &Arc<Settings>,
    tenant: &str,
    host: &str,
) -> Result<Issued, (&'static str, ApiError)> {
    let failed = |e: ApiError| ("failed", e);
    let acme_failure = |e: AcmeError, timed_out: &'static str| match e {
        AcmeError::TimedOut(_) => (timed_out, upstream(e)),
        other => ("failed", upstream(other)),
    };
    set_status(state, tenant, host, "pending_validation", None)
        .await
        .map_err(failed)?;
    let account = account(state, settings).await.map_err(failed)?;
    let mut pending = client::begin(&account, &[host.to_string()])
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
        if let Err(waiting) =
            challenges::wait_for_nodes(state, version, nodes_timeout(settings)).await
        {
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
        client::validate(&mut pending, settings.timeout)
            .await
            .map_err(|e| acme_failure(e, "pending_validation_timed_out"))?;
        set_status(state, tenant, host, "pending_issuance", None)
            .await
            .map_err(failed)?;
        client::issue(pending, settings.timeout)
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

#[cfg(test)]
mod tests {
    use super::certificate_name;

    #[test]
    fn certificate_names_are_one_per_host_and_valid_names() {
        let a = certificate_name("a-b.example.com");
        let b = certificate_name("a.b-example.com");
        assert_ne!(a, b);
        assert!(a.starts_with("acme-a-b-example-com-"), "{a}");
        let long = certificate_name(&format!("{}.example.com", "x".repeat(60)));
        assert!(long.len() <= 63, "{long}");
        assert_ne!(
            long,
            certificate_name(&format!("{}.example.org", "x".repeat(60)))
        );
        for n in [a, b, long] {
            assert!(crate::infra::names::check("name", &n).is_ok(), "{n}");
        }
    }
}
