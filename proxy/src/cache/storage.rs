//! The edge cache's object store: a Pingora cache [`Storage`] held in memory,
//! bounded in bytes per tenant.
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

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use moka::notification::RemovalCause;
use pingora::cache::key::{CacheHashKey, CacheKey, CompactCacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, Storage};
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorType, Result};

/// Largest slice of a body handed out per read: big bodies go out in pieces
/// (without copying) instead of one write.
const READ_CHUNK: usize = 256 * 1024;

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

/// Response headers whose values tag an object for purging, as
/// comma- or space-separated lists (`Cache-Tag: a,b`, `Surrogate-Key: a b`).
const TAG_HEADERS: [&str; 2] = ["cache-tag", "surrogate-key"];

/// Most tags kept per object, and longest tag: the origin's headers must not
/// make an object's bookkeeping unbounded.
const MAX_TAGS: usize = 64;
const MAX_TAG_LEN: usize = 128;

/// A stored response's metadata, kept decoded: a hit rebuilds its
/// `CacheMeta` from these fields and a copy of the header, instead of
/// decompressing and parsing serialized headers on every hit (Pingora's
/// serialized form is zstd-compressed; that was a tenth of a hit's CPU).
///
/// The rebuilt meta counts its age from the last revalidation (`updated`,
/// which is what RFC 9111 ages from) and reports that time as its creation
/// too; freshness, stale windows, variance and any epoch override are
/// exact.
struct StoredMeta {
    fresh_until: SystemTime,
    updated: SystemTime,
    epoch_override: Option<SystemTime>,
    stale_while_revalidate: u32,
    stale_if_error: u32,
    variance: Option<HashBinary>,
    header: ResponseHeader,
    /// What the header takes in memory, roughly (quota accounting).
    header_bytes: usize,
}

impl StoredMeta {
    fn of(meta: &CacheMeta) -> StoredMeta {
        let header = meta.response_header_copy();
        let header_bytes = header
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum::<usize>()
            + 64;
        StoredMeta {
            fresh_until: meta.fresh_until(),
            updated: meta.updated(),
            epoch_override: meta.epoch_override(),
            stale_while_revalidate: meta.stale_while_revalidate_sec(),
            stale_if_error: meta.stale_if_error_sec(),
            variance: meta.variance(),
            header,
            header_bytes,
        }
    }

    fn to_meta(&self) -> CacheMeta {
        let mut meta = CacheMeta::new(
            self.fresh_until,
            self.updated,
            self.stale_while_revalidate,
            self.stale_if_error,
            self.header.clone(),
        );
        if let Some(v) = self.variance {
            meta.set_variance(v);
        }
        if let Some(e) = self.epoch_override {
            meta.set_epoch_override(e);
        }
        meta
    }
}

/// One stored response.
struct Object {
    meta: StoredMeta,
    body: Bytes,
    /// The URL part of the primary key (`host/path?query`).
    url: Box<str>,
    tags: Box<[Box<str>]>,
}

impl Object {
    /// What the object costs against its tenant's quota.
    fn weight(&self) -> u32 {
        let bytes = self.body.len()
            + self.meta.header_bytes
            + self.url.len()
            + self.tags.iter().map(|t| t.len()).sum::<usize>()
            // Bookkeeping of the entry itself.
            + 128;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    fn host(&self) -> &str {
        let end = self.url.find('/').unwrap_or(self.url.len());
        &self.url[..end]
    }
}

/// Counters of one tenant's shard.
#[derive(Debug, Default)]
pub struct ShardCounters {
    /// Objects pushed out to stay within the quota.
    pub evictions: AtomicU64,
    /// Objects not stored because they were larger than the object limit.
    pub too_large: AtomicU64,
}

/// One tenant's objects.
struct Shard {
    quota: u64,
    objects: moka::sync::Cache<HashBinary, Arc<Object>>,
    counters: Arc<ShardCounters>,
    /// Bumped by every purge: a fill that started before it must not put
    /// back what the purge removed.
    generation: AtomicU64,
}

impl Shard {
    /// A shard of `tenant`'s objects; `counters` carry over from the shard it
    /// replaces (a quota change), so they only ever grow.
    fn new(tenant: &str, quota: u64, counters: Option<Arc<ShardCounters>>) -> Shard {
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

/// Usage of one tenant's shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardUsage {
    pub objects: u64,
    pub bytes: u64,
    pub quota: u64,
    pub evictions: u64,
    pub too_large: u64,
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

    /// Removes the tenant's objects `matches` selects; returns how many.
    fn purge_where(&self, tenant: &str, matches: impl Fn(&Object) -> bool) -> usize {
        let Some(shard) = self.shard(tenant) else {
            return 0;
        };
        shard.generation.fetch_add(1, Ordering::AcqRel);
        let doomed: Vec<HashBinary> = shard
            .objects
            .iter()
            .filter(|(_, o)| matches(o))
            .map(|(k, _)| *k)
            .collect();
        for k in &doomed {
            shard.objects.invalidate(k);
        }
        doomed.len()
    }

    /// Purges the tenant's objects of one URL (`host/path?query`): every
    /// variant (`Vary`, key headers and cookies) of it.
    pub fn purge_url(&self, tenant: &str, url: &str) -> usize {
        self.purge_where(tenant, |o| &*o.url == url)
    }

    /// Purges the tenant's objects whose URL (`host/path?query`) starts with `prefix`.
    pub fn purge_prefix(&self, tenant: &str, prefix: &str) -> usize {
        self.purge_where(tenant, |o| o.url.starts_with(prefix))
    }

    /// Purges the tenant's objects tagged `tag` by their origin.
    pub fn purge_tag(&self, tenant: &str, tag: &str) -> usize {
        self.purge_where(tenant, |o| o.tags.iter().any(|t| &**t == tag))
    }

    /// Purges the tenant's objects of one host.
    pub fn purge_host(&self, tenant: &str, host: &str) -> usize {
        self.purge_where(tenant, |o| o.host().eq_ignore_ascii_case(host))
    }

    /// Purges every tenant's objects (a node that may have missed purges).
    pub fn purge_everything(&self) -> usize {
        let tenants: Vec<Box<str>> = self
            .shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        tenants.iter().map(|t| self.purge_tenant(t)).sum()
    }

    /// Purges everything the tenant has stored.
    pub fn purge_tenant(&self, tenant: &str) -> usize {
        let Some(shard) = self.shard(tenant) else {
            return 0;
        };
        shard.generation.fetch_add(1, Ordering::AcqRel);
        shard.objects.run_pending_tasks();
        let n = shard.objects.entry_count() as usize;
        shard.objects.invalidate_all();
        n
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

/// The tags an origin put on a response, bounded.
fn tags_of(meta: &CacheMeta) -> Box<[Box<str>]> {
    let headers = meta.headers();
    let mut tags: Vec<Box<str>> = Vec::new();
    for name in TAG_HEADERS {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split([',', ' ']).map(str::trim) {
                if !tag.is_empty() && tag.len() <= MAX_TAG_LEN && tags.len() < MAX_TAGS {
                    tags.push(tag.into());
                }
            }
        }
    }
    tags.sort();
    tags.dedup();
    tags.into_boxed_slice()
}

#[async_trait]
impl Storage for EdgeStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        if key.user_tag.is_empty() {
            return Ok(None);
        }
        let Some(object) = self.get(&key.user_tag, &key.combined_bin()) else {
            return Ok(None);
        };
        let meta = object.meta.to_meta();
        let end = object.body.len();
        Ok(Some((
            meta,
            Box::new(Hit {
                object,
                pos: 0,
                end,
            }),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        if key.user_tag.is_empty() {
            // Every object belongs to a tenant; an untagged key is a bug.
            return Error::e_explain(ErrorType::InternalError, "cache key without a tenant");
        }
        let url = String::from_utf8_lossy(key.primary_key());
        let url = url.split(KEY_EXTRA_SEPARATOR).next().unwrap_or_default();
        let shard = self.shard_or_create(&key.user_tag);
        let generation = shard.generation.load(Ordering::Acquire);
        Ok(Box::new(Miss {
            storage: self,
            tenant: key.user_tag.as_str().into(),
            shard,
            generation,
            hash: key.combined_bin(),
            meta: StoredMeta::of(meta),
            url: url.into(),
            tags: tags_of(meta),
            body: Vec::new(),
            len: 0,
            limit: self.max_object_bytes(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key: &CompactCacheKey = target.key();
        let Some(shard) = self.shard(&key.user_tag) else {
            return Ok(PurgeOutcome::NotFound);
        };
        Ok(match shard.objects.remove(&key.combined_bin()) {
            Some(_) => PurgeOutcome::Purged(None),
            None => PurgeOutcome::NotFound,
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let hash = key.combined_bin();
        let Some(shard) = self.shard(&key.user_tag) else {
            return Ok(false);
        };
        let meta_bytes = StoredMeta::of(meta);
        let tags = tags_of(meta);
        // Read and replace as one step: a purge in between is not undone.
        let outcome = shard.objects.entry(hash).and_compute_with(|stored| {
            let Some(stored) = stored else {
                return moka::ops::compute::Op::Nop;
            };
            let old = stored.into_value();
            // A 304 refreshes the headers; the body stays.
            moka::ops::compute::Op::Put(Arc::new(Object {
                meta: meta_bytes,
                body: old.body.clone(),
                url: old.url.clone(),
                tags,
            }))
        });
        if !matches!(outcome, moka::ops::compute::CompResult::ReplacedWith(_)) {
            return Ok(false);
        }
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Reading a stored body (or a range of it).
struct Hit {
    object: Arc<Object>,
    pos: usize,
    end: usize,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let to = self.end.min(self.pos + READ_CHUNK);
        let chunk = self.object.body.slice(self.pos..to);
        self.pos = to;
        Ok(Some(chunk))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.object.body.len();
        // Ranges come from the stored Content-Length; an end past the body
        // reads to its end, as HTTP does for `bytes=10-999999`.
        let end = end.unwrap_or(len).min(len);
        if start > end {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("range start {start} outside a body of {len} bytes"),
            );
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.object.body.len()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Collecting a body fetched from the origin.
struct Miss {
    storage: &'static EdgeStorage,
    tenant: Box<str>,
    /// The shard the fill started in, and its purge generation then.
    shard: Arc<Shard>,
    generation: u64,
    hash: HashBinary,
    meta: StoredMeta,
    url: Box<str>,
    tags: Box<[Box<str>]>,
    body: Vec<Bytes>,
    len: usize,
    limit: usize,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.len += data.len();
        if self.len > self.limit {
            // Keep nothing more; `finish` refuses the object.
            self.body.clear();
            return Ok(());
        }
        self.body.push(data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        if self.len > self.limit {
            let shard = self.storage.shard_or_create(&self.tenant);
            shard.counters.too_large.fetch_add(1, Ordering::Relaxed);
            crate::metrics::metrics()
                .cache_too_large
                .with_label_values(&[&*self.tenant])
                .inc();
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "object of {} bytes over the {} byte limit",
                    self.len, self.limit
                ),
            );
        }
        // One allocation of exactly the body: a received chunk may share a
        // larger buffer (HTTP/2 frames), which must not stay pinned.
        let mut whole = Vec::with_capacity(self.len);
        for part in &self.body {
            whole.extend_from_slice(part);
        }
        let object = Object {
            meta: self.meta,
            body: Bytes::from(whole),
            url: self.url,
            tags: self.tags,
        };
        let size = object.weight() as usize;
        let current = self.storage.shard(&self.tenant);
        let still_current = current.is_some_and(|c| Arc::ptr_eq(&c, &self.shard))
            && self.shard.generation.load(Ordering::Acquire) == self.generation;
        if !still_current {
            // Purged (or resized) while this was fetched: what was fetched
            // may be what the purge meant to remove. The next request refills.
            return Ok(MissFinishType::Created(0));
        }
        self.shard.objects.insert(self.hash, Arc::new(object));
        // A purge may have bumped the generation and scanned the shard
        // between the check above and the insert: then the insert is undone.
        if self.shard.generation.load(Ordering::Acquire) != self.generation {
            self.shard.objects.invalidate(&self.hash);
            return Ok(MissFinishType::Created(0));
        }
        Ok(MissFinishType::Created(size))
    }
}

#[cfg(test)]
mod tests;
