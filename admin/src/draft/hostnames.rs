//! Who holds a hostname: a domain's name is unique across all tenants, a
//! wildcard may not overlap another tenant's names, and the names nodes'
//! own config files define (as they report them) are nobody's to take.
//! Refusals never name the holder. Imports `infra`.

use gatehouse_config::published::Reserved;

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
    if overlapping(conn, tenant, host).await?.is_some() {
        return Err(ApiError::Conflict {
            message: format!("hostname {host} overlaps a hostname registered by another tenant"),
            field: Some("name".into()),
        });
    }
    let reserved = reserved(conn).await?;
    if reserved
        .hosts
        .iter()
        .any(|r| covers(r, host) || covers(host, r))
    {
        return Err(ApiError::Conflict {
            message: format!("hostname {host} is reserved by the platform"),
            field: Some("name".into()),
        });
    }
    Ok(())
}

/// A claim another tenant than `tenant` holds on `host` — the same name, or
/// one overlapping it — that is pending (never verified) since before `ttl`:
/// such a claim no longer keeps the name from anyone. Returns its tenant and
/// name.
pub async fn stale_claim(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    host: &str,
    ttl: std::time::Duration,
) -> Result<Option<(String, String)>, ApiError> {
    use sqlx::Row;
    let oldest = crate::infra::store::now_ms() - i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    // Candidates: the name, the wildcard over it, and names under it.
    let parent = host
        .strip_prefix("*.")
        .unwrap_or_else(|| host.split_once('.').map_or(host, |(_, p)| p));
    let rows = sqlx::query(
        "SELECT tenant, name FROM objects WHERE kind = 'domain' AND tenant <> $1 \
         AND status = 'pending' AND created_ms < $2 AND (name = $3 OR name = $4 OR name LIKE $5)",
    )
    .bind(tenant)
    .bind(oldest)
    .bind(host)
    .bind(format!("*.{parent}"))
    .bind(format!("%.{parent}"))
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let (holder, name): (String, String) = (r.try_get("tenant")?, r.try_get("name")?);
        if name == host || covers(&name, host) || covers(host, &name) {
            return Ok(Some((holder, name)));
        }
    }
    Ok(None)
}

/// Whether pattern `a` is `b` or, as a one-label wildcard, matches `b`.
pub fn covers(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match a.strip_prefix("*.") {
        Some(parent) => b
            .strip_suffix(parent)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.') && label != "*"),
        None => false,
    }
}

/// Every name a node reported its own config file defines.
pub async fn reserved(conn: &mut sqlx::AnyConnection) -> Result<Reserved, ApiError> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT reserved FROM nodes WHERE reserved IS NOT NULL")
        .fetch_all(&mut *conn)
        .await?;
    let mut all = Reserved::default();
    for row in rows {
        let text: String = row.try_get("reserved")?;
        if let Ok(r) = serde_json::from_str::<Reserved>(&text) {
            all.tenants.extend(r.tenants);
            all.hosts.extend(r.hosts);
        }
    }
    Ok(all)
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

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_wildcard_covers_one_label() {
        assert!(covers("a.example.com", "a.example.com"));
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "xexample.com"));
        assert!(!covers("a.example.com", "*.example.com"));
    }
}
