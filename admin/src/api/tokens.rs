//! `/v1/tokens` and `/v1/tenants/{tenant}/tokens`: API tokens, shown once,
//! stored hashed, revocable; listings never show a secret, and a tenant's
//! tokens are invisible (404) to other tenants' tokens. Who may manage which
//! token is `Principal::may_manage_token`'s. Imports `infra`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::infra::audit::{self, Event};
use crate::infra::auth::{Principal, RequestMeta, Role};
use crate::infra::credentials::{self, NewToken};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::infra::state::AppState;
use crate::infra::store::now_ms;

/// The tokens' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_platform, list))
        .routes(routes!(create_in_tenant, list_in_tenant))
        .routes(routes!(revoke))
}

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

/// Body of `POST /v1/tokens` (a platform-admin token).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlatformToken {
    /// Name for people (what the token is for): 1 to 200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub name: String,
    /// Lifetime in days, 1 to 730 (default: no expiry).
    #[schema(minimum = 1, maximum = 730)]
    #[serde(
        default,
        deserialize_with = "crate::infra::error::integral::option_u32"
    )]
    pub expires_in_days: Option<u32>,
    /// `platform-admin` (default) or `node`: a proxy's token, which can only fetch
    /// configuration snapshots and report on them.
    #[serde(default)]
    pub role: PlatformTokenRole,
}

/// The roles a token outside any tenant can have.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformTokenRole {
    /// Everything, in every tenant.
    #[default]
    PlatformAdmin,
    /// A proxy node: `/v1/dataplane` only.
    Node,
}

/// The roles a tenant's token can have.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TenantRole {
    /// Read-only; secrets redacted.
    Viewer,
    /// Configuration; no tokens.
    Operator,
    /// Everything but owner tokens.
    Admin,
    /// Everything in the tenant.
    Owner,
}

impl From<TenantRole> for Role {
    fn from(r: TenantRole) -> Role {
        match r {
            TenantRole::Viewer => Role::Viewer,
            TenantRole::Operator => Role::Operator,
            TenantRole::Admin => Role::Admin,
            TenantRole::Owner => Role::Owner,
        }
    }
}

/// Body of `POST /v1/tenants/{tenant}/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantToken {
    /// Name for people (what the token is for): 1 to 200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub name: String,
    /// Role within the tenant.
    pub role: TenantRole,
    /// Lifetime in days, 1 to 730 (default: no expiry).
    #[schema(minimum = 1, maximum = 730)]
    #[serde(
        default,
        deserialize_with = "crate::infra::error::integral::option_u32"
    )]
    pub expires_in_days: Option<u32>,
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

/// Longest lifetime a token can be given, in days.
const MAX_EXPIRES_IN_DAYS: u32 = 730;

/// Checks a token name (also what the schema says).
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// Inserts a token row on `conn`; returns the token and its listing.
pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    role: Role,
    tenant: Option<&str>,
    expires_ms: Option<i64>,
    created_by: Option<&str>,
    new: &NewToken,
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

/// Creates a platform-admin token (platform admins).
#[utoipa::path(
    post, path = "/v1/tokens", request_body = CreatePlatformToken,
    responses(
        (status = 201, body = CreatedToken),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn create_platform(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiJson(body): ApiJson<CreatePlatformToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let spec = Spec {
        name: &body.name,
        role: match body.role {
            PlatformTokenRole::PlatformAdmin => Role::PlatformAdmin,
            PlatformTokenRole::Node => Role::Node,
        },
        tenant: None,
        expires_in_days: body.expires_in_days,
    };
    create(&state, &who, &meta, spec).await
}

/// Creates a token of a tenant.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/tokens", request_body = CreateTenantToken,
    params(("tenant" = String, Path, description = "Tenant")),
    responses(
        (status = 201, body = CreatedToken),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn create_in_tenant(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<CreateTenantToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    who.read(&tenant, || format!("tenant {tenant}"))?;
    let spec = Spec {
        name: &body.name,
        role: body.role.into(),
        tenant: Some(&tenant),
        expires_in_days: body.expires_in_days,
    };
    create(&state, &who, &meta, spec).await
}

/// A token to create.
struct Spec<'a> {
    name: &'a str,
    role: Role,
    tenant: Option<&'a str>,
    expires_in_days: Option<u32>,
}

async fn create(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    spec: Spec<'_>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    check_name(spec.name)?;
    let tenant = spec.tenant;
    if !who.may_manage_token(tenant, spec.role) {
        let e = ApiError::Forbidden("create a token with this role");
        let target = "token/new".to_string();
        return Err(audit::refused(state, who, meta, "token.create", tenant, target, e).await);
    }
    let expires_ms = match spec.expires_in_days {
        Some(d) if (1..=MAX_EXPIRES_IN_DAYS).contains(&d) => {
            Some(now_ms() + i64::from(d) * 86_400_000)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "expires_in_days",
                format!("must be 1 to {MAX_EXPIRES_IN_DAYS}"),
            ))
        }
        None => None,
    };
    let new = credentials::generate();
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
        spec.name,
        spec.role,
        tenant,
        expires_ms,
        Some(&who.prefix),
        &new,
    )
    .await?;
    let event = Event::ok("token.create", tenant, format!("token/{}", info.prefix)).after(&info);
    audit::record(&mut tx, who, meta, event).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: new.token,
            info,
        }),
    ))
}

/// Lists the tokens the caller may see: every token for platform admins,
/// the caller's tenant's for the others (secrets are never shown).
#[utoipa::path(
    get, path = "/v1/tokens",
    responses((status = 200, body = TokenList), ),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<TokenList>, ApiError> {
    match who.role {
        Role::PlatformAdmin => {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tokens ORDER BY created_ms DESC, id"
            ))
            .fetch_all(state.store.pool())
            .await?;
            let tokens = rows.iter().map(from_row).collect::<Result<_, _>>()?;
            Ok(Json(TokenList { tokens }))
        }
        _ => tenant_tokens(&state, who.tenant.as_deref().unwrap_or_default()).await,
    }
}

/// Lists a tenant's tokens (secrets are never shown).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/tokens",
    params(("tenant" = String, Path, description = "Tenant")),
    responses((status = 200, body = TokenList), ),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn list_in_tenant(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<TokenList>, ApiError> {
    who.read(&tenant, || format!("tenant {tenant}"))?;
    let exists = sqlx::query("SELECT 1 FROM tenants WHERE name = $1")
        .bind(&tenant)
        .fetch_optional(state.store.pool())
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::NotFound(format!("tenant {tenant}")));
    }
    tenant_tokens(&state, &tenant).await
}

async fn tenant_tokens(state: &AppState, tenant: &str) -> Result<Json<TokenList>, ApiError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM tokens WHERE tenant = $1 ORDER BY created_ms DESC, id"
    ))
    .bind(tenant)
    .fetch_all(state.store.pool())
    .await?;
    let tokens = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(Json(TokenList { tokens }))
}

/// Revokes a token (it stops working at once; it stays listed).
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "tokens"
)]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
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
