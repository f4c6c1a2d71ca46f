//! Hostile test plugin: `on-request` allocates `mb` MiB, writes to every
//! page so the memory is resident (not just reserved), keeps it in a static
//! so it stays alive while the proxy keeps the instance for `on-response`,
//! and carries on with the request header `x-memory-hold: <mb>`.
//! `on-response` adds the response header `x-memory-held: <bytes>`: what the
//! instance still holds (0 when `on-response` got a fresh instance).
//!
//! Config: `{"mb": 32}` (the default; the binding needs a `memory_limit_mb`
//! above it). Many requests in flight at once, each holding its instance,
//! attack the tenant's and the node's plugin memory budgets without any one
//! call going over its own limit. An allocation the memory limit refuses is
//! not handled: the allocator aborts, which traps the call (`out_of_memory`
//! or `trap`), as the proxy expects.

use std::sync::{Mutex, PoisonError};

use gatehouse_plugin_sdk::{
    config, export_plugin, Plugin, Request, RequestDecision, Response, ResponseDecision,
};

#[derive(serde::Deserialize)]
#[serde(default)]
struct Config {
    /// MiB allocated in `on-request`.
    mb: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { mb: 32 }
    }
}

/// The host's page size: one write per page makes all of it resident.
const PAGE: usize = 4096;

/// What `on-request` allocated, alive until the instance ends.
static HELD: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct MemoryHold;

impl Plugin for MemoryHold {
    fn on_request(_req: &Request) -> RequestDecision {
        let mb = config::get::<Config>().map_or(32, |c| c.mb);
        // Zeroed pages fresh from `memory.grow` are never touched by the
        // allocator: write one byte per page so the host backs each one.
        let mut block = vec![0u8; mb.saturating_mul(1 << 20)];
        for page in block.chunks_mut(PAGE) {
            page[0] = 1;
        }
        let held = std::hint::black_box(block);
        *HELD.lock().unwrap_or_else(PoisonError::into_inner) = held;
        RequestDecision::proceed().set_header("x-memory-hold", mb.to_string())
    }

    fn on_response(_req: &Request, _resp: &Response) -> ResponseDecision {
        let held = HELD.lock().unwrap_or_else(PoisonError::into_inner).len();
        ResponseDecision::proceed().set_header("x-memory-held", held.to_string())
    }
}

export_plugin!(MemoryHold);
