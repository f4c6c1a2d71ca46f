//! `/v1/tenants/{tenant}/domains`: hostnames, unique across tenants, that
//! start `pending` (published configs serve only their ownership challenge)
//! and turn `active` once verified (`POST …/verify`), when the next publish
//! serves their routes. Imports `acme`, `ownership`, `release`, `draft`, `model`, `infra`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::acme::orders;
use crate::api::object::with_etag;
use crate::draft::access;
use crate::draft::hostnames::{check_available, stale_claim};
use crate::draft::objects::{self, Kind, Stored, Write};
use crate::draft::references::{check_covers, check_plugin_refs};
use crate::infra::audit::{self, Event};
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::credentials::random_hex;
use crate::infra::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::infra::hostname;
use crate::infra::state::AppState;
use crate::infra::store::now_ms;
use crate::model::domain::{render, DomainSpec, StoredDomain, CHALLENGE_PREFIX};
use crate::ownership::{dns_check, http_check};
use crate::release::validate::check_alone;

/// The domains' routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, put, delete))
        .routes(routes!(verify))
}

/// Where a domain is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Ownership not verified yet: only the challenge is served.
    Pending,
    /// Verified: the domain's routes are served once published.
    Active,
}

impl DomainStatus {
    fn parse(s: Option<&str>) -> DomainStatus {
        match s {
            Some("active") => DomainStatus::Active,
            _ => DomainStatus::Pending,
        }
    }
}

/// How to prove ownership of a pending domain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// The token to publish.
    pub token: String,
    /// HTTP method: the edge serves the token at this URL once the domain is
    /// published and the name points at the edge.
    pub http_url: String,
    /// DNS method: a TXT record of this name ...
    pub dns_name: String,
    /// ... with this value.
    pub dns_value: String,
}

/// A domain as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Domain {
    /// Canonical hostname (lowercase ASCII, Punycode for international names).
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// Settings.
    pub spec: DomainSpec,
    /// `pending` until ownership is verified, then `active`.
    pub status: DomainStatus,
    /// How to verify ownership (also kept once active, for re-verification).
    pub verification: Verification,
    /// Revision, increased by every change (also the `ETag`).
    pub revision: i64,
    /// Creation time (Unix milliseconds).
    pub created_ms: i64,
    /// Last change (Unix milliseconds).
    pub updated_ms: i64,
}

/// A list of domains.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DomainList {
    /// Domains by name.
    pub domains: Vec<Domain>,
}

fn view(o: &Stored) -> Result<Domain, ApiError> {
    let stored: StoredDomain = o.spec()?;
    let token = stored.verification_token.clone();
    let host = o.name.trim_start_matches("*.");
    Ok(Domain {
        name: o.name.clone(),
        tenant: o.tenant.clone(),
        spec: stored.spec,
        status: DomainStatus::parse(o.status.as_deref()),
        verification: Verification {
            http_url: format!("http://{host}{CHALLENGE_PREFIX}{token}"),
            dns_name: format!("_gatehouse-challenge.{host}"),
            dns_value: token.clone(),
            token,
        },
        revision: o.revision,
        created_ms: o.created_ms,
        updated_ms: o.updated_ms,
    })
}

/// The canonical form of a hostname being registered (400 when invalid).
fn canonical(host: &str) -> Result<String, ApiError> {
    hostname::canonical(host).map_err(|e| ApiError::invalid("name", format!("hostname {e}")))
}

/// The canonical form of a hostname being looked up: one that cannot be
/// canonical names no domain (404).
pub fn existing(host: &str) -> Result<String, ApiError> {
    hostname::canonical(host).map_err(|_| ApiError::NotFound(format!("domain {host}")))
}

/// Lists a tenant's domains.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/domains",
    params(("tenant" = String, Path, description = "Tenant")),
    responses((status = 200, body = DomainList)),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<DomainList>, ApiError> {
    let domains = access::read_all(&state, &who, &tenant, Kind::Domain, None)
        .await?
        .iter()
        .map(view)
        .collect::<Result<_, _>>()?;
    Ok(Json(DomainList { domains }))
}

/// Reads a domain.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/domains/{host}",
    params(("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, body = Domain, headers(("ETag" = String, description = "Revision")))),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    who.read(&tenant, || format!("domain {host}"))?;
    let host = existing(&host)?;
    let key = objects::Key {
        kind: Kind::Domain,
        tenant: &tenant,
        name: &host,
    };
    let o = access::read_one(&state, &who, key).await?;
    Ok(with_etag(StatusCode::OK, o.revision, view(&o)?))
}

/// Creates or replaces a domain (tenant admin and up). A new domain is
/// `pending`; a hostname another tenant holds is a 409.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/domains/{host}", request_body = DomainSpec,
    params(
        ("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("If-Match" = Option<String>, Header, description = "Revision the change is based on"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only create"),
    ),
    responses(
        (status = 200, body = Domain, description = "Replaced"),
        (status = 201, body = Domain, description = "Created (pending)"),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(spec): ApiJson<DomainSpec>,
) -> Result<Response, ApiError> {
    access::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "put").await?;
    let host = canonical(&host)?;
    let check_spec = spec.clone();
    let (check_tenant, check_host) = (tenant.clone(), host.clone());
    check_alone(
        &state,
        &tenant,
        move |cfg| {
            // Plugin references are checked against the draft below; the
            // headers and binding settings are checked here.
            let mut d = render(&check_tenant, &check_host, &check_spec, Vec::new());
            d.plugins.iter_mut().for_each(|b| b.plugin = "x".into());
            d.certificate = None;
            if !d.plugins.is_empty() {
                cfg.plugins.push(file::Plugin {
                    name: "x".into(),
                    tenant: check_tenant.clone(),
                    path: "x.wasm".into(),
                    sha256: None,
                });
            }
            cfg.domains.push(d);
        },
        "domains[0].",
    )
    .await?;
    let ttl = state.pending_domain_ttl;
    let stale = {
        let mut conn = state.store.pool().acquire().await?;
        stale_claim(&mut conn, &tenant, &host, ttl).await?
    };
    if let Some((holder, claimed)) = stale {
        expire_claim(&state, &meta, &tenant, &holder, &claimed).await?;
    }
    check_published(&state, &meta, &tenant, &host).await?;
    let target = format!("tenants/{tenant}/domains/{host}");
    let (stored, created) =
        access::audited(&state, &who, &meta, "domain.put", &tenant, target, async {
            let mut tx = state.store.begin_write().await?;
            objects::require_tenant(&mut tx, &tenant).await?;
            check_available(&mut tx, &tenant, &host).await?;
            if let Some(cert) = &spec.certificate {
                check_covers(&mut tx, &tenant, cert, &host).await?;
            }
            check_plugin_refs(&mut tx, &tenant, &spec.plugins).await?;
            let existing = objects::load(&mut tx, &tenant, Kind::Domain, &host).await?;
            let token = match &existing {
                Some(o) => o.spec::<StoredDomain>()?.verification_token,
                None => random_hex(16),
            };
            let stored = StoredDomain {
                spec: spec.clone(),
                verification_token: token,
            };
            let write = Write {
                kind: Kind::Domain,
                tenant: &tenant,
                name: &host,
                spec: serde_json::to_value(&stored).map_err(|e| ApiError::Internal(e.into()))?,
                status: existing.is_none().then(|| "pending".to_string()),
            };
            let out =
                objects::put(&mut tx, &who, &meta, &headers, write, objects::no_secrets).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, stored.revision, view(&stored)?))
}

/// Deletes a domain and its routes (tenant admin and up).
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/domains/{host}",
    params(
        ("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("If-Match" = Option<String>, Header, description = "Revision the deletion is based on"),
    ),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    who.read(&tenant, || format!("domain {host}"))?;
    access::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "delete").await?;
    let host = existing(&host)?;
    let target = format!("tenants/{tenant}/domains/{host}");
    access::audited(
        &state,
        &who,
        &meta,
        "domain.delete",
        &tenant,
        target,
        async {
            let mut tx = state.store.begin_write().await?;
            objects::delete(
                &mut tx,
                &who,
                &meta,
                &headers,
                objects::Key {
                    kind: Kind::Domain,
                    tenant: &tenant,
                    name: &host,
                },
                objects::no_secrets,
            )
            .await?;
            let prefix = format!("{host}/");
            for route in objects::list(&mut tx, &tenant, Kind::Route, Some(&prefix)).await? {
                objects::delete(
                    &mut tx,
                    &who,
                    &meta,
                    &HeaderMap::new(),
                    objects::Key {
                        kind: Kind::Route,
                        tenant: &tenant,
                        name: &route.name,
                    },
                    objects::no_secrets,
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How to verify a domain.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMethod {
    /// Fetch `http://<host>/.well-known/gatehouse-challenge/<token>` and compare (default).
    #[default]
    Http,
    /// Look up the TXT record `_gatehouse-challenge.<host>` (works for wildcards too).
    Dns,
    /// Mark active without a check (platform admins only: for names the platform controls).
    Skip,
}

/// Body of `POST …/verify`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// `http` (default), `dns` or `skip`.
    #[serde(default)]
    pub method: VerifyMethod,
}

/// Verifies ownership of a domain and makes it `active` (tenant admin and up).
/// The HTTP method needs the pending domain to be published first, so that the
/// edge serves its token.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/domains/{host}/verify", request_body = VerifyRequest,
    params(("tenant" = String, Path, description = "Tenant"), ("host" = String, Path, description = "Hostname", max_length = 253, pattern = r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, body = Domain), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])), tag = "domains"
)]
pub async fn verify(
    State(state): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    ApiPath((tenant, host)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    access::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "verify").await?;
    let host = existing(&host)?;
    let target = format!("tenants/{tenant}/domains/{host}");
    let mut conn = state.store.pool().acquire().await?;
    let o = objects::load(&mut conn, &tenant, Kind::Domain, &host)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("domain {host}")))?;
    drop(conn);
    let token = o.spec::<StoredDomain>()?.verification_token;
    let checked = match body.method {
        VerifyMethod::Skip => who.platform("skip ownership verification"),
        VerifyMethod::Http => http_check(&state, &host, &token).await,
        VerifyMethod::Dns => dns_check(&state, &host, &token).await,
    };
    if let Err(e) = checked {
        return Err(audit::refused(
            &state,
            &who,
            &meta,
            "domain.verify",
            Some(&tenant),
            target,
            e,
        )
        .await);
    }
    let mut tx = state.store.begin_write().await?;
    let Some(before) = objects::load(&mut tx, &tenant, Kind::Domain, &host).await? else {
        return Err(ApiError::NotFound(format!("domain {host}")));
    };
    let after = Stored {
        status: Some("active".into()),
        revision: before.revision + 1,
        updated_ms: now_ms(),
        ..before.clone()
    };
    sqlx::query("UPDATE objects SET status = $1, revision = $2, updated_ms = $3 WHERE tenant = $4 AND kind = 'domain' AND name = $5")
        .bind(&after.status)
        .bind(after.revision)
        .bind(after.updated_ms)
        .bind(&tenant)
        .bind(&host)
        .execute(&mut *tx)
        .await?;
    let mut event = Event::ok("domain.verify", Some(&tenant), target);
    event.before = Some(serde_json::json!({"status": before.status}));
    event.after = Some(serde_json::json!({"status": after.status}));
    audit::record(&mut tx, &who, &meta, event).await?;
    tx.commit().await?;
    // A domain that asked for an ACME certificate gets its order now (in the
    // background: validation takes a while); GET …/acme shows how it goes.
    if state.acme.is_some() && o.spec::<StoredDomain>()?.spec.acme {
        let (state, who, meta) = (state.clone(), who.clone(), meta.clone());
        let (tenant, host) = (tenant.clone(), host.clone());
        tokio::spawn(async move {
            if let Err(e) = orders::obtain(&state, &who, &meta, &tenant, &host).await {
                tracing::warn!(tenant, host, error = %e, "ordering an ACME certificate failed; retried later");
            }
        });
    }
    Ok(with_etag(StatusCode::OK, after.revision, view(&after)?))
}

/// Withdraws `holder`'s pending claim on `host` (past the platform's pending
/// TTL, and wanted by another tenant): the domain and its routes leave the
/// holder's draft and, if published, its published part, in one
/// transaction, audited under the holder as the platform's doing.
async fn expire_claim(
    state: &AppState,
    meta: &RequestMeta,
    claimant: &str,
    holder: &str,
    host: &str,
) -> Result<(), ApiError> {
    let (system, meta) = expiry_actor(meta);
    let meta = &meta;
    let mut tx = state.store.begin_write().await?;
    // Still pending and still stale now that the write lock is held? A claim
    // verified meanwhile stays.
    let still = stale_claim(&mut tx, claimant, host, state.pending_domain_ttl).await?;
    if still.as_ref().map(|(t, n)| (t.as_str(), n.as_str())) != Some((holder, host)) {
        return Ok(());
    }
    objects::delete(
        &mut tx,
        &system,
        meta,
        &HeaderMap::new(),
        objects::Key {
            kind: Kind::Domain,
            tenant: holder,
            name: host,
        },
        objects::no_secrets,
    )
    .await?;
    let prefix = format!("{host}/");
    for route in objects::list(&mut tx, holder, Kind::Route, Some(&prefix)).await? {
        objects::delete(
            &mut tx,
            &system,
            meta,
            &HeaderMap::new(),
            objects::Key {
                kind: Kind::Route,
                tenant: holder,
                name: &route.name,
            },
            objects::no_secrets,
        )
        .await?;
    }
    let event = crate::infra::audit::Event::ok(
        "domain.expire",
        Some(holder),
        format!("tenants/{holder}/domains/{host}"),
    );
    crate::infra::audit::record(&mut tx, &system, meta, event).await?;
    let version =
        crate::release::publish::unpublish_domain(&mut tx, &system, meta, holder, host).await?;
    tx.commit().await?;
    if let Some(v) = version {
        state.published.send_replace(v);
    }
    tracing::info!(
        tenant = holder,
        host,
        "a pending domain claim expired and was withdrawn"
    );
    Ok(())
}

/// Refuses (409) a hostname another tenant still publishes — the same name
/// or one overlapping it — even when its draft no longer has it: two
/// tenants publishing one name would make every node leave one of them out.
/// A published *pending* claim its holder deleted from its draft keeps
/// nothing, though: it is withdrawn from the published part at once (else
/// deleting a claim without publishing would hold the name forever).
async fn check_published(
    state: &AppState,
    meta: &RequestMeta,
    tenant: &str,
    host: &str,
) -> Result<(), ApiError> {
    let mut conn = state.store.pool().acquire().await?;
    let (_, doc) = crate::release::versions::latest(&mut conn).await?;
    for (holder, part) in doc.tenants.iter().filter(|(t, _)| t.as_str() != tenant) {
        let Some(domains) = part.get(Kind::Domain.as_str()) else {
            continue;
        };
        for (name, entry) in domains {
            let overlaps = name == host
                || crate::draft::hostnames::covers(name, host)
                || crate::draft::hostnames::covers(host, name);
            if !overlaps {
                continue;
            }
            let in_draft = objects::load(&mut conn, holder, Kind::Domain, name)
                .await?
                .is_some();
            if entry.status.as_deref() == Some("pending") && !in_draft {
                drop(conn);
                withdraw_published(state, meta, holder, name).await?;
                return Box::pin(check_published(state, meta, tenant, host)).await;
            }
            return Err(ApiError::Conflict {
                message: format!("hostname {host} is registered by another tenant"),
                field: Some("name".into()),
            });
        }
    }
    Ok(())
}

/// Withdraws `holder`'s published pending claim on `name` (already gone
/// from its draft).
async fn withdraw_published(
    state: &AppState,
    meta: &RequestMeta,
    holder: &str,
    name: &str,
) -> Result<(), ApiError> {
    let (system, meta) = expiry_actor(meta);
    let meta = &meta;
    let mut tx = state.store.begin_write().await?;
    let version =
        crate::release::publish::unpublish_domain(&mut tx, &system, meta, holder, name).await?;
    tx.commit().await?;
    if let Some(v) = version {
        state.published.send_replace(v);
    }
    Ok(())
}

/// Who withdraws an expired or abandoned claim: the platform, not the
/// claimant, whose request (client address, request id) is not the
/// holder's business and stays out of the holder's log.
fn expiry_actor(meta: &RequestMeta) -> (Principal, RequestMeta) {
    let system = Principal {
        token_id: "system".into(),
        prefix: "pending-expiry".into(),
        role: crate::infra::auth::Role::PlatformAdmin,
        tenant: None,
    };
    let meta = RequestMeta {
        request_id: format!("pending-expiry-{}", meta.request_id),
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    (system, meta)
}
