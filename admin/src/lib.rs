//! Gatehouse's control plane: the admin API that tenants and automation use to
//! manage the edge.
//!
//! JSON under `/v1`, authenticated by bearer tokens with roles (`auth`), every
//! mutation audited in its own transaction (`audit`), state in SQLite or
//! PostgreSQL (`store`). Errors have one shape (`error`). The OpenAPI document
//! is generated from the handlers' annotations and served at
//! `/v1/openapi.json`.
//!
//! Modules by resource: `tenants`, `tokens`, `audit`, and the draft
//! configuration a tenant edits: `pools`, `domains`, `routes`,
//! `certificates`, `plugins` (stored alike by `objects`). `publish` turns
//! drafts into numbered versions (`document` renders them as config);
//! `dataplane` hands them to proxies and lists the nodes. Token format and
//! hashing are in `token`; encryption of secrets kept in the store in
//! `secrets`; canonical hostnames (IDNA) in `hostname`; object names in `names`.

pub mod acme;
mod api;
mod draft;
mod infra;
mod release;

// The modules' old flat names, while the code moves into layers.
pub use acme::{challenges, orders as acme_orders};
pub use api::rate_ceiling as limits;
pub use api::{
    certificates, dataplane, domains, plugins, pools, purges, routes, tenants, tokens,
};
pub use draft::objects;
use infra::duration;
pub use infra::{audit, auth, credentials as token, error, hostname, names, secrets, store};
pub use release::{document, publish};

use std::sync::Arc;

use tracing::Instrument;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use auth::{AuthFailures, RequestId, Role};
use error::ApiError;
use store::Store;

/// Largest request body the API reads (plugin uploads will have their own limit).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Failed authentications per client.
    pub auth_failures: Arc<AuthFailures>,
    /// Keys sealing private keys at rest.
    pub keys: Arc<secrets::Keys>,
    /// The latest version published through this admin; wakes snapshot polls.
    pub published: Arc<tokio::sync::watch::Sender<i64>>,
    /// The latest cache purge accepted by this admin; wakes purge polls.
    pub purged: Arc<tokio::sync::watch::Sender<i64>>,
    /// The latest ACME challenge set version; wakes challenge polls.
    pub challenged: Arc<tokio::sync::watch::Sender<i64>>,
    /// The ACME CA certificates are ordered from, when one is configured.
    pub acme: Option<Arc<acme::Settings>>,
    /// The last version rendered for nodes, so that N nodes woken by one
    /// publish cost one rendering (and one unsealing of every key).
    pub rendered: Arc<std::sync::Mutex<Option<(i64, axum::body::Bytes)>>>,
    /// Tests only: where HTTP ownership checks connect instead of the
    /// hostname's address. The HTTP method proves that the name's DNS leads to
    /// the edge; sending the check to a fixed address skips that half of the
    /// proof, so no command-line option sets this.
    pub verify_via: Option<std::net::SocketAddr>,
    /// DNS server for ownership checks by TXT record (default: the system's).
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// Whether tenants may point pools (and ownership checks) at internal
    /// addresses: loopback, link-local, ... (see `pools::is_internal`).
    pub internal_targets: bool,
}

impl AppState {
    /// State over `store`, sealing secrets with `keys`.
    pub fn new(store: Store, keys: secrets::Keys) -> Self {
        AppState {
            store,
            auth_failures: Arc::new(AuthFailures::default()),
            keys: Arc::new(keys),
            published: Arc::new(tokio::sync::watch::Sender::new(0)),
            purged: Arc::new(tokio::sync::watch::Sender::new(0)),
            challenged: Arc::new(tokio::sync::watch::Sender::new(0)),
            acme: None,
            rendered: Arc::new(std::sync::Mutex::new(None)),
            verify_via: None,
            dns_resolver: None,
            internal_targets: false,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "Manage tenants, domains, upstreams, certificates, plugins, tokens and configuration snapshots of a Gatehouse edge."
    ),
    modifiers(&BearerAuth),
    // Referenced by the common error responses every operation gets (`CommonErrors`).
    components(schemas(error::ErrorBody, error::ErrorDetail, error::FieldProblem)),
    tags(
        (name = "tenants", description = "Tenants own everything else"),
        (name = "tokens", description = "API tokens and their roles"),
        (name = "audit", description = "The append-only log of every change"),
        (name = "pools", description = "Upstream pools and their targets (draft)"),
        (name = "domains", description = "Hostnames, their ownership and routes (draft)"),
        (name = "certificates", description = "Certificate chains and sealed private keys (draft)"),
        (name = "plugins", description = "WebAssembly policy plugins (draft)"),
        (name = "versions", description = "Publish the draft, list, compare and roll back versions"),
        (name = "dataplane", description = "How proxy nodes fetch versions and report on them"),
        (name = "cache", description = "Purging a tenant's objects from the edge cache of every node"),
        (name = "acme", description = "ACME HTTP-01 challenges served by every node"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token: gh_<prefix>_<secret>"))
                    .build(),
            ),
        );
    }
}

/// Declares the errors any operation can answer with, so that every
/// operation's responses are complete without repeating them per handler.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let common = [
            ("400", "Malformed request or invalid field"),
            ("401", "Missing or invalid API token"),
            ("404", "No such object (or another tenant's)"),
            ("405", "Method not supported by this resource"),
            ("413", "Request body too large"),
            ("429", "Too many failed authentications from this client"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for (status, description) in common {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

/// The API's routes and their OpenAPI document.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(limits::get, limits::put, limits::delete))
        .routes(routes!(tokens::create_platform, tokens::list))
        .routes(routes!(tokens::create_in_tenant, tokens::list_in_tenant))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(pools::list))
        .routes(routes!(pools::get, pools::put, pools::delete))
        .routes(routes!(domains::list))
        .routes(routes!(domains::get, domains::put, domains::delete))
        .routes(routes!(domains::verify))
        .routes(routes!(routes::list))
        .routes(routes!(routes::get, routes::put, routes::delete))
        .routes(routes!(certificates::list))
        .routes(routes!(
            certificates::get,
            certificates::put,
            certificates::delete
        ))
        .routes(routes!(plugins::list))
        .routes(routes!(plugins::get, plugins::delete))
        .routes(routes!(plugins::put).layer(plugins::upload_limit()))
        .routes(routes!(publish::publish))
        .routes(routes!(publish::list))
        .routes(routes!(publish::get))
        .routes(routes!(publish::rollback))
        .routes(routes!(publish::compare))
        .routes(routes!(purges::purge))
        .routes(routes!(purges::feed))
        .routes(routes!(challenges::feed))
        .routes(routes!(acme_orders::order, acme_orders::status))
        .routes(routes!(
            challenges::put_one,
            challenges::get_one,
            challenges::delete_one
        ))
        .routes(routes!(dataplane::snapshot))
        .routes(routes!(dataplane::plugin))
        .routes(routes!(dataplane::report))
        .routes(routes!(dataplane::nodes))
        .routes(routes!(dataplane::forget_node))
        .split_for_parts();
    // After the routes are merged in: the modifier walks every operation.
    utoipa::Modify::modify(&CommonErrors, &mut doc);
    (router, doc)
}

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The admin API over `state`.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api();
    let doc = Arc::new(doc);
    routes
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Gives every request an id (its own `x-request-id` if sane), runs it in a
/// span carrying that id (so internal errors logged by handlers name it),
/// echoes the id back and writes one access log line.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let span = tracing::info_span!("admin_request", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    tracing::info!(
        target: "gatehouse::admin::access",
        request_id = %id,
        method = %method,
        path,
        status = resp.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Makes sure a platform-admin token exists. With none yet, creates one:
/// from `preset` (a token in `gh_…` form, e.g. from `GATEHOUSE_ADMIN_TOKEN`)
/// or freshly generated. Returns the token when one was created from nothing,
/// for the caller to show once.
pub async fn bootstrap(store: &Store, preset: Option<&str>) -> anyhow::Result<Option<String>> {
    let mut tx = store.begin_write().await?;
    let exists = sqlx::query("SELECT 1 FROM tokens WHERE role = $1 AND revoked_ms IS NULL")
        .bind(Role::PlatformAdmin.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if exists {
        return Ok(None);
    }
    let new = match preset {
        Some(t) => {
            let p = token::parse(t).ok_or_else(|| {
                anyhow::anyhow!("the preset admin token is not a Gatehouse token (gh_<8 chars>_<40 hex digits>)")
            })?;
            token::NewToken {
                token: t.to_string(),
                prefix: p.prefix.to_string(),
                secret_sha256: token::secret_sha256(p.secret),
            }
        }
        None => token::generate(),
    };
    tokens::insert(
        &mut tx,
        "bootstrap",
        Role::PlatformAdmin,
        None,
        None,
        None,
        &new,
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the bootstrap token: {e}"))?;
    tx.commit().await?;
    Ok(preset.is_none().then_some(new.token))
}

/// How to run the admin API as a server.
#[derive(Clone)]
pub struct ServeOptions {
    /// Address to listen on (the quickstart uses `127.0.0.1:9900`).
    pub listen: std::net::SocketAddr,
    /// Database URL (`sqlite://data/gatehouse.db`, `postgres://…`).
    pub database: String,
    /// Bootstrap platform-admin token to install on first start, instead of a generated one.
    pub preset_token: Option<String>,
    /// Key file sealing private keys at rest (created, private, when missing).
    /// Every admin sharing a database needs the same file.
    pub secrets_key_file: std::path::PathBuf,
    /// DNS server for TXT ownership checks (default: the system's resolvers).
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// Failed authentications a client may make (in a burst, and per minute)
    /// before it is refused for a while.
    pub auth_failures_per_minute: u32,
    /// Let tenants target internal addresses (see [`AppState::internal_targets`]).
    pub allow_internal_targets: bool,
    /// A node token for the proxy running in the same process (`gatehouse run`):
    /// installed at start, replacing the previous one.
    pub local_node_token: Option<String>,
    /// The ACME CA to order certificates from (none: ordering is refused).
    pub acme: Option<acme::Settings>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: say whether they are set, never what they are.
        f.debug_struct("ServeOptions")
            .field("listen", &self.listen)
            .field("database", &self.database)
            .field("preset_token", &self.preset_token.as_ref().map(|_| "<set>"))
            .field("secrets_key_file", &self.secrets_key_file)
            .field("dns_resolver", &self.dns_resolver)
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("allow_internal_targets", &self.allow_internal_targets)
            .field(
                "local_node_token",
                &self.local_node_token.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// The name of the token `gatehouse run` creates for its own proxy.
const LOCAL_NODE_TOKEN_NAME: &str = "local node (gatehouse run)";

/// Installs `token` as the in-process proxy's node token, revoking the one
/// of the previous start.
pub async fn install_local_node_token(store: &Store, token_text: &str) -> anyhow::Result<()> {
    let p = token::parse(token_text).ok_or_else(|| anyhow::anyhow!("not a Gatehouse token"))?;
    let new = token::NewToken {
        token: token_text.to_string(),
        prefix: p.prefix.to_string(),
        secret_sha256: token::secret_sha256(p.secret),
    };
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "UPDATE tokens SET revoked_ms = $1 WHERE name = $2 AND role = $3 AND revoked_ms IS NULL",
    )
    .bind(store::now_ms())
    .bind(LOCAL_NODE_TOKEN_NAME)
    .bind(Role::Node.as_str())
    .execute(&mut *tx)
    .await?;
    tokens::insert(
        &mut tx,
        LOCAL_NODE_TOKEN_NAME,
        Role::Node,
        None,
        None,
        None,
        &new,
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the local node token: {e}"))?;
    tx.commit().await?;
    Ok(())
}

/// Serves the admin API until `shutdown` completes, then finishes the
/// requests in flight. On first start (no platform-admin token yet) a
/// bootstrap token is created and printed once on standard error.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::connect(&options.database).await?;
    let keys = secrets::Keys::load(&options.secrets_key_file, true)?;
    if let Some(t) = &options.local_node_token {
        install_local_node_token(&store, t).await?;
    }
    if let Some(token) = bootstrap(&store, options.preset_token.as_deref()).await? {
        // Deliberately not through the log: a secret must not reach log storage.
        eprintln!(
            "gatehouse admin: bootstrap platform-admin token (shown once; store it now): {token}"
        );
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("admin API cannot listen on {}: {e}", options.listen))?;
    tracing::info!(listen = %listener.local_addr()?, backend = ?store.backend(), "admin API listening");
    let current: Option<i64> = sqlx::Row::try_get(
        &sqlx::query("SELECT MAX(version) AS v FROM snapshots")
            .fetch_one(store.pool())
            .await?,
        "v",
    )?;
    let mut state = AppState::new(store, keys);
    state.published.send_replace(current.unwrap_or(0));
    state.dns_resolver = options.dns_resolver;
    state.internal_targets = options.allow_internal_targets;
    state.acme = options.acme.map(Arc::new);
    if let Some(acme) = &state.acme {
        tokio::spawn(acme_orders::renewal_loop(state.clone(), acme.renew_check));
    }
    state.auth_failures = Arc::new(AuthFailures::new(options.auth_failures_per_minute));
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
