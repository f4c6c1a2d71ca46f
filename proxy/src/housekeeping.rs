//! Periodic upkeep of state that changes without events: rate-limit buckets
//! that refilled are dropped, and target health gauges follow passive
//! ejections as they expire.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::snapshot::SnapshotStore;

/// How often target gauges are refreshed.
const TICK: Duration = Duration::from_millis(500);
/// Rate-limit buckets that refilled are dropped every this many ticks (10 s).
const LIMITER_TICKS: u64 = 20;

/// Background service doing the upkeep.
pub struct Housekeeping {
    store: Arc<SnapshotStore>,
}

impl Housekeeping {
    /// Upkeep for the pools of whatever snapshot `store` holds.
    pub fn new(store: Arc<SnapshotStore>) -> Self {
        Housekeeping { store }
    }
}

#[async_trait]
impl BackgroundService for Housekeeping {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticks: u64 = 0;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            ticks += 1;
            if ticks % LIMITER_TICKS == 0 {
                crate::ratelimit::housekeeping();
            }
            // Passive ejections expire without an event: keep the gauges current.
            for pool in &self.store.load().pools {
                for t in &pool.targets {
                    t.state.refresh_metric();
                }
            }
        }
    }
}
