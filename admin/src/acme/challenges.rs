//! ACME HTTP-01 challenges served by every edge node, and whether they all
//! serve them yet.
//!
//! A challenge (host, token, key authorization) is stored here; nodes follow
//! the set with `GET /v1/dataplane/challenges?after=<version>`, which
//! long-polls like the snapshot feed and doubles as the node's
//! acknowledgement: asking "after v" says "I serve set v". An order may be
//! declared ready to the ACME server once every node seen in the last two
//! minutes serves the set that has its token ([`status`]), so validation
//! never reaches a node that would answer 404.
//!
//! The ACME order flow in this admin uses these functions; platform admins
//! can also publish challenges through `PUT /v1/acme/challenges/{token}`
//! for an ACME client run elsewhere (certbot's or lego's manual/exec hooks).
//! Challenges expire (default 1 hour) so a crashed order leaves nothing
//! behind for long.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{self, Event};
use crate::auth::{NodeCaller, Principal, RequestMeta};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::store::now_ms;
use crate::AppState;

/// A node not seen for this long is not waited for.
const LIVE: Duration = Duration::from_secs(120);
/// How often a waiting poll looks at the database (changes by another admin).
const RECHECK: Duration = Duration::from_secs(1);
/// Default and longest lifetime of a challenge.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

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
async fn put_in(
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
async fn remove_in(tx: &mut AnyConnection, token: &str) -> Result<(bool, i64), ApiError> {
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

async fn current_set(state: &AppState) -> Result<ChallengeSet, ApiError> {
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

/// Parameters of a challenge poll.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChallengePoll {
    /// The set the node serves (0 or absent: none). Also its acknowledgement.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// How long to wait for another set (`30s`; at most 60s; default 0).
    #[param(pattern = r"^[0-9]{1,6}(ms|s|m)$")]
    pub wait: Option<String>,
    /// The node's id (default: the token's prefix), as in the snapshot poll.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub node: Option<String>,
}

/// The challenges every node must serve (nodes only); records that the node
/// serves set `after` and waits up to `wait` for another one.
#[utoipa::path(
    get, path = "/v1/dataplane/challenges", params(ChallengePoll),
    responses(
        (status = 200, body = ChallengeSet, description = "The current set"),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "dataplane"
)]
pub async fn feed(
    State(state): State<AppState>,
    NodeCaller(who): NodeCaller,
    meta: RequestMeta,
    ApiQuery(q): ApiQuery<ChallengePoll>,
) -> Result<Json<ChallengeSet>, ApiError> {
    let node = q.node.clone().unwrap_or_else(|| who.prefix.clone());
    crate::dataplane::check_node_id(&node)?;
    let after = q.after.unwrap_or(0).max(0);
    let wait = crate::dataplane::poll_wait(q.wait.as_deref())?;
    crate::dataplane::seen(&state, &node, &who, &meta).await?;
    sqlx::query("UPDATE nodes SET challenges_version = $1 WHERE id = $2")
        .bind(after)
        .bind(&node)
        .execute(state.store.pool())
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut changed = state.challenged.subscribe();
    loop {
        let set = current_set(&state).await?;
        let now = tokio::time::Instant::now();
        if set.version != after || now >= deadline {
            return Ok(Json(set));
        }
        let nap = (deadline - now).min(RECHECK);
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// A challenge to publish (platform admins).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutChallenge {
    /// The hostname being validated.
    #[schema(min_length = 1, max_length = 253)]
    pub host: String,
    /// The answer body (`<token>.<account key thumbprint>`).
    #[schema(min_length = 18, max_length = 1024)]
    pub key_authorization: String,
    /// Lifetime in seconds (default 3600, at most 86400).
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: Option<u64>,
}

/// A published challenge and whether every node serves it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChallengeStatus {
    pub token: String,
    /// The set version that has it.
    pub version: i64,
    #[serde(flatten)]
    pub readiness: Readiness,
}

fn is_token(t: &str) -> bool {
    // RFC 8555 §8.3: base64url, at least 128 bits of entropy.
    (16..=256).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_token(token: &str) -> Result<(), ApiError> {
    if is_token(token) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "token",
            "16-256 characters of base64url (A-Z, a-z, 0-9, '-', '_')",
        ))
    }
}

/// Serves an HTTP-01 challenge on every node (platform admins), for an ACME
/// client run elsewhere. Answer `nodes_ready: true` means every live node
/// serves it: tell the ACME server the challenge is ready only then.
#[utoipa::path(
    put, path = "/v1/acme/challenges/{token}", request_body = PutChallenge,
    params(("token" = String, Path, description = "Challenge token", pattern = r"^[A-Za-z0-9_-]{16,256}$")),
    responses(
        (status = 200, body = ChallengeStatus),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "acme"
)]
pub async fn put_one(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<PutChallenge>,
) -> Result<Response, ApiError> {
    let target = format!("acme/challenges/{token}");
    if let Err(e) = who.platform("publish ACME challenges") {
        return Err(audit::refused(&state, &who, &meta, "acme.challenge", None, target, e).await);
    }
    check_token(&token)?;
    let host = crate::hostname::canonical(&body.host).map_err(|m| ApiError::invalid("host", m))?;
    if body.key_authorization.is_empty()
        || body.key_authorization.len() > 1024
        || !body.key_authorization.starts_with(&format!("{token}."))
    {
        return Err(ApiError::invalid(
            "key_authorization",
            "expected `<token>.<account key thumbprint>`",
        ));
    }
    let ttl = Duration::from_secs(body.ttl_seconds.unwrap_or(DEFAULT_TTL.as_secs()));
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(ApiError::invalid("ttl_seconds", "1 to 86400"));
    }
    let challenge = Challenge {
        host,
        token: token.clone(),
        key_authorization: body.key_authorization,
    };
    let mut tx = state.store.begin_write().await?;
    let version = put_in(&mut tx, &challenge, ttl).await?;
    let mut event = Event::ok("acme.challenge", None, target);
    event.after = Some(serde_json::json!({ "host": challenge.host, "version": version }));
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    state.challenged.send_replace(version);
    let readiness = status(&state, version).await?;
    Ok(Json(ChallengeStatus {
        token,
        version,
        readiness,
    })
    .into_response())
}

/// Whether every node serves a challenge (platform admins); 404 when it is
/// not published.
#[utoipa::path(
    get, path = "/v1/acme/challenges/{token}",
    params(("token" = String, Path, description = "Challenge token", pattern = r"^[A-Za-z0-9_-]{16,256}$")),
    responses((status = 200, body = ChallengeStatus), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])), tag = "acme"
)]
pub async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<ChallengeStatus>, ApiError> {
    who.platform("read ACME challenges")?;
    let set = current_set(&state).await?;
    if !set.challenges.iter().any(|c| c.token == token) {
        return Err(ApiError::NotFound(format!("challenge {token}")));
    }
    let readiness = status(&state, set.version).await?;
    Ok(Json(ChallengeStatus {
        token,
        version: set.version,
        readiness,
    }))
}

/// Stops serving a challenge (platform admins).
#[utoipa::path(
    delete, path = "/v1/acme/challenges/{token}",
    params(("token" = String, Path, description = "Challenge token", pattern = r"^[A-Za-z0-9_-]{16,256}$")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])), tag = "acme"
)]
pub async fn delete_one(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath(token): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let target = format!("acme/challenges/{token}");
    if let Err(e) = who.platform("withdraw ACME challenges") {
        return Err(audit::refused(
            &state,
            &who,
            &meta,
            "acme.challenge.delete",
            None,
            target,
            e,
        )
        .await);
    }
    let mut tx = state.store.begin_write().await?;
    let (removed, version) = remove_in(&mut tx, &token).await?;
    if !removed {
        return Err(ApiError::NotFound(format!("challenge {token}")));
    }
    audit::record(
        &mut tx,
        &who,
        &meta,
        Event::ok("acme.challenge.delete", None, target),
    )
    .await?;
    tx.commit().await?;
    state.challenged.send_replace(version);
    Ok(StatusCode::NO_CONTENT)
}
