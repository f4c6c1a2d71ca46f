//! Test plugin: counts calls in a global (which must start at 1 on every
//! request: each request gets a fresh instance; `on-response` reads 2 when it
//! ran in the instance `on-request` used) and in the tenant key-value store
//! (which must grow across requests), and reports both in headers.

use std::sync::atomic::{AtomicU32, Ordering};

use gatehouse_plugin_sdk::{
    export_plugin, kv, Plugin, Request, RequestDecision, Response, ResponseDecision,
};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Probe;

impl Plugin for Probe {
    fn on_request(_req: &Request) -> RequestDecision {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let hits = kv::get("hits")
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let _ = kv::set("hits", hits.to_string().as_bytes(), 60_000);
        RequestDecision::proceed()
            .set_header("x-probe-global-calls", calls.to_string())
            .set_header("x-probe-kv-hits", hits.to_string())
    }

    fn on_response(_req: &Request, _resp: &Response) -> ResponseDecision {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let hits = kv::get("hits")
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        ResponseDecision::proceed()
            .set_header("x-probe-global-calls", calls.to_string())
            .set_header("x-probe-kv-hits", hits)
    }
}

export_plugin!(Probe);
