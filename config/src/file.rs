//! The config file as written by operators: the root [`FileConfig`] and, re-exported
//! here, the serde types of every section (each defined in its section module,
//! e.g. `pools::file`, next to its checked form and its checks).
//!
//! Every struct denies unknown fields so a typo is an error, not a silently
//! ignored setting. These types are never seen by the data plane: `validate`
//! turns them into the checked model in `model`.

use serde::{Deserialize, Serialize};

pub use crate::admin::file::{Admin, AdminAcme};
pub use crate::certificates::file::Certificate;
pub use crate::client_ip::file::{ClientIp, ClientIpHeader};
pub use crate::domains::bans::file::Bans;
pub use crate::domains::file::Domain;
pub use crate::domains::headers::file::{HeaderEdits, HeaderRules};
pub use crate::domains::ip_rules::file::IpRules;
pub use crate::domains::routes::file::{PathMatch, Redirect, Respond, Route, StaticFiles};
pub use crate::domains::security_headers::file::{
    FrameOptions, Hsts, SecurityHeaders, SecurityPreset,
};
pub use crate::internal_api::file::InternalApi;
pub use crate::limits::file::{Limits, PluginLimits};
pub use crate::listeners::file::Listeners;
pub use crate::plugins::file::{FailureMode, Plugin, PluginBinding};
pub use crate::pools::file::{
    ActiveHealthCheck, Algorithm, HealthCheck, PassiveHealthCheck, Pool, ProbeKind, Target,
    Timeouts, UpstreamTls,
};
pub use crate::rate_limits::file::{Quota, RateLimit, RateLimitHeaders};
pub use crate::server::file::Server;
pub use crate::target_policy::file::TargetPolicy;
pub use crate::tenants::file::Tenant;
pub use crate::tls::file::{Tls, UnknownSni};
pub use crate::upstream_dns::file::UpstreamDns;

/// Root of a Gatehouse config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::FileConfig))]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Addresses the proxy binds. Changing them requires a restart.
    #[serde(default)]
    pub listeners: Listeners,
    /// Process-wide settings (threads, graceful shutdown).
    #[serde(default)]
    pub server: Server,
    /// Request limits applied before routing.
    #[serde(default)]
    pub limits: Limits,
    /// TLS termination policy.
    #[serde(default)]
    pub tls: Tls,
    /// Where the real client address comes from behind other proxies.
    #[serde(default)]
    pub client_ip: ClientIp,
    /// How pool targets given by name are resolved.
    #[serde(default)]
    pub upstream_dns: UpstreamDns,
    /// The internal listener's credential.
    #[serde(default)]
    pub internal_api: InternalApi,
    /// Tenants: the owners of domains and pools.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// Virtual hosts with their routes.
    #[serde(default)]
    pub domains: Vec<Domain>,
    /// Upstream pools that routes forward to.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// Certificates that domains reference for TLS termination.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// WebAssembly policy plugins that domains and routes bind.
    #[serde(default)]
    pub plugins: Vec<Plugin>,
    /// Run the admin API in the same process (`gatehouse run`); the proxy then
    /// also serves what tenants publish through it. Takes effect at start.
    #[serde(default)]
    pub admin: Option<Admin>,
    /// The target policy a control plane published with its sections (see
    /// [`FileConfig::merge_published`]); never read from a file.
    #[serde(skip)]
    pub target_policy: Option<TargetPolicy>,
}
