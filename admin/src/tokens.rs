//! `/v1/tokens`: API tokens, shown once, stored hashed, revocable.
//!
//! Listing shows each token's prefix, role, tenant, expiry, revocation and
//! last use, never the secret. Who may create or revoke which token is in
//! `Principal::may_manage_token`; a tenant's tokens are invisible (404) to
//! other tenants' tokens.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{self, Event};
use crate::auth::{Principal, RequestMeta, Role};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::store::now_ms;
use crate::token;
use crate::AppState;

/// Longest lifetime a token can be given.
const MAX_EXPIRES_IN: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// A token as listed (no secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Token id.
    pub id: String,
    /// Public prefix: the token reads `gh_<prefix>_…`.
    pub prefix: String,
    /// Name for people.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Tenant, for tenant roles.
    pub tenant: Option<String>,
    /// Creation time (Unix milliseconds).
    pub created_ms: i64,
    /// Prefix of the token that created it (absent for the bootstrap token).
    pub created_by: Option<String>,
    /// Expiry (Unix milliseconds), if any.
    pub expires_ms: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_ms: Option<i64>,
    /// Last use, to the minute.
    pub last_used_ms: Option<i64>,
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Name for people (what the token is for).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Tenant; required for every role but `platform-admin`, which must not have one.
    pub tenant: Option<String>,
    /// Lifetime, e.g. `90d`, `12h` (default: no expiry; at most two years).
    pub expires_in: Option<String>,
}

/// A created token: the only time its secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token. Store it now: it cannot be shown again.
    pub token: String,
    /// What is listed for it from now on.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Filters for `GET /v1/tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Only this tenant's tokens (tenant tokens always see only their own tenant's).
    pub tenant: Option<String>,
}

/// A list of tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Tokens, newest first.
    pub tokens: Vec<TokenInfo>,
}

const COLUMNS: &str =
    "id, prefix, name, role, tenant, created_ms, created_by, expires_ms, revoked_ms, last_used_ms";

fn from_row(row: &sqlx::any::AnyRow) -> Result<TokenInfo, ApiError> {
    let role: String = row.try_get("role")?;
    Ok(TokenInfo {
        id: row.try_get("id")?,
        prefix: row.try_get("prefix")?,
        name: row.try_get("name")?,
        role: role
            .parse()
            .map_err(|()| ApiError::Internal(anyhow::anyhow!("stored token role {role:?}")))?,
        tenant: row.try_get("tenant")?,
        created_ms: row.try_get("created_ms")?,
        created_by: row.try_get("created_by")?,
        expires_ms: row.try_get("expires_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
    })
}

/// Parses a lifetime like `90d`, `12h`, `30m`.
fn parse_lifetime(text: &str) -> Result<Duration, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "expires_in",
            "must be a duration like 90d, 12h or 30m, up to two years",
        )
    };
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?,
    );
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        _ => None,
    }
    .ok_or_else(invalid)?;
    let d = Duration::from_secs(secs);
    if d.is_zero() || d > MAX_EXPIRES_IN {
        return Err(invalid());
    }
    Ok(d)
}

/// Inserts a token row on `conn`; returns the token and its listing.
pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    role: Role,
    tenant: Option<&str>,
    expires_ms: Option<i64>,
    created_by: Option<&str>,
    new: &token::NewToken,
) -> Result<TokenInfo, ApiError> {
    let info = TokenInfo {
        id: uuid::Uuid::new_v4().to_string(),
        prefix: new.prefix.clone(),
        name: name.to_string(),
        role,
        tenant: tenant.map(str::to_string),
        created_ms: now_ms(),
        created_by: created_by.map(str::to_string),
        expires_ms,
        revoked_ms: None,
        last_used_ms: None,
    };
    sqlx::query(
        "INSERT INTO tokens (id, prefix, secret_sha256, name, role, tenant, created_ms, created_by, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&info.id)
    .bind(&info.prefix)
    .bind(&new.secret_sha256)
    .bind(&info.name)
    .bind(role.as_str())
    .bind(tenant)
    .bind(info.created_ms)
    .bind(created_by)
    .bind(expires_ms)
    .execute(conn)
    .await?;
    Ok(info)
}

/// Creates a token.
#[utoipa::path(
    post, path = "/v1/tokens", request_body = CreateToken,
    responses(
        (status = 201, body = CreatedToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "must be 1-200 characters without control characters",
        ));
    }
    match (body.role, &body.tenant) {
        (Role::PlatformAdmin, Some(_)) => {
            return Err(ApiError::invalid(
                "tenant",
                "a platform-admin token belongs to no tenant",
            ))
        }
        (Role::PlatformAdmin, None) => {}
        (_, None) => return Err(ApiError::invalid("tenant", "required for tenant roles")),
        (_, Some(t)) => who.read(t, || format!("tenant {t}"))?,
    }
    let tenant = body.tenant.as_deref();
    if !who.may_manage_token(tenant, body.role) {
        let e = ApiError::Forbidden("create a token with this role");
        return Err(audit::refused(
            &state,
            &who,
            &meta,
            "token.create",
            tenant,
            "token/new".into(),
            e,
        )
        .await);
    }
    let expires_ms = body
        .expires_in
        .as_deref()
        .map(parse_lifetime)
        .transpose()?
        .map(|d| now_ms() + d.as_millis() as i64);
    let new = token::generate();
    let mut tx = state.store.begin_write().await?;
    if let Some(t) = tenant {
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE name = $1")
            .bind(t)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(ApiError::NotFound(format!("tenant {t}")));
        }
    }
    let info = insert(
        &mut tx,
        name,
        body.role,
        tenant,
        expires_ms,
        Some(&who.prefix),
        &new,
    )
    .await?;
    let event = Event::ok("token.create", tenant, format!("token/{}", info.prefix)).after(&info);
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: new.token,
            info,
        }),
    ))
}

/// Lists tokens (secrets are never shown).
#[utoipa::path(
    get, path = "/v1/tokens", params(TokenQuery),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<TokenQuery>,
) -> Result<Json<TokenList>, ApiError> {
    let rows = match (who.role, q.tenant) {
        (Role::PlatformAdmin, None) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tokens ORDER BY created_ms DESC, id"
            ))
            .fetch_all(state.store.pool())
            .await?
        }
        (_, tenant) => {
            let tenant = match tenant {
                Some(t) => {
                    who.read(&t, || format!("tenant {t}"))?;
                    t
                }
                None => who.tenant.clone().unwrap_or_default(),
            };
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tokens WHERE tenant = $1 ORDER BY created_ms DESC, id"
            ))
            .bind(tenant)
            .fetch_all(state.store.pool())
            .await?
        }
    };
    let tokens = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(Json(TokenList { tokens }))
}

/// Revokes a token (it stops working at once; it stays listed).
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || format!("token {id}");
    let mut tx = state.store.begin_write().await?;
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
    let before = row.as_ref().map(from_row).transpose()?;
    let Some(before) = before.filter(|t| match &t.tenant {
        Some(tenant) => who.sees(tenant),
        None => who.role == Role::PlatformAdmin,
    }) else {
        return Err(ApiError::NotFound(not_found()));
    };
    let target = format!("token/{}", before.prefix);
    if !who.may_manage_token(before.tenant.as_deref(), before.role) {
        drop(tx);
        let e = ApiError::Forbidden("revoke this token");
        return Err(audit::refused(
            &state,
            &who,
            &meta,
            "token.revoke",
            before.tenant.as_deref(),
            target,
            e,
        )
        .await);
    }
    if before.revoked_ms.is_some() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let after = TokenInfo {
        revoked_ms: Some(now_ms()),
        ..before.clone()
    };
    sqlx::query("UPDATE tokens SET revoked_ms = $1 WHERE id = $2")
        .bind(after.revoked_ms)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let event = Event::ok("token.revoke", before.tenant.as_deref(), target)
        .before(&before)
        .after(&after);
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_within_bounds() {
        assert_eq!(
            parse_lifetime("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_lifetime("12h").unwrap(),
            Duration::from_secs(12 * 3_600)
        );
        assert_eq!(parse_lifetime("30m").unwrap(), Duration::from_secs(1_800));
        for bad in [
            "",
            "d",
            "0d",
            "10y",
            "800d",
            "-1d",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
