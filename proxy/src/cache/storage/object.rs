//! A stored response: its body, its metadata kept decoded (a hit rebuilds
//! Pingora's `CacheMeta` without parsing), the URL and the origin's purge
//! tags, and what it weighs against its tenant's quota.

use std::time::SystemTime;

use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::CacheMeta;
use pingora::http::ResponseHeader;

/// Response headers whose values tag an object for purging, as
/// comma- or space-separated lists (`Cache-Tag: a,b`, `Surrogate-Key: a b`).
const TAG_HEADERS: [&str; 2] = ["cache-tag", "surrogate-key"];

/// Most tags kept per object, and longest tag: the origin's headers must not
/// make an object's bookkeeping unbounded.
pub(super) const MAX_TAGS: usize = 64;
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
pub(super) struct StoredMeta {
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
    pub(super) fn of(meta: &CacheMeta) -> StoredMeta {
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

    pub(super) fn to_meta(&self) -> CacheMeta {
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
pub(super) struct Object {
    pub(super) meta: StoredMeta,
    pub(super) body: Bytes,
    /// The URL part of the primary key (`host/path?query`).
    pub(super) url: Box<str>,
    pub(super) tags: Box<[Box<str>]>,
}

impl Object {
    /// What the object costs against its tenant's quota.
    pub(super) fn weight(&self) -> u32 {
        let bytes = self.body.len()
            + self.meta.header_bytes
            + self.url.len()
            + self.tags.iter().map(|t| t.len()).sum::<usize>()
            // Bookkeeping of the entry itself.
            + 128;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    pub(super) fn host(&self) -> &str {
        let end = self.url.find('/').unwrap_or(self.url.len());
        &self.url[..end]
    }
}

/// The tags an origin put on a response, bounded.
pub(super) fn tags_of(meta: &CacheMeta) -> Box<[Box<str>]> {
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
