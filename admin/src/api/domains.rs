//! `/v1/tenants/{tenant}/domains` and their routes.
//!
//! A domain is one hostname (or `*.` wildcard) in canonical ASCII form, unique
//! across all tenants. It starts `pending`: published configs then serve only
//! its ownership challenge at `/.well-known/gatehouse-challenge/<token>`. Once
//! verified (`POST …/verify`) it is `active` and the next publish serves its
//! routes. Routes are objects of their own (`…/domains/{host}/routes/{route}`)
//! so that automation can own one route without rewriting the domain.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::auth::{Principal, RequestMeta};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::objects::{self, Kind, Stored, Write};
use crate::{certificates, hostname, names, publish, AppState};

/// Path under which a pending domain's ownership token is served.
pub const CHALLENGE_PREFIX: &str = "/.well-known/gatehouse-challenge/";

/// A domain's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Certificate (by name, same tenant) served for this hostname over HTTPS;
    /// its names must cover the hostname.
    pub certificate: Option<String>,
    /// Get a certificate from the platform's ACME CA once the domain is verified,
    /// and keep it renewed (the domain then uses `acme-<host>`).
    #[serde(default)]
    pub acme: bool,
    /// Redirect plain-HTTP requests to HTTPS with 308.
    #[serde(default)]
    pub force_https: bool,
    /// Header edits applied to every request and response.
    #[serde(default)]
    pub headers: file::HeaderRules,
    /// Security response headers (presets `basic`/`strict`, HSTS, framing, ...).
    #[serde(default)]
    pub security_headers: Option<file::SecurityHeaders>,
    /// Client addresses (CIDRs) allowed and denied.
    #[serde(default)]
    pub ip_rules: file::IpRules,
    /// Rate limits on every request of the domain.
    #[serde(default)]
    pub rate_limits: Vec<file::RateLimit>,
    /// Automatic bans of clients that keep failing (statuses, WAF blocks).
    #[serde(default)]
    pub bans: Option<file::Bans>,
    /// Request inspection (WAF): mode, paranoia level, exclusions.
    #[serde(default)]
    pub waf: Option<gatehouse_config::waf::Waf>,
    /// Edge caching of the routes that forward to a pool (default off).
    #[serde(default)]
    pub cache: Option<gatehouse_config::cache::Cache>,
    /// Plugins (by name, same tenant) run on every request, before the route's.
    #[serde(default)]
    pub plugins: Vec<file::PluginBinding>,
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

/// What is stored for a domain: its spec and its ownership token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDomain {
    /// Settings.
    #[serde(flatten)]
    pub spec: DomainSpec,
    /// Ownership token.
    pub verification_token: String,
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

/// Refuses (409) a hostname another tenant registered, or one that would
/// overlap another tenant's (see [`overlapping`]).
pub async fn check_available(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    host: &str,
) -> Result<(), ApiError> {
    let holder = sqlx::query("SELECT tenant FROM objects WHERE kind = 'domain' AND name = $1")
        .bind(host)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = holder {
        let owner: String = sqlx::Row::try_get(&row, "tenant")?;
        if owner != tenant {
            return Err(ApiError::Conflict {
                message: format!("hostname {host} is registered by another tenant"),
                field: Some("name".into()),
            });
        }
    }
    if let Some(other) = overlapping(conn, tenant, host).await? {
        return Err(ApiError::Conflict {
            message: format!("hostname {host} overlaps {other}, registered by another tenant"),
            field: Some("name".into()),
        });
    }
    Ok(())
}

/// Another tenant's domain that `host` would overlap: the wildcard covering
/// an exact name (its traffic would go to the exact name, which matches
/// first), or an exact name a wildcard would cover.
async fn overlapping(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    host: &str,
) -> Result<Option<String>, ApiError> {
    use sqlx::Row;
    if let Some(parent) = host.strip_prefix("*.") {
        let suffix = format!(".{parent}");
        let rows = sqlx::query(
            "SELECT name FROM objects WHERE kind = 'domain' AND tenant <> $1 AND name LIKE $2",
        )
        .bind(tenant)
        .bind(format!("%{suffix}"))
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let name: String = row.try_get("name")?;
            let one_label = name
                .strip_suffix(&suffix)
                .is_some_and(|label| !label.is_empty() && !label.contains('.'));
            if one_label {
                return Ok(Some(name));
            }
        }
        return Ok(None);
    }
    let Some((_, parent)) = host.split_once('.') else {
        return Ok(None);
    };
    let wildcard = format!("*.{parent}");
    let held = sqlx::query(
        "SELECT name FROM objects WHERE kind = 'domain' AND name = $1 AND tenant <> $2",
    )
    .bind(&wildcard)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.map(|_| wildcard))
}

/// Checks that each plugin a chain binds exists in the tenant's draft.
pub async fn check_plugin_refs(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    bindings: &[file::PluginBinding],
) -> Result<(), ApiError> {
    for (i, b) in bindings.iter().enumerate() {
        if !objects::exists(conn, tenant, Kind::Plugin, &b.plugin).await? {
            return Err(ApiError::invalid(
                format!("plugins[{i}].plugin"),
                format!("no plugin {:?} in this tenant", b.plugin),
            ));
        }
    }
    Ok(())
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
    let domains = objects::read_all(&state, &who, &tenant, Kind::Domain, None)
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
    let o = objects::read_one(&state, &who, key).await?;
    Ok(objects::with_etag(StatusCode::OK, o.revision, view(&o)?))
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
    objects::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "put").await?;
    let host = canonical(&host)?;
    let check_spec = spec.clone();
    let (check_tenant, check_host) = (tenant.clone(), host.clone());
    publish::check_alone(
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
    let target = format!("tenants/{tenant}/domains/{host}");
    let (stored, created) =
        objects::audited(&state, &who, &meta, "domain.put", &tenant, target, async {
            let mut tx = state.store.begin_write().await?;
            objects::require_tenant(&mut tx, &tenant).await?;
            check_available(&mut tx, &tenant, &host).await?;
            if let Some(cert) = &spec.certificate {
                certificates::check_covers(&mut tx, &tenant, cert, &host).await?;
            }
            check_plugin_refs(&mut tx, &tenant, &spec.plugins).await?;
            let existing = objects::load(&mut tx, &tenant, Kind::Domain, &host).await?;
            let token = match &existing {
                Some(o) => o.spec::<StoredDomain>()?.verification_token,
                None => crate::token::random_hex(16),
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
    Ok(objects::with_etag(status, stored.revision, view(&stored)?))
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
    objects::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "delete").await?;
    let host = existing(&host)?;
    let target = format!("tenants/{tenant}/domains/{host}");
    objects::audited(
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
    objects::authorize_write(&state, &who, &meta, Kind::Domain, &tenant, &host, "verify").await?;
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
        updated_ms: crate::store::now_ms(),
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
            if let Err(e) = crate::acme_orders::obtain(&state, &who, &meta, &tenant, &host).await {
                tracing::warn!(tenant, host, error = %e, "ordering an ACME certificate failed; retried later");
            }
        });
    }
    Ok(objects::with_etag(
        StatusCode::OK,
        after.revision,
        view(&after)?,
    ))
}

/// Fetches the challenge URL (through `verify_via` when set: the edge's
/// address, for hosts whose DNS does not point at it from here).
async fn http_check(state: &AppState, host: &str, token: &str) -> Result<(), ApiError> {
    let failed = |why: String| ApiError::Conflict {
        message: format!("ownership of {host} not verified: {why}"),
        field: None,
    };
    if host.starts_with("*.") {
        return Err(failed("a wildcard cannot be verified over HTTP".into()));
    }
    let addr = match state.verify_via {
        Some(a) => a,
        None => tokio::net::lookup_host((host, 80))
            .await
            .map_err(|e| failed(format!("cannot resolve: {e}")))?
            .next()
            .ok_or_else(|| failed("no address".into()))?,
    };
    if state.verify_via.is_none() && !state.internal_targets && crate::pools::is_internal(addr.ip())
    {
        return Err(failed(format!(
            "{host} resolves to {}, an address of the edge itself",
            addr.ip()
        )));
    }
    let path = format!("{CHALLENGE_PREFIX}{token}");
    let body = fetch_challenge(addr, host, &path)
        .await
        .map_err(|e| failed(format!("GET http://{host}{path}: {e}")))?;
    if body.trim() == token {
        Ok(())
    } else {
        Err(failed(format!(
            "http://{host}{path} did not answer with the token"
        )))
    }
}

/// GETs `path` of `host` from `addr`: no redirects, 5 s, at most 16 KiB; the
/// body of a 200.
async fn fetch_challenge(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> Result<String, String> {
    const MAX_BODY: usize = 16 * 1024;
    let client = reqwest::Client::builder()
        .resolve(host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(5))
        .user_agent("gatehouse-admin")
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client
        .get(format!("http://{host}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err("response too large".into());
        }
    }
    String::from_utf8(body).map_err(|_| "body is not UTF-8".into())
}

/// Looks for the token in the TXT records of `_gatehouse-challenge.<host>`,
/// asking `dns_resolver` when set, else the system's resolvers. A resolver is
/// made per check so that no cached answer (or cached absence) is reused.
async fn dns_check(state: &AppState, host: &str, token: &str) -> Result<(), ApiError> {
    use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::TokioResolver;
    let failed = |why: String| ApiError::Conflict {
        message: format!("ownership of {host} not verified: {why}"),
        field: None,
    };
    let mut builder = match state.dns_resolver {
        Some(addr) => {
            let servers = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioConnectionProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| failed(format!("no DNS resolver configured: {e}")))?,
    };
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.timeout = std::time::Duration::from_secs(5);
    let resolver = builder.build();
    let name = format!("_gatehouse-challenge.{}.", host.trim_start_matches("*."));
    let records = resolver
        .txt_lookup(name.clone())
        .await
        .map_err(|e| failed(format!("TXT {name}: {e}")))?;
    let found = records.iter().any(|txt| {
        let value: Vec<u8> = txt
            .txt_data()
            .iter()
            .flat_map(|part| part.iter().copied())
            .collect();
        value == token.as_bytes()
    });
    if found {
        Ok(())
    } else {
        Err(failed(format!("no TXT record {name} with the token")))
    }
}

/// The config file's domain for `host`: routes served when active, only the
/// ownership challenge while pending.
pub fn render(
    tenant: &str,
    host: &str,
    spec: &DomainSpec,
    routes: Vec<file::Route>,
) -> file::Domain {
    file::Domain {
        hosts: vec![host.to_string()],
        tenant: tenant.to_string(),
        certificate: spec
            .certificate
            .as_ref()
            .map(|c| names::qualified(tenant, c)),
        force_https: spec.force_https,
        headers: spec.headers.clone(),
        security_headers: spec.security_headers.clone(),
        ip_rules: spec.ip_rules.clone(),
        rate_limits: spec.rate_limits.clone(),
        bans: spec.bans.clone(),
        waf: spec.waf.clone(),
        cache: spec.cache.clone(),
        plugins: qualify_bindings(tenant, &spec.plugins),
        routes,
    }
}

/// The challenge-only domain served while `host` is pending.
pub fn render_pending(tenant: &str, host: &str, token: &str) -> file::Domain {
    file::Domain {
        hosts: vec![host.to_string()],
        tenant: tenant.to_string(),
        certificate: None,
        force_https: false,
        headers: file::HeaderRules::default(),
        security_headers: None,
        // The ownership challenge must be reachable by whoever verifies it.
        ip_rules: file::IpRules::default(),
        rate_limits: Vec::new(),
        bans: None,
        waf: None,
        cache: None,
        plugins: Vec::new(),
        routes: vec![file::Route {
            path: Some(format!("{CHALLENGE_PREFIX}{token}")),
            path_match: file::PathMatch::Exact,
            methods: vec!["GET".into()],
            pool: None,
            respond: Some(file::Respond {
                status: Some(200),
                headers: [("content-type".to_string(), "text/plain".to_string())].into(),
                body: token.to_string(),
            }),
            redirect: None,
            static_files: None,
            plugins: Vec::new(),
            rate_limits: Vec::new(),
            cache: None,
        }],
    }
}

/// Plugin bindings with their plugin names qualified by the tenant.
pub fn qualify_bindings(
    tenant: &str,
    bindings: &[file::PluginBinding],
) -> Vec<file::PluginBinding> {
    bindings
        .iter()
        .map(|b| file::PluginBinding {
            plugin: names::qualified(tenant, &b.plugin),
            ..b.clone()
        })
        .collect()
}
