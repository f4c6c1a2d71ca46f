//! The state every handler and background task shares ([`AppState`]): the
//! store, sealing keys, failed-authentication counts, the wake-up channels of
//! the node feeds and the ACME CA. Imports only `infra`.

use std::sync::Arc;

use crate::infra::acme_settings;
use crate::infra::auth::AuthFailures;
use crate::infra::secrets::Keys;
use crate::infra::store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Failed authentications per client.
    pub auth_failures: Arc<AuthFailures>,
    /// Keys sealing private keys at rest.
    pub keys: Arc<Keys>,
    /// The latest version published through this admin; wakes snapshot polls.
    pub published: Arc<tokio::sync::watch::Sender<i64>>,
    /// The latest cache purge accepted by this admin; wakes purge polls.
    pub purged: Arc<tokio::sync::watch::Sender<i64>>,
    /// The latest ACME challenge set version; wakes challenge polls.
    pub challenged: Arc<tokio::sync::watch::Sender<i64>>,
    /// The ACME CA certificates are ordered from, when one is configured.
    pub acme: Option<Arc<acme_settings::Settings>>,
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
    /// Where tenants' pools and HTTP ownership checks may not point; also
    /// published to nodes, which apply it to every address they resolve.
    pub target_policy: Arc<crate::infra::net::TargetPolicy>,
    /// Plugin component bytes each tenant may use (distinct components of
    /// its draft's plugins).
    pub plugin_storage_bytes: u64,
    /// Refusal events written per token and minute.
    pub refusals: Arc<crate::infra::audit::RefusalBudget>,
    /// How long a domain may stay pending (ownership never proven) and still
    /// keep its name from other tenants.
    pub pending_domain_ttl: std::time::Duration,
    /// Most plugin bindings one request may run (the domain's and the route's
    /// together): the nodes' `limits.plugins.max_chain`, checked here so that
    /// a version no node would load is never published.
    pub max_plugin_chain: usize,
}

impl AppState {
    /// State over `store`, sealing secrets with `keys`.
    pub fn new(store: Store, keys: Keys) -> Self {
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
            target_policy: Arc::default(),
            pending_domain_ttl: crate::server::PENDING_DOMAIN_TTL,
            refusals: Arc::default(),
            plugin_storage_bytes: crate::server::PLUGIN_STORAGE_BYTES,
            max_plugin_chain: gatehouse_config::plugin_defaults::MAX_CHAIN,
        }
    }
}
