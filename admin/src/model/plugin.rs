//! A plugin as stored ([`PluginInfo`]: a tenant's name bound to a component
//! by SHA-256), how plugins and their bindings render into the config, and
//! where a node keeps the component. Imports only `infra`.

use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::infra::names;

/// A plugin as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginInfo {
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// `gatehouse:plugin` version the component targets.
    pub version: String,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// Interfaces it exports.
    pub exports: Vec<String>,
}

impl PluginInfo {
    /// The config file's plugin `name` of `tenant`.
    pub fn render(self, tenant: &str, name: &str) -> file::Plugin {
        file::Plugin {
            name: names::qualified(tenant, name),
            tenant: tenant.to_string(),
            path: plugin_path(&self.sha256),
            sha256: Some(self.sha256),
        }
    }
}

/// Where a node keeps plugin `sha256`, relative to its state directory.
pub fn plugin_path(sha256: &str) -> String {
    format!("plugins/{sha256}.wasm")
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
