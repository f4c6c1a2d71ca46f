//! The edge cache through the real proxy against a real origin whose
//! responses each test scripts: RFC 9111 directives, `Vary`, revalidation,
//! stale serving, request coalescing, quotas, purges and tenant isolation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::support::*;

/// What the origin answers on one path.
#[derive(Clone, Default)]
struct Script {
    headers: Vec<(&'static str, String)>,
    /// `{n}` becomes the number of this fetch of the path.
    body: String,
    status: Option<u16>,
    /// Answers `If-None-Match: <etag>` with 304.
    etag: Option<&'static str>,
    delay: Option<Duration>,
}

#[derive(Default)]
struct OriginState {
    scripts: Mutex<HashMap<String, Script>>,
    /// Fetches per `host + path`.
    hits: Mutex<HashMap<String, usize>>,
    /// Request headers of every fetch, in order.
    seen: Mutex<Vec<HeaderMap>>,
    /// Request targets of every fetch, in order.
    targets: Mutex<Vec<String>>,
}

/// A scripted origin on its own runtime (so `kill` drops it like a crash).
struct Origin {
    addr: SocketAddr,
    state: Arc<OriginState>,
    runtime: Option<tokio::runtime::Runtime>,
}

async fn answer(
    axum::extract::State(s): axum::extract::State<Arc<OriginState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    let n = {
        let mut hits = s.hits.lock().unwrap();
        let n = hits.entry(format!("{host}{}", uri.path())).or_default();
        *n += 1;
        *n
    };
    s.seen.lock().unwrap().push(headers.clone());
    s.targets.lock().unwrap().push(uri.to_string());
    let script = s
        .scripts
        .lock()
        .unwrap()
        .get(uri.path())
        .cloned()
        .unwrap_or_default();
    if let Some(d) = script.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = if script
        .etag
        .is_some_and(|e| headers.get("if-none-match").is_some_and(|v| v == e))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = script.body.replace("{n}", &n.to_string()).into_response();
        *r.status_mut() = StatusCode::from_u16(script.status.unwrap_or(200)).unwrap();
        r
    };
    for (k, v) in &script.headers {
        resp.headers_mut().append(*k, v.parse().unwrap());
    }
    if let Some(e) = script.etag {
        resp.headers_mut().insert("etag", e.parse().unwrap());
    }
    resp
}

impl Origin {
    fn start() -> Origin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(OriginState::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.ok();
        });
        Origin {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    fn script(&self, path: &str, script: Script) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .insert(path.to_string(), script);
    }

    /// Fetches of `host + path` so far.
    fn hits(&self, host_path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(host_path)
            .copied()
            .unwrap_or(0)
    }

    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cc(v: &str) -> Script {
    Script {
        headers: vec![("cache-control", v.to_string())],
        body: "body {n}".into(),
        ..Default::default()
    }
}

/// One domain `a.test` (tenant `a`) and `b.test` (tenant `b`), cached with
/// `cache` (YAML flow map), both forwarding to `origin`.
fn config(origin: &Origin, cache: &str, tenants: &str) -> String {
    format!(
        r#"{LISTENERS}
tenants: {tenants}
pools:
  - {{ name: pa, tenant: a, targets: [{{ addr: "{o}" }}] }}
  - {{ name: pb, tenant: b, targets: [{{ addr: "{o}" }}] }}
domains:
  - hosts: [a.test]
    tenant: a
    cache: {cache}
    routes:
      - {{ path: /nocache, pool: pa, cache: {{ enabled: false }} }}
      - {{ path: /micro, pool: pa, cache: {{ force_ttl: 1s }} }}
      - {{ path: /, pool: pa }}
  - hosts: [b.test]
    tenant: b
    cache: {cache}
    routes: [{{ path: /, pool: pb }}]
"#,
        o = origin.addr
    )
}

const TENANTS: &str = "[{ name: a }, { name: b }]";

async fn get(
    c: &reqwest::Client,
    proxy: &Proxy,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let mut req = c.get(proxy.url(host, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

fn cache_status(h: &HeaderMap) -> String {
    h.get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn hits_head_ranges_and_conditionals_are_answered_from_the_cache() {
    let origin = Origin::start();
    origin.script(
        "/doc",
        Script {
            headers: vec![("cache-control", "max-age=300".into())],
            body: "0123456789-{n}".into(),
            etag: Some("\"v1\""),
            ..Default::default()
        },
    );
    let proxy = Proxy::start(&config(&origin, "{}", TENANTS)).await;
    let c = proxy.client(&["a.test"]);

    let (s, h, body) = get(&c, &proxy, "a.test", "/doc", &[]).await;
    assert_eq!((s, body.as_str()), (200, "0123456789-1"));
    assert_eq!(cache_status(&h), "gatehouse; fwd=miss; stored");

    let (s, h, body) = get(&c, &proxy, "a.test", "/doc", &[]).await;
    assert_eq!((s, body.as_str()), (200, "0123456789-1"));
    let status = cache_status(&h);
    assert!(status.starts_with("gatehouse; hit; ttl="), "{status}");
    let ttl: i64 = status.rsplit('=').next().unwrap().parse().unwrap();
    assert!((290..=300).contains(&ttl), "{status}");
    assert!(h.get("age").is_some(), "a hit carries Age");

    // HEAD from the cached GET; a range from the cached whole object; a
    // conditional request that matches gets 304: none reach the origin.
    let r = c.head(proxy.url("a.test", "/doc")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(cache_status(r.headers()).contains("hit"));
    let (s, _, body) = get(&c, &proxy, "a.test", "/doc", &[("range", "bytes=2-5")]).await;
    assert_eq!((s, body.as_str()), (206, "2345"));
    let (s, _, _) = get(&c, &proxy, "a.test", "/doc", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(s, 304);
    assert_eq!(origin.hits("a.test/doc"), 1);

    // Caching off on a route, and a POST, always go to the origin.
    origin.script("/nocache", cc("max-age=300"));
    for _ in 0..2 {
        let (_, h, _) = get(&c, &proxy, "a.test", "/nocache", &[]).await;
        assert!(h.get("cache-status").is_none());
    }
    assert_eq!(origin.hits("a.test/nocache"), 2);
    let r = c.post(proxy.url("a.test", "/doc")).send().await.unwrap();
    assert_eq!(
        cache_status(r.headers()),
        "gatehouse; fwd=bypass; detail=method"
    );
    assert_eq!(origin.hits("a.test/doc"), 2);
    assert_eq!(
        proxy
            .metric(
                "gatehouse_cache_requests_total",
                &[("tenant", "a"), ("result", "hit")]
            )
            .await,
        Some(4.0)
    );
}

/// A path, what the origin answers there, the request headers sent, and
/// how many of two requests reach the origin.
type Case = (
    &'static str,
    Script,
    &'static [(&'static str, &'static str)],
    usize,
);

#[tokio::test]
async fn directives_and_policy_decide_what_is_stored() {
    let origin = Origin::start();
    let cases: [Case; 9] = [
        ("/max-age", cc("max-age=60"), &[], 1),
        ("/s-maxage", cc("s-maxage=60"), &[], 1),
        ("/no-store", cc("no-store"), &[], 2),
        ("/private", cc("private, max-age=60"), &[], 2),
        (
            "/cookie",
            Script {
                headers: vec![
                    ("cache-control", "max-age=60".into()),
                    ("set-cookie", "sid=1".into()),
                ],
                body: "x".into(),
                ..Default::default()
            },
            &[],
            2,
        ),
        (
            "/auth",
            cc("max-age=60"),
            &[("authorization", "Bearer t")],
            2,
        ),
        (
            "/auth-public",
            cc("public, max-age=60"),
            &[("authorization", "Bearer t")],
            1,
        ),
        // The origin says nothing: the domain's default_ttl applies to a 200...
        (
            "/silent",
            Script {
                body: "s".into(),
                ..Default::default()
            },
            &[],
            1,
        ),
        // ...but not to a status a cache may not store heuristically.
        (
            "/silent-302",
            Script {
                status: Some(302),
                headers: vec![("location", "/x".into())],
                ..Default::default()
            },
            &[],
            2,
        ),
    ];
    for (path, script, _, _) in &cases {
        origin.script(path, script.clone());
    }
    origin.script("/micro", cc("no-cache"));
    origin.script("/bypassed", cc("max-age=60"));
    let proxy = Proxy::start(&config(
        &origin,
        "{ default_ttl: 1m, bypass: { cookies: [session] } }",
        TENANTS,
    ))
    .await;
    let c = proxy.client(&["a.test"]);
    for (path, _, headers, want) in &cases {
        for _ in 0..2 {
            let (s, _, _) = get(&c, &proxy, "a.test", path, headers).await;
            assert!(s == 200 || s == 302, "{path}: {s}");
        }
        assert_eq!(origin.hits(&format!("a.test{path}")), *want, "{path}");
    }
    // Set-Cookie responses say why they were not stored.
    let (_, h, _) = get(&c, &proxy, "a.test", "/cookie", &[]).await;
    assert_eq!(cache_status(&h), "gatehouse; fwd=miss; detail=set-cookie");
    // Microcaching: force_ttl overrides the origin's no-cache for a second.
    get(&c, &proxy, "a.test", "/micro", &[]).await;
    let (_, h, _) = get(&c, &proxy, "a.test", "/micro", &[]).await;
    assert!(cache_status(&h).contains("hit"), "{}", cache_status(&h));
    assert_eq!(origin.hits("a.test/micro"), 1);
    // A session cookie bypasses the cache (and does not fill it).
    for _ in 0..2 {
        let (_, h, _) = get(
            &c,
            &proxy,
            "a.test",
            "/bypassed",
            &[("cookie", "session=s")],
        )
        .await;
        assert_eq!(cache_status(&h), "gatehouse; fwd=bypass; detail=cookie");
    }
    assert_eq!(origin.hits("a.test/bypassed"), 2);
    get(&c, &proxy, "a.test", "/bypassed", &[]).await;
    assert_eq!(origin.hits("a.test/bypassed"), 3);
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let origin = Origin::start();
    origin.script(
        "/v",
        Script {
            headers: vec![
                ("cache-control", "max-age=60".into()),
                ("vary", "Accept-Language".into()),
            ],
            body: "variant {n}".into(),
            ..Default::default()
        },
    );
    let proxy = Proxy::start(&config(&origin, "{}", TENANTS)).await;
    let c = proxy.client(&["a.test"]);
    let (_, _, de) = get(&c, &proxy, "a.test", "/v", &[("accept-language", "de")]).await;
    let (_, _, fr) = get(&c, &proxy, "a.test", "/v", &[("accept-language", "fr")]).await;
    assert_ne!(de, fr);
    let (_, h, de2) = get(&c, &proxy, "a.test", "/v", &[("accept-language", "de")]).await;
    assert_eq!(de, de2);
    assert!(cache_status(&h).contains("hit"));
    let (_, h, fr2) = get(&c, &proxy, "a.test", "/v", &[("accept-language", "fr")]).await;
    assert_eq!(fr, fr2);
    assert!(cache_status(&h).contains("hit"));
    assert_eq!(origin.hits("a.test/v"), 2);
}

#[tokio::test]
async fn stale_objects_are_revalidated_with_their_validators() {
    let origin = Origin::start();
    origin.script(
        "/r",
        Script {
            headers: vec![("cache-control", "max-age=1".into())],
            body: "first {n}".into(),
            etag: Some("\"e1\""),
            ..Default::default()
        },
    );
    let proxy = Proxy::start(&config(&origin, "{}", TENANTS)).await;
    let c = proxy.client(&["a.test"]);
    let (_, _, first) = get(&c, &proxy, "a.test", "/r", &[]).await;
    assert_eq!(first, "first 1");
    // Once stale, the next request revalidates: the origin's 304 freshens
    // the stored object, whose body is served.
    let status = eventually(Duration::from_secs(10), "a revalidation", || async {
        let (s, h, body) = get(&c, &proxy, "a.test", "/r", &[]).await;
        let status = cache_status(&h);
        status.contains("fwd=stale").then_some((s, body, status))
    })
    .await;
    assert_eq!((status.0, status.1.as_str()), (200, "first 1"));
    assert!(status.2.contains("fwd-status=304"), "{}", status.2);
    let seen = origin.state.seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.get("if-none-match").unwrap(), "\"e1\"");
}

#[tokio::test]
async fn stale_if_error_serves_the_last_copy_while_the_origin_is_down() {
    let mut origin = Origin::start();
    origin.script("/s", cc("max-age=1, stale-if-error=300"));
    let proxy = Proxy::start(&config(&origin, "{}", TENANTS)).await;
    let c = proxy.client(&["a.test"]);
    let (_, _, body) = get(&c, &proxy, "a.test", "/s", &[]).await;
    assert_eq!(body, "body 1");
    origin.kill();
    let (s, h, body) = eventually(Duration::from_secs(10), "stale-if-error", || async {
        let (s, h, body) = get(&c, &proxy, "a.test", "/s", &[]).await;
        cache_status(&h)
            .contains("stale-if-error")
            .then_some((s, h, body))
    })
    .await;
    assert_eq!((s, body.as_str()), (200, "body 1"), "{}", cache_status(&h));
}

#[tokio::test]
async fn stale_while_revalidate_sends_one_background_refresh() {
    let origin = Origin::start();
    origin.script(
        "/w",
        Script {
            headers: vec![(
                "cache-control",
                "max-age=1, stale-while-revalidate=300".into(),
            )],
            body: "version {n}".into(),
            delay: None,
            ..Default::default()
        },
    );
    let proxy = Proxy::start(&config(&origin, "{}", TENANTS)).await;
    let c = proxy.client(&["a.test"]);
    get(&c, &proxy, "a.test", "/w", &[]).await;
    // Wait until the object is stale: the answer is the old copy, at once.
    let (_, body) = eventually(Duration::from_secs(10), "a stale answer", || async {
        let (_, h, body) = get(&c, &proxy, "a.test", "/w", &[]).await;
        cache_status(&h)
            .contains("stale-while-revalidate")
            .then_some(((), body))
    })
    .await;
    assert_eq!(body, "version 1");
    // A burst meanwhile sends nothing more upstream than the one refresh.
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            let url = proxy.url("a.test", "/w");
            tokio::spawn(async move { c.get(url).send().await.unwrap().status() })
        })
        .collect();
    for b in burst {
        assert_eq!(b.await.unwrap(), 200);
    }
    let body = eventually(Duration::from_secs(10), "the refreshed copy", || async {
        let (_, h, body) = get(&c, &proxy, "a.test", "/w", &[]).await;
        (cache_status(&h).contains("hit; ttl=") && body != "version 1").then_some(body)
    })
    .await;
    assert_eq!(body, "version 2");
    assert_eq!(origin.hits("a.test/w"), 2, "exactly one background refresh");
}

#[tokio::test]
async fn a_thundering_herd_sends_one_request_upstream() {
    let origin = Origin::start();
    origin.script(
        "/herd",
        Script {
            headers: vec![("cache-control", "max-age=60".into())],
            body: "herd {n}".into(),
            delay: Some(Duration::from_millis(500)),
            ..Default::default()
        },
    );
    let proxy = Proxy::start(&config(&origin, "{}", TENANTS)).await;
    let c = reqwest::Client::builder()
        .resolve("a.test", proxy.http)
        .pool_max_idle_per_host(200)
        .build()
        .unwrap();
    let herd: Vec<_> = (0..100)
        .map(|_| {
            let c = c.clone();
            let url = proxy.url("a.test", "/herd");
            tokio::spawn(async move {
                let r = c.get(url).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    for h in herd {
        assert_eq!(h.await.unwrap(), (200, "herd 1".to_string()));
    }
    assert_eq!(origin.hits("a.test/herd"), 1);
}

async fn purge(proxy: &Proxy, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/cache/purge", proxy.internal))
        .bearer_auth(INTERNAL_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn purges_by_url_prefix_tag_and_tenant_never_cross_tenants() {
    let origin = Origin::start();
    for p in ["/p/1", "/p/2", "/q"] {
        origin.script(p, cc("max-age=300"));
    }
    origin.script(
        "/tagged",
        Script {
            headers: vec![
                ("cache-control", "max-age=300".into()),
                ("cache-tag", "product-7, listing".into()),
            ],
            body: "t {n}".into(),
            ..Default::default()
        },
    );
    let proxy = Proxy::start_with_internal_token(&config(&origin, "{}", TENANTS)).await;
    let c = proxy.client(&["a.test", "b.test"]);
    let fill = || async {
        for host in ["a.test", "b.test"] {
            for p in ["/p/1", "/p/2", "/q", "/tagged"] {
                get(&c, &proxy, host, p, &[]).await;
            }
        }
    };
    fill().await;
    fill().await;
    let hits = |host: &str, p: &str| origin.hits(&format!("{host}{p}"));
    assert_eq!(hits("a.test", "/p/1"), 1);

    // Tenant b cannot purge tenant a's objects, even naming a's URL.
    let (s, r) = purge(
        &proxy,
        serde_json::json!({"tenant": "b", "url": "http://a.test/p/1"}),
    )
    .await;
    assert_eq!((s, r["purged"].as_u64()), (200, Some(0)));
    let (_, r) = purge(
        &proxy,
        serde_json::json!({"tenant": "a", "url": "http://a.test/p/1"}),
    )
    .await;
    assert_eq!(r["purged"], 1);
    let (_, r) = purge(
        &proxy,
        serde_json::json!({"tenant": "a", "prefix": "a.test/p/"}),
    )
    .await;
    assert_eq!(r["purged"], 1, "only /p/2 was left under the prefix");
    let (_, r) = purge(
        &proxy,
        serde_json::json!({"tenant": "a", "tag": "product-7"}),
    )
    .await;
    assert_eq!(r["purged"], 1);
    fill().await;
    for p in ["/p/1", "/p/2", "/tagged"] {
        assert_eq!(hits("a.test", p), 2, "{p} refetched after its purge");
    }
    assert_eq!(hits("a.test", "/q"), 1, "/q was never purged");
    for p in ["/p/1", "/p/2", "/q", "/tagged"] {
        assert_eq!(hits("b.test", p), 1, "tenant b's {p} untouched");
    }
    let (_, r) = purge(&proxy, serde_json::json!({"tenant": "b", "all": true})).await;
    assert_eq!(r["purged"], 4);
    fill().await;
    assert_eq!(hits("b.test", "/q"), 2);
    assert_eq!(hits("a.test", "/q"), 1);
    // Bad purges name the field.
    let (s, r) = purge(&proxy, serde_json::json!({"tenant": "a"})).await;
    assert_eq!((s, r["field"].as_str()), (400, Some("url")));
    assert_eq!(
        proxy
            .metric(
                "gatehouse_cache_purged_total",
                &[("tenant", "a"), ("kind", "tag")]
            )
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_tenant_stays_within_its_byte_quota() {
    let origin = Origin::start();
    let big = "x".repeat(10 * 1024);
    for i in 0..40 {
        origin.script(
            &format!("/o/{i}"),
            Script {
                headers: vec![("cache-control", "max-age=300".into())],
                body: big.clone(),
                ..Default::default()
            },
        );
    }
    let quota = 128 * 1024;
    let proxy = Proxy::start(&config(
        &origin,
        "{}",
        &format!("[{{ name: a, cache_bytes: {quota} }}, {{ name: b }}]"),
    ))
    .await;
    let c = proxy.client(&["a.test"]);
    for i in 0..40 {
        get(&c, &proxy, "a.test", &format!("/o/{i}"), &[]).await;
    }
    let bytes = proxy
        .metric("gatehouse_cache_bytes", &[("tenant", "a")])
        .await
        .unwrap();
    assert!(bytes > 0.0 && bytes <= quota as f64, "{bytes}");
    assert_eq!(
        proxy
            .metric("gatehouse_cache_quota_bytes", &[("tenant", "a")])
            .await,
        Some(quota as f64)
    );
    let objects = proxy
        .metric("gatehouse_cache_objects", &[("tenant", "a")])
        .await
        .unwrap();
    assert!(
        objects < 40.0,
        "{objects} objects of 10 KiB in a 128 KiB quota"
    );
    let evicted = proxy
        .metric("gatehouse_cache_evictions_total", &[("tenant", "a")])
        .await
        .unwrap_or(0.0);
    assert!(evicted > 0.0, "evictions are counted: {evicted}");
}

#[tokio::test]
async fn the_origin_gets_the_query_the_key_keeps_and_ports_split_objects() {
    let origin = Origin::start();
    origin.script("/q", cc("max-age=60"));
    let proxy = Proxy::start(&config(
        &origin,
        "{ key: { query_except: [utm_source] } }",
        TENANTS,
    ))
    .await;
    let c = proxy.client(&["a.test"]);
    get(&c, &proxy, "a.test", "/q?utm_source=mail&id=7", &[]).await;
    // The tracking parameter is neither in the key nor sent to the origin,
    // so no value or spelling of it can change what is stored.
    for q in ["/q?id=7&utm_source=web", "/q?utm_source=%3Cx%3E&id=7"] {
        let (_, h, _) = get(&c, &proxy, "a.test", q, &[]).await;
        assert!(
            cache_status(&h).contains("hit"),
            "{q}: {}",
            cache_status(&h)
        );
    }
    let (_, h, _) = get(&c, &proxy, "a.test", "/q?id=8&utm_source=web", &[]).await;
    assert!(
        cache_status(&h).contains("fwd=miss"),
        "other parameters are keyed"
    );
    assert_eq!(
        *origin.state.targets.lock().unwrap(),
        ["/q?id=7", "/q?id=8"],
        "the origin never sees utm_source"
    );
    // A Host naming another port reaches the origin with that port: its own object.
    let before = origin.hits("a.test/q");
    let r = c
        .get(proxy.url("a.test", "/q?id=7"))
        .header("host", "a.test:1337")
        .send()
        .await
        .unwrap();
    assert!(cache_status(r.headers()).contains("fwd=miss"));
    assert_eq!(origin.hits("a.test/q"), before + 1);
}
