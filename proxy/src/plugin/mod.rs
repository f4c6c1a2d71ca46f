//! The WebAssembly plugin host: tenant policy code run in a sandbox per request.
//!
//! Three parts, as in other component hosts: generated bindings for the
//! `gatehouse:plugin` world (`bindings`), the host side of its imports on the
//! per-call store state (`host`, with the tenant key-value store in `kv`), and
//! the runtime (`runtime`: one engine with a pooling allocator, one epoch ticker,
//! loading and caching components; `call`: running one hook with its limits and
//! classifying failures; `hold`: caps on instances kept between hooks; `chain`: running a route's bindings in order). `decision` checks what a plugin returned before the
//! proxy applies any of it. The request path in `service.rs` drives the chains.
//!
//! Isolation: every request gets a fresh instance per binding from a
//! pre-linked `InstancePre`, kept for its `on-response` when the caps in `hold`
//! allow, so nothing survives between requests or tenants. CPU is
//! bounded by epoch interruption, memory by a store limiter, stack by
//! `max_wasm_stack`; a plugin that keeps failing is skipped for a cooldown.

mod bindings;
mod call;
mod chain;
mod deadline;
mod decision;
mod hold;
mod host;
mod kv;
mod runtime;

pub use call::{Failure, Hook, Instance, PluginCall, Properties, RequestView, ResponseView};
pub use chain::{apply_request_edits, run_request, run_response, wit_headers, ChainStop};
pub use decision::{
    check_request, check_response, HeaderEdit, RequestEdits, RequestOutcome, Respond,
    ResponseEdits, ResponseOutcome,
};
pub use runtime::{
    inspect, inspect_bytes, kept_instances, load_plugins, CompiledPlugin, Inspection,
    MAX_PLUGIN_BYTES, WIT_VERSION,
};

pub use bindings::gatehouse::plugin::types::{Header, RequestLine};
