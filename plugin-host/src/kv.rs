//! The tenant-scoped key-value store plugins use to keep state across requests.
//!
//! One bounded `moka` cache per tenant, weighed in bytes, with a TTL per entry:
//! a tenant filling its store evicts its own least-used entries, never
//! another tenant's. Keys never cross tenants because each tenant has its own
//! cache, looked up by the tenant of the plugin making the call (set by the
//! proxy, not by the guest).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

/// Largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Bytes (keys plus values) a tenant may keep before its entries are evicted.
pub const TENANT_QUOTA_BYTES: u64 = 8 * 1024 * 1024;
/// Bytes an entry is weighed at beyond its key and value (the cache's own
/// bookkeeping per entry, roughly).
const ENTRY_OVERHEAD: usize = 256;
/// Longest TTL a plugin may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Duration,
}

struct EntryTtl;

impl Expiry<String, Entry> for EntryTtl {
    fn expire_after_create(&self, _key: &String, e: &Entry, _now: Instant) -> Option<Duration> {
        Some(e.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        e: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// Every tenant's store.
#[derive(Default)]
pub struct KvStore {
    tenants: RwLock<HashMap<Arc<str>, Cache<String, Entry>>>,
}

/// Why a write was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KvRefused {
    /// Key or value over the size limits.
    TooLarge,
}

impl KvStore {
    /// The process-wide store.
    pub fn global() -> &'static KvStore {
        static STORE: OnceLock<KvStore> = OnceLock::new();
        STORE.get_or_init(KvStore::default)
    }

    fn tenant(&self, tenant: &Arc<str>) -> Cache<String, Entry> {
        if let Some(c) = self
            .tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return c.clone();
        }
        let mut map = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.clone())
            .or_insert_with(|| {
                Cache::builder()
                    .max_capacity(TENANT_QUOTA_BYTES)
                    // Each entry costs the cache its bookkeeping too: without
                    // it, millions of empty entries would fit the quota.
                    .weigher(|k: &String, e: &Entry| {
                        u32::try_from(k.len() + e.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                    })
                    .expire_after(EntryTtl)
                    .build()
            })
            .clone()
    }

    /// Reads `key` of `tenant`.
    pub fn get(&self, tenant: &Arc<str>, key: &str) -> Option<Arc<[u8]>> {
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        self.tenant(tenant).get(key).map(|e| e.value)
    }

    /// Stores `value` under `key` for `ttl` (capped at [`MAX_TTL`]).
    pub fn set(
        &self,
        tenant: &Arc<str>,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), KvRefused> {
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Err(KvRefused::TooLarge);
        }
        let entry = Entry {
            value: Arc::from(value),
            ttl: ttl.min(MAX_TTL),
        };
        self.tenant(tenant).insert(key.to_string(), entry);
        Ok(())
    }

    /// Removes `key` of `tenant`.
    pub fn delete(&self, tenant: &Arc<str>, key: &str) {
        if key.len() <= MAX_KEY_BYTES {
            self.tenant(tenant).invalidate(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_do_not_share_keys() {
        let kv = KvStore::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        kv.set(&a, "k", b"1", Duration::from_secs(60)).unwrap();
        assert_eq!(kv.get(&a, "k").as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get(&b, "k"), None);
        kv.delete(&b, "k");
        assert_eq!(kv.get(&a, "k").as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn oversized_writes_are_refused() {
        let kv = KvStore::default();
        let a: Arc<str> = Arc::from("a");
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert_eq!(
            kv.set(&a, "k", &big, Duration::from_secs(1)),
            Err(KvRefused::TooLarge)
        );
        let key = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            kv.set(&a, &key, b"", Duration::from_secs(1)),
            Err(KvRefused::TooLarge)
        );
    }

    #[test]
    fn entries_expire() {
        let kv = KvStore::default();
        let a: Arc<str> = Arc::from("a");
        kv.set(&a, "k", b"1", Duration::from_millis(20)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while kv.get(&a, "k").is_some() {
            assert!(Instant::now() < deadline, "entry never expired");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
