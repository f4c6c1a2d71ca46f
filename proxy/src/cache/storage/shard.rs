//! One tenant's shard: a `moka` cache weighed in bytes with the tenant's
//! quota as capacity, its eviction and refusal counters, and the purge
//! generation that keeps a fill from undoing a purge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::notification::RemovalCause;
use pingora::cache::key::HashBinary;

use super::object::Object;

/// Counters of one tenant's shard.
#[derive(Debug, Default)]
pub struct ShardCounters {
    /// Objects pushed out to stay within the quota.
    pub evictions: AtomicU64,
    /// Objects not stored because they were larger than the object limit.
    pub too_large: AtomicU64,
}

/// One tenant's objects.
pub(super) struct Shard {
    pub(super) quota: u64,
    pub(super) objects: moka::sync::Cache<HashBinary, Arc<Object>>,
    pub(super) counters: Arc<ShardCounters>,
    /// Bumped by every purge: a fill that started before it must not put
    /// back what the purge removed.
    pub(super) generation: AtomicU64,
}

impl Shard {
    /// A shard of `tenant`'s objects; `counters` carry over from the shard it
    /// replaces (a quota change), so they only ever grow.
    pub(super) fn new(tenant: &str, quota: u64, counters: Option<Arc<ShardCounters>>) -> Shard {
        let counters = counters.unwrap_or_default();
        let seen = counters.clone();
        let evicted = crate::metrics::metrics()
            .cache_evictions
            .with_label_values(&[tenant]);
        let objects = moka::sync::Cache::builder()
            .max_capacity(quota)
            .weigher(|_, o: &Arc<Object>| o.weight())
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    seen.evictions.fetch_add(1, Ordering::Relaxed);
                    evicted.inc();
                }
            })
            .build();
        Shard {
            quota,
            objects,
            counters,
            generation: AtomicU64::new(0),
        }
    }
}

/// Usage of one tenant's shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardUsage {
    pub objects: u64,
    pub bytes: u64,
    pub quota: u64,
    pub evictions: u64,
    pub too_large: u64,
}
