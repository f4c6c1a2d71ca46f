//! A domain's spec ([`DomainSpec`]), what is stored for it ([`StoredDomain`]:
//! the spec and its ownership token), and how it renders into the config:
//! its routes once active, only its ownership challenge while pending.
//! Imports only `infra` and `model`.

use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::infra::names;
use crate::model::plugin::qualify_bindings;

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

/// What is stored for a domain: its spec and its ownership token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDomain {
    /// Settings.
    #[serde(flatten)]
    pub spec: DomainSpec,
    /// Ownership token.
    pub verification_token: String,
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
