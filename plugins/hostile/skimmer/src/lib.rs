//! Hostile test plugin: burns CPU on every call but never fails. `on-request`
//! (and `on-response` when configured) spins for `spin_ms` milliseconds of
//! wall-clock time, read from the host property `unix-time-ms`, hashing
//! between reads so the time is spent on CPU, then carries on with the header
//! `x-skimmer: <calls in this instance>` (1 in `on-request`; 2 in
//! `on-response` when it runs in the instance `on-request` used).
//!
//! Config: `{"spin_ms": 4, "on_response": false}` (the defaults).
//!
//! The default 4 ms stays under the default 5 ms deadline, so no call times
//! out and the circuit breaker never opens: it skims CPU from the node one
//! call at a time. Only a budget over calls stops it — the CPU budget of a
//! request's chain (many bindings of it) and the tenant's CPU budget (many
//! requests at once).

use std::sync::atomic::{AtomicU32, Ordering};

use gatehouse_plugin_sdk::{
    config, export_plugin, property, Plugin, Request, RequestDecision, Response, ResponseDecision,
};

#[derive(serde::Deserialize, Clone, Copy)]
#[serde(default)]
struct Config {
    /// Milliseconds each call spins.
    spin_ms: u64,
    /// Spin in `on-response` too.
    on_response: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            spin_ms: 4,
            on_response: false,
        }
    }
}

/// Hook calls this instance has served.
static CALLS: AtomicU32 = AtomicU32::new(0);

/// Hash rounds between two clock reads: a few microseconds, so a call
/// overshoots `spin_ms` by little.
const ROUNDS_PER_READ: u32 = 2_000;

fn settings() -> Config {
    // A skimmer never fails: a config that does not parse gets the defaults.
    config::get::<Config>().copied().unwrap_or_default()
}

fn now_ms() -> Option<u64> {
    property("unix-time-ms")?.parse().ok()
}

/// Spins for `ms` milliseconds of wall-clock time (the clock has millisecond
/// steps: between `ms - 1` and `ms`, plus one batch of rounds). Returns at
/// once if the proxy has no clock to offer, rather than spinning forever.
fn burn(ms: u64) {
    let Some(start) = now_ms() else {
        return;
    };
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    loop {
        for i in 0..ROUNDS_PER_READ {
            // FNV-1a over the counter: real work the compiler cannot drop.
            hash = std::hint::black_box((hash ^ u64::from(i)).wrapping_mul(0x0100_0000_01b3));
        }
        match now_ms() {
            Some(now) if now.saturating_sub(start) < ms => continue,
            _ => return,
        }
    }
}

fn call() -> String {
    (CALLS.fetch_add(1, Ordering::Relaxed) + 1).to_string()
}

struct Skimmer;

impl Plugin for Skimmer {
    fn on_request(_req: &Request) -> RequestDecision {
        burn(settings().spin_ms);
        RequestDecision::proceed().set_header("x-skimmer", call())
    }

    fn on_response(_req: &Request, _resp: &Response) -> ResponseDecision {
        let cfg = settings();
        if !cfg.on_response {
            return ResponseDecision::proceed();
        }
        burn(cfg.spin_ms);
        ResponseDecision::proceed().set_header("x-skimmer", call())
    }
}

export_plugin!(Skimmer);
