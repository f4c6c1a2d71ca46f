//! Versioned configuration: publish the draft, list and read versions, diff
//! them, roll back.
//!
//! Publishing takes the publisher's scope (one tenant, or every tenant for a
//! platform admin without `tenant`) from the draft, keeps every other tenant's
//! part as last published, validates the whole result with gatehouse-config
//! (the proxy's own validation) and stores it as version N+1 with its hash.
//! Validation happens before the write transaction (it may resolve DNS); the
//! transaction then checks that no other publish slipped in and retries if
//! one did. A rollback publishes an old version's part as N+1 and resets the
//! draft to it, so the next publish does not bring the bad change back.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{self, Event};
use crate::auth::{Principal, RequestMeta, Role};
use crate::document::{self, Document, Entry, TenantPart};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, FieldProblem};
use crate::objects::{self, with_etag};
use crate::store::now_ms;
use crate::AppState;

/// Validates one object on its own: `fill` adds it to an empty config of
/// `tenant`, and only problems under `prefix` are reported (without it).
pub async fn check_alone(
    tenant: &str,
    fill: impl FnOnce(&mut gatehouse_config::file::FileConfig),
    prefix: &str,
) -> Result<(), ApiError> {
    let mut cfg = gatehouse_config::file::FileConfig::default();
    cfg.tenants.push(gatehouse_config::file::Tenant {
        name: tenant.to_string(),
        rate_limit: None,
        cache_bytes: None,
    });
    fill(&mut cfg);
    match document::validate(cfg, document::ObjectPaths::default()).await {
        Ok(()) => Ok(()),
        Err(problems) => {
            let mut mine: Vec<FieldProblem> = problems
                .into_iter()
                .filter_map(|p| {
                    p.field.strip_prefix(prefix).map(|rest| FieldProblem {
                        field: rest.to_string(),
                        message: p.message,
                    })
                })
                .collect();
            match mine.len() {
                0 => Ok(()),
                1 => {
                    let p = mine.remove(0);
                    Err(ApiError::invalid(p.field, p.message))
                }
                _ => Err(ApiError::InvalidFields(mine)),
            }
        }
    }
}

/// A published version, without its content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Version {
    /// Version number, 1 and up.
    pub version: i64,
    /// SHA-256 of the published document.
    pub hash: String,
    /// When it was published (Unix milliseconds).
    pub created_ms: i64,
    /// Token prefix of the publisher.
    pub created_by: String,
    /// Tenant whose draft was published; absent when every tenant's was.
    pub scope: Option<String>,
    /// The publisher's note.
    pub note: Option<String>,
    /// For a rollback: the version restored.
    pub rollback_of: Option<i64>,
}

/// A version with its content.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionDetail {
    /// The version.
    #[serde(flatten)]
    pub version: Version,
    /// Tenant → kind → name → object (private keys omitted). A tenant token
    /// sees its own tenant only.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
}

/// A list of versions, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    /// Versions.
    pub versions: Vec<Version>,
}

/// Body of `POST /v1/publish`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Tenant to publish (a tenant token's own by default; a platform admin
    /// without it publishes every tenant's draft).
    pub tenant: Option<String>,
    /// A note kept with the version (at most 500 characters).
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// Body of a rollback.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Tenant to roll back (a tenant token's own; a platform admin without it
    /// rolls back every tenant).
    pub tenant: Option<String>,
    /// A note kept with the new version.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

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

/// One object that differs between two versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Change {
    /// Owning tenant.
    pub tenant: String,
    /// `pool`, `domain`, `route`, `certificate` or `plugin`.
    pub kind: String,
    /// Object name (routes: `<host>/<route>`).
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: ChangeKind,
    /// The object before (absent when added; private keys omitted).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The object after (absent when removed; private keys omitted).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// How an object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the newer version.
    Added,
    /// Only in the older version.
    Removed,
    /// In both, different.
    Changed,
}

/// A diff between two configurations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Diff {
    /// Older side: a version number (0 = empty).
    pub from: i64,
    /// Newer side: a version number, or absent for the draft.
    pub to: Option<i64>,
    /// Objects that differ.
    pub changes: Vec<Change>,
}

/// Objects that differ between `old` and `new` (both already redacted).
pub fn diff(old: &Document, new: &Document) -> Vec<Change> {
    let mut out = Vec::new();
    let tenants: BTreeSet<&String> = old.tenants.keys().chain(new.tenants.keys()).collect();
    let empty = TenantPart::new();
    for t in tenants {
        let (a, b) = (
            old.tenants.get(t).unwrap_or(&empty),
            new.tenants.get(t).unwrap_or(&empty),
        );
        let kinds: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in kinds {
            let none = Default::default();
            let (ka, kb) = (a.get(k).unwrap_or(&none), b.get(k).unwrap_or(&none));
            let names: BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
            for n in names {
                let (x, y) = (ka.get(n), kb.get(n));
                let change = match (x, y) {
                    (None, Some(_)) => ChangeKind::Added,
                    (Some(_), None) => ChangeKind::Removed,
                    (Some(x), Some(y)) if x != y => ChangeKind::Changed,
                    _ => continue,
                };
                let show = |e: Option<&Entry>| e.and_then(|e| serde_json::to_value(e).ok());
                out.push(Change {
                    tenant: t.clone(),
                    kind: k.clone(),
                    name: n.clone(),
                    change,
                    before: show(x),
                    after: show(y),
                });
            }
        }
    }
    out
}

fn version_from_row(row: &sqlx::any::AnyRow) -> Result<Version, ApiError> {
    Ok(Version {
        version: row.try_get("version")?,
        hash: row.try_get("hash")?,
        created_ms: row.try_get("created_ms")?,
        created_by: row.try_get("created_by")?,
        scope: row.try_get("scope")?,
        note: row.try_get("note")?,
        rollback_of: row.try_get("rollback_of")?,
    })
}

const VERSION_COLUMNS: &str = "version, hash, created_ms, created_by, scope, note, rollback_of";

/// The latest version and its document (version 0 and empty when none).
pub async fn latest(conn: &mut AnyConnection) -> Result<(Option<Version>, Document), ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS}, document FROM snapshots ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => Ok((
            Some(version_from_row(&row)?),
            Document::parse(&row.try_get::<String, _>("document")?)?,
        )),
        None => Ok((None, Document::default())),
    }
}

/// One version and its document.
pub async fn load_version(
    conn: &mut AnyConnection,
    version: i64,
) -> Result<Option<(Version, Document)>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS}, document FROM snapshots WHERE version = $1"
    ))
    .bind(version)
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => Ok(Some((
            version_from_row(&row)?,
            Document::parse(&row.try_get::<String, _>("document")?)?,
        ))),
        None => Ok(None),
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
enum Source {
    /// The draft (a publish).
    Draft,
    /// An earlier version (a rollback to it).
    Version(i64),
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
            load_version(conn, n)
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
                let ceiling = objects::Kind::RateLimit.as_str();
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

/// Validates `doc` as a whole; problems in other tenants' parts are not
/// shown to a tenant token.
async fn validate_document(
    state: &AppState,
    who: &Principal,
    doc: &Document,
) -> Result<(), ApiError> {
    let (cfg, paths) = document::render(doc, &state.keys)?;
    match document::validate(cfg, paths).await {
        Ok(()) => Ok(()),
        Err(problems) => {
            let problems = problems
                .into_iter()
                .map(|p| match (&who.tenant, document::ObjectPaths::tenant_of(&p.field)) {
                    (Some(mine), Some(t)) if t != mine => FieldProblem {
                        field: format!("tenants/{t}"),
                        message: "another tenant's published configuration is invalid; the platform operators have to fix it".into(),
                    },
                    _ => p,
                })
                .collect();
            Err(ApiError::InvalidConfig(problems))
        }
    }
}

/// A version about to be stored.
struct NewVersion<'a> {
    /// The version it follows (`None`: the first).
    base: Option<i64>,
    document: &'a Document,
    scope: Option<&'a str>,
    note: Option<&'a str>,
    /// For a rollback: the version restored (the draft is reset to it too).
    rollback_of: Option<i64>,
}

/// Stores `new` as the version after its base unless another publish got
/// there first (then `Ok(None)`: retry).
async fn store_version(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    new: NewVersion<'_>,
) -> Result<Option<Version>, ApiError> {
    let mut tx = state.store.begin_write().await?;
    let current: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM snapshots")
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
    if current != new.base {
        return Ok(None);
    }
    let version = Version {
        version: new.base.unwrap_or(0) + 1,
        hash: new.document.hash(),
        created_ms: now_ms(),
        created_by: who.prefix.clone(),
        scope: new.scope.map(str::to_string),
        note: new.note.map(str::to_string),
        rollback_of: new.rollback_of,
    };
    match insert_version(&mut tx, &version, new.document).await {
        Ok(_) => {}
        // Another admin (PostgreSQL: concurrent transactions) stored this
        // number first: the caller rebuilds on the new base and retries.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let action = if new.rollback_of.is_some() {
        restore(&mut tx, new.document, new.scope).await?;
        "config.rollback"
    } else {
        "config.publish"
    };
    let event =
        Event::ok(action, new.scope, format!("versions/{}", version.version)).after(&version);
    audit::record(&mut tx, who, meta, event).await?;
    tx.commit().await?;
    state.published.send_replace(version.version);
    Ok(Some(version))
}

async fn insert_version(
    conn: &mut AnyConnection,
    version: &Version,
    document: &Document,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO snapshots ({VERSION_COLUMNS}, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(version.version)
    .bind(&version.hash)
    .bind(version.created_ms)
    .bind(&version.created_by)
    .bind(&version.scope)
    .bind(&version.note)
    .bind(version.rollback_of)
    .bind(document.to_text())
    .execute(conn)
    .await
    .map(|_| ())
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
    let (current, base) = latest(tx).await?;
    let Some(current) = current else {
        return Ok(None);
    };
    if !base.tenants.contains_key(tenant) {
        return Ok(None);
    }
    let mut next = base;
    next.tenants.remove(tenant);
    let version = Version {
        version: current.version + 1,
        hash: next.hash(),
        created_ms: now_ms(),
        created_by: who.prefix.clone(),
        scope: Some(tenant.to_string()),
        note: Some("tenant deleted".into()),
        rollback_of: None,
    };
    insert_version(tx, &version, &next).await?;
    let event = Event::ok(
        "config.publish",
        Some(tenant),
        format!("versions/{}", version.version),
    )
    .after(&version);
    audit::record(tx, who, meta, event).await?;
    Ok(Some(version.version))
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
        // Revisions go on from where they were, so an `If-Match` taken before
        // the rollback cannot match the restored object by accident.
        let revisions: std::collections::HashMap<(String, String), i64> =
            sqlx::query("SELECT kind, name, revision FROM objects WHERE tenant = $1")
                .bind(&t)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        (r.try_get("kind")?, r.try_get("name")?),
                        r.try_get("revision")?,
                    ))
                })
                .collect::<Result<_, sqlx::Error>>()?;
        // The draft's request ceiling is left alone (see `next_document`).
        let ceiling = objects::Kind::RateLimit.as_str();
        sqlx::query("DELETE FROM objects WHERE tenant = $1 AND kind <> $2")
            .bind(&t)
            .bind(ceiling)
            .execute(&mut *conn)
            .await?;
        let Some(part) = doc.tenants.get(&t) else {
            continue;
        };
        for (kind, entries) in part.iter().filter(|(k, _)| k.as_str() != ceiling) {
            for (name, e) in entries {
                if kind == objects::Kind::Domain.as_str() {
                    crate::domains::check_available(conn, &t, name).await?;
                }
                let revision = revisions
                    .get(&(kind.clone(), name.clone()))
                    .map_or(1, |r| r + 1);
                sqlx::query(
                    "INSERT INTO objects (kind, tenant, name, spec, status, revision, created_ms, updated_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(kind)
                .bind(&t)
                .bind(name)
                .bind(e.spec.to_string())
                .bind(&e.status)
                .bind(revision)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// Publishes the draft (operator and up for their tenant; platform admins for
/// one tenant or all). `If-Match` with the current version number refuses the
/// publish (412) when someone else published since.
#[utoipa::path(
    post, path = "/v1/publish", request_body = PublishRequest,
    params(("If-Match" = Option<String>, Header, description = "The version the publish is based on")),
    responses(
        (status = 201, body = Published, description = "Published as a new version"),
        (status = 200, body = Published, description = "Nothing changed"),
        (status = 403, body = ErrorBody), (status = 412, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The configuration is invalid: every problem in `details`"),
    ),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn publish(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishRequest>,
) -> Result<Response, ApiError> {
    let release = Release {
        source: Source::Draft,
        tenant: body.tenant,
        note: body.note,
        if_match: Some(headers),
    };
    release_version(&state, &who, &meta, release).await
}

/// A publish or a rollback, as requested.
struct Release {
    source: Source,
    tenant: Option<String>,
    note: Option<String>,
    /// The publisher's `If-Match` (publishes only).
    if_match: Option<HeaderMap>,
}

/// Stores the next version: validated as a whole, retried when another
/// publish lands first, audited (refusals too).
async fn release_version(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    release: Release,
) -> Result<Response, ApiError> {
    let (action, target, rollback_of) = match release.source {
        Source::Draft => ("config.publish", "versions".to_string(), None),
        Source::Version(n) => ("config.rollback", format!("versions/{n}"), Some(n)),
    };
    let refuse = |tenant: Option<String>, e: ApiError| {
        let target = target.clone();
        async move { audit::refused(state, who, meta, action, tenant.as_deref(), target, e).await }
    };
    let scope = match scope(who, release.tenant.clone(), release.source) {
        Ok(s) => s,
        Err(e) => {
            let tenant = release.tenant.clone().or_else(|| who.tenant.clone());
            return Err(refuse(tenant, e).await);
        }
    };
    check_note(release.note.as_deref())?;
    for _ in 0..5 {
        let mut conn = state.store.pool().acquire().await?;
        let (current, base) = latest(&mut conn).await?;
        let base_version = current.as_ref().map(|v| v.version);
        if let Some(headers) = &release.if_match {
            let based_on = Some(base_version.unwrap_or(0));
            if let Err(e) = objects::check_preconditions(headers, based_on) {
                drop(conn);
                return Err(refuse(scope.clone(), e).await);
            }
        }
        if let Some(t) = &scope {
            objects::require_tenant(&mut conn, t).await?;
        }
        let next = next_document(&mut conn, &base, scope.as_deref(), release.source).await?;
        drop(conn);
        if rollback_of.is_none() {
            if let Some(version) = current.filter(|_| next == base) {
                let unchanged = Published {
                    version,
                    changed: false,
                    changes: Vec::new(),
                };
                return Ok(with_etag(
                    StatusCode::OK,
                    unchanged.version.version,
                    unchanged,
                ));
            }
        }
        validate_document(state, who, &next).await?;
        let new = NewVersion {
            base: base_version,
            document: &next,
            scope: scope.as_deref(),
            note: release.note.as_deref(),
            rollback_of,
        };
        if let Some(version) = store_version(state, who, meta, new).await? {
            let changes = visible_diff(who, &base, &next);
            let published = Published {
                version,
                changed: true,
                changes,
            };
            return Ok(with_etag(
                StatusCode::CREATED,
                published.version.version,
                published,
            ));
        }
    }
    Err(ApiError::Conflict {
        message: "other publishes kept landing first; retry".into(),
        field: None,
    })
}

/// Publishes a certificate the system issued for `host` (an ACME order):
/// the certificate object as it is in the draft, and the published domain
/// made to use it, on top of the latest version, and nothing else of the
/// tenant's draft (unpublished changes stay drafts). Validated as a whole
/// and retried like a publish; the new version, or `None` when nothing
/// changed.
pub async fn publish_certificate(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    certificate: &str,
    host: &str,
) -> Result<Option<Version>, ApiError> {
    let certificate_kind = objects::Kind::Certificate.as_str();
    let domain_kind = objects::Kind::Domain.as_str();
    for _ in 0..5 {
        let mut conn = state.store.pool().acquire().await?;
        let (current, base) = latest(&mut conn).await?;
        let Some(draft) =
            objects::load(&mut conn, tenant, objects::Kind::Certificate, certificate).await?
        else {
            return Err(ApiError::NotFound(format!("certificate {certificate}")));
        };
        drop(conn);
        let mut next = base.clone();
        let part = next.tenants.entry(tenant.to_string()).or_default();
        part.entry(certificate_kind.to_string())
            .or_default()
            .insert(
                certificate.to_string(),
                Entry {
                    spec: draft.spec.clone(),
                    status: draft.status.clone(),
                },
            );
        if let Some(domain) = part
            .get_mut(domain_kind)
            .and_then(|domains| domains.get_mut(host))
        {
            if let Some(spec) = domain.spec.as_object_mut() {
                spec.insert("certificate".into(), certificate.into());
            }
        }
        if next == base {
            return Ok(None);
        }
        validate_document(state, who, &next).await?;
        let note = format!("certificate {certificate} for {host}");
        let new = NewVersion {
            base: current.as_ref().map(|v| v.version),
            document: &next,
            scope: Some(tenant),
            note: Some(&note),
            rollback_of: None,
        };
        if let Some(version) = store_version(state, who, meta, new).await? {
            return Ok(Some(version));
        }
    }
    Err(ApiError::Conflict {
        message: "other publishes kept landing first; retry".into(),
        field: None,
    })
}

fn check_note(note: Option<&str>) -> Result<(), ApiError> {
    match note {
        Some(n) if n.chars().count() > 500 => {
            Err(ApiError::invalid("note", "at most 500 characters"))
        }
        _ => Ok(()),
    }
}

fn visible_diff(who: &Principal, old: &Document, new: &Document) -> Vec<Change> {
    match (&who.role, &who.tenant) {
        (Role::PlatformAdmin, _) | (_, None) => diff(&old.redacted(), &new.redacted()),
        (_, Some(t)) => diff(&old.only(t).redacted(), &new.only(t).redacted()),
    }
}

/// Rolls back: publishes version `n`'s configuration (of the token's tenant,
/// or of `tenant` / everyone for platform admins) as a new version, and
/// resets the draft to it.
#[utoipa::path(
    post, path = "/v1/versions/{version}/rollback", request_body = RollbackRequest,
    params(("version" = i64, Path, description = "Version to restore")),
    responses(
        (status = 201, body = Published), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The old configuration no longer validates"),
    ),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn rollback(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(n): ApiPath<i64>,
    ApiJson(body): ApiJson<RollbackRequest>,
) -> Result<Response, ApiError> {
    let release = Release {
        source: Source::Version(n),
        tenant: body.tenant,
        note: body.note,
        if_match: None,
    };
    release_version(&state, &who, &meta, release).await
}

/// Paging of the version list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// Only versions older than this one.
    pub before: Option<i64>,
    /// At most this many (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Lists published versions, newest first (`ETag`: the current version). A
/// tenant token sees the versions that published its tenant or everyone.
#[utoipa::path(
    get, path = "/v1/versions", params(VersionQuery),
    responses((status = 200, body = VersionList, headers(("ETag" = String, description = "Current version")))),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Invalid {
            code: "invalid_query",
            message: "must be 1 to 500".into(),
            field: Some("limit".into()),
        });
    }
    let mine = match who.role {
        Role::PlatformAdmin => None,
        _ => who.tenant.clone(),
    };
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM snapshots \
         WHERE ($1 IS NULL OR version < $1) AND ($2 IS NULL OR scope IS NULL OR scope = $2) \
         ORDER BY version DESC LIMIT $3"
    ))
    .bind(q.before)
    .bind(&mine)
    .bind(i64::from(limit))
    .fetch_all(state.store.pool())
    .await?;
    let versions: Vec<Version> = rows
        .iter()
        .map(version_from_row)
        .collect::<Result<_, _>>()?;
    let current: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM snapshots")
        .fetch_one(state.store.pool())
        .await?
        .try_get("v")?;
    Ok(with_etag(
        StatusCode::OK,
        current.unwrap_or(0),
        VersionList { versions },
    ))
}

fn visible(who: &Principal, doc: &Document) -> Document {
    match (&who.role, &who.tenant) {
        (Role::PlatformAdmin, _) | (_, None) => doc.redacted(),
        (_, Some(t)) => doc.only(t).redacted(),
    }
}

/// Reads a version with its content (a tenant token sees its own part).
#[utoipa::path(
    get, path = "/v1/versions/{version}",
    params(("version" = i64, Path, description = "Version")),
    responses((status = 200, body = VersionDetail)),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(n): ApiPath<i64>,
) -> Result<Json<VersionDetail>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let (version, doc) = load_version(&mut conn, n)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("version {n}")))?;
    // Like the list: a tenant sees versions of its own scope or everyone's.
    let foreign = match (&version.scope, who.role) {
        (_, Role::PlatformAdmin) | (None, _) => false,
        (Some(s), _) => who.tenant.as_ref() != Some(s),
    };
    if foreign {
        return Err(ApiError::NotFound(format!("version {n}")));
    }
    Ok(Json(VersionDetail {
        version,
        document: serde_json::to_value(visible(&who, &doc))
            .map_err(|e| ApiError::Internal(e.into()))?,
    }))
}

/// What to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// Older side (default: the current version; 0 = empty).
    pub from: Option<i64>,
    /// Newer side (default: the draft of `tenant` or of the token's tenant).
    pub to: Option<i64>,
    /// Tenant whose draft is the newer side (platform admins; default: every tenant's).
    pub tenant: Option<String>,
}

/// Compares two versions, or a version with the draft (a preview of what
/// publishing would change). A tenant token sees its own objects only.
#[utoipa::path(
    get, path = "/v1/diff", params(DiffQuery),
    responses((status = 200, body = Diff)),
    security(("bearer" = [])), tag = "versions"
)]
pub async fn compare(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<Diff>, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let load = |doc: Option<(Version, Document)>, n: i64| {
        doc.map(|(_, d)| d)
            .ok_or_else(|| ApiError::NotFound(format!("version {n}")))
    };
    let (from, old) = match q.from {
        Some(0) => (0, Document::default()),
        Some(n) => (n, load(load_version(&mut conn, n).await?, n)?),
        None => {
            let (v, d) = latest(&mut conn).await?;
            (v.map_or(0, |v| v.version), d)
        }
    };
    let new = match q.to {
        Some(0) => Document::default(),
        Some(n) => load(load_version(&mut conn, n).await?, n)?,
        None => {
            let tenants: Vec<String> = match (who.role, &who.tenant, &q.tenant) {
                (Role::PlatformAdmin, _, Some(t)) => vec![t.clone()],
                (Role::PlatformAdmin, _, None) => sqlx::query("SELECT name FROM tenants")
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| r.try_get("name"))
                    .collect::<Result<_, _>>()?,
                (_, Some(mine), Some(t)) if mine != t => {
                    return Err(ApiError::NotFound(format!("tenant {t}")))
                }
                (_, Some(mine), _) => vec![mine.clone()],
                (_, None, _) => Vec::new(),
            };
            let mut draft = Document::default();
            for t in tenants {
                let part = document::part_of(objects::all_of_tenant(&mut conn, &t).await?);
                if !part.is_empty() {
                    draft.tenants.insert(t, part);
                }
            }
            // Compare like with like: only the drafted tenants' published parts.
            let old_scoped = Document {
                tenants: old
                    .tenants
                    .iter()
                    .filter(|(t, _)| {
                        q.tenant.is_none()
                            || q.tenant.as_ref() == Some(*t)
                            || who.role != Role::PlatformAdmin
                    })
                    .map(|(t, p)| (t.clone(), p.clone()))
                    .collect(),
            };
            return Ok(Json(Diff {
                from,
                to: None,
                changes: visible_diff(&who, &old_scoped, &draft),
            }));
        }
    };
    Ok(Json(Diff {
        from,
        to: q.to,
        changes: visible_diff(&who, &old, &new),
    }))
}
