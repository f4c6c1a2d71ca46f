//! The `gatehouse check` command and the example configs.

use std::process::Command;

use crate::support::*;

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn check_lists_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
listeners: { http: "127.0.0.1:8080", https: "nope" }
tenants: [{ name: a }]
pools: [{ name: api, tenant: a, targets: [{ addr: "127.0.0.1:1", weight: 0 }] }]
domains:
  - { hosts: [a.test], tenant: a, routes: [{ path: /, pool: api }] }
  - { hosts: [b.test], tenant: ghost, routes: [{ path: /, pool: nope }] }
  - { hosts: [c.test], tenant: a, routes: [{ path: /, pool: api }, { path: /x, pool: api2 }] }
"#,
    )
    .unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "listeners.https: invalid listen address \"nope\"",
        "pools[0].targets[0].weight: weight must be 1..=1000, got 0",
        "domains[1].tenant: unknown tenant \"ghost\"",
        "domains[1].routes[0].pool: unknown pool \"nope\"",
        "domains[2].routes[1].pool: unknown pool \"api2\"",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(stderr.contains("5 error(s)"), "{stderr}");
}

#[test]
fn check_reports_a_mismatched_key_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let b = make_cert(dir.path(), "b", &["b.test"]);
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
listeners: {{ https: "127.0.0.1:8443" }}
tenants: [{{ name: a }}]
certificates: [{{ name: c, cert_path: "{}", key_path: "{}" }}]
domains: [{{ hosts: [a.test], tenant: a, certificate: c }}]
"#,
            a.cert_path.display(),
            b.key_path.display()
        ),
    )
    .unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificates[0]: private key does not match the certificate"),
        "{stderr}"
    );
}

#[test]
fn every_example_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let out = check(&path);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected the example configs, found {checked}"
    );
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let up = Upstream::start("m");
    let proxy = Proxy::start(&format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{}" }}] }}]
domains: [{{ hosts: [m.test], tenant: t, routes: [{{ path: /, pool: p }}] }}]
"#,
        up.addr
    ))
    .await;
    let c = proxy.client(&["m.test", "other.test"]);
    for _ in 0..3 {
        c.get(proxy.url("m.test", "/")).send().await.unwrap();
    }
    c.get(proxy.url("other.test", "/")).send().await.unwrap();
    // Requests are counted in the logging phase, which may finish just after the response.
    eventually(
        std::time::Duration::from_secs(5),
        "4 requests counted",
        || async {
            let total: f64 = proxy
                .metrics()
                .await
                .samples
                .iter()
                .filter(|s| s.metric == "gatehouse_requests_total")
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v) => v,
                    _ => 0.0,
                })
                .sum();
            (total >= 4.0).then_some(())
        },
    )
    .await;
    let scrape = proxy.metrics().await;
    let find = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value.clone())
    };
    assert!(matches!(
        find("gatehouse_requests_total", &[("tenant", "t"), ("domain", "m.test"), ("status_class", "2xx")]),
        Some(prometheus_parse::Value::Counter(v)) if v == 3.0
    ));
    assert!(matches!(
        find("gatehouse_requests_total", &[("domain", "unknown"), ("status_class", "4xx")]),
        Some(prometheus_parse::Value::Counter(v)) if v == 1.0
    ));
    assert!(find("gatehouse_request_duration_seconds", &[("tenant", "t")]).is_some());
    let target = up.addr.to_string();
    assert!(matches!(
        find("gatehouse_upstream_healthy", &[("pool", "p"), ("target", target.as_str())]),
        Some(prometheus_parse::Value::Gauge(v)) if v == 1.0
    ));
    assert!(find("gatehouse_config_version", &[]).is_some());
    assert!(find("gatehouse_config_reload_failures_total", &[]).is_some());
    let health = reqwest::get(format!("http://{}/healthz", proxy.internal))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
