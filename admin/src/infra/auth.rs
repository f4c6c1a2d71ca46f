//! Who is calling: bearer tokens, roles, tenant scoping, failed-auth limits,
//! as the extractors handlers take (`Principal`, `NodeCaller`, `RequestMeta`).
//! Imports `infra`.

// A token has one role. `platform-admin` tokens belong to no tenant and may do
// everything; the others belong to one tenant: `owner` (everything in the
// tenant, including owner tokens), `admin` (everything but owner tokens),
// `operator` (configuration, no tokens), `viewer` (read-only, secrets
// redacted). A token never learns whether another tenant's object exists:
// it gets 404 for it, as for a missing one. Clients that keep presenting
// wrong tokens are refused with 429 for a while before any token is looked at.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::infra::credentials;
use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A proxy node: polls configuration snapshots under `/v1/dataplane`, nothing else.
    Node,
    /// Read-only within its tenant; secrets redacted.
    Viewer,
    /// Configuration within its tenant; no tokens.
    Operator,
    /// Everything within its tenant but owner tokens.
    Admin,
    /// Everything within its tenant.
    Owner,
    /// Everything, in every tenant.
    PlatformAdmin,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::PlatformAdmin => "platform-admin",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "node" => Role::Node,
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            "platform-admin" => Role::PlatformAdmin,
            _ => return Err(()),
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id.
    pub token_id: String,
    /// Token prefix (what the audit log shows as the actor).
    pub prefix: String,
    /// Role.
    pub role: Role,
    /// Tenant, for tenant roles.
    pub tenant: Option<String>,
}

impl Principal {
    /// Whether this token may see `tenant`'s objects at all.
    pub fn sees(&self, tenant: &str) -> bool {
        self.role == Role::PlatformAdmin || self.tenant.as_deref() == Some(tenant)
    }

    /// Requires read access to `tenant`; another tenant's object is "not found".
    pub fn read(&self, tenant: &str, what: impl FnOnce() -> String) -> Result<(), ApiError> {
        if self.sees(tenant) {
            Ok(())
        } else {
            Err(ApiError::NotFound(what()))
        }
    }

    /// Requires at least `role` in `tenant` (after `read`).
    pub fn require(
        &self,
        tenant: &str,
        role: Role,
        action: &'static str,
        what: impl FnOnce() -> String,
    ) -> Result<(), ApiError> {
        self.read(tenant, what)?;
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(action))
        }
    }

    /// Requires the platform-admin role.
    pub fn platform(&self, action: &'static str) -> Result<(), ApiError> {
        if self.role == Role::PlatformAdmin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(action))
        }
    }

    /// Whether this token may create or revoke a token with `role` in `tenant`.
    pub fn may_manage_token(&self, tenant: Option<&str>, role: Role) -> bool {
        match (self.role, tenant) {
            (Role::PlatformAdmin, _) => true,
            (_, None) => false,
            (mine, Some(t)) => {
                self.tenant.as_deref() == Some(t)
                    && mine >= Role::Admin
                    && role != Role::PlatformAdmin
                    && (role < Role::Owner || mine == Role::Owner)
            }
        }
    }
}

/// Where a request came from, for the audit log and the logs.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The request id (also sent back as `x-request-id`).
    pub request_id: String,
    /// The client's address.
    pub client_ip: IpAddr,
}

/// Request id assigned by the request-id middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(meta(parts))
    }
}

impl RequestMeta {
    /// The request's metadata, from a whole request (middleware).
    pub fn of<B>(req: &axum::http::Request<B>) -> RequestMeta {
        RequestMeta {
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            client_ip: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        }
    }
}

fn meta(parts: &Parts) -> RequestMeta {
    RequestMeta {
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        client_ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    }
}

/// Failed authentications allowed per client before it is refused for a while,
/// and regained per minute (the default of `--auth-failures-per-minute`).
pub const AUTH_FAILURES_PER_MINUTE: u32 = 10;

/// Counts failed authentications per client address.
pub struct AuthFailures {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures::new(AUTH_FAILURES_PER_MINUTE)
    }
}

impl AuthFailures {
    /// Allows `per_minute` failures per client in a burst, regained at that rate.
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        AuthFailures {
            limiter: RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)),
            blocked: Mutex::new(HashMap::new()),
        }
    }
}

impl AuthFailures {
    fn is_blocked(&self, ip: IpAddr) -> bool {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        blocked.retain(|_, until| *until > now);
        blocked.contains_key(&ip)
    }

    fn failed(&self, ip: IpAddr) {
        if let Err(not_until) = self.limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.blocked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ip, Instant::now() + wait);
            tracing::warn!(client_ip = %ip, "admin API: too many failed authentications; client refused for {wait:?}");
        }
        self.limiter.retain_recent();
    }
}

/// Refreshes `last_used_ms` at most this often per token (it is a write).
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    /// Management endpoints: any valid token but a node's.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = authenticate_request(parts, state).await?;
        if who.role == Role::Node {
            return Err(ApiError::Forbidden(
                "use the management API (node tokens only fetch snapshots)",
            ));
        }
        Ok(who)
    }
}

/// A caller of the data-plane endpoints: a node token only (snapshots carry
/// private keys, which no management token may read).
#[derive(Debug, Clone)]
pub struct NodeCaller(pub Principal);

impl FromRequestParts<AppState> for NodeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = authenticate_request(parts, state).await?;
        match who.role {
            Role::Node => Ok(NodeCaller(who)),
            _ => Err(ApiError::Forbidden("fetch snapshots (node tokens only)")),
        }
    }
}

/// Authenticates the bearer token of a request, counting wrong tokens per
/// client address. A client whose address made too many failed attempts has
/// its failed attempts refused with 429 for a while, but a valid token is
/// always served: an address is not a caller (a node behind NAT, or any
/// host a tenant's pool made a node call from, shares it with whoever
/// guesses), and tokens are 128-bit random secrets, so the lockout is there
/// to throttle floods of failures, not to make guessing harder.
async fn authenticate_request(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    let ip = meta(parts).client_ip;
    let presented = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    // A request without a token is not a guess; only wrong tokens count.
    let Some(presented) = presented else {
        return Err(ApiError::Unauthenticated);
    };
    match authenticate(state, presented).await? {
        Some(p) => {
            crate::infra::audit::note_caller(&p);
            Ok(p)
        }
        None if state.auth_failures.is_blocked(ip) => Err(ApiError::TooManyAuthFailures),
        None => {
            state.auth_failures.failed(ip);
            Err(ApiError::Unauthenticated)
        }
    }
}

async fn authenticate(state: &AppState, presented: &str) -> Result<Option<Principal>, ApiError> {
    let Some(t) = credentials::parse(presented) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT id, secret_sha256, role, tenant, expires_ms, revoked_ms, last_used_ms \
         FROM tokens WHERE prefix = $1",
    )
    .bind(t.prefix)
    .fetch_optional(state.store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let now = now_ms();
    let secret_sha256: String = row.try_get("secret_sha256")?;
    let expires: Option<i64> = row.try_get("expires_ms")?;
    let revoked: Option<i64> = row.try_get("revoked_ms")?;
    if !credentials::verify(t.secret, &secret_sha256)
        || revoked.is_some()
        || expires.is_some_and(|e| e <= now)
    {
        return Ok(None);
    }
    let role: String = row.try_get("role")?;
    let Ok(role) = role.parse::<Role>() else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    let last_used: Option<i64> = row.try_get("last_used_ms")?;
    if last_used.is_none_or(|l| now - l >= LAST_USED_GRANULARITY_MS) {
        // Best effort: a busy database must not fail the request.
        if let Err(e) = sqlx::query("UPDATE tokens SET last_used_ms = $1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(state.store.pool())
            .await
        {
            tracing::debug!(error = %e, "recording token use failed");
        }
    }
    Ok(Some(Principal {
        token_id: id,
        prefix: t.prefix.to_string(),
        role,
        tenant: row.try_get("tenant")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            token_id: "t".into(),
            prefix: "p".into(),
            role,
            tenant: tenant.map(Into::into),
        }
    }

    #[test]
    fn tenant_roles_see_only_their_tenant() {
        let viewer = p(Role::Viewer, Some("acme"));
        assert!(viewer.read("acme", String::new).is_ok());
        assert!(matches!(
            viewer.read("beta", || "tenant beta".into()),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            viewer.require("acme", Role::Operator, "edit", String::new),
            Err(ApiError::Forbidden(_))
        ));
        assert!(p(Role::PlatformAdmin, None)
            .read("beta", String::new)
            .is_ok());
    }

    #[test]
    fn token_management_is_bounded_by_role() {
        let owner = p(Role::Owner, Some("acme"));
        let admin = p(Role::Admin, Some("acme"));
        let operator = p(Role::Operator, Some("acme"));
        assert!(owner.may_manage_token(Some("acme"), Role::Owner));
        assert!(!owner.may_manage_token(Some("acme"), Role::PlatformAdmin));
        assert!(!owner.may_manage_token(Some("beta"), Role::Viewer));
        assert!(!owner.may_manage_token(None, Role::PlatformAdmin));
        assert!(admin.may_manage_token(Some("acme"), Role::Admin));
        assert!(!admin.may_manage_token(Some("acme"), Role::Owner));
        assert!(!operator.may_manage_token(Some("acme"), Role::Viewer));
        assert!(p(Role::PlatformAdmin, None).may_manage_token(None, Role::PlatformAdmin));
    }

    #[test]
    fn repeated_failures_block_a_client_but_not_others() {
        let f = AuthFailures::default();
        let bad: IpAddr = "203.0.113.9".parse().unwrap();
        let good: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..=AUTH_FAILURES_PER_MINUTE {
            assert!(!f.is_blocked(bad));
            f.failed(bad);
        }
        assert!(f.is_blocked(bad));
        assert!(!f.is_blocked(good));
    }
}
