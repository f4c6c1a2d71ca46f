//! Hostile test plugin: panics in `on-request` when the path contains
//! `/boom` (a trap), and adds a header otherwise, so a test can see the same
//! plugin recover on the next request.

use gatehouse_plugin_sdk::{export_plugin, Plugin, Request, RequestDecision};

struct Trap;

impl Plugin for Trap {
    fn on_request(req: &Request) -> RequestDecision {
        if req.path().contains("/boom") {
            panic!("boom");
        }
        RequestDecision::proceed().set_header("x-trap-plugin", "survived")
    }
}

export_plugin!(Trap);
