//! Host, wildcard and path routing; local actions; forwarding headers.

use serde_json::Value;

use crate::support::*;

fn config(up: &Upstream, api: &Upstream, site: &std::path::Path) -> String {
    format!(
        r#"{LISTENERS}
tenants: [{{ name: acme }}]
pools:
  - {{ name: web, tenant: acme, targets: [{{ addr: "{}" }}] }}
  - {{ name: api, tenant: acme, targets: [{{ addr: "{}" }}] }}
domains:
  - hosts: [example.test]
    tenant: acme
    headers:
      request:
        set: {{ X-Client: "ip=$client_ip", X-Tenant: "$tenant" }}
        remove: [X-Remove-Me]
      response:
        set: {{ X-Frame-Options: DENY }}
        remove: [X-Upstream-Secret]
    routes:
      - {{ path: /, pool: web }}
      - {{ path: /api, pool: api }}
      - {{ path: /hello, match: exact, respond: {{ status: 201, headers: {{ X-A: b }}, body: "hi" }} }}
      - {{ path: /old, redirect: {{ to: "https://new.test", status: 301, keep_path: true }} }}
      - {{ path: /assets, static: {{ root: "{}", cache_control: "max-age=60" }} }}
      - {{ path: /writes, methods: [POST], pool: api }}
  - hosts: ["*.wild.test"]
    tenant: acme
    routes: [{{ path: /, pool: api }}]
"#,
        up.addr,
        api.addr,
        site.display()
    )
}

#[tokio::test]
async fn host_wildcard_and_path_routing() {
    let web = Upstream::start("web");
    let api = Upstream::start("api");
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("app.js"), "console.log(1)").unwrap();
    let proxy = Proxy::start(&config(&web, &api, site.path())).await;
    let c = proxy.client(&[
        "example.test",
        "EXAMPLE.test",
        "a.wild.test",
        "a.b.wild.test",
        "nope.test",
    ]);

    let get = |host: &'static str, path: &'static str| {
        let c = c.clone();
        let url = proxy.url(host, path);
        async move { c.get(url).send().await.unwrap() }
    };
    let server = |r: reqwest::Response| async move {
        r.json::<Value>().await.unwrap()["server"]
            .as_str()
            .unwrap()
            .to_string()
    };

    assert_eq!(server(get("example.test", "/").await).await, "web");
    assert_eq!(
        server(get("example.test", "/api/v1/users").await).await,
        "api"
    );
    assert_eq!(server(get("example.test", "/apix").await).await, "web");
    assert_eq!(
        server(get("EXAMPLE.test", "/api").await).await,
        "api",
        "host match is case-insensitive"
    );
    assert_eq!(server(get("a.wild.test", "/x").await).await, "api");

    // One-label wildcard: a.b.wild.test is not covered.
    let r = get("a.b.wild.test", "/").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unknown_host");
    let r = get("nope.test", "/").await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("x-request-id").is_some());

    // Method-restricted route: POST goes to api, GET falls back to the `/` route.
    let r = c
        .post(proxy.url("example.test", "/writes"))
        .send()
        .await
        .unwrap();
    assert_eq!(server(r).await, "api");
    assert_eq!(server(get("example.test", "/writes").await).await, "web");
}

#[tokio::test]
async fn local_actions_respond_redirect_static() {
    let web = Upstream::start("web");
    let api = Upstream::start("api");
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("docs")).unwrap();
    std::fs::write(site.path().join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(site.path().join("app.js"), "console.log(1)").unwrap();
    std::fs::write(site.path().join(".secret"), "no").unwrap();
    let proxy = Proxy::start(&config(&web, &api, site.path())).await;
    let c = proxy.client(&["example.test"]);

    let r = c
        .get(proxy.url("example.test", "/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-a"], "b");
    assert_eq!(
        r.headers()["x-frame-options"],
        "DENY",
        "domain response rules apply to local responses"
    );
    assert_eq!(r.text().await.unwrap(), "hi");

    let r = c
        .get(proxy.url("example.test", "/old/page?q=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "https://new.test/old/page?q=1");

    let r = c
        .get(proxy.url("example.test", "/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "max-age=60");
    let etag = r.headers()["etag"].clone();
    let last_modified = r.headers()["last-modified"].clone();
    assert_eq!(r.text().await.unwrap(), "console.log(1)");

    // Conditional GET with either validator.
    let r = c
        .get(proxy.url("example.test", "/assets/app.js"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag);
    let r = c
        .get(proxy.url("example.test", "/assets/app.js"))
        .header("if-modified-since", last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(proxy.url("example.test", "/assets/app.js"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // HEAD: headers without a body.
    let r = c
        .head(proxy.url("example.test", "/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "14");

    // Index files and the trailing-slash redirect.
    let r = c
        .get(proxy.url("example.test", "/assets/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/assets/docs/");
    let r = c
        .get(proxy.url("example.test", "/assets/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "<h1>docs</h1>");

    // No escape from the root, no hidden files.
    // Raw requests: an HTTP client library would normalise the dot segments away.
    // Hidden files, encoded separators and NUL bytes inside the static root: 404.
    for path in [
        "/assets/.secret",
        "/assets/docs/..%2f..%2f..%2fetc%2fpasswd",
        "/assets/docs/%00index.html",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
        let raw = raw_request(proxy.http, req.as_bytes()).await;
        assert!(raw.starts_with("HTTP/1.1 404"), "{path}: {raw}");
    }
    // Dot segments are resolved before routing, so they cannot climb out of
    // /assets at all: the request becomes /etc/passwd and goes to the `/` pool.
    for path in [
        "/assets/../../../../etc/passwd",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
        let raw = raw_request(proxy.http, req.as_bytes()).await;
        assert!(
            !raw.contains("root:"),
            "path traversal served /etc/passwd: {raw}"
        );
        assert!(raw.contains("\"path\":\"/etc/passwd\""), "{path}: {raw}");
    }
}

#[tokio::test]
async fn forwarding_headers_request_id_and_header_rules() {
    let web = Upstream::start("web");
    let api = Upstream::start("api");
    let site = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&config(&web, &api, site.path())).await;
    let c = proxy.client(&["example.test"]);

    let r = c
        .get(proxy.url("example.test", "/echo"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-remove-me", "1")
        .send()
        .await
        .unwrap();
    let generated_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    let h = &body["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(
        h["x-forwarded-host"],
        format!("example.test:{}", proxy.http.port())
    );
    assert_eq!(h["x-request-id"], generated_id.as_str());
    assert_eq!(generated_id.len(), 32);
    assert_eq!(h["x-client"], "ip=127.0.0.1");
    assert_eq!(h["x-tenant"], "acme");
    assert!(h.get("x-remove-me").is_none());

    // A client's request id is propagated both ways.
    let r = c
        .get(proxy.url("example.test", "/echo"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["headers"]["x-request-id"], "abc-123");

    // The access log is JSON and never contains credentials.
    c.get(proxy.url("example.test", "/private?token=s3cret"))
        .header("authorization", "Bearer topsecret")
        .header("cookie", "session=hunter2")
        .send()
        .await
        .unwrap();
    let (log, entry) = eventually(
        std::time::Duration::from_secs(5),
        "access log line",
        || async {
            let log = proxy.log();
            let entry = log
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["path"] == "/private")?;
            Some((log, entry))
        },
    )
    .await;
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["upstream"], web.addr.to_string());
    assert_eq!(entry["tenant"], "acme");
    assert_eq!(entry["request_id"].as_str().map(str::len), Some(32));
    assert!(
        entry["duration_ms"].as_f64().unwrap() >= entry["upstream_response_ms"].as_f64().unwrap()
    );
    for secret in ["topsecret", "hunter2", "s3cret"] {
        assert!(!log.contains(secret), "access log leaked {secret}");
    }
}

#[tokio::test]
async fn paths_are_normalised_and_hosts_validated_before_routing() {
    let web = Upstream::start("web");
    let api = Upstream::start("api");
    let site = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&config(&web, &api, site.path())).await;
    let raw = |target: &str, host: &str| {
        let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let addr = proxy.http;
        async move { raw_request(addr, req.as_bytes()).await }
    };
    // Encoded, doubled and dot-segment spellings of /api reach the api pool,
    // which sees the same normalised path the route matched.
    for target in [
        "/%61pi/x?q=1",
        "//api//x?q=1",
        "/web/../api/x?q=1",
        "/api/./x?q=1",
        // Servlet containers drop `;` parameters before resolving dots.
        "/web/..;/api/x?q=1",
    ] {
        let resp = raw(target, "example.test").await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{target}: {resp}");
        let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{target}: {e}: {resp}"));
        assert_eq!(json["server"], "api", "{target}");
        assert_eq!(json["path"], "/api/x?q=1", "{target}");
    }
    // Segment parameters (`;jsessionid=…`) are not part of the path to a
    // servlet origin, which serves `/api;x/x` as `/api/x`: the request is
    // routed as /api (so no route's protections can be skipped with them)
    // and forwarded unchanged.
    for target in ["/api;jsessionid=1/x?q=1", "/;x/api;v=2/x;y?q=1"] {
        let resp = raw(target, "example.test").await;
        let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{target}: {e}: {resp}"));
        assert_eq!(json["server"], "api", "{target}");
        assert_eq!(json["path"], target, "{target}");
    }
    let resp = raw("/bad%zz", "example.test").await;
    assert!(
        resp.starts_with("HTTP/1.1 400") && resp.contains("invalid_path"),
        "{resp}"
    );

    // Hosts that are not hostnames never match a (wildcard) domain.
    for host in ["16909060#.wild.test", "a@b.wild.test", "a b.wild.test"] {
        let resp = raw("/", host).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{host}: {resp}");
    }
    assert_eq!(api.hits(), 7);

    // Absolute-form target: an authority that contradicts Host is refused
    // (Pingora's parser answers 400), so a request can never be routed by one
    // name and reach the upstream carrying another; a consistent one is routed
    // and forwarded by its authority (RFC 9112 §3.2.2).
    let port = proxy.http.port();
    let resp = raw(&format!("http://x.wild.test:{port}/who"), "example.test").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let resp = raw(
        &format!("http://x.wild.test:{port}/who"),
        &format!("x.wild.test:{port}"),
    )
    .await;
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"));
    assert_eq!(json["server"], "api");
    assert_eq!(json["headers"]["host"], format!("x.wild.test:{port}"));
}

/// A pool pointing back at the edge (review of issue 22): each pass adds
/// `CDN-Loop: gatehouse` (RFC 8586) and the eighth is refused with 508, so
/// a loop ends after a few rounds instead of running until sockets run out.
#[tokio::test]
async fn a_pool_pointing_back_at_the_edge_ends_with_508() {
    let up = Upstream::start("app");
    let yaml = format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools:
  - {{ name: edge, tenant: t, targets: [{{ addr: "127.0.0.1:{{http}}" }}] }}
  - {{ name: app, tenant: t, targets: [{{ addr: "{}" }}] }}
domains:
  - {{ hosts: [loop.test], tenant: t, routes: [{{ path: /, pool: edge }}] }}
  - {{ hosts: [once.test], tenant: t, routes: [{{ path: /, pool: app }}] }}
"#,
        up.addr
    );
    let proxy = Proxy::start(&yaml).await;
    let r = proxy
        .client(&["loop.test"])
        .get(proxy.url("loop.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 508);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "loop_detected");
    // One pass is nothing to refuse: the origin sees the token once.
    let r = proxy
        .client(&["once.test"])
        .get(proxy.url("once.test", "/"))
        .header("x-real-ip", "203.0.113.1")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["headers"]["cdn-loop"], "gatehouse");
    assert!(body["headers"].get("x-real-ip").is_none(), "{body}");
}
