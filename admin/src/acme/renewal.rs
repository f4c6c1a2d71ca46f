//! Renewal in the background: every so often, the ACME certificates due
//! (and failed orders past their retry time, and verified domains that asked
//! for ACME but have no order yet) are ordered again, and certificates near
//! their end without a successful renewal are warned about.
//! Imports `acme`, `model` and `infra`.

use std::time::Duration;

use sqlx::Row;

use crate::acme::orders::{deploy, obtain};
use crate::infra::auth::{Principal, RequestMeta, Role};
use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::model::domain::StoredDomain;

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
        "SELECT tenant, host, status FROM acme_domains \
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
        role: Role::PlatformAdmin,
        tenant: None,
    };
    let mut undeployed: Vec<(String, String)> = Vec::new();
    for row in rows {
        let status: String = row.try_get("status")?;
        let key = (row.try_get("tenant")?, row.try_get("host")?);
        // Issued but not deployed (and not due for renewal yet): deploy it.
        let renewal_due = sqlx::query(
            "SELECT 1 FROM acme_domains WHERE tenant = $1 AND host = $2 AND renew_at_ms <= $3",
        )
        .bind(&key.0)
        .bind(&key.1)
        .bind(now)
        .fetch_optional(state.store.pool())
        .await?
        .is_some();
        if status == "issued" && !renewal_due {
            undeployed.push(key);
        } else {
            due.push(key);
        }
    }
    for (tenant, host) in undeployed {
        let meta = RequestMeta {
            request_id: format!("acme-deploy-{}", uuid::Uuid::new_v4().simple()),
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        };
        match deploy(state, &who, &meta, &tenant, &host).await {
            Ok(_) => tracing::info!(tenant, host, "an issued ACME certificate is deployed"),
            Err(e) => {
                tracing::warn!(tenant, host, error = %e, "deploying an issued ACME certificate failed; retried later")
            }
        }
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
