//! Published versions as stored in `snapshots`: their rows, the latest one,
//! one by number, a page of them, and inserting the next. Imports `release`
//! and `infra`.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::infra::error::ApiError;
use crate::release::document::Document;

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

/// Inserts `version` with its `document` (a unique violation: another admin
/// stored this number first).
pub async fn insert_version(
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

/// The number of the latest version (`None`: nothing published yet).
pub async fn current<'c>(
    conn: impl sqlx::Executor<'c, Database = sqlx::Any>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT MAX(version) AS v FROM snapshots")
        .fetch_one(conn)
        .await?
        .try_get("v")
}

/// Versions newest first: older than `before`, of scope `tenant` or everyone
/// (`tenant` `None`: all), at most `limit`.
pub async fn page<'c>(
    conn: impl sqlx::Executor<'c, Database = sqlx::Any>,
    before: Option<i64>,
    tenant: Option<&str>,
    limit: u32,
) -> Result<Vec<Version>, ApiError> {
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM snapshots \
         WHERE ($1 IS NULL OR version < $1) AND ($2 IS NULL OR scope IS NULL OR scope = $2) \
         ORDER BY version DESC LIMIT $3"
    ))
    .bind(before)
    .bind(tenant)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter().map(version_from_row).collect()
}
