//! The store on its own: what is written can be read back by its tenant
//! only, stays within the quota, and purges remove exactly what they name.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora::cache::key::CacheKey;
use pingora::cache::storage::{PurgeOutcome, PurgeTarget, PurgeType};
use pingora::cache::trace::Span;
use pingora::cache::{CacheMeta, Storage};
use pingora::http::ResponseHeader;

use super::handlers::READ_CHUNK;
use super::object::{tags_of, MAX_TAGS};
use super::*;

fn store(limits: StoreLimits) -> &'static EdgeStorage {
    // `Storage` methods take `&'static self`, as Pingora's cache holds it.
    Box::leak(Box::new(EdgeStorage::new(limits)))
}

fn meta(tags: Option<&str>) -> CacheMeta {
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.insert_header("content-type", "text/plain").unwrap();
    if let Some(t) = tags {
        header.insert_header("cache-tag", t).unwrap();
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header)
}

fn key(tenant: &str, host: &str, path: &str) -> CacheKey {
    CacheKey::new(primary_key(host, path, &[]), tenant)
}

async fn put(s: &'static EdgeStorage, k: &CacheKey, tags: Option<&str>, body: &[u8]) {
    let span = Span::inactive();
    let mut miss = s
        .get_miss_handler(k, &meta(tags), &span.handle())
        .await
        .unwrap();
    // Two writes: objects arrive in pieces.
    let half = body.len() / 2;
    miss.write_body(Bytes::copy_from_slice(&body[..half]), false)
        .await
        .unwrap();
    miss.write_body(Bytes::copy_from_slice(&body[half..]), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
}

async fn read(s: &'static EdgeStorage, k: &CacheKey) -> Option<Vec<u8>> {
    let span = Span::inactive();
    let (_, mut hit) = s.lookup(k, &span.handle()).await.unwrap()?;
    let mut body = Vec::new();
    while let Some(chunk) = hit.read_body().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

#[tokio::test]
async fn a_stored_object_is_read_back_by_its_tenant_only() {
    let s = store(StoreLimits::default());
    let k = key("acme", "shop.example", "/a?x=1");
    put(s, &k, None, b"hello world").await;
    assert_eq!(read(s, &k).await.as_deref(), Some(&b"hello world"[..]));
    // Same URL, another tenant: a different shard, nothing there.
    assert_eq!(
        read(s, &key("globex", "shop.example", "/a?x=1")).await,
        None
    );
    assert_eq!(read(s, &key("acme", "shop.example", "/a?x=2")).await, None);
}

#[tokio::test]
async fn bodies_larger_than_a_read_chunk_come_back_whole_and_ranges_seek() {
    let s = store(StoreLimits::default());
    let k = key("acme", "h", "/big");
    let body: Vec<u8> = (0..READ_CHUNK * 2 + 17).map(|i| (i % 251) as u8).collect();
    put(s, &k, None, &body).await;
    assert_eq!(read(s, &k).await.unwrap(), body);

    let span = Span::inactive();
    let (_, mut hit) = s.lookup(&k, &span.handle()).await.unwrap().unwrap();
    assert!(hit.can_seek());
    hit.seek(10, Some(20)).unwrap();
    assert_eq!(&hit.read_body().await.unwrap().unwrap()[..], &body[10..20]);
    assert!(hit.read_body().await.unwrap().is_none());
    // An end past the body reads to its end; a start past it is an error.
    hit.seek(body.len() - 3, Some(body.len() + 100)).unwrap();
    assert_eq!(
        &hit.read_body().await.unwrap().unwrap()[..],
        &body[body.len() - 3..]
    );
    assert!(hit.seek(body.len() + 1, None).is_err());
}

#[tokio::test]
async fn a_tenant_stays_within_its_quota_in_bytes() {
    let quota = 1 << 20;
    let s = store(StoreLimits {
        default_quota: quota,
        ..StoreLimits::default()
    });
    let body = vec![7u8; 64 * 1024];
    for i in 0..64 {
        put(s, &key("acme", "h", &format!("/o{i}")), None, &body).await;
    }
    let usage = s.usage();
    let (_, acme) = usage.iter().find(|(t, _)| t == "acme").unwrap();
    assert!(acme.bytes <= quota, "{acme:?}");
    assert!(acme.objects < 64 && acme.objects > 0, "{acme:?}");
    assert_eq!(acme.quota, quota);
}

#[tokio::test]
async fn quotas_are_per_tenant() {
    let s = store(StoreLimits {
        default_quota: 256 * 1024,
        quotas: [("big".to_string(), 8u64 << 20)].into(),
        ..StoreLimits::default()
    });
    let body = vec![1u8; 32 * 1024];
    for i in 0..40 {
        put(s, &key("big", "h", &format!("/{i}")), None, &body).await;
        put(s, &key("small", "h", &format!("/{i}")), None, &body).await;
    }
    let usage: HashMap<String, ShardUsage> = s.usage().into_iter().collect();
    assert_eq!(usage["big"].objects, 40, "fits its own quota");
    assert!(usage["small"].bytes <= 256 * 1024);
    assert!(usage["small"].objects < 40);
}

#[tokio::test]
async fn objects_over_the_limit_are_not_stored() {
    let s = store(StoreLimits {
        max_object_bytes: 1000,
        ..StoreLimits::default()
    });
    let k = key("acme", "h", "/huge");
    let span = Span::inactive();
    let mut miss = s
        .get_miss_handler(&k, &meta(None), &span.handle())
        .await
        .unwrap();
    miss.write_body(Bytes::from(vec![0u8; 1500]), true)
        .await
        .unwrap();
    assert!(miss.finish().await.is_err());
    assert_eq!(read(s, &k).await, None);
    let usage: HashMap<String, ShardUsage> = s.usage().into_iter().collect();
    assert_eq!(usage["acme"].too_large, 1);
}

#[tokio::test]
async fn purges_remove_what_they_name_and_nothing_else() {
    let s = store(StoreLimits::default());
    let a = key("acme", "shop.example", "/img/a.png");
    let b = key("acme", "shop.example", "/img/b.png");
    let c = key("acme", "shop.example", "/css/site.css");
    let d = key("acme", "blog.example", "/img/a.png");
    let other = key("globex", "shop.example", "/img/a.png");
    put(s, &a, Some("product-1, images"), b"a").await;
    put(s, &b, Some("images"), b"b").await;
    put(s, &c, Some("css"), b"c").await;
    put(s, &d, None, b"d").await;
    put(s, &other, Some("images"), b"o").await;

    assert_eq!(s.purge_tag("acme", "product-1"), 1);
    assert_eq!(read(s, &a).await, None);
    assert!(read(s, &b).await.is_some());

    assert_eq!(s.purge_prefix("acme", "shop.example/img/"), 1);
    assert_eq!(read(s, &b).await, None);
    assert!(read(s, &c).await.is_some());
    assert!(read(s, &d).await.is_some(), "another host keeps its /img/");

    assert_eq!(s.purge_host("acme", "shop.example"), 1);
    assert_eq!(read(s, &c).await, None);
    assert!(read(s, &d).await.is_some());

    // Pingora's own purge of one key.
    let span = Span::inactive();
    let compact = d.to_compact();
    let outcome = s
        .purge(
            PurgeTarget::Active(&compact),
            PurgeType::Invalidation,
            &span.handle(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PurgeOutcome::Purged(None));
    assert_eq!(read(s, &d).await, None);

    // None of it touched the other tenant, whose tag and URL were the same.
    assert!(read(s, &other).await.is_some());
    assert_eq!(s.purge_tag("globex", "images"), 1);
    assert_eq!(s.purge_tenant("acme"), 0);

    // Every variant of one URL; then everything of every tenant.
    let plain = key("acme", "shop.example", "/p");
    let variant = CacheKey::new(
        crate::cache::storage::primary_key("shop.example", "/p", &["s:https"]),
        "acme",
    );
    put(s, &plain, None, b"1").await;
    put(s, &variant, None, b"2").await;
    put(s, &other, None, b"o").await;
    assert_eq!(s.purge_url("acme", "shop.example/p"), 2);
    put(s, &plain, None, b"1").await;
    assert_eq!(s.purge_everything(), 2);
    assert_eq!(read(s, &plain).await, None);
    assert_eq!(read(s, &other).await, None);
}

#[tokio::test]
async fn a_revalidation_updates_headers_and_keeps_the_body() {
    let s = store(StoreLimits::default());
    let k = key("acme", "h", "/r");
    put(s, &k, Some("old"), b"body").await;
    let span = Span::inactive();
    assert!(s
        .update_meta(&k, &meta(Some("new")), &span.handle())
        .await
        .unwrap());
    assert_eq!(read(s, &k).await.as_deref(), Some(&b"body"[..]));
    assert_eq!(s.purge_tag("acme", "old"), 0);
    assert_eq!(s.purge_tag("acme", "new"), 1);
    let missing = key("acme", "h", "/none");
    assert!(!s
        .update_meta(&missing, &meta(None), &span.handle())
        .await
        .unwrap());
}

#[tokio::test]
async fn a_smaller_quota_shrinks_a_shard() {
    let s = store(StoreLimits {
        default_quota: 4 << 20,
        ..StoreLimits::default()
    });
    let body = vec![3u8; 64 * 1024];
    for i in 0..32 {
        put(s, &key("acme", "h", &format!("/{i}")), None, &body).await;
    }
    s.set_limits(StoreLimits {
        default_quota: 512 * 1024,
        ..StoreLimits::default()
    });
    let usage: HashMap<String, ShardUsage> = s.usage().into_iter().collect();
    assert_eq!(usage["acme"].quota, 512 * 1024);
    assert!(usage["acme"].bytes <= 512 * 1024, "{:?}", usage["acme"]);
    assert!(usage["acme"].objects > 0);
}

#[test]
fn tags_are_split_bounded_and_deduplicated() {
    let m = meta(Some("a, b c,,a"));
    let tags = tags_of(&m);
    let tags: Vec<&str> = tags.iter().map(|t| &**t).collect();
    assert_eq!(tags, ["a", "b", "c"]);
    let many: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    assert_eq!(tags_of(&meta(Some(&many.join(",")))).len(), MAX_TAGS);
}

#[tokio::test]
async fn a_scan_of_one_off_urls_does_not_flush_popular_objects() {
    // Room for about 16 objects of 32 KiB.
    let s = store(StoreLimits {
        default_quota: 16 * (32 * 1024 + 512),
        ..StoreLimits::default()
    });
    let body = vec![9u8; 32 * 1024];
    let hot: Vec<CacheKey> = (0..8)
        .map(|i| key("acme", "h", &format!("/hot{i}")))
        .collect();
    for k in &hot {
        put(s, k, None, &body).await;
    }
    // Popular: asked for again and again.
    for _ in 0..20 {
        for k in &hot {
            assert!(read(s, k).await.is_some());
        }
    }
    // A crawler walks 500 URLs once each.
    for i in 0..500 {
        put(s, &key("acme", "h", &format!("/scan{i}")), None, &body).await;
    }
    let mut kept = 0;
    for k in &hot {
        kept += usize::from(read(s, k).await.is_some());
    }
    assert!(
        kept >= 6,
        "only {kept} of 8 popular objects survived the scan"
    );
}

#[tokio::test]
async fn a_fill_in_flight_during_a_purge_is_not_stored() {
    let s = store(StoreLimits::default());
    let k = key("acme", "h", "/news");
    put(s, &k, Some("news"), b"old").await;
    let span = Span::inactive();
    // A refill starts (the origin is slow), then the operator purges.
    let mut miss = s
        .get_miss_handler(&k, &meta(Some("news")), &span.handle())
        .await
        .unwrap();
    assert_eq!(s.purge_tag("acme", "news"), 1);
    miss.write_body(Bytes::from_static(b"fetched before the purge"), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
    assert_eq!(read(s, &k).await, None, "the purge is not undone");
    // The next fill is stored again.
    put(s, &k, None, b"new").await;
    assert_eq!(read(s, &k).await.as_deref(), Some(&b"new"[..]));
}

#[tokio::test]
async fn keys_without_a_tenant_are_refused_and_forgotten_tenants_are_gone() {
    let s = store(StoreLimits::default());
    let span = Span::inactive();
    let untagged = CacheKey::new("h/x", "");
    assert!(s
        .get_miss_handler(&untagged, &meta(None), &span.handle())
        .await
        .is_err());
    assert!(s.lookup(&untagged, &span.handle()).await.unwrap().is_none());

    let k = key("gone", "h", "/x");
    put(s, &k, None, b"x").await;
    s.forget_tenant("gone");
    assert_eq!(read(s, &k).await, None);
    assert!(s.usage().iter().all(|(t, _)| t != "gone"));
}
