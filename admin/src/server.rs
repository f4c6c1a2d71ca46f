//! Running the admin as a server: options, the bootstrap platform-admin
//! token, the in-process proxy's node token, the listener and the ACME
//! renewal task. Imports `api`, `acme`, `release` and `infra`.

use std::sync::Arc;

use sqlx::Row;

use crate::acme::renewal::renewal_loop;
use crate::api::{insert_token, router};
use crate::infra::acme_settings;
use crate::infra::auth::{AuthFailures, Role};
use crate::infra::credentials;
use crate::infra::net::TargetPolicy;
use crate::infra::secrets::Keys;
use crate::infra::state::AppState;
use crate::infra::store::{now_ms, Store};
use crate::release::versions;

/// What [`bootstrap`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// No platform-admin token existed: this one was generated (show it once).
    Generated(String),
    /// No platform-admin token existed: the preset was installed.
    PresetInstalled,
    /// A platform-admin token exists (the preset, if any, is one of them).
    Exists,
    /// A platform-admin token exists and the preset is not one: it is not
    /// used (the operator should know, rather than wonder why it fails).
    PresetUnused,
    /// No platform-admin token is active and the preset cannot be installed
    /// (it was revoked, or its prefix belongs to another token): none was
    /// created. The admin still serves every other token.
    PresetRefused(&'static str),
}

impl Bootstrap {
    /// What to tell the operator, if anything (never the token).
    pub fn warning(&self) -> Option<String> {
        match self {
            Bootstrap::PresetUnused => Some(
                "GATEHOUSE_ADMIN_TOKEN is not used: a platform-admin token already exists \
                 (unset it, or create platform-admin tokens through the API)"
                    .into(),
            ),
            Bootstrap::PresetRefused(why) => Some(format!(
                "no platform-admin token is active and GATEHOUSE_ADMIN_TOKEN {why}: set it to \
                 a new token, or unset it to have one generated, and restart the admin"
            )),
            _ => None,
        }
    }
}

/// Makes sure a platform-admin token exists. With none active, creates one:
/// from `preset` (a token in `gh_…` form, e.g. from `GATEHOUSE_ADMIN_TOKEN`)
/// or freshly generated. A revoked preset is never brought back: revoking
/// the bootstrap token must stay revoked across restarts. Errors only for a
/// preset that is not a token when one is needed, or the store failing.
pub async fn bootstrap(store: &Store, preset: Option<&str>) -> anyhow::Result<Bootstrap> {
    let parsed = preset.map(credentials::parse);
    let mut tx = store.begin_write().await?;
    let active = sqlx::query(
        "SELECT prefix, secret_sha256 FROM tokens WHERE role = $1 AND revoked_ms IS NULL",
    )
    .bind(Role::PlatformAdmin.as_str())
    .fetch_all(&mut *tx)
    .await?;
    if !active.is_empty() {
        let p = match &parsed {
            None => return Ok(Bootstrap::Exists),
            Some(None) => return Ok(Bootstrap::PresetUnused),
            Some(Some(p)) => p,
        };
        let is_one = active.iter().any(|row| {
            row.try_get::<String, _>("prefix")
                .is_ok_and(|x| x == p.prefix)
                && row
                    .try_get::<String, _>("secret_sha256")
                    .is_ok_and(|h| credentials::verify(p.secret, &h))
        });
        return Ok(if is_one {
            Bootstrap::Exists
        } else {
            Bootstrap::PresetUnused
        });
    }
    let new = match (preset, &parsed) {
        (_, Some(None)) => anyhow::bail!(
            "GATEHOUSE_ADMIN_TOKEN is not a Gatehouse token (gh_<8 chars>_<40 hex digits>)"
        ),
        (Some(t), Some(Some(p))) => {
            let taken = sqlx::query("SELECT revoked_ms FROM tokens WHERE prefix = $1")
                .bind(p.prefix)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = taken {
                let revoked: Option<i64> = row.try_get("revoked_ms")?;
                return Ok(Bootstrap::PresetRefused(if revoked.is_some() {
                    "was revoked"
                } else {
                    "has the prefix of another token"
                }));
            }
            credentials::NewToken {
                token: t.to_string(),
                prefix: p.prefix.to_string(),
                secret_sha256: credentials::secret_sha256(p.secret),
            }
        }
        _ => credentials::generate(),
    };
    insert_token(
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
    Ok(match preset {
        Some(_) => Bootstrap::PresetInstalled,
        None => Bootstrap::Generated(new.token),
    })
}

/// How long a pending domain keeps its name by default: 7 days.
pub const PENDING_DOMAIN_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Plugin component bytes a tenant may use by default: 256 MiB.
pub const PLUGIN_STORAGE_BYTES: u64 = 256 * 1024 * 1024;

/// How often unreferenced plugin components are looked for, and how long
/// one stays after it is first found unreferenced.
const BLOB_COLLECTION_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
const BLOB_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
    /// Let tenants target internal addresses: nothing is refused but the
    /// nodes' own listeners (see [`AppState::target_policy`]).
    pub allow_internal_targets: bool,
    /// Ranges tenants' pools may not reach, instead of
    /// `gatehouse_config::DEFAULT_REFUSED_TARGETS` (ignored with
    /// `allow_internal_targets`).
    pub refused_target_ranges: Option<Vec<String>>,
    /// How long a pending domain keeps its name from other tenants.
    pub pending_domain_ttl: std::time::Duration,
    /// Plugin component bytes each tenant may use.
    pub plugin_storage_bytes: u64,
    /// A node token for the proxy running in the same process (`gatehouse run`):
    /// installed at start, replacing the previous one.
    pub local_node_token: Option<String>,
    /// The ACME CA to order certificates from (none: ordering is refused).
    pub acme: Option<acme_settings::Settings>,
    /// The nodes' `limits.plugins.max_chain` (see [`AppState::max_plugin_chain`]).
    pub max_plugin_chain: usize,
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
            .field("refused_target_ranges", &self.refused_target_ranges)
            .field("max_plugin_chain", &self.max_plugin_chain)
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
    let p =
        credentials::parse(token_text).ok_or_else(|| anyhow::anyhow!("not a Gatehouse token"))?;
    let new = credentials::NewToken {
        token: token_text.to_string(),
        prefix: p.prefix.to_string(),
        secret_sha256: credentials::secret_sha256(p.secret),
    };
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "UPDATE tokens SET revoked_ms = $1 WHERE name = $2 AND role = $3 AND revoked_ms IS NULL",
    )
    .bind(now_ms())
    .bind(LOCAL_NODE_TOKEN_NAME)
    .bind(Role::Node.as_str())
    .execute(&mut *tx)
    .await?;
    insert_token(
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

/// The target policy `options` ask for.
fn target_policy(options: &ServeOptions) -> anyhow::Result<TargetPolicy> {
    use gatehouse_config::file::TargetPolicy as Published;
    let published = match (
        &options.refused_target_ranges,
        options.allow_internal_targets,
    ) {
        (_, true) => Published::open(),
        (Some(ranges), false) => Published {
            refused: ranges.clone(),
            node_addresses: true,
        },
        (None, false) => Published::default(),
    };
    TargetPolicy::new(published).map_err(|e| anyhow::anyhow!("--refused-target-ranges: {e}"))
}

/// Serves the admin API until `shutdown` completes, then finishes the
/// requests in flight. On first start (no platform-admin token yet) a
/// bootstrap token is created and printed once on standard error.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ceiling = gatehouse_config::plugin_defaults::MAX_CHAIN_CEILING;
    if !(1..=ceiling).contains(&options.max_plugin_chain) {
        anyhow::bail!(
            "--max-plugin-chain must be between 1 and {ceiling}, got {}",
            options.max_plugin_chain
        );
    }
    let store = Store::connect(&options.database).await?;
    let keys = Keys::load(&options.secrets_key_file, true)?;
    if let Some(t) = &options.local_node_token {
        install_local_node_token(&store, t).await?;
    }
    match bootstrap(&store, options.preset_token.as_deref()).await? {
        Bootstrap::Generated(token) => {
            // Deliberately not through the log: a secret must not reach log storage.
            eprintln!(
                "gatehouse admin: bootstrap platform-admin token (shown once; store it now): {token}"
            );
        }
        refused @ Bootstrap::PresetRefused(_) => {
            tracing::error!("{}", refused.warning().unwrap_or_default());
        }
        outcome => {
            if let Some(warning) = outcome.warning() {
                tracing::warn!("{warning}");
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("admin API cannot listen on {}: {e}", options.listen))?;
    tracing::info!(listen = %listener.local_addr()?, backend = ?store.backend(), "admin API listening");
    let current = versions::current(store.pool()).await?;
    let mut state = AppState::new(store, keys);
    state.published.send_replace(current.unwrap_or(0));
    state.dns_resolver = options.dns_resolver;
    state.target_policy = Arc::new(target_policy(&options)?);
    state.pending_domain_ttl = options.pending_domain_ttl;
    state.plugin_storage_bytes = options.plugin_storage_bytes;
    tokio::spawn(crate::draft::blobs::collection_loop(
        state.store.clone(),
        BLOB_COLLECTION_EVERY,
        BLOB_GRACE,
    ));
    state.max_plugin_chain = options.max_plugin_chain;
    state.acme = options.acme.map(Arc::new);
    if let Some(acme) = &state.acme {
        tokio::spawn(renewal_loop(state.clone(), acme.renew_check));
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
