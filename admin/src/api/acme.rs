//! `/v1/acme/…`, `/v1/tenants/{tenant}/domains/{host}/acme` and the nodes'
//! `/v1/dataplane/challenges`: certificate orders and their state, and the
//! HTTP-01 challenge set (also for an ACME client run elsewhere). The work is
//! `acme`'s. Imports `acme`, `draft` and `infra` (and `api::dataplane`'s poll helpers).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::acme::challenges::{self, Challenge, ChallengeSet, Readiness};
use crate::acme::orders::{self, AcmeIssued};
use crate::acme::records::{self, AcmeState};
use crate::api::dataplane::{check_node_id, poll_wait, seen};
use crate::draft::access;
use crate::draft::objects::Kind;
use crate::infra::audit::{self, Event};
use crate::infra::auth::{NodeCaller, Principal, RequestMeta};
use crate::infra::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::infra::hostname;
use crate::infra::state::AppState;

/// How often a waiting poll looks at the database (changes by another admin).
const RECHECK: Duration = Duration::from_secs(1);
/// Default and longest lifetime of a challenge.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The ACME routes, the nodes' challenge feed first.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(feed))
        .routes(routes!(order, status))
        .routes(routes!(put_one, get_one, delete_one))
}

/// Where the domain's ACME certificate stands (tenant tokens read it).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/domains/{host}/acme",
    params(("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, body = AcmeState), (status = 404, body = ErrorBody)),
    security(("bearer" = [])), tag = "acme"
)]
pub async fn status(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
) -> Result<Json<AcmeState>, ApiError> {
    who.read(&tenant, || format!("domain {host}"))?;
    let host = hostname::canonical(&host).map_err(|m| ApiError::invalid("host", m))?;
    let record = records::load(&state, &tenant, &host)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("ACME certificate for {host}")))?;
    Ok(Json(record))
}

/// Orders a certificate for a verified domain from the platform's ACME CA
/// (tenant admin and up) and makes the domain use it in the draft; publish
/// to deploy it. 409 with the CA's reason when validation or issuance fails.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/domains/{host}/acme",
    params(("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses(
        (status = 200, body = AcmeIssued),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "acme"
)]
pub async fn order(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    access::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "acme").await?;
    let host = hostname::canonical(&host).map_err(|m| ApiError::invalid("host", m))?;
    let issued = orders::obtain(&state, &who, &meta, &tenant, &host).await?;
    Ok((StatusCode::OK, Json(issued)).into_response())
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
    check_node_id(&node)?;
    let after = q.after.unwrap_or(0).max(0);
    let wait = poll_wait(q.wait.as_deref())?;
    seen(&state, &node, &who, &meta).await?;
    sqlx::query("UPDATE nodes SET challenges_version = $1 WHERE id = $2")
        .bind(after)
        .bind(&node)
        .execute(state.store.pool())
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut changed = state.challenged.subscribe();
    loop {
        let set = challenges::current_set(&state).await?;
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
    let host = hostname::canonical(&body.host).map_err(|m| ApiError::invalid("host", m))?;
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
    let version = challenges::put_in(&mut tx, &challenge, ttl).await?;
    let mut event = Event::ok("acme.challenge", None, target);
    event.after = Some(serde_json::json!({ "host": challenge.host, "version": version }));
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    state.challenged.send_replace(version);
    let readiness = challenges::status(&state, version).await?;
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
    let set = challenges::current_set(&state).await?;
    if !set.challenges.iter().any(|c| c.token == token) {
        return Err(ApiError::NotFound(format!("challenge {token}")));
    }
    let readiness = challenges::status(&state, set.version).await?;
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
    let (removed, version) = challenges::remove_in(&mut tx, &token).await?;
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
