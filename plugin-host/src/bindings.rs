//! Host bindings generated from `wit/plugin.wit` (the single source of the ABI).
//!
//! Exports are async (a hook call is a future that yields at epoch ticks, see
//! `call`). Imports are synchronous and infallible: a bad argument from a
//! guest gets a WIT-level answer (`none`, `kv-error`), never a trap of the
//! host's making.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    exports: { default: async },
});
