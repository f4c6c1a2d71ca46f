//! Pingora's side of the store: the [`Storage`] trait (lookup, the start
//! of a fill, per-key purge, a 304's header refresh), the hit handler that
//! reads a stored body in slices and the miss handler that collects a
//! fetched body and stores it whole unless a purge came in between.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::{CacheHashKey, CacheKey, CompactCacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, Storage};
use pingora::{Error, ErrorType, Result};

use super::object::{tags_of, Object, StoredMeta};
use super::shard::Shard;
use super::{EdgeStorage, KEY_EXTRA_SEPARATOR};

/// Largest slice of a body handed out per read: big bodies go out in pieces
/// (without copying) instead of one write.
pub(super) const READ_CHUNK: usize = 256 * 1024;

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
