//! TLS termination: per-SNI certificates, unknown SNI, HTTP/2 via ALPN, force_https.

use crate::support::*;

struct TlsSetup {
    proxy: Proxy,
    a: TestCert,
    b: TestCert,
    _up: Upstream,
}

async fn start() -> TlsSetup {
    let up = Upstream::start("tls-up");
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let b = make_cert(dir.path(), "b", &["b.test", "*.b.test"]);
    let cfg = format!(
        r#"
listeners:
  http: "127.0.0.1:{{http}}"
  https: "127.0.0.1:{{https}}"
  internal: "127.0.0.1:{{internal}}"
server: {{ threads: 1, grace_period: 1s }}
tenants: [{{ name: t }}]
certificates:
  - {{ name: a, cert_path: a.crt, key_path: a.key }}
  - name: b
    cert_pem: |
{}
    key_pem: |
{}
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{}" }}] }}]
domains:
  - {{ hosts: [a.test], tenant: t, certificate: a, force_https: true, routes: [{{ path: /, pool: p }}] }}
  - {{ hosts: [b.test, "*.b.test"], tenant: t, certificate: b, routes: [{{ path: /, pool: p }}] }}
  - {{ hosts: [stolen.test, "*.a.test"], tenant: t, certificate: a, routes: [{{ path: /, pool: p }}] }}
"#,
        indent(&std::fs::read_to_string(&b.cert_path).unwrap()),
        indent(&std::fs::read_to_string(&b.key_path).unwrap()),
        up.addr
    );
    let proxy = Proxy::start_in(dir, &cfg).await;
    TlsSetup {
        proxy,
        a,
        b,
        _up: up,
    }
}

/// Issue 22, item 9: a domain naming a certificate that is not valid for
/// its hosts does not make the node present that certificate for them.
#[tokio::test]
async fn a_certificate_is_never_presented_for_a_host_it_does_not_cover() {
    let s = start().await;
    let https = s.proxy.https;
    assert_eq!(presented_cert(https, "a.test").await.unwrap(), s.a.cert_der);
    for sni in ["stolen.test", "x.a.test"] {
        assert!(presented_cert(https, sni).await.is_err(), "{sni}");
    }
}

fn indent(pem: &str) -> String {
    pem.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Handshakes with `sni` and returns the leaf certificate the proxy presented.
async fn presented_cert(addr: std::net::SocketAddr, sni: &str) -> Result<Vec<u8>, String> {
    presented_cert_with(addr, sni, rustls::DEFAULT_VERSIONS).await
}

async fn presented_cert_with(
    addr: std::net::SocketAddr,
    sni: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Vec<u8>, String> {
    let tls = connect_tls(addr, sni, versions).await?;
    let (_, conn) = tls.get_ref();
    if let [only] = versions {
        assert_eq!(
            conn.protocol_version(),
            Some(only.version),
            "negotiated version"
        );
    }
    Ok(conn.peer_certificates().unwrap()[0].to_vec())
}

/// Sends one HTTP/1.1 request for `host` on a TLS connection made for `sni`.
async fn request_over_sni(addr: std::net::SocketAddr, sni: &str, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = connect_tls(addr, sni, rustls::DEFAULT_VERSIONS)
        .await
        .unwrap();
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn connect_tls(
    addr: std::net::SocketAddr,
    sni: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tls_handshake(tcp, sni, versions).await
}

fn https_client(setup: &TlsSetup, http2: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(setup.a.cert_pem.as_bytes()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(setup.b.cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none());
    for h in ["a.test", "b.test", "x.b.test"] {
        b = b.resolve(h, setup.proxy.https);
    }
    if !http2 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

#[tokio::test]
async fn each_sni_gets_its_own_certificate_and_unknown_sni_is_rejected() {
    let s = start().await;
    assert_eq!(
        presented_cert(s.proxy.https, "a.test").await.unwrap(),
        s.a.cert_der
    );
    assert_eq!(
        presented_cert(s.proxy.https, "b.test").await.unwrap(),
        s.b.cert_der
    );
    assert_eq!(
        presented_cert(s.proxy.https, "X.B.test").await.unwrap(),
        s.b.cert_der,
        "wildcard SNI, any case"
    );
    let err = presented_cert(s.proxy.https, "unknown.test")
        .await
        .unwrap_err();
    assert!(!err.is_empty());

    // Verified clients succeed with each name's own trust anchor.
    let c = https_client(&s, false);
    for host in ["a.test", "b.test", "x.b.test"] {
        let r = c
            .get(format!("https://{host}:{}/", s.proxy.https.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    }
}

#[tokio::test]
async fn http2_over_tls_via_alpn() {
    let s = start().await;
    let c = https_client(&s, true);
    for _ in 0..5 {
        let r = c
            .get(format!("https://b.test:{}/h2", s.proxy.https.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        // The HTTP/1.1 upstream got a Host header built from :authority.
        assert_eq!(
            body["headers"]["host"],
            format!("b.test:{}", s.proxy.https.port())
        );
    }
    let log = s.proxy.log();
    assert!(
        log.contains("\"version\":\"HTTP/2.0\""),
        "access log records h2"
    );
}

#[tokio::test]
async fn force_https_redirects_plain_http() {
    let s = start().await;
    let c = s.proxy.client(&["a.test", "b.test"]);
    let r = c
        .post(s.proxy.url("a.test", "/login?next=/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://a.test:{}/login?next=/x", s.proxy.https.port())
    );
    // b.test does not force HTTPS.
    assert_eq!(
        c.get(s.proxy.url("b.test", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn tls12_and_tls13_are_both_served() {
    let s = start().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let cert = presented_cert_with(s.proxy.https, "a.test", &[version])
            .await
            .unwrap();
        assert_eq!(cert, s.a.cert_der, "{version:?}");
    }
}

#[tokio::test]
async fn certificates_and_sni_policy_swap_on_reload() {
    let s = start().await;
    let config = std::fs::read_to_string(&s.proxy.config_path).unwrap();
    // Renewal: new files for a.test, picked up on SIGHUP (the config itself is unchanged).
    let dir = s.proxy.dir.path();
    let renewed = make_cert(dir, "a", &["a.test"]);
    assert_ne!(renewed.cert_der, s.a.cert_der);
    std::process::Command::new("kill")
        .arg("-HUP")
        .arg(s.proxy.pid().to_string())
        .status()
        .unwrap();
    s.proxy.wait_version(2).await;
    assert_eq!(
        presented_cert(s.proxy.https, "a.test").await.unwrap(),
        renewed.cert_der
    );

    // Unknown SNI: rejected by default, served the default certificate when configured.
    assert!(presented_cert(s.proxy.https, "unknown.test").await.is_err());
    let with_default = config.replace(
        "tenants:",
        "tls: { unknown_sni: default_certificate, default_certificate: b }\ntenants:",
    );
    std::fs::write(&s.proxy.config_path, with_default).unwrap();
    s.proxy.wait_version(3).await;
    assert_eq!(
        presented_cert(s.proxy.https, "unknown.test").await.unwrap(),
        s.b.cert_der
    );
    assert_eq!(
        presented_cert(s.proxy.https, "a.test").await.unwrap(),
        renewed.cert_der
    );
}

#[tokio::test]
async fn a_connection_only_carries_requests_its_certificate_covers() {
    let s = start().await;
    let port = s.proxy.https.port();
    // Made for b.test, asking for a.test (another certificate): 421.
    let resp = request_over_sni(s.proxy.https, "b.test", &format!("a.test:{port}")).await;
    assert!(resp.starts_with("HTTP/1.1 421"), "{resp}");
    assert!(resp.contains("misdirected_request"));
    // Coalescing under one certificate is fine: *.b.test's certificate covers b.test.
    let resp = request_over_sni(s.proxy.https, "x.b.test", &format!("b.test:{port}")).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = request_over_sni(s.proxy.https, "a.test", &format!("a.test:{port}")).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn certificate_expiry_is_exported_and_a_near_expiry_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let lasting = make_cert(dir.path(), "lasting", &["lasting.test"]);
    // One that ends in five days.
    let mut params = rcgen::CertificateParams::new(vec!["soon.test".to_string()]).unwrap();
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(5 * 24 * 3600)).into();
    let key = rcgen::KeyPair::generate().unwrap();
    let soon = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("soon.crt"), soon.pem()).unwrap();
    std::fs::write(dir.path().join("soon.key"), key.serialize_pem()).unwrap();
    let cfg = r#"
listeners:
  http: "127.0.0.1:{http}"
  https: "127.0.0.1:{https}"
  internal: "127.0.0.1:{internal}"
server: { threads: 1, grace_period: 1s, upgrade_sock: "{dir}/upgrade.sock" }
tenants: [{ name: t }]
certificates:
  - { name: lasting, cert_path: lasting.crt, key_path: lasting.key }
  - { name: soon, cert_path: soon.crt, key_path: soon.key }
domains:
  - { hosts: [lasting.test], tenant: t, certificate: lasting, routes: [{ path: /, respond: { status: 200 } }] }
  - { hosts: [soon.test], tenant: t, certificate: soon, routes: [{ path: /, respond: { status: 200 } }] }
  - { hosts: [plain.test], tenant: t, routes: [{ path: /, respond: { status: 200 } }] }
"#;
    let _ = lasting;
    let proxy = Proxy::start_in(dir, cfg).await;
    let left = |host: &'static str| {
        let proxy = &proxy;
        async move {
            proxy
                .metric(
                    "gatehouse_certificate_expiry_seconds",
                    &[("tenant", "t"), ("domain", host)],
                )
                .await
        }
    };
    let soon_left = left("soon.test").await.expect("soon.test is exported");
    assert!(
        (4.0 * 86400.0..=5.0 * 86400.0).contains(&soon_left),
        "{soon_left}"
    );
    assert!(left("lasting.test").await.unwrap() > 30.0 * 86400.0);
    assert_eq!(left("plain.test").await, None, "no certificate, no series");
    let log = proxy.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("certificate expires within 14 days"))
        .collect();
    assert!(!warnings.is_empty(), "the near expiry is logged");
    assert!(
        warnings
            .iter()
            .all(|l| l.contains("soon.test") && !l.contains("lasting.test")),
        "{warnings:?}"
    );
}
