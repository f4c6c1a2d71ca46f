//! Hostile test plugin: writes 10,000 log lines of 4 KiB per request, then
//! carries on. The proxy must cut and budget them, not slow down or grow.

use gatehouse_plugin_sdk::{export_plugin, log, Plugin, Request, RequestDecision};

struct Flood;

impl Plugin for Flood {
    fn on_request(_req: &Request) -> RequestDecision {
        let line = "y".repeat(4096);
        for _ in 0..10_000 {
            log::warn(&line);
        }
        RequestDecision::proceed().set_header("x-flooded", "1")
    }
}

export_plugin!(Flood);
