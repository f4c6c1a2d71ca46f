//! Example plugin: adds headers from its configuration to the upstream request
//! and to the response.
//!
//! Config: `{"request": {"x-name": "value"}, "response": {"x-name": "value"}}`.
//! Build: `gatehouse plugin build plugins/examples/add-headers -o add-headers.wasm`.

use gatehouse_plugin_sdk::{
    config, export_plugin, Plugin, Request, RequestDecision, Response, ResponseDecision,
};
use std::collections::BTreeMap;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Config {
    request: BTreeMap<String, String>,
    response: BTreeMap<String, String>,
}

struct AddHeaders;

impl Plugin for AddHeaders {
    fn on_request(_request: &Request) -> RequestDecision {
        // Parsed once per instance: `on-response` usually reuses it.
        let Ok(config) = config::get::<Config>() else {
            return RequestDecision::proceed();
        };
        let mut decision = RequestDecision::proceed();
        for (name, value) in &config.request {
            decision = decision.set_header(name, value);
        }
        decision
    }

    fn on_response(_request: &Request, _response: &Response) -> ResponseDecision {
        let Ok(config) = config::get::<Config>() else {
            return ResponseDecision::proceed();
        };
        let mut decision = ResponseDecision::proceed();
        for (name, value) in &config.response {
            decision = decision.set_header(name, value);
        }
        decision
    }
}

export_plugin!(AddHeaders);
