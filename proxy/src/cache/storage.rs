//! The edge cache's object store: a Pingora cache
//! [`Storage`](pingora::cache::Storage) held in memory, bounded in bytes per
//! tenant.
//!
//! Each tenant has its own shard, a `moka` cache weighed in bytes (body plus
//! stored headers) whose capacity is the tenant's quota; moka's TinyLFU
//! admission keeps a scan of one-off URLs from flushing the objects that are
//! asked for again and again. A tenant can never fill, read or purge another
//! tenant's shard: the tenant comes from the cache key's `user_tag`, which the
//! request path sets from the routed domain, never from the request.
//!
//! Objects are written whole: the request that fetches an object streams it
//! to its client while the body is collected here, and it becomes visible to
//! other requests when complete (requests waiting on the cache lock then read
//! it from memory). Bodies larger than the object limit are not stored.
//!
//! Besides Pingora's per-key purge, the store purges by URL prefix, by tag
//! (`Cache-Tag` / `Surrogate-Key` of the stored response), by host and by
//! tenant; those walk the tenant's shard, which is an operator action, not a
//! request-path one.
//!
//! This file holds the store, its limits and its shard map; the shard, the
//! stored object, the purges and Pingora's handlers have a file each below.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use pingora::cache::key::HashBinary;

mod handlers;
mod object;
mod purge;
mod shard;

use object::Object;
use shard::Shard;
pub use shard::{ShardCounters, ShardUsage};

/// Largest object any limit allows (weights are 32-bit).
pub const MAX_OBJECT_BYTES: usize = 1 << 30;

/// Separates a primary key's URL from the extra parts a route adds to its
/// key (a header or cookie value); a line break never occurs in a URL.
pub const KEY_EXTRA_SEPARATOR: char = '\n';

/// The primary cache key of a URL (`host` lowercase, `path_and_query` as
/// the cache policy shapes it) plus optional extra parts.
pub fn primary_key(host: &str, path_and_query: &str, extra: &[&str]) -> String {
    let mut key = String::with_capacity(host.len() + path_and_query.len() + 16);
    key.push_str(host);
    key.push_str(path_and_query);
    for part in extra {
        key.push(KEY_EXTRA_SEPARATOR);
        key.push_str(part);
    }
    key
}

/// Limits of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes a tenant without its own quota may use.
    pub default_quota: u64,
    /// Per tenant: bytes it may use.
    pub quotas: HashMap<String, u64>,
    /// Largest body stored.
    pub max_object_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            default_quota: 64 << 20,
            quotas: HashMap::new(),
            max_object_bytes: 8 << 20,
        }
    }
}

/// The in-memory edge cache store (see the module docs).
pub struct EdgeStorage {
    limits: RwLock<StoreLimits>,
    shards: RwLock<HashMap<Box<str>, Arc<Shard>>>,
}

impl Default for EdgeStorage {
    fn default() -> Self {
        EdgeStorage::new(StoreLimits::default())
    }
}

impl EdgeStorage {
    pub fn new(limits: StoreLimits) -> EdgeStorage {
        EdgeStorage {
            limits: RwLock::new(limits),
            shards: RwLock::new(HashMap::new()),
        }
    }

    /// Applies new limits (a config reload). A tenant whose quota changed
    /// gets a new shard holding as many of its objects as the quota admits;
    /// the copy is made without blocking lookups, and a shard purged during
    /// the copy starts empty instead (a purge is never undone).
    pub fn set_limits(&self, limits: StoreLimits) {
        let mut current = self.limits.write().unwrap_or_else(|p| p.into_inner());
        if *current == limits {
            return;
        }
        let old: Vec<(Box<str>, Arc<Shard>)> = self
            .shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(tenant, shard)| quota_of(&limits, tenant) != shard.quota)
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        let mut resized = Vec::with_capacity(old.len());
        for (tenant, shard) in old {
            let generation = shard.generation.load(Ordering::Acquire);
            let new = Shard::new(
                &tenant,
                quota_of(&limits, &tenant),
                Some(shard.counters.clone()),
            );
            for (k, o) in shard.objects.iter() {
                new.objects.insert(*k, o);
            }
            resized.push((tenant, shard, generation, new));
        }
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        for (tenant, old, generation, new) in resized {
            let new = if old.generation.load(Ordering::Acquire) == generation {
                new
            } else {
                Shard::new(&tenant, new.quota, Some(new.counters.clone()))
            };
            // Fills of the old shard see it is no longer current and drop.
            old.generation.fetch_add(1, Ordering::AcqRel);
            shards.insert(tenant, Arc::new(new));
        }
        *current = limits;
    }

    /// Drops a tenant's shard and everything in it (the tenant is gone).
    pub fn forget_tenant(&self, tenant: &str) {
        let removed = self
            .shards
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        if let Some(shard) = removed {
            shard.generation.fetch_add(1, Ordering::AcqRel);
            shard.objects.invalidate_all();
        }
    }

    fn max_object_bytes(&self) -> usize {
        let limit = self
            .limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .max_object_bytes;
        // An object's weight is a u32 in the shard's accounting.
        limit.min(MAX_OBJECT_BYTES)
    }

    /// The tenant's shard, if it has stored anything.
    fn shard(&self, tenant: &str) -> Option<Arc<Shard>> {
        self.shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    fn shard_or_create(&self, tenant: &str) -> Arc<Shard> {
        if let Some(s) = self.shard(tenant) {
            return s;
        }
        let quota = quota_of(
            &self.limits.read().unwrap_or_else(|p| p.into_inner()),
            tenant,
        );
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        shards
            .entry(tenant.into())
            .or_insert_with(|| Arc::new(Shard::new(tenant, quota, None)))
            .clone()
    }

    /// Usage of every tenant that has a shard.
    pub fn usage(&self) -> Vec<(String, ShardUsage)> {
        let shards = self.shards.read().unwrap_or_else(|p| p.into_inner());
        shards
            .iter()
            .map(|(tenant, s)| {
                s.objects.run_pending_tasks();
                (
                    tenant.to_string(),
                    ShardUsage {
                        objects: s.objects.entry_count(),
                        bytes: s.objects.weighted_size(),
                        quota: s.quota,
                        evictions: s.counters.evictions.load(Ordering::Relaxed),
                        too_large: s.counters.too_large.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }

    /// Stored tenant and object of a key, if any.
    fn get(&self, tenant: &str, hash: &HashBinary) -> Option<Arc<Object>> {
        self.shard(tenant)?.objects.get(hash)
    }
}

fn quota_of(limits: &StoreLimits, tenant: &str) -> u64 {
    limits
        .quotas
        .get(tenant)
        .copied()
        .unwrap_or(limits.default_quota)
}

#[cfg(test)]
mod tests;
