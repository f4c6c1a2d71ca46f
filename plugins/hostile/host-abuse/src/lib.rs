//! Hostile test plugin: misuses every host import — oversized key-value
//! writes, thousands of counter names, unknown properties, the config read in
//! a loop — then carries on. Each import must stay bounded and answer sanely.

use gatehouse_plugin_sdk::{
    config, counter_add, export_plugin, kv, property, Plugin, Request, RequestDecision,
};

struct Abuse;

impl Plugin for Abuse {
    fn on_request(_req: &Request) -> RequestDecision {
        let big = vec![0u8; 1 << 20];
        let too_large =
            kv::set("k", &big, 1000).is_err() && kv::set(&"k".repeat(10_000), b"v", 1000).is_err();
        for i in 0..2000 {
            counter_add(&format!("name-{i}"), 1);
        }
        let unknown =
            property("../../etc/passwd").is_none() && property(&"p".repeat(100_000)).is_none();
        let mut n = 0;
        for _ in 0..1000 {
            n += config::json().len();
        }
        std::hint::black_box(n);
        RequestDecision::proceed()
            .set_header(
                "x-kv-too-large",
                if too_large { "refused" } else { "accepted" },
            )
            .set_header("x-unknown-property", if unknown { "none" } else { "some" })
    }
}

export_plugin!(Abuse);
