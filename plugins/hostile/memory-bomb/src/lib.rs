//! Hostile test plugin: `on-request` allocates 1 MiB blocks until the
//! allocator fails. The proxy must cap it at the binding's memory limit.

use gatehouse_plugin_sdk::{export_plugin, Plugin, Request, RequestDecision};

struct Bomb;

impl Plugin for Bomb {
    fn on_request(_req: &Request) -> RequestDecision {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

export_plugin!(Bomb);
