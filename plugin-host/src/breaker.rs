//! The circuit breaker: a plugin that keeps failing is skipped for a cooldown.
//!
//! Failures are counted in a sliding window of recent calls, not as a run of
//! consecutive ones: a plugin failing every other call never has two failures
//! in a row, yet half its calls fail. The circuit opens when, within the last
//! [`WINDOW`], at least [`MIN_FAILURES`] calls failed and they are at least
//! [`TRIP_RATIO_PERCENT`] of the calls. While it is open, the plugin's
//! bindings answer per their failure mode without running it; after the
//! cooldown one trial call decides (success closes it and forgets the
//! window, failure opens it again).
//!
//! Calls that were not run (an open circuit, a shed request) count neither way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::runtime::CompiledPlugin;

/// How far back failures count.
const WINDOW: Duration = Duration::from_secs(10);
/// The window's buckets (one per second).
const BUCKETS: usize = 10;
/// Failures needed in the window before the ratio matters.
const MIN_FAILURES: u32 = 5;
/// Share of failed calls in the window that opens the circuit. A plugin
/// that works fails no calls (its refusals are decisions, not failures), and
/// a request is one or two calls: a plugin failing every other request's
/// `on-request` fails a third of its calls.
const TRIP_RATIO_PERCENT: u32 = 25;
/// How long an open circuit skips the plugin.
const COOLDOWN: Duration = Duration::from_secs(10);

/// Milliseconds since the first call, for lock-free timestamps.
pub(crate) fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Calls and failures of one second.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// The second (`now_ms / 1000`) the counts belong to.
    second: u64,
    calls: u32,
    failures: u32,
}

/// Calls and failures over the last [`WINDOW`], in one-second buckets.
#[derive(Debug, Default)]
struct Window {
    buckets: [Bucket; BUCKETS],
}

impl Window {
    /// Records a call at `now_ms`; returns the window's (calls, failures).
    fn record(&mut self, now_ms: u64, failed: bool) -> (u32, u32) {
        let second = now_ms / 1000;
        let b = &mut self.buckets[(second % BUCKETS as u64) as usize];
        if b.second != second {
            *b = Bucket {
                second,
                ..Bucket::default()
            };
        }
        b.calls += 1;
        b.failures += u32::from(failed);
        let oldest = second.saturating_sub(WINDOW.as_secs() - 1);
        self.buckets
            .iter()
            .filter(|b| b.second >= oldest && b.second <= second)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
    }

    fn clear(&mut self) {
        self.buckets = Default::default();
    }
}

/// Whether calls and failures in the window open the circuit.
fn trips(calls: u32, failures: u32) -> bool {
    failures >= MIN_FAILURES && failures * 100 >= calls * TRIP_RATIO_PERCENT
}

/// Skips a plugin that keeps failing, for a cooldown.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    window: Mutex<Window>,
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
        if self.open_until.swap(0, Ordering::Relaxed) != 0 {
            self.lock().clear();
            plugin.metrics.circuit_open.set(0);
            tracing::info!(tenant = %plugin.tenant, plugin = %plugin.name, "plugin circuit closed: a call succeeded after the cooldown");
            return;
        }
        self.lock().record(now_ms(), false);
    }

    pub fn failure(&self, plugin: &CompiledPlugin, reason: &str) {
        let now = now_ms();
        let half_open = self.open_until.load(Ordering::Relaxed) != 0;
        let (calls, failures) = self.lock().record(now, true);
        if half_open || trips(calls, failures) {
            self.open_until
                .store(now + COOLDOWN.as_millis() as u64, Ordering::Relaxed);
            plugin.metrics.circuit_open.set(1);
            tracing::warn!(
                tenant = %plugin.tenant,
                plugin = %plugin.name,
                calls_in_window = calls,
                failures_in_window = failures,
                last_failure = reason,
                cooldown_s = COOLDOWN.as_secs(),
                "plugin circuit opened: its bindings answer per failure mode until the cooldown ends"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternating_failures_trip_the_ratio() {
        let mut w = Window::default();
        let mut tripped = false;
        for i in 0..20u64 {
            let (calls, failures) = w.record(5_000 + i, i % 2 == 0);
            tripped |= trips(calls, failures);
        }
        assert!(tripped, "every other call failing opens the circuit");
    }

    #[test]
    fn rare_failures_do_not_trip() {
        let mut w = Window::default();
        for i in 0..200u64 {
            let (calls, failures) = w.record(5_000 + i * 10, i % 10 == 0);
            assert!(!trips(calls, failures), "10% failures at call {i}");
        }
    }

    #[test]
    fn every_other_request_failing_trips_though_responses_succeed() {
        let mut w = Window::default();
        let mut tripped = false;
        // Failed requests have one call (on-request); passed ones two.
        for i in 0..10u64 {
            let now = 5_000 + i * 10;
            if i % 2 == 0 {
                let (c, f) = w.record(now, true);
                tripped |= trips(c, f);
            } else {
                w.record(now, false);
                let (c, f) = w.record(now + 1, false);
                tripped |= trips(c, f);
            }
        }
        assert!(tripped);
    }

    #[test]
    fn a_few_failures_are_not_enough_however_high_the_ratio() {
        let mut w = Window::default();
        for i in 0..4u64 {
            let (calls, failures) = w.record(5_000 + i, true);
            assert!(!trips(calls, failures));
        }
        let (calls, failures) = w.record(5_010, true);
        assert!(trips(calls, failures), "the fifth failure in a row trips");
    }

    #[test]
    fn old_failures_leave_the_window() {
        let mut w = Window::default();
        for i in 0..4u64 {
            w.record(1_000 + i, true);
        }
        // Eleven seconds later only the new call counts.
        let (calls, failures) = w.record(12_500, true);
        assert_eq!((calls, failures), (1, 1));
    }
}
