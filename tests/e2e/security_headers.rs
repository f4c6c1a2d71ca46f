//! Security response headers: presets, overrides, HSTS on HTTPS only,
//! an application's own policy kept, product headers stripped.

use crate::support::*;

fn https_client(proxy: &Proxy, cert: &TestCert, host: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .resolve(host, proxy.https)
        .build()
        .unwrap()
}

#[tokio::test]
async fn presets_add_what_is_missing_hsts_only_over_https_and_product_headers_go() {
    let up = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(
        dir.path(),
        "s",
        &["strict.test", "basic.test", "plain.test"],
    );
    let cfg = format!(
        r#"
listeners:
  http: "127.0.0.1:{{http}}"
  https: "127.0.0.1:{{https}}"
  internal: "127.0.0.1:{{internal}}"
server: {{ threads: 1, grace_period: 1s }}
tenants: [{{ name: t }}]
certificates: [{{ name: s, cert_path: s.crt, key_path: s.key }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{up}" }}] }}]
domains:
  - hosts: [strict.test]
    tenant: t
    certificate: s
    security_headers: {{ preset: strict, referrer_policy: same-origin }}
    routes:
      - {{ path: /local, respond: {{ status: 200, body: "local" }} }}
      - {{ path: /, pool: p }}
  - hosts: [basic.test]
    tenant: t
    certificate: s
    security_headers: {{ preset: basic, hsts: {{ max_age: 1d }}, strip_server_headers: false }}
    routes: [{{ path: /, pool: p }}]
  - hosts: [plain.test]
    tenant: t
    certificate: s
    routes: [{{ path: /, pool: p }}]
"#,
        up = up.addr
    );
    let proxy = Proxy::start_in(dir, &cfg).await;

    // Strict over HTTPS: everything, HSTS included; the upstream's own framing
    // policy is kept, its product headers are not.
    let r = https_client(&proxy, &cert, "strict.test")
        .get(format!(
            "https://strict.test:{}/branded",
            proxy.https.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(
        h["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["x-frame-options"], "SAMEORIGIN",
        "the application's own value wins"
    );
    assert_eq!(h["content-security-policy"], "frame-ancestors 'none'");
    assert_eq!(
        h["referrer-policy"], "same-origin",
        "the field overrides the preset"
    );
    assert!(h["permissions-policy"]
        .to_str()
        .unwrap()
        .contains("camera=()"));
    assert!(h.get("server").is_none(), "{h:?}");
    assert!(h.get("x-powered-by").is_none(), "{h:?}");

    // Over plain HTTP no HSTS (RFC 6797), the rest the same; local responses too.
    let client = proxy.client(&["strict.test", "basic.test", "plain.test"]);
    let r = client
        .get(proxy.url("strict.test", "/local"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["referrer-policy"], "same-origin");
    let r = client
        .get(proxy.url("strict.test", "/branded"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    // Basic with its own HSTS, product headers kept on request.
    let r = https_client(&proxy, &cert, "basic.test")
        .get(format!("https://basic.test:{}/branded", proxy.https.port()))
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["strict-transport-security"], "max-age=86400");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert_eq!(h["content-security-policy"], "frame-ancestors 'self'");
    assert_eq!(h["server"], "Apache/2.4.1 (Unix)");
    assert!(h.get("permissions-policy").is_none());

    // No policy: the response passes as the upstream sent it.
    let r = client
        .get(proxy.url("plain.test", "/branded"))
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["x-powered-by"], "PHP/5.6.40");
    assert!(h.get("x-content-type-options").is_none());
    assert!(h.get("content-security-policy").is_none());
}
