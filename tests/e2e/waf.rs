//! The WAF through the real proxy: attacks (and their evasions) are refused
//! with 403 before the upstream sees them, ordinary requests and their bodies
//! pass unchanged, big bodies are inspected as they stream, detect mode only
//! logs, exclusions fix false positives, and WAF blocks feed automatic bans.

use serde_json::Value;

use crate::support::*;

fn config(up: &Upstream, waf: &str, extra: &str) -> String {
    format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{}" }}] }}]
domains:
  - hosts: [shop.test]
    tenant: t
    waf: {waf}
{extra}
    routes: [{{ path: /, pool: p }}]
"#,
        up.addr
    )
}

/// `body` as a streamed request body of `size`-byte chunks (sent chunked,
/// with no length up front).
fn chunked(body: Vec<u8>, size: usize) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures_util::stream::iter(
        body.chunks(size)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    ))
}

async fn status_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn attacks_are_refused_before_the_upstream_and_the_rest_passes_intact() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(&up, "{ mode: block, paranoia: 1 }", "")).await;
    let client = proxy.client(&["shop.test"]);

    let (status, body) = status_of(
        client
            .get(proxy.url("shop.test", "/search?q=%3Cscript%3Ealert(1)%3C/script%3E"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "waf_blocked");
    let json_attack = r#"{"user":{"id":"1' OR '1'='1"}}"#;
    let r = client
        .post(proxy.url("shop.test", "/api/login"))
        .header("content-type", "application/json")
        .body(json_attack)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(up.hits(), 0, "blocked requests never reach the upstream");

    // Ordinary traffic, with its body forwarded byte for byte.
    let order = r#"{"items":[{"sku":"B-7","qty":1,"note":"Ring twice; the bell's broken."}],"coupon":null}"#;
    let r = client
        .post(proxy.url("shop.test", "/api/orders"))
        .header("content-type", "application/json")
        .body(order)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    assert_eq!(echoed["body_len"], order.len());
    assert_eq!(echoed["body_sha256"], sha256_hex(order.as_bytes()));
    let r = client
        .get(proxy.url("shop.test", "/search?q=union+station+opening+hours"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 2);

    assert_eq!(
        proxy
            .metric("gatehouse_waf_blocked_total", &[("domain", "shop.test")])
            .await,
        Some(2.0)
    );
    assert!(
        proxy
            .metric(
                "gatehouse_waf_detections_total",
                &[("family", "sqli"), ("action", "blocked")]
            )
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains("gatehouse::waf") && l.contains("\"family\":\"xss\""))
        .expect("a WAF log line for the XSS");
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["variable"], "args:q");
    assert_eq!(entry["action"], "blocked");
    assert!(entry["rule"].as_u64().unwrap() / 1000 == 941, "{entry}");
    assert!(entry["matched"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("script"));
}

#[tokio::test]
async fn evasions_and_header_injection_are_caught() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(&up, "{ mode: block }", "")).await;
    let client = proxy.client(&["shop.test"]);
    for path in [
        // Double encoding.
        "/?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E",
        // Mixed case.
        "/?q=%3CScRiPt%3Ealert(1)%3C/sCrIpT%3E",
        // SQL split by comments.
        "/?id=1/**/UnIoN/**/SeLeCt/**/password/**/FrOm/**/users",
        // Overlong UTF-8 dots and slashes.
        "/?file=%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
        // CRLF injection of a header through an argument.
        "/redirect?to=%0d%0aSet-Cookie:%20admin=1",
    ] {
        let r = client
            .get(proxy.url("shop.test", path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // A header whose value smuggles an encoded line break.
    let r = client
        .get(proxy.url("shop.test", "/"))
        .header("x-note", "a%0d%0aX-Injected: 1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Raw overlong UTF-8 bytes in the request target.
    let raw = raw_request(
        proxy.http,
        b"GET /?f=\xc0\xae\xc0\xae/\xc0\xae\xc0\xae/etc/passwd HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let status = raw.split(' ').nth(1).unwrap_or("");
    assert!(status == "403" || status == "400", "{raw}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn large_bodies_are_inspected_as_they_stream() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(
        &up,
        "{ mode: block, inspect_body_bytes: 131072 }",
        "",
    ))
    .await;
    let client = proxy.client(&["shop.test"]);
    let filler = "lorem ipsum dolor sit amet ".repeat(8000); // ~216 KB
    let benign = format!(r#"{{"text":"{filler}"}}"#);
    let r = client
        .post(proxy.url("shop.test", "/upload"))
        .header("content-type", "application/json")
        .body(benign.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    assert_eq!(echoed["body_len"], benign.len());
    assert_eq!(echoed["body_sha256"], sha256_hex(benign.as_bytes()));

    // The attack sits in the first 128 KiB of a body too big to replay,
    // sent chunked (no length up front).
    let attack =
        format!("{{\"a\":\"x' union select password from users --\",\"text\":\"{filler}\"}}");
    let r = client
        .post(proxy.url("shop.test", "/upload"))
        .header("content-type", "application/json")
        .body(chunked(attack.into_bytes(), 16 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(up.hits(), 1, "the blocked body never completed upstream");
}

#[tokio::test]
async fn detect_mode_logs_and_forwards() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(&up, "{ mode: detect }", "")).await;
    let client = proxy.client(&["shop.test"]);
    let r = client
        .get(proxy.url("shop.test", "/?q=%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 1);
    assert!(
        proxy
            .metric("gatehouse_waf_detections_total", &[("action", "logged")])
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(proxy.log().contains("\"action\":\"logged\""));
}

#[tokio::test]
async fn exclusions_let_a_known_false_positive_through() {
    let up = Upstream::start("app");
    let waf =
        "{ mode: block, exclusions: [{ path: /cms, families: [xss], variables: ['args:body'] }] }";
    let proxy = Proxy::start(&config(&up, waf, "")).await;
    let client = proxy.client(&["shop.test"]);
    let html = [(
        "body",
        "<p onclick=\"track()\">Hello <script>ga()</script></p>",
    )];
    let r = client
        .post(proxy.url("shop.test", "/cms/pages"))
        .form(&html)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "excluded argument on the excluded path");
    // The same argument elsewhere, or another argument there, still blocks.
    let r = client
        .post(proxy.url("shop.test", "/blog"))
        .form(&html)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(proxy.url("shop.test", "/cms/pages"))
        .form(&[("title", "<script>alert(1)</script>")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn waf_blocks_count_toward_bans() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(
        &up,
        "{ mode: block }",
        "    bans: { waf_blocks: 2, window: 1m, duration: 10m }",
    ))
    .await;
    let client = proxy.client(&["shop.test"]);
    for _ in 0..2 {
        let r = client
            .get(proxy.url("shop.test", "/?f=../../../../etc/passwd"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let (status, body) = status_of(
        client
            .get(proxy.url("shop.test", "/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "banned");
    assert_eq!(up.hits(), 0);
}

/// Requests that forward nothing are not inspected: a path without a route
/// gets its 404 and a client over its rate limit its 429, whatever they
/// carry, and only the request that would have been forwarded counts as a
/// WAF block (the rate limit counted it too).
#[tokio::test]
async fn only_requests_that_would_be_forwarded_are_inspected() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{}" }}] }}]
domains:
  - hosts: [shop.test]
    tenant: t
    waf: {{ mode: block }}
    rate_limits: [{{ name: per-ip, requests: 1, per: 1m }}]
    routes: [{{ path: /app, pool: p }}]
"#,
        up.addr
    ))
    .await;
    let client = proxy.client(&["shop.test"]);
    let attack = "?q=%3Cscript%3Ealert(1)%3C/script%3E";
    let status = |path: String| {
        let request = client.get(proxy.url("shop.test", &path)).send();
        async move { status_of(request.await.unwrap()).await }
    };
    let (code, body) = status(format!("/nothing{attack}")).await;
    assert_eq!((code, body["error"].as_str()), (404, Some("no_route")));
    let (code, body) = status(format!("/app{attack}")).await;
    assert_eq!((code, body["error"].as_str()), (403, Some("waf_blocked")));
    let (code, body) = status(format!("/app{attack}")).await;
    assert_eq!((code, body["error"].as_str()), (429, Some("rate_limited")));
    let blocked = proxy
        .metric("gatehouse_waf_blocked_total", &[("domain", "shop.test")])
        .await;
    assert_eq!(blocked, Some(1.0));
    assert_eq!(up.hits(), 0);
}

#[test]
fn invalid_waf_settings_are_reported_with_their_paths() {
    let (ok, err) = check_config(
        r#"
tenants: [{ name: t }]
domains:
  - hosts: [a.test]
    tenant: t
    waf: { paranoia: 7, exclusions: [{ rules: [12] }, { variables: [cookie] }] }
    routes: [{ path: /, respond: { body: ok } }]
"#,
    );
    assert!(!ok);
    for field in [
        "domains[0].waf.paranoia",
        "domains[0].waf.exclusions[0].rules[0]",
        "domains[0].waf.exclusions[1].variables[0]",
    ] {
        assert!(err.contains(field), "{field} missing from: {err}");
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A client that sends `Expect: 100-continue` gets `100 Continue` before it
/// uploads a body the WAF reads up front, then the inspected request passes.
#[tokio::test]
async fn expect_continue_clients_are_told_to_send_their_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(&up, "{ mode: block, paranoia: 1 }", "")).await;
    let body = r#"{"name":"Merino wool socks","qty":2}"#;
    let head = format!(
        "POST /api/orders HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // Nothing of the body is sent until the proxy says so.
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before 100 Continue");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(waited.is_ok(), "no 100 Continue within 5 s");
    let interim = String::from_utf8_lossy(&got).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    s.write_all(body.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    let resp = String::from_utf8_lossy(&rest).into_owned();
    let final_status = resp
        .split("\r\n\r\n")
        .flat_map(|part| part.lines().next())
        .find(|line| line.starts_with("HTTP/1.1 2"));
    assert!(final_status.is_some(), "{resp}");
    assert!(
        resp.contains(&sha256_hex(body.as_bytes())),
        "body forwarded intact: {resp}"
    );
    assert_eq!(up.hits(), 1);
}

/// Bodies held for inspection share one budget (`limits.waf_held_body_bytes`):
/// while one slow upload holds most of it, others that would go over (streamed
/// or read up front) are refused with 503 `waf_busy` and nothing of them goes
/// upstream; once the first completes the budget is free again.
#[tokio::test]
async fn held_bodies_share_one_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("app");
    let yaml = format!(
        "limits: {{ waf_held_body_bytes: 1048576 }}\n{}",
        config(&up, "{ mode: block, inspect_body_bytes: 1048576 }", "")
    );
    let proxy = Proxy::start(&yaml).await;
    let held = || proxy.metric("gatehouse_waf_held_body_bytes", &[]);

    // A: a chunked upload of ~1 MB (under the 1 MiB budget) that does not end yet.
    let filler = "lorem ipsum dolor sit amet ".repeat(37_000);
    let mut a = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
    a.write_all(
        b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let first = format!(r#"{{"text":"{filler}"#);
    for part in first.as_bytes().chunks(64 * 1024) {
        a.write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        a.write_all(part).await.unwrap();
        a.write_all(b"\r\n").await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while held().await.unwrap_or(0.0) < 990_000.0 {
        assert!(std::time::Instant::now() < deadline, "A's body never held");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // B: 300 KB more would go over the budget.
    let client = proxy.client(&["shop.test"]);
    let small = format!(r#"{{"text":"{}"}}"#, "x".repeat(300_000));
    let r = client
        .post(proxy.url("shop.test", "/upload"))
        .header("content-type", "application/json")
        .body(chunked(small.clone().into_bytes(), 64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let (_, body) = status_of(r).await;
    assert_eq!(body["error"], "waf_busy");
    // D: a small body read up front (declared length) does not fit either.
    let r = client
        .post(proxy.url("shop.test", "/upload"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"text":"{}"}}"#, "y".repeat(60_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        proxy.metric("gatehouse_waf_busy_total", &[]).await,
        Some(2.0)
    );
    assert_eq!(up.hits(), 0, "nothing went upstream uninspected");

    // A completes, is inspected and forwarded; its share is given back.
    a.write_all(b"2\r\n\"}\r\n0\r\n\r\n").await.unwrap();
    let mut resp = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(10), a.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    while held().await.unwrap_or(1.0) != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "A's share never given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // C: the same upload as B now passes.
    let r = client
        .post(proxy.url("shop.test", "/upload"))
        .header("content-type", "application/json")
        .body(chunked(small.into_bytes(), 64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 2);
}

/// Starts a chunked upload of about `bytes` to `host` that does not end.
async fn slow_upload(proxy: &Proxy, host: &str, bytes: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let body = format!(r#"{{"text":"{}"#, "lorem ipsum ".repeat(bytes / 12));
    for part in body.as_bytes().chunks(64 * 1024) {
        s.write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(part).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s
}

/// Issue 22, item 14: each tenant holds at most its share of the held-body
/// budget (`limits.waf_held_body_bytes_per_tenant`): slow uploads to one
/// tenant are refused past it, and another tenant's uploads are still
/// inspected and forwarded.
#[tokio::test]
async fn one_tenants_slow_uploads_never_take_another_tenants_waf_budget() {
    let up = Upstream::start("app");
    let yaml = format!(
        r#"{LISTENERS}
limits: {{ waf_held_body_bytes: 2097152, waf_held_body_bytes_per_tenant: 1048576 }}
tenants: [{{ name: noisy }}, {{ name: quiet }}]
pools:
  - {{ name: pn, tenant: noisy, targets: [{{ addr: "{a}" }}] }}
  - {{ name: pq, tenant: quiet, targets: [{{ addr: "{a}" }}] }}
domains:
  - {{ hosts: [noisy.test], tenant: noisy, waf: {{ mode: block, inspect_body_bytes: 1048576 }}, routes: [{{ path: /, pool: pn }}] }}
  - {{ hosts: [quiet.test], tenant: quiet, waf: {{ mode: block, inspect_body_bytes: 1048576 }}, routes: [{{ path: /, pool: pq }}] }}
"#,
        a = up.addr
    );
    let proxy = Proxy::start(&yaml).await;
    let held = || proxy.metric("gatehouse_waf_held_body_bytes", &[]);
    let _first = slow_upload(&proxy, "noisy.test", 900_000).await;
    eventually(
        std::time::Duration::from_secs(10),
        "the first upload held",
        || async { held().await.filter(|n| *n >= 890_000.0) },
    )
    .await;
    // A second slow upload to the same tenant goes over its share.
    let mut second = slow_upload(&proxy, "noisy.test", 900_000).await;
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut second, &mut resp),
    )
    .await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(
        resp.starts_with("HTTP/1.1 503"),
        "{}",
        &resp[..resp.len().min(300)]
    );
    assert!(resp.contains("waf_busy"), "{resp}");
    // The other tenant's upload is inspected and forwarded.
    let client = proxy.client(&["quiet.test"]);
    let body = format!(r#"{{"text":"{}"}}"#, "x".repeat(600_000));
    let r = client
        .post(proxy.url("quiet.test", "/upload"))
        .header("content-type", "application/json")
        .body(chunked(body.into_bytes(), 64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 1);
}
