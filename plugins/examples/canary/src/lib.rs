//! Example plugin: canary releases.
//!
//! Sends a request to the `pool` (a pool of the same tenant) when the client
//! opted in (`header` or `cookie` with value `1` or `true`), or when the client
//! falls in the first `percent` of a stable hash of its IP address, so one
//! client stays on one side. Opted-out clients (`0`/`false`) never go.
//! Canary requests carry `x-canary: 1` upstream, and responses say which side
//! served them in `x-served-by-canary`.
//!
//! Config: `{"pool": "api-canary", "percent": 10, "header": "x-canary", "cookie": "canary"}`.
//! Build: `gatehouse plugin build plugins/examples/canary -o canary.wasm`.

use gatehouse_plugin_sdk::{
    config, export_plugin, Plugin, Request, RequestDecision, Response, ResponseDecision,
};

#[derive(serde::Deserialize)]
struct Config {
    pool: String,
    #[serde(default)]
    percent: u32,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
}

/// FNV-1a: stable across processes and versions (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn opt(v: Option<&str>) -> Option<bool> {
    match v? {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn wants_canary(cfg: &Config, req: &Request) -> bool {
    let from_header = cfg.header.as_deref().and_then(|h| opt(req.header_str(h)));
    let from_cookie = cfg.cookie.as_deref().and_then(|c| opt(req.cookie(c)));
    match from_header.or(from_cookie) {
        Some(choice) => choice,
        None => fnv1a(req.client_ip().as_bytes()) % 100 < cfg.percent.min(100),
    }
}

struct Canary;

impl Plugin for Canary {
    fn on_request(req: &Request) -> RequestDecision {
        let Ok(cfg) = config::get::<Config>() else {
            return RequestDecision::proceed();
        };
        if wants_canary(cfg, req) {
            RequestDecision::proceed()
                .pool(&cfg.pool)
                .set_header("x-canary", "1")
        } else {
            RequestDecision::proceed().remove_header("x-canary")
        }
    }

    fn on_response(req: &Request, _resp: &Response) -> ResponseDecision {
        let canary = config::get::<Config>().is_ok_and(|cfg| wants_canary(cfg, req));
        ResponseDecision::proceed().set_header("x-served-by-canary", if canary { "1" } else { "0" })
    }
}

export_plugin!(Canary);
