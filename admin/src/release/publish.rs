//! Publishing: the next version built from the draft (a publish) or from an
//! earlier version (a rollback), validated tenant part by tenant part and stored by the one
//! optimistic loop ([`release`]) that every new version goes through.
//! Imports `release`, `draft` and `infra`.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::draft::objects::{self, Kind, Restored};
use crate::infra::audit::{self, Event};
use crate::infra::auth::{Principal, RequestMeta, Role};
use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::release::diff::{visible_diff, Change};
use crate::release::document::{self, Document};
use crate::release::validate::validate_changes;
use crate::release::versions::{self, Version};

/// The outcome of a publish or rollback.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Published {
    /// The version now current.
    pub version: Version,
    /// False when the draft equalled the current version (nothing new was stored).
    pub changed: bool,
    /// What changed against the previous version.
    pub changes: Vec<Change>,
}

/// How one kind of release builds the next document.
pub(crate) trait Plan {
    /// The next document on top of the latest version `latest` (its document
    /// `base`), reading the store on `conn`.
    async fn next(
        &self,
        conn: &mut AnyConnection,
        latest: Option<&Version>,
        base: &Document,
    ) -> Result<Document, ApiError>;
}

/// What a new version records besides its document.
#[derive(Clone, Copy)]
pub(crate) struct Label<'a> {
    /// Tenant whose part changes (`None`: every tenant's).
    pub scope: Option<&'a str>,
    /// The publisher's note.
    pub note: Option<&'a str>,
    /// For a rollback: the version restored (the draft is reset to it too).
    pub rollback_of: Option<i64>,
}

/// How a release ended.
pub(crate) enum Outcome {
    /// The latest version already held the next document: nothing stored.
    Kept(Version),
    /// Stored as the next version, on top of the document `base`.
    Stored {
        version: Version,
        base: Document,
        next: Document,
    },
}

/// Stores the document `plan` builds on top of the latest version as the
/// next version, its changed tenant parts validated (each on its own), and
/// audits it.
///
/// Validation happens before the write transaction (it may resolve DNS); the
/// transaction then checks that no other publish slipped in, and the plan is
/// built again on the new latest version when one did (five tries). Only a
/// rollback stores a document equal to the latest version's (it also resets
/// the draft).
pub(crate) async fn release(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    label: Label<'_>,
    plan: &impl Plan,
) -> Result<Outcome, ApiError> {
    for _ in 0..5 {
        let mut conn = state.store.pool().acquire().await?;
        let (latest, base) = versions::latest(&mut conn).await?;
        let next = plan.next(&mut conn, latest.as_ref(), &base).await?;
        drop(conn);
        if label.rollback_of.is_none() {
            if let Some(version) = latest.clone().filter(|_| next == base) {
                return Ok(Outcome::Kept(version));
            }
        }
        validate_changes(state, who, &base, &next).await?;
        let new = NewVersion {
            base: latest.as_ref().map(|v| v.version),
            document: &next,
            label,
        };
        if let Some(version) = store_version(state, who, meta, new).await? {
            return Ok(Outcome::Stored {
                version,
                base,
                next,
            });
        }
    }
    Err(ApiError::Conflict {
        message: "other publishes kept landing first; retry".into(),
        field: None,
    })
}

/// A version about to be stored.
struct NewVersion<'a> {
    /// The version it follows (`None`: the first).
    base: Option<i64>,
    document: &'a Document,
    label: Label<'a>,
}

/// Stores `new` as the version after its base unless another publish got
/// there first (then `Ok(None)`: retry).
async fn store_version(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    new: NewVersion<'_>,
) -> Result<Option<Version>, ApiError> {
    let Label {
        scope,
        note,
        rollback_of,
    } = new.label;
    let mut tx = state.store.begin_write().await?;
    if versions::current(&mut *tx).await? != new.base {
        return Ok(None);
    }
    let version = Version {
        version: new.base.unwrap_or(0) + 1,
        hash: new.document.hash(),
        created_ms: now_ms(),
        created_by: who.prefix.clone(),
        scope: scope.map(str::to_string),
        note: note.map(str::to_string),
        rollback_of,
    };
    match versions::insert_version(&mut tx, &version, new.document).await {
        Ok(_) => {}
        // Another admin (PostgreSQL: concurrent transactions) stored this
        // number first: the caller rebuilds on the new base and retries.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let action = if rollback_of.is_some() {
        restore(&mut tx, new.document, scope).await?;
        "config.rollback"
    } else {
        "config.publish"
    };
    let event = Event::ok(action, scope, format!("versions/{}", version.version)).after(&version);
    audit::record(&mut tx, who, meta, event).await?;
    tx.commit().await?;
    state.published.send_replace(version.version);
    Ok(Some(version))
}

/// Replaces the draft of the scope's tenants with their parts of `doc`.
async fn restore(
    conn: &mut AnyConnection,
    doc: &Document,
    scope: Option<&str>,
) -> Result<(), ApiError> {
    let tenants: Vec<String> = match scope {
        Some(t) => vec![t.to_string()],
        None => tenant_names(conn).await?,
    };
    let now = now_ms();
    for t in tenants {
        // Collected first: an iterator of closures held across the awaits
        // would keep the future from being `Send`.
        let restored: Vec<Restored> = doc
            .tenants
            .get(&t)
            .into_iter()
            .flatten()
            .flat_map(|(kind, entries)| {
                entries.iter().map(move |(name, e)| Restored {
                    kind,
                    name,
                    spec: &e.spec,
                    status: e.status.as_deref(),
                })
            })
            .collect();
        objects::replace_tenant(conn, &t, &restored, now).await?;
    }
    Ok(())
}

/// The tenants that exist, in name order.
async fn tenant_names(conn: &mut AnyConnection) -> Result<Vec<String>, ApiError> {
    Ok(sqlx::query("SELECT name FROM tenants ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?)
}

/// Where the scope's new parts come from.
#[derive(Clone, Copy)]
pub enum Source {
    /// The draft (a publish).
    Draft,
    /// An earlier version (a rollback to it).
    Version(i64),
}

/// A publish or a rollback, as requested.
pub struct Request {
    /// Where the new parts come from.
    pub source: Source,
    /// Tenant asked for (`None`: the token's own, or every tenant for a
    /// platform admin).
    pub tenant: Option<String>,
    /// The publisher's note.
    pub note: Option<String>,
    /// The publisher's `If-Match` (publishes only).
    pub if_match: Option<HeaderMap>,
}

/// Publishes or rolls back as `request` asks: validated part by part, retried
/// when another publish lands first, audited (refusals too).
pub async fn publish(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    request: Request,
) -> Result<Published, ApiError> {
    let (action, target, rollback_of) = match request.source {
        Source::Draft => ("config.publish", "versions".to_string(), None),
        Source::Version(n) => ("config.rollback", format!("versions/{n}"), Some(n)),
    };
    let refuse = |tenant: Option<String>, e: ApiError| {
        let target = target.clone();
        async move { audit::refused(state, who, meta, action, tenant.as_deref(), target, e).await }
    };
    let scope = match scope(who, request.tenant.clone(), request.source) {
        Ok(s) => s,
        Err(e) => {
            let tenant = request.tenant.clone().or_else(|| who.tenant.clone());
            return Err(refuse(tenant, e).await);
        }
    };
    check_note(request.note.as_deref())?;
    let plan = Parts {
        source: request.source,
        scope: scope.as_deref(),
        if_match: request.if_match.as_ref(),
    };
    let label = Label {
        scope: scope.as_deref(),
        note: request.note.as_deref(),
        rollback_of,
    };
    match release(state, who, meta, label, &plan).await {
        Ok(Outcome::Kept(version)) => Ok(Published {
            version,
            changed: false,
            changes: Vec::new(),
        }),
        Ok(Outcome::Stored {
            version,
            base,
            next,
        }) => Ok(Published {
            version,
            changed: true,
            changes: visible_diff(who, &base, &next),
        }),
        // A stale `If-Match` (the one refusal found in the loop), audited
        // once the loop gave its connection back.
        Err(e @ ApiError::PreconditionFailed(_)) => Err(refuse(scope.clone(), e).await),
        Err(e) => Err(e),
    }
}

/// The tenant a publish or rollback applies to (`None`: all), checking the
/// role: operators publish, but a rollback also rewrites the draft's domains,
/// certificates and plugins, which takes a tenant admin.
fn scope(
    who: &Principal,
    requested: Option<String>,
    source: Source,
) -> Result<Option<String>, ApiError> {
    let (needed, action) = match source {
        Source::Draft => (Role::Operator, "publish configuration"),
        Source::Version(_) => (Role::Admin, "roll back configuration"),
    };
    match (who.role, requested) {
        (Role::PlatformAdmin, t) => Ok(t),
        (_, Some(t)) if who.tenant.as_deref() != Some(t.as_str()) => {
            Err(ApiError::NotFound(format!("tenant {t}")))
        }
        (role, _) if role < needed => Err(ApiError::Forbidden(action)),
        _ => Ok(who.tenant.clone()),
    }
}

fn check_note(note: Option<&str>) -> Result<(), ApiError> {
    match note {
        Some(n) if n.chars().count() > 500 => {
            Err(ApiError::invalid("note", "at most 500 characters"))
        }
        _ => Ok(()),
    }
}

/// A publish or a rollback: the scope's tenants' parts taken from the draft
/// or from an earlier version.
struct Parts<'a> {
    source: Source,
    scope: Option<&'a str>,
    /// The publisher's `If-Match`, checked against the latest version.
    if_match: Option<&'a HeaderMap>,
}

impl Plan for Parts<'_> {
    async fn next(
        &self,
        conn: &mut AnyConnection,
        latest: Option<&Version>,
        base: &Document,
    ) -> Result<Document, ApiError> {
        if let Some(headers) = self.if_match {
            let based_on = Some(latest.map_or(0, |v| v.version));
            objects::check_preconditions(headers, based_on)?;
        }
        if let Some(t) = self.scope {
            objects::require_tenant(conn, t).await?;
        }
        next_document(conn, base, self.scope, self.source).await
    }
}

/// Builds the next document: `base` with the scope's tenants' parts taken
/// from `source`, and tenants that no longer exist dropped.
async fn next_document(
    conn: &mut AnyConnection,
    base: &Document,
    scope: Option<&str>,
    source: Source,
) -> Result<Document, ApiError> {
    let existing = tenant_names(conn).await?;
    let old = match source {
        Source::Draft => None,
        Source::Version(n) => Some(
            versions::load_version(conn, n)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("version {n}")))?
                .1,
        ),
    };
    let mut next = base.clone();
    next.tenants
        .retain(|t, _| scope.is_some() && existing.contains(t));
    for t in existing
        .iter()
        .filter(|t| scope.is_none_or(|s| s == t.as_str()))
    {
        let part = match &old {
            None => document::part_of(objects::all_of_tenant(conn, t).await?),
            Some(doc) => {
                let mut part = doc.tenants.get(t).cloned().unwrap_or_default();
                // The request ceiling is the platform's: a rollback (which a
                // tenant admin may do) keeps the one in force.
                let ceiling = Kind::RateCeiling.as_str();
                part.remove(ceiling);
                if let Some(current) = base.tenants.get(t).and_then(|p| p.get(ceiling)) {
                    part.insert(ceiling.to_string(), current.clone());
                }
                part
            }
        };
        if part.is_empty() {
            next.tenants.remove(t);
        } else {
            next.tenants.insert(t.clone(), part);
        }
    }
    Ok(next)
}

/// Stores, in `tx`, a version without `tenant`'s domain `host` (and its
/// routes) when the current one has it: an expired pending claim is
/// withdrawn now, not at its tenant's next publish. Removing a domain
/// cannot make the rest invalid, so this needs no validation. Returns the
/// new version.
pub async fn unpublish_domain(
    tx: &mut AnyConnection,
    who: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    host: &str,
) -> Result<Option<i64>, ApiError> {
    let (current, base) = versions::latest(tx).await?;
    let Some(current) = current else {
        return Ok(None);
    };
    let mut next = base.clone();
    let Some(part) = next.tenants.get_mut(tenant) else {
        return Ok(None);
    };
    let routes = format!("{host}/");
    if let Some(domains) = part.get_mut(Kind::Domain.as_str()) {
        domains.remove(host);
    }
    if let Some(r) = part.get_mut(Kind::Route.as_str()) {
        r.retain(|name, _| !name.starts_with(&routes));
    }
    part.retain(|_, objects| !objects.is_empty());
    if part.is_empty() {
        next.tenants.remove(tenant);
    }
    if next == base {
        return Ok(None);
    }
    let note = format!("pending claim on {host} withdrawn");
    store_withdrawal(tx, who, meta, tenant, &current, &next, note).await
}

/// Stores, in `tx`, a version without `tenant` when the current one has it
/// (the tenant is being deleted). Removing a tenant's part cannot make the
/// rest invalid, so this needs no validation. Returns the new version.
pub async fn unpublish_tenant(
    tx: &mut AnyConnection,
    who: &Principal,
    meta: &RequestMeta,
    tenant: &str,
) -> Result<Option<i64>, ApiError> {
    let (current, base) = versions::latest(tx).await?;
    let Some(current) = current else {
        return Ok(None);
    };
    if !base.tenants.contains_key(tenant) {
        return Ok(None);
    }
    let mut next = base;
    next.tenants.remove(tenant);
    store_withdrawal(
        tx,
        who,
        meta,
        tenant,
        &current,
        &next,
        "tenant deleted".into(),
    )
    .await
}

/// Stores `next` (`current` with something of `tenant` withdrawn) as the
/// version after `current`, audited, in `tx`. Withdrawing cannot make the
/// rest invalid, so this needs no validation.
async fn store_withdrawal(
    tx: &mut AnyConnection,
    who: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    current: &Version,
    next: &Document,
    note: String,
) -> Result<Option<i64>, ApiError> {
    let version = Version {
        version: current.version + 1,
        hash: next.hash(),
        created_ms: now_ms(),
        created_by: who.prefix.clone(),
        scope: Some(tenant.to_string()),
        note: Some(note),
        rollback_of: None,
    };
    versions::insert_version(tx, &version, next).await?;
    let event = Event::ok(
        "config.publish",
        Some(tenant),
        format!("versions/{}", version.version),
    )
    .after(&version);
    audit::record(tx, who, meta, event).await?;
    Ok(Some(version.version))
}
