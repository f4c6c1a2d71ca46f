//! Hostile test plugin: `on-request` spins forever. The proxy must stop it at
//! the binding's deadline and answer per its failure mode.
//!
//! Config: `{"spin": false}` makes `on-request` return "continue" at once
//! instead (default `true`: spin; a config that does not parse spins too).
//! In a chain alternating spinning and instant bindings of this one plugin,
//! each timeout is followed by a success, which resets the plugin's count of
//! consecutive failures: its circuit breaker stays closed (unless concurrent
//! requests' timeouts land back to back), so the chain's and the tenant's CPU
//! budgets are what must stop it.

use gatehouse_plugin_sdk::{config, export_plugin, Plugin, Request, RequestDecision};

#[derive(serde::Deserialize)]
#[serde(default)]
struct Config {
    /// Spin forever (`true`, the default) or return at once.
    spin: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { spin: true }
    }
}

struct Spin;

impl Plugin for Spin {
    fn on_request(req: &Request) -> RequestDecision {
        if config::get::<Config>().is_ok_and(|c| !c.spin) {
            return RequestDecision::proceed();
        }
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(req.path().len() as u64));
        }
    }
}

export_plugin!(Spin);
