//! The validated config: what the data plane compiles into its runtime tables.
//! The root [`Config`] is here; the types of each section are defined in its
//! section module (e.g. `pools::model`) and re-exported here.
//!
//! Every value here has been checked (addresses parsed, references resolved to
//! indices, header names and values valid, templates parsed), so code that
//! consumes a [`Config`] never has to handle a malformed setting.

pub use crate::ipset::IpSet;

pub use crate::certificates::model::{CertSource, Certificate};
pub use crate::client_ip::model::ClientIp;
pub use crate::domains::bans::model::BanPolicy;
pub use crate::domains::headers::model::{HeaderEdits, Template, TemplatePart, Variable};
pub use crate::domains::ip_rules::model::IpRules;
pub use crate::domains::model::Domain;
pub use crate::domains::routes::model::{
    PathMatch, Redirect, Respond, Route, RouteAction, StaticFiles,
};
pub use crate::domains::security_headers::model::SecurityHeaders;
pub use crate::hosts::HostPattern;
pub use crate::internal_api::model::InternalApi;
pub use crate::limits::model::{Limits, PluginLimits};
pub use crate::listeners::model::Listeners;
pub use crate::plugins::model::{
    FailureMode, Plugin, PluginBinding, DEFAULT_PLUGIN_MEMORY, DEFAULT_PLUGIN_TIMEOUT,
    MAX_PLUGIN_MEMORY, MAX_PLUGIN_TIMEOUT,
};
pub use crate::pools::model::{
    ActiveHealthCheck, Algorithm, HashKey, PassiveHealthCheck, Pool, ProbeKind, Target, Timeouts,
    UpstreamTls,
};
pub use crate::rate_limits::model::{RateLimitKey, RateLimitRule, RateQuota};
pub use crate::server::model::Server;
pub use crate::target_policy::model::{embedded_v4, TargetPolicy};
pub use crate::tenants::TenantPluginBudget;
pub use crate::tls::model::{Tls, UnknownSni};
pub use crate::upstream_dns::model::UpstreamDns;

/// A complete, validated Gatehouse config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bound addresses.
    pub listeners: Listeners,
    /// Process-wide settings.
    pub server: Server,
    /// Request limits.
    pub limits: Limits,
    /// TLS termination policy.
    pub tls: Tls,
    /// Where the client address comes from.
    pub client_ip: ClientIp,
    /// How pool targets given by name are resolved.
    pub upstream_dns: UpstreamDns,
    /// The internal listener's credential.
    pub internal_api: InternalApi,
    /// Where published (tenants') pools may not connect: `Some` on a node
    /// following a control plane (the published policy, else the default).
    pub tenant_targets: Option<TargetPolicy>,
    /// Tenant names.
    pub tenants: Vec<String>,
    /// Tenants' aggregate request ceilings.
    pub tenant_rate_limits: Vec<(String, RateQuota)>,
    /// Tenants with their own edge cache quota, in bytes.
    pub tenant_cache_bytes: Vec<(String, u64)>,
    /// Tenants with their own plugin budgets.
    pub tenant_plugin_budgets: Vec<(String, TenantPluginBudget)>,
    /// Virtual hosts.
    pub domains: Vec<Domain>,
    /// Upstream pools, referenced by index from routes.
    pub pools: Vec<Pool>,
    /// Certificates, referenced by index from domains.
    pub certificates: Vec<Certificate>,
    /// Plugins, referenced by index from bindings.
    pub plugins: Vec<Plugin>,
}
