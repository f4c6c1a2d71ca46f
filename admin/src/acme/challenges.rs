//! The ACME HTTP-01 challenge set every edge node serves: stored here,
//! versioned, followed by nodes (`GET /v1/dataplane/challenges`, whose `after`
//! doubles as "I serve set v"), and whether every live node serves a set yet.
//! Imports `infra`.

// An order may be declared ready to the ACME server once every node seen in
// the last two minutes serves the set that has its token ([`status`]), so
// validation never reaches a node that would answer 404. The ACME order flow
// in this admin uses these functions; platform admins can also publish
// challenges through `PUT /v1/acme/challenges/{token}` for an ACME client run
// elsewhere (certbot's or lego's manual/exec hooks). Challenges expire
// (default 1 hour) so a crashed order leaves nothing behind for long.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;

/// A node not seen for this long is not waited for.
const LIVE: Duration = Duration::from_secs(120);

/// One challenge as nodes serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// The hostname being validated; only requests for it get the answer.
    pub host: String,
    /// `/.well-known/acme-challenge/<token>`.
    pub token: String,
    /// The answer body.
    pub key_authorization: String,
}

/// The challenge set, for nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ChallengeSet {
    /// Bumped by every change; poll with `after=` this.
    pub version: i64,
    pub challenges: Vec<Challenge>,
}

async fn version(conn: &mut AnyConnection) -> Result<i64, ApiError> {
    Ok(
        sqlx::query("SELECT version FROM acme_challenge_version WHERE id = 1")
            .fetch_one(conn)
            .await?
            .try_get("version")?,
    )
}

async fn bump(conn: &mut AnyConnection) -> Result<i64, ApiError> {
    sqlx::query("UPDATE acme_challenge_version SET version = version + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    version(conn).await
}

/// Serves `challenge` on every node for `ttl`; returns the set's new version.
pub async fn put(state: &AppState, challenge: &Challenge, ttl: Duration) -> Result<i64, ApiError> {
    let mut tx = state.store.begin_write().await?;
    let v = put_in(&mut tx, challenge, ttl).await?;
    tx.commit().await?;
    state.challenged.send_replace(v);
    Ok(v)
}

/// [`put`] inside the caller's write transaction (it notifies after commit).
pub async fn put_in(
    tx: &mut AnyConnection,
    challenge: &Challenge,
    ttl: Duration,
) -> Result<i64, ApiError> {
    let now = now_ms();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM acme_challenges WHERE token = $1 OR expires_ms < $2")
        .bind(&challenge.token)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO acme_challenges (token, host, key_authorization, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&challenge.token)
    .bind(&challenge.host)
    .bind(&challenge.key_authorization)
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .execute(&mut *tx)
    .await?;
    bump(tx).await
}

/// Stops serving `token`; returns whether it was there and the set's version.
pub async fn remove(state: &AppState, token: &str) -> Result<(bool, i64), ApiError> {
    let mut tx = state.store.begin_write().await?;
    let (removed, v) = remove_in(&mut tx, token).await?;
    tx.commit().await?;
    if removed {
        state.challenged.send_replace(v);
    }
    Ok((removed, v))
}

/// [`remove`] inside the caller's write transaction.
pub async fn remove_in(tx: &mut AnyConnection, token: &str) -> Result<(bool, i64), ApiError> {
    let removed = sqlx::query("DELETE FROM acme_challenges WHERE token = $1")
        .bind(token)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    let v = if removed {
        bump(tx).await?
    } else {
        version(tx).await?
    };
    Ok((removed, v))
}

/// Whether every live node serves set `version` (or a later one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Every node seen in the last two minutes serves it (true with no nodes).
    pub nodes_ready: bool,
    /// Live nodes that do not serve it yet.
    pub waiting_on: Vec<String>,
}

/// Which live nodes do not serve set `version` yet.
pub async fn status(state: &AppState, version: i64) -> Result<Readiness, ApiError> {
    let live_since = now_ms() - i64::try_from(LIVE.as_millis()).unwrap_or(0);
    let rows = sqlx::query(
        "SELECT id FROM nodes WHERE last_seen_ms >= $1 AND challenges_version < $2 ORDER BY id",
    )
    .bind(live_since)
    .bind(version)
    .fetch_all(state.store.pool())
    .await?;
    let waiting_on = rows
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Readiness {
        nodes_ready: waiting_on.is_empty(),
        waiting_on,
    })
}

/// Waits until every live node serves set `version`; the nodes still
/// missing it when `timeout` ends are the error.
pub async fn wait_for_nodes(
    state: &AppState,
    version: i64,
    timeout: Duration,
) -> Result<(), Vec<String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match status(state, version).await {
            Ok(r) if r.nodes_ready => return Ok(()),
            Ok(r) if tokio::time::Instant::now() >= deadline => return Err(r.waiting_on),
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(vec!["(the store is unavailable)".into()])
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn current_set(state: &AppState) -> Result<ChallengeSet, ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let version = version(&mut conn).await?;
    let rows = sqlx::query(
        "SELECT host, token, key_authorization FROM acme_challenges \
         WHERE expires_ms >= $1 ORDER BY token",
    )
    .bind(now_ms())
    .fetch_all(&mut *conn)
    .await?;
    let challenges = rows
        .iter()
        .map(|r| {
            Ok(Challenge {
                host: r.try_get("host")?,
                token: r.try_get("token")?,
                key_authorization: r.try_get("key_authorization")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(ChallengeSet {
        version,
        challenges,
    })
}
