//! Each domain's ACME record (`acme_domains`): the lease that lets one order
//! run at a time per domain (across admins sharing a store), its stage, its
//! failures with their backoff, and when its certificate is due for renewal.
//! Every state but `active` has a next attempt: an order that is interrupted
//! (the admin stopped, the store failed) is taken up again when its lease
//! ends, and a certificate issued but not yet deployed (`issued`) is deployed
//! again until a published version carries it. Imports `model` and `infra`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::model::certificate::CertificateInfo;

/// How long a certificate issued for a domain that is not published yet
/// waits before the next look at whether a version carries it.
const UNPUBLISHED_RECHECK: Duration = Duration::from_secs(3600);

/// Where a domain's ACME certificate stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AcmeState {
    /// The certificate object it lives in.
    pub certificate: String,
    /// `pending_validation`, `pending_issuance`, `issued` (stored, not yet in
    /// a published version), `active` (deployed), `pending_validation_timed_out`,
    /// `pending_issuance_timed_out` or `failed`.
    pub status: String,
    /// Why the last order failed (the CA's words), while not active.
    pub error: Option<String>,
    /// End of the current certificate (Unix milliseconds).
    pub not_after_ms: Option<i64>,
    /// When it is renewed (two thirds into its lifetime).
    pub renew_at_ms: Option<i64>,
    /// Failed orders since the last success.
    pub attempts: i64,
    /// When the record is looked at next, unless it is `active`: a retry
    /// after a failure, the end of a running order's lease (an interrupted
    /// order is taken up again then), or the next deployment attempt.
    pub next_attempt_ms: Option<i64>,
    pub updated_ms: i64,
}

/// The ACME record of `tenant`'s `host`, if an order was ever made for it.
pub async fn load(
    state: &AppState,
    tenant: &str,
    host: &str,
) -> Result<Option<AcmeState>, ApiError> {
    let row = sqlx::query(
        "SELECT certificate, status, error, not_after_ms, renew_at_ms, attempts, next_attempt_ms, updated_ms \
         FROM acme_domains WHERE tenant = $1 AND host = $2",
    )
    .bind(tenant)
    .bind(host)
    .fetch_optional(state.store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(AcmeState {
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

/// Takes `host`'s order lease for `lease` (creating its row); false when
/// another order for it is running. The next attempt is set to the lease's
/// end, so an order that never finishes is taken up again.
pub async fn take_lease(
    state: &AppState,
    tenant: &str,
    host: &str,
    certificate: &str,
    lease: Duration,
) -> Result<bool, ApiError> {
    let now = now_ms();
    let until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
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
        "UPDATE acme_domains SET lease_until_ms = $1, next_attempt_ms = $1, certificate = $5 \
         WHERE tenant = $2 AND host = $3 AND (lease_until_ms IS NULL OR lease_until_ms < $4)",
    )
    .bind(until)
    .bind(tenant)
    .bind(host)
    .bind(now)
    .bind(certificate)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(taken)
}

/// Records `status` (and `error`) for the domain's order.
pub async fn set_status(
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
pub async fn record_failure(
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

/// A certificate issued and stored (`issued`): when it ends and when to
/// renew it (two thirds into its lifetime); attempts reset, the lease
/// released. Until [`record_deployed`], its deployment is looked at again
/// (first at the end of `deploy_within`).
pub async fn record_issued(
    state: &AppState,
    tenant: &str,
    host: &str,
    info: &CertificateInfo,
    deploy_within: Duration,
) -> Result<(), ApiError> {
    let lifetime = (info.not_after_ms - info.not_before_ms).max(0);
    let renew_at = info.not_before_ms + lifetime * 2 / 3;
    let now = now_ms();
    sqlx::query(
        "UPDATE acme_domains SET status = 'issued', error = NULL, not_after_ms = $1, renew_at_ms = $2, \
         attempts = 0, next_attempt_ms = $3, lease_until_ms = NULL, updated_ms = $4 \
         WHERE tenant = $5 AND host = $6",
    )
    .bind(info.not_after_ms)
    .bind(renew_at)
    .bind(now + i64::try_from(deploy_within.as_millis()).unwrap_or(i64::MAX))
    .bind(now)
    .bind(tenant)
    .bind(host)
    .execute(state.store.pool())
    .await?;
    Ok(())
}

/// The issued certificate is in the latest published version: `active`,
/// nothing to do until its renewal time.
pub async fn record_deployed(state: &AppState, tenant: &str, host: &str) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE acme_domains SET status = 'active', error = NULL, attempts = 0, next_attempt_ms = NULL, \
         updated_ms = $1 WHERE tenant = $2 AND host = $3",
    )
    .bind(now_ms())
    .bind(tenant)
    .bind(host)
    .execute(state.store.pool())
    .await?;
    Ok(())
}

/// The issued certificate's domain is not published: the certificate goes
/// live with the tenant's next publish; looked at again later.
pub async fn record_awaiting_publish(
    state: &AppState,
    tenant: &str,
    host: &str,
) -> Result<(), ApiError> {
    let next = now_ms() + i64::try_from(UNPUBLISHED_RECHECK.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE acme_domains SET next_attempt_ms = $1, updated_ms = $2 WHERE tenant = $3 AND host = $4",
    )
    .bind(next)
    .bind(now_ms())
    .bind(tenant)
    .bind(host)
    .execute(state.store.pool())
    .await?;
    Ok(())
}

/// The certificate object and end of `host`'s last issued certificate.
pub async fn issued(
    state: &AppState,
    tenant: &str,
    host: &str,
) -> Result<Option<(String, Option<i64>)>, ApiError> {
    let row = sqlx::query(
        "SELECT certificate, not_after_ms FROM acme_domains WHERE tenant = $1 AND host = $2",
    )
    .bind(tenant)
    .bind(host)
    .fetch_optional(state.store.pool())
    .await?;
    row.map(|r| Ok((r.try_get("certificate")?, r.try_get("not_after_ms")?)))
        .transpose()
}
