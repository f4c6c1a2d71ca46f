//! `plugins` and plugin bindings: WebAssembly policy plugins, and the chains
//! of them that domains and routes run. Holds the file types, the checked
//! plugin and binding, and [`check`] and [`chain`].

use std::collections::HashMap;

use crate::check::Checker;
use model::{
    Plugin, PluginBinding, DEFAULT_PLUGIN_MEMORY, DEFAULT_PLUGIN_TIMEOUT, MAX_PLUGIN_MEMORY,
    MAX_PLUGIN_TIMEOUT,
};

pub mod file {
    //! `plugins[]` and bindings as operators write them.

    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    /// A WebAssembly policy plugin (a component targeting `gatehouse:plugin`).
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Plugin))]
    #[serde(deny_unknown_fields)]
    pub struct Plugin {
        /// Unique name, used by bindings, logs and metrics.
        pub name: String,
        /// Owning tenant: only this tenant's domains can bind the plugin.
        pub tenant: String,
        /// Path to the component (`.wasm`), relative to the config file.
        pub path: String,
        /// Expected SHA-256 of the file, hex. When set, a file with other
        /// content is rejected (the previous config keeps serving).
        pub sha256: Option<String>,
    }

    /// What a request gets when its plugin fails (trap, timeout, memory, invalid decision).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::FailureMode))]
    #[serde(rename_all = "snake_case")]
    pub enum FailureMode {
        /// Answer with an error status (503 for timeouts and an open circuit,
        /// 500 otherwise, or `failure_status`). The default: right for auth.
        #[default]
        Closed,
        /// Skip the plugin and carry on as if it had returned "continue".
        Open,
    }

    /// One plugin in a domain's or route's chain.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::PluginBinding))]
    #[serde(deny_unknown_fields)]
    pub struct PluginBinding {
        /// Plugin name (same tenant as the domain).
        pub plugin: String,
        /// Configuration handed to the plugin as JSON (any YAML value; default `{}`).
        #[serde(default)]
        #[cfg_attr(feature = "schema", schema(value_type = Option<Object>))]
        pub config: Option<serde_json::Value>,
        /// CPU time a hook call may use (default 5ms, at most 100ms); checked every
        /// 1 ms, with a wall-clock cap of 4× (at least +50ms) for a starved call.
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
        pub timeout: Option<Duration>,
        /// Linear memory cap per instance in MiB (default 16, at most 64).
        pub memory_limit_mb: Option<u32>,
        /// `closed` (default) or `open`.
        #[serde(default)]
        pub failure_mode: FailureMode,
        /// Status sent when the plugin fails closed (overrides 500/503).
        pub failure_status: Option<u16>,
    }
}

pub mod model {
    //! Plugins and bindings, checked.

    use std::path::PathBuf;
    use std::time::Duration;

    use http::StatusCode;

    pub use super::file::FailureMode;

    /// Default CPU deadline of a plugin hook call.
    pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_millis(5);
    /// Largest deadline a binding may ask for.
    pub const MAX_PLUGIN_TIMEOUT: Duration = Duration::from_millis(100);
    /// Default linear-memory cap of a plugin instance.
    pub const DEFAULT_PLUGIN_MEMORY: usize = 16 << 20;
    /// Largest memory cap a binding may ask for (the size of a pooled memory slot).
    pub const MAX_PLUGIN_MEMORY: usize = 64 << 20;

    /// A WebAssembly policy plugin.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Plugin {
        /// Unique name.
        pub name: String,
        /// Owning tenant.
        pub tenant: String,
        /// Component file.
        pub path: PathBuf,
        /// Expected SHA-256 of the file.
        pub sha256: Option<[u8; 32]>,
    }

    /// One plugin in a chain, with its settings.
    #[derive(Debug, Clone)]
    pub struct PluginBinding {
        /// Index into [`Config::plugins`](crate::model::Config::plugins).
        pub plugin: usize,
        /// Configuration as a JSON document.
        pub config: std::sync::Arc<str>,
        /// CPU deadline per hook call.
        pub timeout: Duration,
        /// Linear memory cap in bytes.
        pub memory_limit: usize,
        /// What a failure does to the request.
        pub failure_mode: FailureMode,
        /// Status overriding the default 500/503 when failing closed.
        pub failure_status: Option<StatusCode>,
    }
}

/// Checks one plugin at `path`, after `validate` has checked its name and tenant.
pub(crate) fn check(p: &file::Plugin, path: &str, cx: &mut Checker<'_>) -> Plugin {
    if p.path.is_empty() {
        cx.err(format!("{path}.path"), "must name a .wasm component file");
    }
    let sha256 = p.sha256.as_deref().and_then(|hex| match parse_sha256(hex) {
        Some(d) => Some(d),
        None => {
            cx.err(
                format!("{path}.sha256"),
                format!("expected 64 hex digits, got {hex:?}"),
            );
            None
        }
    });
    Plugin {
        name: p.name.clone(),
        tenant: p.tenant.clone(),
        path: cx.resolve_path(&p.path),
        sha256,
    }
}

/// Resolves a domain's or route's chain at `path`: each binding must name a
/// plugin (`index`: name → (index, owning tenant)) of the same `tenant`.
pub(crate) fn chain(
    bindings: &[file::PluginBinding],
    index: &HashMap<String, (usize, String)>,
    tenant: &str,
    path: &str,
    cx: &mut Checker<'_>,
) -> Vec<PluginBinding> {
    let mut out = Vec::with_capacity(bindings.len());
    for (bi, b) in bindings.iter().enumerate() {
        let bpath = format!("{path}[{bi}]");
        let Some((plugin, owner)) = index.get(&b.plugin).cloned() else {
            cx.err(
                format!("{bpath}.plugin"),
                format!("unknown plugin {:?}", b.plugin),
            );
            continue;
        };
        if owner != tenant {
            cx.err(
                format!("{bpath}.plugin"),
                format!("plugin {:?} belongs to another tenant", b.plugin),
            );
            continue;
        }
        let timeout = b.timeout.unwrap_or(DEFAULT_PLUGIN_TIMEOUT);
        if timeout.is_zero() || timeout > MAX_PLUGIN_TIMEOUT {
            cx.err(
                format!("{bpath}.timeout"),
                format!(
                    "must be between 1ms and {}ms",
                    MAX_PLUGIN_TIMEOUT.as_millis()
                ),
            );
        }
        let max_mb = (MAX_PLUGIN_MEMORY >> 20) as u32;
        let memory_limit = match b.memory_limit_mb {
            None => DEFAULT_PLUGIN_MEMORY,
            Some(mb) if (1..=max_mb).contains(&mb) => (mb as usize) << 20,
            Some(mb) => {
                cx.err(
                    format!("{bpath}.memory_limit_mb"),
                    format!("must be between 1 and {max_mb}, got {mb}"),
                );
                DEFAULT_PLUGIN_MEMORY
            }
        };
        let failure_status = match b.failure_status {
            Some(code) if (400..=599).contains(&code) => {
                cx.status(code, &format!("{bpath}.failure_status"))
            }
            Some(code) => {
                cx.err(
                    format!("{bpath}.failure_status"),
                    format!("must be 400..=599, got {code}"),
                );
                None
            }
            None => None,
        };
        let config = match &b.config {
            None => "{}".to_string(),
            Some(v) => v.to_string(),
        };
        out.push(PluginBinding {
            plugin,
            config: config.into(),
            timeout,
            memory_limit,
            failure_mode: b.failure_mode,
            failure_status,
        });
    }
    out
}

/// The expected SHA-256 of a plugin file, from 64 hex digits.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
