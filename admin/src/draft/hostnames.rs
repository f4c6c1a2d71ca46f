//! Who holds a hostname: a domain's name is unique across all tenants, and a
//! wildcard may not overlap another tenant's names. Imports `infra`.

use crate::infra::error::ApiError;

/// Refuses (409) a hostname another tenant registered, or one that would
/// overlap another tenant's (see [`overlapping`]).
pub async fn check_available(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    host: &str,
) -> Result<(), ApiError> {
    let holder = sqlx::query("SELECT tenant FROM objects WHERE kind = 'domain' AND name = $1")
        .bind(host)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = holder {
        let owner: String = sqlx::Row::try_get(&row, "tenant")?;
        if owner != tenant {
            return Err(ApiError::Conflict {
                message: format!("hostname {host} is registered by another tenant"),
                field: Some("name".into()),
            });
        }
    }
    if let Some(other) = overlapping(conn, tenant, host).await? {
        return Err(ApiError::Conflict {
            message: format!("hostname {host} overlaps {other}, registered by another tenant"),
            field: Some("name".into()),
        });
    }
    Ok(())
}

/// Another tenant's domain that `host` would overlap: the wildcard covering
/// an exact name (its traffic would go to the exact name, which matches
/// first), or an exact name a wildcard would cover.
async fn overlapping(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    host: &str,
) -> Result<Option<String>, ApiError> {
    use sqlx::Row;
    if let Some(parent) = host.strip_prefix("*.") {
        let suffix = format!(".{parent}");
        let rows = sqlx::query(
            "SELECT name FROM objects WHERE kind = 'domain' AND tenant <> $1 AND name LIKE $2",
        )
        .bind(tenant)
        .bind(format!("%{suffix}"))
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let name: String = row.try_get("name")?;
            let one_label = name
                .strip_suffix(&suffix)
                .is_some_and(|label| !label.is_empty() && !label.contains('.'));
            if one_label {
                return Ok(Some(name));
            }
        }
        return Ok(None);
    }
    let Some((_, parent)) = host.split_once('.') else {
        return Ok(None);
    };
    let wildcard = format!("*.{parent}");
    let held = sqlx::query(
        "SELECT name FROM objects WHERE kind = 'domain' AND name = $1 AND tenant <> $2",
    )
    .bind(&wildcard)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.map(|_| wildcard))
}
