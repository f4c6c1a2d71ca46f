//! `gatehouse-plugin-host`: tenant policy code run as sandboxed WebAssembly components.
//!
//! It owns the wasmtime engine, loading and validating components, and running
//! one hook with its limits; it knows nothing of Pingora or HTTP servers, so the
//! data plane (which drives chains of hooks per request) and the admin API (which
//! validates uploads) both use it. Start reading at [`load_plugins`] and
//! [`PluginCall`].
//!
//! Three parts, as in other component hosts: generated bindings for the
//! `gatehouse:plugin` world (`bindings`), the host side of its imports on the
//! per-call store state (`host`, with the tenant key-value store in `kv`), and
//! the runtime (`runtime`: one engine with a pooling allocator, one epoch ticker,
//! loading and caching components; `call`: running one hook with its limits and
//! classifying failures; `hold`: caps on instances kept between hooks; `breaker`:
//! skipping a plugin that keeps failing; `budget`: what tenants and requests
//! may use). `decision` checks what a plugin
//! returned before any of it is applied; `metrics` holds the host's Prometheus
//! families, which the data plane serves.
//!
//! Isolation: every request gets a fresh instance per binding from a
//! pre-linked `InstancePre`, kept for its `on-response` when the caps in `hold`
//! allow, so nothing survives between requests or tenants. A call is a future
//! that yields the worker thread at every epoch tick and stops at its CPU
//! deadline (`deadline`); memory is bounded by a store limiter per binding,
//! per tenant and per node, stack by `max_wasm_stack`; a plugin that keeps
//! failing is skipped for a cooldown (`breaker`). Tenants do not share
//! budgets (`budget`): one over its CPU, memory or concurrency has its calls
//! shed ([`Failure::Overloaded`]) instead of delaying other tenants'.

// `deny`, not `forbid`: one audited exception loads compiled plugins from the
// private cache (see `runtime::deserialize`).
#![deny(unsafe_code)]

mod bindings;
mod breaker;
mod budget;
mod call;
mod deadline;
mod decision;
mod hold;
mod host;
mod kv;
pub mod metrics;
mod runtime;

pub use budget::{node_memory_used, RequestBudget, Shed};
pub use call::{Failure, Hook, Instance, PluginCall, Properties, RequestView, ResponseView};
pub use decision::{
    check_request, check_response, HeaderEdit, RequestEdits, RequestOutcome, Respond,
    ResponseEdits, ResponseOutcome,
};
pub use runtime::{
    inspect, inspect_bytes, kept_instances, load_plugins, CompiledPlugin, Inspection,
    MAX_PLUGIN_BYTES, WIT_VERSION,
};

pub use bindings::gatehouse::plugin::types::{Header, RequestLine};
