//! The plugin of `plugins/README.md`: refuses requests without a configured
//! header, counts requests in the tenant's key-value store, and tags the rest.
//!
//! Config: `{"required_header": "x-api-client"}`.
//! Build: `gatehouse plugin build plugins/examples/hello -o hello.wasm`.

use gatehouse_plugin_sdk::{config, export_plugin, kv, Plugin, Request, RequestDecision, Respond};

#[derive(serde::Deserialize)]
struct Config {
    /// Requests without this header get a 403.
    required_header: String,
}

struct Hello;

impl Plugin for Hello {
    fn on_request(req: &Request) -> RequestDecision {
        let Ok(cfg) = config::parse::<Config>() else {
            return RequestDecision::respond(Respond::json_error(500, "misconfigured"));
        };
        if req.header(&cfg.required_header).is_none() {
            return RequestDecision::respond(Respond::json_error(403, "forbidden"));
        }
        // State across requests lives in the tenant's key-value store, not in statics.
        let seen: u64 = kv::get("seen")
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
            + 1;
        let _ = kv::set("seen", seen.to_string().as_bytes(), 60_000);
        RequestDecision::proceed()
            .set_header("x-hello", req.tenant())
            .set_header("x-hello-seen", seen.to_string())
            .remove_header("x-internal-debug")
    }
    // `on_response` defaults to "carry on unchanged".
}

export_plugin!(Hello);
