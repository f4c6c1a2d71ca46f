//! Upstream TLS (verification, custom CA, SNI) and upstream HTTP/2 (h2 via ALPN, h2c).

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn upstream_tls_verification_custom_ca_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path(), "upstream", &["upstream.internal"]);
    let tls_up = Upstream::start_tls("tls", &cert);
    let plain_up = Upstream::start("plain");
    let cfg = format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools:
  - {{ name: trusted, tenant: t, tls: {{ sni: upstream.internal, ca_path: upstream.crt }}, targets: [{{ addr: "{tls}" }}] }}
  - {{ name: untrusted, tenant: t, tls: {{ sni: upstream.internal }}, targets: [{{ addr: "{tls}" }}] }}
  - {{ name: wrong-name, tenant: t, tls: {{ sni: other.internal, ca_path: upstream.crt }}, targets: [{{ addr: "{tls}" }}] }}
  - {{ name: noverify, tenant: t, tls: {{ verify: false }}, targets: [{{ addr: "{tls}" }}] }}
  - {{ name: h2-tls, tenant: t, http2: true, tls: {{ sni: upstream.internal, ca_path: upstream.crt }}, targets: [{{ addr: "{tls}" }}] }}
  - {{ name: h2c, tenant: t, http2: true, targets: [{{ addr: "{plain}" }}] }}
domains:
  - hosts: [u.test]
    tenant: t
    routes:
      - {{ path: /trusted, pool: trusted }}
      - {{ path: /untrusted, pool: untrusted }}
      - {{ path: /wrong-name, pool: wrong-name }}
      - {{ path: /noverify, pool: noverify }}
      - {{ path: /h2-tls, pool: h2-tls }}
      - {{ path: /h2c, pool: h2c }}
"#,
        tls = tls_up.addr,
        plain = plain_up.addr
    );
    let proxy = Proxy::start_in(dir, &cfg).await;
    let c = proxy.client(&["u.test"]);
    let get = |path: &'static str| {
        let c = c.clone();
        let url = proxy.url("u.test", path);
        async move { c.get(url).send().await.unwrap() }
    };

    let r = get("/trusted").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["server"], "tls");
    assert_eq!(body["version"], "HTTP/1.1");

    // The certificate is not in the system roots, or is for another name: refused.
    assert_eq!(get("/untrusted").await.status(), 502);
    assert_eq!(get("/wrong-name").await.status(), 502);
    assert_eq!(get("/noverify").await.status(), 200);

    let body: Value = get("/h2-tls").await.json().await.unwrap();
    assert_eq!(body["version"], "HTTP/2.0", "h2 negotiated by ALPN");
    let body: Value = get("/h2c").await.json().await.unwrap();
    assert_eq!(
        (body["server"].as_str(), body["version"].as_str()),
        (Some("plain"), Some("HTTP/2.0"))
    );
}
