//! HTTP caching at the edge (RFC 9111), per tenant.
//!
//! [`storage`] is the object store Pingora's cache machinery reads and
//! writes: in memory, bounded in bytes per tenant, purgeable by key, URL
//! prefix, tag, host and tenant. [`policy`] decides per request and response
//! (bypass, key, `Vary`, freshness); [`status`] reports the outcome in an
//! RFC 9211 `Cache-Status` header; [`purge`] serves purge requests.
//!
//! One store and one cache lock serve the whole process (Pingora wants them
//! `'static`); the running config sets the store's limits on every reload.

pub mod policy;
pub mod purge;
pub mod status;
pub mod storage;

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::predictor::Predictor;

pub use storage::{EdgeStorage, ShardUsage, StoreLimits};

/// How long a fill may hold the cache lock before waiting requests stop
/// trusting it and go upstream themselves.
const LOCK_AGE_TIMEOUT: Duration = Duration::from_secs(10);

static STORE: LazyLock<EdgeStorage> = LazyLock::new(EdgeStorage::default);
static LOCK: LazyLock<Box<CacheKeyLockImpl>> =
    LazyLock::new(|| CacheLock::new_boxed(LOCK_AGE_TIMEOUT));

/// Keys recently found uncacheable (private, Set-Cookie, ...): their
/// requests skip the cache lock instead of queueing behind each other.
static PREDICTOR: LazyLock<Predictor<16>> =
    LazyLock::new(|| Predictor::new(16 * 1024, Some(|reason| reason == "authorization")));

/// The process's uncacheable-key predictor. A refusal that depends on the
/// request rather than the URL (`Authorization`) is not remembered.
pub fn predictor() -> &'static Predictor<16> {
    &PREDICTOR
}

/// The process's edge cache store.
pub fn store() -> &'static EdgeStorage {
    &STORE
}

/// The process's cache lock: concurrent misses of one key wait for one fill.
pub fn lock() -> &'static CacheKeyLockImpl {
    LOCK.as_ref()
}

/// Copies the store's per-tenant usage into the cache gauges (tenants that
/// no longer have a shard disappear from them); run when metrics are served.
pub fn export_usage(m: &crate::metrics::Metrics) {
    for g in [&m.cache_bytes, &m.cache_objects, &m.cache_quota_bytes] {
        g.reset();
    }
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for (tenant, u) in STORE.usage() {
        let t = [tenant.as_str()];
        m.cache_bytes.with_label_values(&t).set(clamp(u.bytes));
        m.cache_objects.with_label_values(&t).set(clamp(u.objects));
        m.cache_quota_bytes
            .with_label_values(&t)
            .set(clamp(u.quota));
    }
}

/// Applies a config's cache limits to the store; tenants the config no
/// longer has lose their objects.
pub fn apply_limits(config: &gatehouse_config::Config) {
    let quotas: HashMap<String, u64> = config.tenant_cache_bytes.iter().cloned().collect();
    STORE.set_limits(StoreLimits {
        default_quota: config.limits.cache_tenant_bytes,
        quotas,
        max_object_bytes: usize::try_from(config.limits.cache_object_bytes).unwrap_or(usize::MAX),
    });
    for (tenant, _) in STORE.usage() {
        if !config.tenants.contains(&tenant) {
            STORE.forget_tenant(&tenant);
        }
    }
}
