//! Who may read and change draft objects: reads that answer 404 for another
//! tenant's or a missing object, the role a change of each kind needs, and
//! refusals audited outside the change's transaction. Imports `draft`, `infra`.

use crate::draft::objects::{list, load, require_tenant, Key, Kind, Stored};
use crate::infra::audit;
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::ApiError;
use crate::infra::state::AppState;

/// Reads one object for `who`: 404 when it does not exist or is another tenant's.
pub async fn read_one(state: &AppState, who: &Principal, key: Key<'_>) -> Result<Stored, ApiError> {
    let missing = || format!("{} {}", key.kind.as_str(), key.name);
    who.read(key.tenant, missing)?;
    let mut conn = state.store.pool().acquire().await?;
    load(&mut conn, key.tenant, key.kind, key.name)
        .await?
        .ok_or_else(|| ApiError::NotFound(missing()))
}

/// Lists `tenant`'s objects of `kind` for `who` (404 for another tenant or a
/// missing one), optionally only names starting with `prefix`.
pub async fn read_all(
    state: &AppState,
    who: &Principal,
    tenant: &str,
    kind: Kind,
    prefix: Option<&str>,
) -> Result<Vec<Stored>, ApiError> {
    who.read(tenant, || format!("tenant {tenant}"))?;
    let mut conn = state.store.pool().acquire().await?;
    require_tenant(&mut conn, tenant).await?;
    list(&mut conn, tenant, kind, prefix).await
}

/// Authorizes a change of `kind` in `tenant`, auditing a refusal.
pub async fn authorize_write(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    kind: Kind,
    tenant: &str,
    name: &str,
    verb: &str,
) -> Result<(), ApiError> {
    let what = || format!("tenant {tenant}");
    if let Err(e) = who.require(
        tenant,
        kind.write_role(),
        "change this kind of object",
        what,
    ) {
        let target = format!("tenants/{tenant}/{}s/{name}", kind.as_str());
        let action = format!("{}.{verb}", kind.as_str());
        return Err(audit::refused(state, who, meta, &action, Some(tenant), target, e).await);
    }
    Ok(())
}

/// Runs the transactional part of a change; a refusal found inside it (stale
/// `If-Match`, conflict) is audited after the transaction is dropped.
pub async fn audited<T>(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    action: &str,
    tenant: &str,
    target: String,
    change: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match change.await {
        Err(e @ (ApiError::PreconditionFailed(_) | ApiError::Conflict { .. })) => {
            Err(audit::refused(state, who, meta, action, Some(tenant), target, e).await)
        }
        other => other,
    }
}
