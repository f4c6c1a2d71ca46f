//! Host bindings generated from `wit/plugin.wit` (the single source of the ABI).
//!
//! Exports are async (a hook call is a future that yields at epoch ticks, see
//! `call`). Imports are async too, and may trap, only so that each can start
//! with the same check as a tick (`HostState::checkpoint`: stop the call, or
//! yield); a bad argument from a guest still gets a WIT-level answer
//! (`none`, `kv-error`), never a trap.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    imports: { default: async | trappable },
    exports: { default: async },
});
