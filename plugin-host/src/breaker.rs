//! The circuit breaker: a plugin that keeps failing is skipped for a cooldown.
//!
//! While the circuit is open, its bindings answer per their failure mode
//! without running the plugin; after the cooldown one trial call decides.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::runtime::CompiledPlugin;

/// Consecutive failures that open a plugin's circuit.
const BREAKER_TRIP_AFTER: u32 = 5;
/// How long an open circuit skips the plugin.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(10);

/// Milliseconds since the first call, for lock-free timestamps.
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Skips a plugin that keeps failing, for a cooldown.
#[derive(Default)]
pub(crate) struct Breaker {
    consecutive: AtomicU32,
    /// `now_ms()` until which the circuit is open; 0 when closed.
    open_until: AtomicU64,
}

impl Breaker {
    /// Whether a call may run (closed, or the cooldown is over: a trial call).
    pub fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        until == 0 || now_ms() >= until
    }

    pub fn success(&self, plugin: &CompiledPlugin) {
        self.consecutive.store(0, Ordering::Relaxed);
        if self.open_until.swap(0, Ordering::Relaxed) != 0 {
            plugin.metrics.circuit_open.set(0);
            tracing::info!(tenant = %plugin.tenant, plugin = %plugin.name, "plugin circuit closed: a call succeeded after the cooldown");
        }
    }

    pub fn failure(&self, plugin: &CompiledPlugin, reason: &str) {
        let half_open = self.open_until.load(Ordering::Relaxed) != 0;
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if half_open || n >= BREAKER_TRIP_AFTER {
            self.consecutive.store(0, Ordering::Relaxed);
            self.open_until.store(
                now_ms() + BREAKER_COOLDOWN.as_millis() as u64,
                Ordering::Relaxed,
            );
            plugin.metrics.circuit_open.set(1);
            tracing::warn!(
                tenant = %plugin.tenant,
                plugin = %plugin.name,
                consecutive_failures = n,
                last_failure = reason,
                cooldown_s = BREAKER_COOLDOWN.as_secs(),
                "plugin circuit opened: its bindings answer per failure mode until the cooldown ends"
            );
        }
    }
}
