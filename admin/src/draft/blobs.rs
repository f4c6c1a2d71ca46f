//! Plugin components (`blobs`, content-addressed and shared between tenants):
//! what a tenant's plugins take of its storage quota, and the collection of
//! components nothing refers to any more. Imports `infra`.
//!
//! A tenant is charged the size of every distinct component its draft's
//! plugins use or its stored versions pin (a component two tenants use
//! counts for both: neither can make the other pay for, or lose, it). A component is kept while any
//! draft plugin or any stored version refers to it (a rollback needs it, and
//! nodes fetch it by digest); once a collection pass finds it unreferenced it
//! has a grace period, then it is deleted.

use std::time::Duration;

use sqlx::Row;

use crate::infra::error::ApiError;
use crate::infra::store::{now_ms, Store};

/// Bytes of the distinct components `tenant` would keep stored with plugin
/// `name` holding component `sha256` of `size` bytes: those of its draft's
/// plugins and those its stored versions pin (a version keeps its
/// components for rollbacks; without counting them, uploading and
/// publishing new components over and over would grow the store without
/// bound).
pub async fn tenant_usage_with(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    name: &str,
    sha256: &str,
    size: u64,
) -> Result<u64, ApiError> {
    let rows = sqlx::query(
        "SELECT spec FROM objects WHERE kind = 'plugin' AND tenant = $1 AND name <> $2",
    )
    .bind(tenant)
    .bind(name)
    .fetch_all(&mut *conn)
    .await?;
    let mut seen = std::collections::BTreeMap::new();
    seen.insert(sha256.to_string(), size);
    let mut count = |spec: &serde_json::Value| {
        if let (Some(sha), Some(size)) = (spec["sha256"].as_str(), spec["size"].as_u64()) {
            seen.insert(sha.to_string(), size);
        }
    };
    for r in rows {
        let spec: String = r.try_get("spec")?;
        count(&serde_json::from_str(&spec).unwrap_or_default());
    }
    let versions = sqlx::query("SELECT document FROM snapshots")
        .fetch_all(&mut *conn)
        .await?;
    for v in versions {
        let text: String = v.try_get("document")?;
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(plugins) = doc["tenants"][tenant]["plugin"].as_object() {
            for entry in plugins.values() {
                count(&entry["spec"]);
            }
        }
    }
    Ok(seen.values().sum())
}

/// One collection pass: components no draft plugin and no stored version
/// refers to are marked, and those marked more than `grace` ago deleted;
/// a component referred to again is unmarked. Returns how many were deleted.
pub async fn collect(store: &Store, grace: Duration) -> Result<usize, ApiError> {
    let now = now_ms();
    let cutoff = now - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut conn = store.pool().acquire().await?;
    let blobs = sqlx::query("SELECT sha256, unreferenced_since_ms FROM blobs")
        .fetch_all(&mut *conn)
        .await?;
    let mut deleted = 0;
    for b in blobs {
        let sha: String = b.try_get("sha256")?;
        let since: Option<i64> = b.try_get("unreferenced_since_ms")?;
        // Digests are 64 hex digits: a substring match cannot hit anything else.
        let pattern = format!("%{sha}%");
        let in_draft =
            sqlx::query("SELECT 1 FROM objects WHERE kind = 'plugin' AND spec LIKE $1 LIMIT 1")
                .bind(&pattern)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
        let in_version = in_draft
            || sqlx::query("SELECT 1 FROM snapshots WHERE document LIKE $1 LIMIT 1")
                .bind(&pattern)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
        let mut tx = store.begin_write().await?;
        match (in_draft || in_version, since) {
            (true, Some(_)) => {
                sqlx::query("UPDATE blobs SET unreferenced_since_ms = NULL WHERE sha256 = $1")
                    .bind(&sha)
                    .execute(&mut *tx)
                    .await?;
            }
            (false, None) => {
                sqlx::query("UPDATE blobs SET unreferenced_since_ms = $1 WHERE sha256 = $2")
                    .bind(now)
                    .bind(&sha)
                    .execute(&mut *tx)
                    .await?;
            }
            (false, Some(t)) if t <= cutoff => {
                // Referred to again since the check above? Then keep it.
                let again = sqlx::query(
                    "SELECT 1 FROM objects WHERE kind = 'plugin' AND spec LIKE $1 LIMIT 1",
                )
                .bind(&pattern)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                if !again {
                    // An upload claiming it meanwhile unmarked it: then it stays.
                    deleted += sqlx::query(
                        "DELETE FROM blobs WHERE sha256 = $1 AND unreferenced_since_ms <= $2",
                    )
                    .bind(&sha)
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() as usize;
                }
            }
            _ => {}
        }
        tx.commit().await?;
    }
    if deleted > 0 {
        tracing::info!(deleted, "collected plugin components nothing refers to");
    }
    Ok(deleted)
}

/// Runs [`collect`] every `every` until the process ends.
pub async fn collection_loop(store: Store, every: Duration, grace: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = collect(&store, grace).await {
            tracing::warn!(error = %e, "collecting unreferenced plugin components failed");
        }
    }
}
