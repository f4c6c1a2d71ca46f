//! Hostile test plugin: `on-request` spins forever. The proxy must stop it at
//! the binding's deadline and answer per its failure mode.

use gatehouse_plugin_sdk::{export_plugin, Plugin, Request, RequestDecision};

struct Spin;

impl Plugin for Spin {
    fn on_request(req: &Request) -> RequestDecision {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(req.path().len() as u64));
        }
    }
}

export_plugin!(Spin);
