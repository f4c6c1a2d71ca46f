//! Rate limits: per client, per API key, per route, tenant ceilings; 429 with
//! Retry-After and the IETF RateLimit headers; buckets survive a reload.

use crate::support::*;

fn config(up: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"{LISTENERS}
tenants:
  - {{ name: t }}
  - {{ name: capped, rate_limit: {{ requests: 2, per: 1m }} }}
pools:
  - {{ name: p, tenant: t, targets: [{{ addr: "{up}" }}] }}
  - {{ name: c, tenant: capped, targets: [{{ addr: "{up}" }}] }}
domains:
  - hosts: [ip.test]
    tenant: t
    rate_limits: [{{ name: per-ip, requests: 3, per: 1m }}]
    routes:
      - path: /
        pool: p
      - path: /login
        pool: p
        rate_limits: [{{ name: login, requests: 1, per: 1h }}]
  - hosts: [key.test]
    tenant: t
    rate_limits: [{{ name: per-key, requests: 2, per: 1m, key: "header:x-api-key" }}]
    routes: [{{ path: /, pool: p }}]
  - {{ hosts: [a.capped.test], tenant: capped, routes: [{{ path: /, pool: c }}] }}
  - {{ hosts: [b.capped.test], tenant: capped, routes: [{{ path: /, pool: c }}] }}
{extra}"#
    )
}

async fn status(proxy: &Proxy, host: &str, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = proxy
        .client(&["ip.test", "key.test", "a.capped.test", "b.capped.test"])
        .get(proxy.url(host, path));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn limits_refuse_with_429_and_headers_and_never_reach_the_upstream() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(up.addr, "")).await;

    for left in [2, 1, 0] {
        let r = status(&proxy, "ip.test", "/", None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["ratelimit-policy"], "\"per-ip\";q=3;w=60");
        assert_eq!(
            r.headers()["ratelimit"],
            format!("\"per-ip\";r={left}").as_str()
        );
    }
    let r = status(&proxy, "ip.test", "/", None).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(
        r.headers()["ratelimit"],
        format!("\"per-ip\";r=0;t={retry}").as_str()
    );
    assert_eq!(up.hits(), 3, "a limited request never reaches the upstream");
    assert_eq!(
        proxy
            .metric(
                "gatehouse_rate_limited_total",
                &[("tenant", "t"), ("limit", "per-ip")]
            )
            .await,
        Some(1.0)
    );

    // Per API key: each key its own bucket.
    for _ in 0..2 {
        assert_eq!(
            status(&proxy, "key.test", "/", Some("k1")).await.status(),
            200
        );
    }
    assert_eq!(
        status(&proxy, "key.test", "/", Some("k1")).await.status(),
        429
    );
    assert_eq!(
        status(&proxy, "key.test", "/", Some("k2")).await.status(),
        200
    );

    // A tenant's ceiling spans its domains.
    assert_eq!(
        status(&proxy, "a.capped.test", "/", None).await.status(),
        200
    );
    assert_eq!(
        status(&proxy, "b.capped.test", "/", None).await.status(),
        200
    );
    assert_eq!(
        status(&proxy, "a.capped.test", "/", None).await.status(),
        429
    );

    // A reload that keeps a rule keeps its buckets; a changed rule starts afresh.
    proxy.write_config(&config(up.addr, "# reloaded\n"));
    proxy.wait_version(2).await;
    assert_eq!(status(&proxy, "ip.test", "/", None).await.status(), 429);
    assert_eq!(
        status(&proxy, "key.test", "/", Some("k1")).await.status(),
        429
    );
    proxy
        .write_config(&config(up.addr, "").replace("requests: 3, per: 1m", "requests: 5, per: 1m"));
    proxy.wait_version(3).await;
    assert_eq!(status(&proxy, "ip.test", "/", None).await.status(), 200);
}

#[tokio::test]
async fn a_route_limit_comes_on_top_of_the_domain_limit() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(up.addr, "")).await;
    let r = status(&proxy, "ip.test", "/login", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["ratelimit-policy"],
        "\"per-ip\";q=3;w=60, \"login\";q=1;w=3600"
    );
    let r = status(&proxy, "ip.test", "/login", None).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers()["ratelimit-policy"]
        .to_str()
        .unwrap()
        .contains("login"));
    // The rest of the domain still has its own budget left.
    assert_eq!(status(&proxy, "ip.test", "/", None).await.status(), 200);
}

#[tokio::test]
async fn rules_can_advertise_x_ratelimit_headers_or_nothing() {
    let up = Upstream::start("app");
    let extra = r#"  - hosts: [x.test]
    tenant: t
    rate_limits: [{ name: api, requests: 2, per: 1m, headers: x-ratelimit }]
    routes: [{ path: /, pool: p }]
  - hosts: [quiet.test]
    tenant: t
    rate_limits: [{ name: quiet, requests: 1, per: 1m, headers: none }]
    routes: [{ path: /, pool: p }]
"#;
    let proxy = Proxy::start(&config(up.addr, extra)).await;
    let client = proxy.client(&["x.test", "quiet.test"]);
    let get = |host: &'static str| client.get(proxy.url(host, "/")).send();

    // Tokens come back every 30 s; Reset says when the bucket is full again.
    for (left, reset) in [(1, 30), (0, 60)] {
        let r = get("x.test").await.unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["x-ratelimit-limit"], "2");
        assert_eq!(h["x-ratelimit-remaining"], left.to_string().as_str());
        let got: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(
            (reset - 2..=reset).contains(&got),
            "reset {got}, expected about {reset}"
        );
        assert!(h.get("ratelimit-policy").is_none() && h.get("ratelimit").is_none());
    }
    let r = get("x.test").await.unwrap();
    assert_eq!(r.status(), 429);
    let h = r.headers();
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert_eq!(
        h["x-ratelimit-reset"], h["retry-after"],
        "the refusal's reset is its Retry-After"
    );
    assert!(h.get("ratelimit").is_none());

    let r = get("quiet.test").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().contains("ratelimit")),
        "{:?}",
        r.headers()
    );
    let r = get("quiet.test").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().contains("ratelimit")),
        "{:?}",
        r.headers()
    );
}
