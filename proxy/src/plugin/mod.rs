//! Tenant plugins on the request path: a route's bound chain and running it.
//!
//! The sandbox itself (engine, loading, one hook call, limits) lives in the
//! `gatehouse-plugin-host` crate, re-exported here; this module adds what needs
//! the proxy's HTTP types: [`BoundPlugin`] (a plugin with its binding's
//! settings) and the chain runner in `chain`. The request path in `service/`
//! drives the chains.

mod chain;

use std::sync::Arc;

use gatehouse_config::model::PluginBinding;

pub use chain::{apply_request_edits, run_request, run_response, wit_headers, ChainStop};
pub use gatehouse_plugin_host::{
    load_plugins, CompiledPlugin, Instance, Properties, RequestBudget, RequestEdits, RequestLine,
    RequestView,
};

/// One plugin of a route's chain: the loaded plugin and its binding settings.
#[derive(Debug)]
pub struct BoundPlugin {
    /// The loaded plugin.
    pub plugin: Arc<CompiledPlugin>,
    /// Binding settings (config, limits, failure mode).
    pub binding: PluginBinding,
}
