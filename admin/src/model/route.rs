//! A route's spec ([`RouteSpec`]): a path (and optionally methods) mapped to
//! one action (forward to a pool of the same tenant, answer, or redirect),
//! and how it renders into the config. Imports only `infra` and `model`.

use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::infra::names;
use crate::model::plugin::qualify_bindings;

/// A route.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Path to match, starting with `/` (default `/`).
    pub path: Option<String>,
    /// `prefix` (default, segment-aware) or `exact`.
    #[serde(default, rename = "match")]
    pub path_match: file::PathMatch,
    /// Allowed methods; empty means all (another method gets 405).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Forward to this pool (by name, same tenant).
    pub pool: Option<String>,
    /// Answer directly.
    pub respond: Option<file::Respond>,
    /// Redirect the client.
    pub redirect: Option<file::Redirect>,
    /// Plugins (by name, same tenant) run after the domain's.
    #[serde(default)]
    pub plugins: Vec<file::PluginBinding>,
    /// Rate limits on this route's requests, after the domain's.
    #[serde(default)]
    pub rate_limits: Vec<file::RateLimit>,
    /// Edge caching for this route, refining the domain's `cache` field by field.
    #[serde(default)]
    pub cache: Option<gatehouse_config::cache::Cache>,
}

impl RouteSpec {
    /// The config file's route.
    pub fn render(&self, tenant: &str) -> file::Route {
        file::Route {
            path: self.path.clone(),
            path_match: self.path_match,
            methods: self.methods.clone(),
            pool: self.pool.as_ref().map(|p| names::qualified(tenant, p)),
            respond: self.respond.clone(),
            redirect: self.redirect.clone(),
            // Serving files from a directory is a file-config feature only:
            // the directory would have to exist on every node.
            static_files: None,
            plugins: qualify_bindings(tenant, &self.plugins),
            rate_limits: self.rate_limits.clone(),
            cache: self.cache.clone(),
        }
    }
}
