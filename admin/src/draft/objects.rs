//! The draft store shared by every tenant resource: one row per object, its
//! spec as JSON, a revision; read and list, create or replace under
//! `If-Match` / `If-None-Match`, delete, each change audited in its
//! transaction. Edits reach the proxies only when published (`release`).
//! Imports `model` and `infra`.

use axum::http::{header, HeaderMap};
use sqlx::{AnyConnection, Row};

use crate::draft::hostnames;
use crate::infra::audit::{self, Event};
use crate::infra::auth::{Principal, RequestMeta, Role};
use crate::infra::error::ApiError;
use crate::infra::store::now_ms;
use crate::model::certificate;

/// The kinds of tenant objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An upstream pool with its targets.
    Pool,
    /// A hostname with its settings (and routes, stored as their own objects).
    Domain,
    /// A route of a domain; its name is `<hostname>/<route>`.
    Route,
    /// A certificate chain with its (sealed) private key.
    Certificate,
    /// A plugin: a name bound to a component blob by SHA-256.
    Plugin,
    /// The tenant's aggregate request ceiling (one per tenant, named `tenant`).
    RateCeiling,
}

impl Kind {
    /// The name stored in the `kind` column and used in audit actions.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::Domain => "domain",
            Kind::Route => "route",
            Kind::Certificate => "certificate",
            Kind::Plugin => "plugin",
            // Stored and audited under its first name: rows and audit events
            // already carry it.
            Kind::RateCeiling => "rate_limit",
        }
    }

    /// Role needed to change objects of this kind: operators run pools and
    /// routes; domains, certificates and plugins need a tenant admin; the
    /// tenant's request ceiling is the platform's to set.
    pub fn write_role(self) -> Role {
        match self {
            Kind::Pool | Kind::Route => Role::Operator,
            Kind::Domain | Kind::Certificate | Kind::Plugin => Role::Admin,
            Kind::RateCeiling => Role::PlatformAdmin,
        }
    }
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Owning tenant.
    pub tenant: String,
    /// Name, unique per tenant and kind.
    pub name: String,
    /// The spec as stored (secrets sealed).
    pub spec: serde_json::Value,
    /// Lifecycle state, for kinds that have one (domains).
    pub status: Option<String>,
    /// Revision: 1 on creation, +1 per change.
    pub revision: i64,
    /// Creation time (Unix milliseconds).
    pub created_ms: i64,
    /// Last change (Unix milliseconds).
    pub updated_ms: i64,
}

impl Stored {
    /// The spec as its typed form.
    pub fn spec<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_value(self.spec.clone()).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!(
                "stored {} {} does not parse: {e}",
                self.tenant,
                self.name
            ))
        })
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Stored, ApiError> {
    let spec: String = row.try_get("spec")?;
    Ok(Stored {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored spec is not JSON: {e}")))?,
        status: row.try_get("status")?,
        revision: row.try_get("revision")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

const COLUMNS: &str = "tenant, name, spec, status, revision, created_ms, updated_ms";

/// Reads one object.
pub async fn load(
    conn: &mut AnyConnection,
    tenant: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<Stored>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM objects WHERE tenant = $1 AND kind = $2 AND name = $3"
    ))
    .bind(tenant)
    .bind(kind.as_str())
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Lists a tenant's objects of `kind` by name; with `prefix`, only names starting with it.
pub async fn list(
    conn: &mut AnyConnection,
    tenant: &str,
    kind: Kind,
    prefix: Option<&str>,
) -> Result<Vec<Stored>, ApiError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM objects WHERE tenant = $1 AND kind = $2 ORDER BY name"
    ))
    .bind(tenant)
    .bind(kind.as_str())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(from_row)
        .filter(|o| {
            o.as_ref()
                .map_or(true, |o| prefix.is_none_or(|p| o.name.starts_with(p)))
        })
        .collect()
}

/// Every object of every kind of `tenant`.
pub async fn all_of_tenant(
    conn: &mut AnyConnection,
    tenant: &str,
) -> Result<Vec<(String, Stored)>, ApiError> {
    let rows = sqlx::query(&format!(
        "SELECT kind, {COLUMNS} FROM objects WHERE tenant = $1 ORDER BY kind, name"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>("kind")?, from_row(r)?)))
        .collect()
}

/// Whether `tenant` has an object of `kind` called `name`.
pub async fn exists(
    conn: &mut AnyConnection,
    tenant: &str,
    kind: Kind,
    name: &str,
) -> Result<bool, ApiError> {
    Ok(load(conn, tenant, kind, name).await?.is_some())
}

/// Checks that the tenant exists (a missing tenant's objects are "not found").
pub async fn require_tenant(conn: &mut AnyConnection, tenant: &str) -> Result<(), ApiError> {
    let found = sqlx::query("SELECT name FROM tenants WHERE name = $1")
        .bind(tenant)
        .fetch_optional(conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("tenant {tenant}"))),
    }
}

/// Checks `If-Match` (a revision, or `*` for "must exist") and
/// `If-None-Match: *` ("must not exist") against the current revision.
pub fn check_preconditions(headers: &HeaderMap, current: Option<i64>) -> Result<(), ApiError> {
    if let Some(v) = headers.get(header::IF_NONE_MATCH) {
        let v = v.to_str().unwrap_or("").trim();
        if v == "*" && current.is_some() {
            return Err(ApiError::PreconditionFailed(v.to_string()));
        }
    }
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("").trim();
    let matches = match current {
        None => false,
        Some(_) if v == "*" => true,
        Some(rev) => v.trim_start_matches("W/").trim_matches('"') == rev.to_string(),
    };
    if matches {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed(v.to_string()))
    }
}

/// One change to write: the object's new spec and how to audit it.
pub struct Write<'a> {
    /// Kind of object.
    pub kind: Kind,
    /// Owning tenant.
    pub tenant: &'a str,
    /// Name.
    pub name: &'a str,
    /// Spec to store (secrets sealed).
    pub spec: serde_json::Value,
    /// Status to store; `None` keeps the current one.
    pub status: Option<String>,
}

/// Creates or replaces an object in `tx` after checking the preconditions,
/// and audits it with secrets removed by `redact`. Returns the stored object
/// and whether it was created.
pub async fn put(
    tx: &mut AnyConnection,
    who: &Principal,
    meta: &RequestMeta,
    headers: &HeaderMap,
    write: Write<'_>,
    redact: fn(&Stored) -> serde_json::Value,
) -> Result<(Stored, bool), ApiError> {
    let before = load(tx, write.tenant, write.kind, write.name).await?;
    check_preconditions(headers, before.as_ref().map(|b| b.revision))?;
    let now = now_ms();
    let spec_text = write.spec.to_string();
    let after = match &before {
        Some(b) => {
            let after = Stored {
                spec: write.spec,
                status: write.status.or_else(|| b.status.clone()),
                revision: b.revision + 1,
                updated_ms: now,
                ..b.clone()
            };
            sqlx::query(
                "UPDATE objects SET spec = $1, status = $2, revision = $3, updated_ms = $4 \
                 WHERE tenant = $5 AND kind = $6 AND name = $7",
            )
            .bind(&spec_text)
            .bind(&after.status)
            .bind(after.revision)
            .bind(now)
            .bind(write.tenant)
            .bind(write.kind.as_str())
            .bind(write.name)
            .execute(&mut *tx)
            .await?;
            after
        }
        None => {
            let after = Stored {
                tenant: write.tenant.to_string(),
                name: write.name.to_string(),
                spec: write.spec,
                status: write.status,
                revision: 1,
                created_ms: now,
                updated_ms: now,
            };
            sqlx::query(&format!(
                "INSERT INTO objects (kind, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(write.kind.as_str())
            .bind(&after.tenant)
            .bind(&after.name)
            .bind(&spec_text)
            .bind(&after.status)
            .bind(after.revision)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            after
        }
    };
    let verb = if before.is_some() { "update" } else { "create" };
    let action = format!("{}.{verb}", write.kind.as_str());
    let mut event = Event::ok(&action, Some(write.tenant), target(write.kind, &after));
    event.before = before.as_ref().map(redact);
    event.after = Some(redact(&after));
    audit::record(tx, who, meta, event).await?;
    Ok((after, before.is_none()))
}

/// Which object: kind, tenant, name.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// Kind of object.
    pub kind: Kind,
    /// Owning tenant.
    pub tenant: &'a str,
    /// Name.
    pub name: &'a str,
}

/// Deletes an object in `tx` after checking `If-Match`, and audits it.
pub async fn delete(
    tx: &mut AnyConnection,
    who: &Principal,
    meta: &RequestMeta,
    headers: &HeaderMap,
    key: Key<'_>,
    redact: fn(&Stored) -> serde_json::Value,
) -> Result<Stored, ApiError> {
    let Key { kind, tenant, name } = key;
    let before = load(tx, tenant, kind, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{} {name}", kind.as_str())))?;
    check_preconditions(headers, Some(before.revision))?;
    sqlx::query("DELETE FROM objects WHERE tenant = $1 AND kind = $2 AND name = $3")
        .bind(tenant)
        .bind(kind.as_str())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let action = format!("{}.delete", kind.as_str());
    let mut event = Event::ok(&action, Some(tenant), target(kind, &before));
    event.before = Some(redact(&before));
    audit::record(tx, who, meta, event).await?;
    Ok(before)
}

/// The audit target of an object: `tenants/acme/pools/web`.
pub fn target(kind: Kind, o: &Stored) -> String {
    format!("tenants/{}/{}s/{}", o.tenant, kind.as_str(), o.name)
}

/// The redaction of kinds without secrets: the spec as stored.
pub fn no_secrets(o: &Stored) -> serde_json::Value {
    o.spec.clone()
}

/// The redaction of certificates: the public part only.
pub fn certificate_public(o: &Stored) -> serde_json::Value {
    certificate::public_part(&o.spec)
}

/// One object put back into a draft by a rollback.
pub struct Restored<'a> {
    /// Kind, as stored.
    pub kind: &'a str,
    /// Name.
    pub name: &'a str,
    /// Spec as published.
    pub spec: &'a serde_json::Value,
    /// Status as published.
    pub status: Option<&'a str>,
}

/// Replaces `tenant`'s draft with `objects` (a rollback), all but its request
/// ceiling, which is the platform's and stays as it is. Changes made at `now`.
pub async fn replace_tenant(
    conn: &mut AnyConnection,
    tenant: &str,
    objects: &[Restored<'_>],
    now: i64,
) -> Result<(), ApiError> {
    // Revisions go on from where they were, so an `If-Match` taken before
    // the rollback cannot match the restored object by accident; creation
    // times stay, so a rollback cannot make a pending claim young again.
    let existing: std::collections::HashMap<(String, String), (i64, i64)> =
        sqlx::query("SELECT kind, name, revision, created_ms FROM objects WHERE tenant = $1")
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    (r.try_get("kind")?, r.try_get("name")?),
                    (r.try_get("revision")?, r.try_get("created_ms")?),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
    let ceiling = Kind::RateCeiling.as_str();
    sqlx::query("DELETE FROM objects WHERE tenant = $1 AND kind <> $2")
        .bind(tenant)
        .bind(ceiling)
        .execute(&mut *conn)
        .await?;
    for o in objects.iter().filter(|o| o.kind != ceiling) {
        if o.kind == Kind::Domain.as_str() {
            hostnames::check_available(conn, tenant, o.name).await?;
        }
        let (revision, created) = existing
            .get(&(o.kind.to_string(), o.name.to_string()))
            .map_or((1, now), |(r, c)| (r + 1, *c));
        sqlx::query(
            "INSERT INTO objects (kind, tenant, name, spec, status, revision, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(o.kind)
        .bind(tenant)
        .bind(o.name)
        .bind(o.spec.to_string())
        .bind(o.status)
        .bind(revision)
        .bind(created)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
