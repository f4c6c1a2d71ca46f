use std::time::{Duration, SystemTime};

use gatehouse_config::cache::{merge, Cache, CachePolicy, QueryKey, SetCookie};
use pingora::cache::{NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};

use super::*;

fn policy(yaml: &str) -> CachePolicy {
    let c: Cache = serde_yaml_ng::from_str(yaml).unwrap();
    merge(None, Some(&c)).unwrap()
}

fn get(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
    let mut r = ResponseHeader::build(status, None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

fn fresh_for(v: &RespCacheable, now: SystemTime) -> Option<i64> {
    match v {
        RespCacheable::Cacheable(m) => Some(match m.fresh_until().duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }),
        RespCacheable::Uncacheable(_) => None,
    }
}

fn why(v: &RespCacheable) -> String {
    match v {
        RespCacheable::Uncacheable(NoCacheReason::Custom(w)) => w.to_string(),
        RespCacheable::Uncacheable(r) => r.as_str().to_string(),
        RespCacheable::Cacheable(_) => "cacheable".into(),
    }
}

/// The URL part of a request's primary key.
fn primary(p: &CachePolicy, req: &RequestHeader) -> String {
    let key = cache_key(p, "t", "h.test", req.uri.path(), req, KeyContext::default());
    let full = String::from_utf8(key.primary_key().to_vec()).unwrap();
    full.split('\n').next().unwrap().to_string()
}

/// The whole primary key (URL and extra parts).
fn full_key(p: &CachePolicy, req: &RequestHeader, context: KeyContext<'_>) -> Vec<u8> {
    cache_key(p, "t", "h.test", req.uri.path(), req, context)
        .primary_key()
        .to_vec()
}

#[test]
fn the_key_keeps_the_query_parts_the_policy_names() {
    let req = get("/p?utm_source=x&id=7&lang=de", &[]);
    assert_eq!(
        primary(&policy("{}"), &req),
        "h.test/p?utm_source=x&id=7&lang=de"
    );
    assert_eq!(primary(&policy("key: {query: none}"), &req), "h.test/p");
    assert_eq!(
        primary(&policy("key: {query_only: [id]}"), &req),
        "h.test/p?id=7"
    );
    assert_eq!(
        primary(&policy("key: {query_except: [utm_source]}"), &req),
        "h.test/p?id=7&lang=de"
    );
    // The tenant is the key's tag: equal URLs of two tenants never meet.
    let p = policy("{}");
    assert_eq!(
        cache_key(&p, "a", "h", "/", &req, KeyContext::default()).user_tag,
        "a"
    );
}

#[test]
fn key_headers_and_cookies_split_objects() {
    let p = policy("key: {headers: [x-device], cookies: [currency]}");
    let a = get(
        "/",
        &[("x-device", "mobile"), ("cookie", "sid=1; currency=EUR")],
    );
    let b = get("/", &[("x-device", "mobile"), ("cookie", "currency=USD")]);
    let c = get(
        "/",
        &[("x-device", "desktop"), ("cookie", "currency=EUR; sid=2")],
    );
    let d = get("/", &[("x-device", "mobile"), ("cookie", "currency=EUR")]);
    let key = |r: &RequestHeader| full_key(&p, r, KeyContext::default());
    assert_ne!(key(&a), key(&b));
    assert_ne!(key(&a), key(&c));
    // Cookies the key does not name do not split it.
    assert_eq!(key(&a), key(&d));
    // A repeated cookie is keyed with every value (origins differ on which they read).
    let e = get(
        "/",
        &[
            ("x-device", "mobile"),
            ("cookie", "currency=EUR; currency=USD"),
        ],
    );
    assert_ne!(key(&a), key(&e));
}

#[test]
fn scheme_port_and_plugin_edits_split_objects() {
    let p = policy("{}");
    let req = get("/p", &[]);
    let base = KeyContext {
        scheme: "https",
        ..Default::default()
    };
    let key = |c: KeyContext<'_>| full_key(&p, &req, c);
    assert_ne!(
        key(base),
        key(KeyContext {
            scheme: "http",
            ..base
        })
    );
    assert_ne!(
        key(base),
        key(KeyContext {
            port: Some("8443"),
            ..base
        })
    );
    assert_ne!(
        key(base),
        key(KeyContext {
            plugin_edits: Some("path=/v2"),
            ..base
        })
    );
    // A plugin's key replaces the query (and header and cookie) parts.
    let with_query = get("/p?a=1", &[]);
    let plugin = KeyContext {
        plugin_key: Some("segment-b"),
        ..base
    };
    assert_eq!(
        full_key(&p, &req, plugin),
        full_key(&p, &with_query, plugin)
    );
    assert_ne!(
        key(plugin),
        key(KeyContext {
            plugin_key: Some("segment-a"),
            ..base
        })
    );
}

#[test]
fn bypass_rules_name_the_rule_that_matched() {
    let p = policy(
        "bypass: {cookies: [session], headers: [x-preview], paths: [/account], methods: [HEAD]}",
    );
    assert_eq!(bypass_reason(&p, &get("/", &[]), "/"), None);
    let with_session = get("/", &[("cookie", "a=1; session=x")]);
    assert_eq!(bypass_reason(&p, &with_session, "/"), Some("cookie"));
    let sessionless = get("/", &[("cookie", "sessionid=1")]);
    assert_eq!(bypass_reason(&p, &sessionless, "/"), None);
    assert_eq!(
        bypass_reason(&p, &get("/", &[("x-preview", "1")]), "/"),
        Some("header")
    );
    assert_eq!(
        bypass_reason(&p, &get("/account/orders", &[]), "/account/orders"),
        Some("path")
    );
    let head = RequestHeader::build("HEAD", b"/", None).unwrap();
    assert_eq!(bypass_reason(&p, &head, "/"), Some("method"));
    let post = RequestHeader::build("POST", b"/", None).unwrap();
    assert_eq!(bypass_reason(&policy("{}"), &post, "/"), Some("method"));
    // A GET with a body: the body is not in the key.
    let with_body = get("/", &[("content-length", "5")]);
    assert_eq!(bypass_reason(&policy("{}"), &with_body, "/"), Some("body"));
    let chunked = get("/", &[("transfer-encoding", "chunked")]);
    assert_eq!(bypass_reason(&policy("{}"), &chunked, "/"), Some("body"));
    let empty = get("/", &[("content-length", "0")]);
    assert_eq!(bypass_reason(&policy("{}"), &empty, "/"), None);
}

#[test]
fn origin_freshness_and_refusals() {
    let p = policy("{}");
    let now = SystemTime::now();
    let req = get("/", &[]);
    let v = cacheability(
        &p,
        &req,
        &resp(200, &[("cache-control", "max-age=60")]),
        now,
    );
    assert_eq!(fresh_for(&v, now), Some(60));
    let v = cacheability(
        &p,
        &req,
        &resp(200, &[("cache-control", "max-age=60, s-maxage=300")]),
        now,
    );
    assert_eq!(
        fresh_for(&v, now),
        Some(300),
        "s-maxage wins at a shared cache"
    );
    // Time spent in caches before this one counts.
    let v = cacheability(
        &p,
        &req,
        &resp(200, &[("cache-control", "max-age=60"), ("age", "20")]),
        now,
    );
    assert_eq!(fresh_for(&v, now), Some(40));
    // The age lives in the object's creation time, not in a stored header
    // (a revalidation would count it again).
    match &v {
        RespCacheable::Cacheable(m) => {
            assert!(m.headers().get("age").is_none());
            assert!(m.age().as_secs() >= 20);
        }
        _ => unreachable!(),
    }
    // no-cache: stored, stale at once.
    let v = cacheability(&p, &req, &resp(200, &[("cache-control", "no-cache")]), now);
    assert!(fresh_for(&v, now).unwrap() < 0);
    for cc in ["no-store", "private", "private, max-age=60"] {
        let v = cacheability(&p, &req, &resp(200, &[("cache-control", cc)]), now);
        assert_eq!(why(&v), "OriginNotCache", "{cc}");
    }
    let v = cacheability(&p, &req, &resp(200, &[("vary", "accept, *")]), now);
    assert_eq!(why(&v), "vary");
    // Nothing said, no Last-Modified: not stored.
    assert_eq!(
        why(&cacheability(&p, &req, &resp(200, &[]), now)),
        "OriginNotCache"
    );
    let v = cacheability(
        &p,
        &req,
        &resp(206, &[("cache-control", "max-age=60")]),
        now,
    );
    assert_eq!(why(&v), "status");
}

#[test]
fn authorization_needs_the_origins_permission() {
    let p = policy("{}");
    let now = SystemTime::now();
    let req = get("/", &[("authorization", "Bearer x")]);
    let v = cacheability(
        &p,
        &req,
        &resp(200, &[("cache-control", "max-age=60")]),
        now,
    );
    assert_eq!(why(&v), "authorization");
    for cc in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        let v = cacheability(&p, &req, &resp(200, &[("cache-control", cc)]), now);
        assert!(v.is_cacheable(), "{cc}");
    }
}

#[test]
fn set_cookie_is_refused_or_stripped() {
    let now = SystemTime::now();
    let req = get("/", &[]);
    let r = resp(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("set-cookie", "sid=secret"),
        ],
    );
    assert_eq!(
        why(&cacheability(&policy("{}"), &req, &r, now)),
        "set-cookie"
    );
    let p = policy("set_cookie: strip");
    assert_eq!(p.set_cookie, SetCookie::Strip);
    match cacheability(&p, &req, &r, now) {
        RespCacheable::Cacheable(m) => assert!(m.headers().get("set-cookie").is_none()),
        other => panic!("expected cacheable, got {}", why(&other)),
    }
}

#[test]
fn route_ttls_override_or_fill_in() {
    let now = SystemTime::now();
    let req = get("/", &[]);
    // force_ttl replaces what the origin said, but not no-store.
    let p = policy("force_ttl: 1s");
    let v = cacheability(
        &p,
        &req,
        &resp(200, &[("cache-control", "max-age=600")]),
        now,
    );
    assert_eq!(fresh_for(&v, now), Some(1));
    let v = cacheability(&p, &req, &resp(200, &[("cache-control", "no-cache")]), now);
    assert_eq!(fresh_for(&v, now), Some(1));
    let v = cacheability(&p, &req, &resp(200, &[("cache-control", "no-store")]), now);
    assert!(!v.is_cacheable());
    // default_ttl only where the origin is silent, and only for statuses a
    // cache may store heuristically.
    let p = policy("default_ttl: 5m");
    assert_eq!(
        fresh_for(&cacheability(&p, &req, &resp(200, &[]), now), now),
        Some(300)
    );
    assert_eq!(
        fresh_for(&cacheability(&p, &req, &resp(404, &[]), now), now),
        Some(300)
    );
    assert!(!cacheability(&p, &req, &resp(302, &[]), now).is_cacheable());
    assert!(!cacheability(&p, &req, &resp(500, &[]), now).is_cacheable());
    let v = cacheability(&p, &req, &resp(200, &[("cache-control", "max-age=7")]), now);
    assert_eq!(fresh_for(&v, now), Some(7));
}

#[test]
fn last_modified_gives_a_tenth_of_its_age() {
    let now = SystemTime::now();
    let ten_days_ago = httpdate::fmt_http_date(now - Duration::from_secs(10 * 3600));
    let date = httpdate::fmt_http_date(now);
    let r = resp(200, &[("last-modified", &ten_days_ago), ("date", &date)]);
    let v = cacheability(&policy("{}"), &get("/", &[]), &r, now);
    let ttl = fresh_for(&v, now).unwrap();
    assert!((3599..=3600).contains(&ttl), "{ttl}");
}

#[test]
fn stale_windows_come_from_the_origin_or_the_route() {
    let now = SystemTime::now();
    let req = get("/", &[]);
    let p = policy("{stale_while_revalidate: 30s, stale_if_error: 1h}");
    let meta = |r: ResponseHeader| match cacheability(&p, &req, &r, now) {
        RespCacheable::Cacheable(m) => m,
        _ => panic!("not cacheable"),
    };
    let m = meta(resp(200, &[("cache-control", "max-age=5")]));
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (30, 3600)
    );
    let m = meta(resp(
        200,
        &[("cache-control", "max-age=5, stale-while-revalidate=7")],
    ));
    assert_eq!(m.stale_while_revalidate_sec(), 7);
    // no-cache is never served without revalidation, stale windows or not.
    let m = meta(resp(200, &[("cache-control", "no-cache")]));
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (0, 0)
    );
    // must-revalidate forbids serving stale.
    let m = meta(resp(
        200,
        &[("cache-control", "max-age=5, must-revalidate")],
    ));
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (0, 0)
    );
    let _ = QueryKey::All;
}
