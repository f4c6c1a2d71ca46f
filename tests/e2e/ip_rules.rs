//! Per-domain IP allow/deny rules and the client address behind trusted proxies.

use serde_json::Value;

use crate::support::*;

fn config(up: std::net::SocketAddr, client_ip: &str) -> String {
    format!(
        r#"{LISTENERS}
{client_ip}
tenants: [{{ name: t }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{up}" }}] }}]
domains:
  - {{ hosts: [deny.test], tenant: t, ip_rules: {{ deny: ["127.0.0.1"] }}, routes: [{{ path: /, pool: p }}] }}
  - {{ hosts: [allow.test], tenant: t, ip_rules: {{ allow: [10.0.0.0/8, "2001:db8::/32"] }}, routes: [{{ path: /, pool: p }}] }}
  - hosts: [open.test]
    tenant: t
    ip_rules: {{ allow: [127.0.0.0/8, "::1"], deny: [203.0.113.0/24] }}
    headers: {{ request: {{ set: {{ X-Client: $client_ip }} }} }}
    routes: [{{ path: /, pool: p }}]
"#
    )
}

async fn get(proxy: &Proxy, host: &str, xff: Option<&str>) -> (u16, Value) {
    let mut req = proxy
        .client(&["deny.test", "allow.test", "open.test"])
        .get(proxy.url(host, "/"));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn domains_admit_and_refuse_clients_by_address_and_trust_only_configured_proxies() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(up.addr, "")).await;

    let (status, body) = get(&proxy, "deny.test", None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("ip_denied")));
    let (status, _) = get(&proxy, "allow.test", None).await;
    assert_eq!(status, 403, "loopback is outside the allow list");
    // No trusted proxies: a forwarding header is the client's word, not believed.
    let (status, body) = get(&proxy, "open.test", Some("203.0.113.7")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-client"], "127.0.0.1");
    assert_eq!(body["headers"]["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(up.hits(), 1, "refused requests never reach the upstream");

    // Behind a trusted proxy (here: loopback), its header names the client.
    proxy.write_config(&config(
        up.addr,
        "client_ip: { trusted_proxies: [127.0.0.1/32], header: x-forwarded-for }",
    ));
    proxy.wait_version(2).await;
    let (status, _) = get(&proxy, "open.test", Some("203.0.113.7")).await;
    assert_eq!(status, 403, "the real client is in the deny list");
    // A client cannot hide behind a forged hop on the left.
    let (status, _) = get(&proxy, "open.test", Some("198.51.100.1, 203.0.113.7")).await;
    assert_eq!(status, 403);
    let (status, body) = get(&proxy, "open.test", Some("203.0.113.7, ::1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-client"], "::1");
    // Forwarding headers carry the hop that connected: the trusted proxy.
    assert_eq!(
        body["headers"]["x-forwarded-for"],
        "203.0.113.7, ::1, 127.0.0.1"
    );
    let (status, _) = get(&proxy, "allow.test", Some("10.20.30.40")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invalid_cidrs_are_refused_with_their_path() {
    let (ok, err) = check_config(
        r#"
listeners: { http: "127.0.0.1:0" }
client_ip: { trusted_proxies: ["10.0.0.0/8", "10.0.0.0/40"] }
tenants: [{ name: t }]
domains:
  - { hosts: [a.test], tenant: t, ip_rules: { deny: [nope] }, routes: [{ path: /, respond: { status: 200 } }] }
"#,
    );
    assert!(!ok);
    assert!(err.contains("client_ip.trusted_proxies[1]"), "{err}");
    assert!(err.contains("domains[0].ip_rules.deny[0]"), "{err}");
}

/// Headers an origin builds URLs or routes by (`Forwarded` host and proto,
/// `X-Forwarded-Port`, `X-Forwarded-Prefix`) are the proxy's word unless a
/// trusted proxy sent them; `X-Original-URL` and `X-Rewrite-URL` (which
/// IIS and Symfony route by, after the proxy routed on the path) never pass.
/// None of them is in the cache key, so a client's value would be cached for
/// everyone.
#[tokio::test]
async fn forwarding_headers_are_the_proxys_unless_a_trusted_proxy_sent_them() {
    let up = Upstream::start("app");
    let proxy = Proxy::start(&config(up.addr, "")).await;
    let port = proxy.http.port();
    let send = || async {
        let r = proxy
            .client(&["open.test"])
            .get(proxy.url("open.test", "/"))
            .header("forwarded", "for=127.0.0.9;host=evil.test;proto=https")
            .header("x-forwarded-port", "1")
            .header("x-forwarded-prefix", "/evil")
            .header("x-original-url", "/admin")
            .header("x-rewrite-url", "/admin")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["headers"].clone()
    };
    let ours = format!("for=127.0.0.1;host=\"open.test:{port}\";proto=http");
    let h = send().await;
    assert_eq!(h["forwarded"], ours.as_str(), "{h}");
    assert_eq!(h["x-forwarded-port"], port.to_string(), "{h}");
    for stripped in ["x-forwarded-prefix", "x-original-url", "x-rewrite-url"] {
        assert!(h.get(stripped).is_none(), "{stripped} passed: {h}");
    }

    // From a trusted proxy: its elements are kept and ours appended; its
    // port and prefix stand. The URL overrides still never pass.
    proxy.write_config(&config(
        up.addr,
        "client_ip: { trusted_proxies: [127.0.0.1/32], header: forwarded }",
    ));
    proxy.wait_version(2).await;
    let h = send().await;
    assert_eq!(
        h["forwarded"],
        format!("for=127.0.0.9;host=evil.test;proto=https, {ours}"),
        "{h}"
    );
    assert_eq!(h["x-forwarded-port"], "1", "{h}");
    assert_eq!(h["x-forwarded-prefix"], "/evil", "{h}");
    for stripped in ["x-original-url", "x-rewrite-url"] {
        assert!(h.get(stripped).is_none(), "{stripped} passed: {h}");
    }
}
