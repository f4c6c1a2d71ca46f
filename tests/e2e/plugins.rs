//! WebAssembly policy plugins through the real proxy: the example plugins do
//! their jobs, and hostile ones hurt only their own requests.
//!
//! Plugins are built from `plugins/` at test time with `gatehouse plugin build`.
//! Functional tests give bindings a 100 ms deadline instead of the default
//! 5 ms: unoptimised test builds are slow, and the suite runs many proxies at
//! once on two cores.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn json(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

#[tokio::test]
async fn header_edits_and_local_responses_apply() {
    let up = Upstream::start("web");
    let wasm = plugin("examples/add-headers");
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: web, tenant: acme, targets: [{{ addr: "{}" }}] }}]
plugins: [{{ name: add-headers, tenant: acme, path: "{}" }}]
domains:
  - hosts: [example.test]
    tenant: acme
    plugins:
      - plugin: add-headers
        timeout: 100ms
        config: {{ request: {{ x-from-plugin: "yes" }}, response: {{ x-plugin-response: "hello" }} }}
    routes:
      - {{ path: /, pool: web }}
      - {{ path: /local, respond: {{ status: 200, body: "local" }} }}
"#,
        up.addr,
        wasm.display()
    ))
    .await;
    let c = proxy.client(&["example.test"]);

    let r = c.get(proxy.url("example.test", "/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-plugin-response"], "hello");
    let body = json(r).await;
    assert_eq!(body["headers"]["x-from-plugin"], "yes", "{body}");

    // Local actions go through on-response too.
    let r = c
        .get(proxy.url("example.test", "/local"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-plugin-response"], "hello");
    assert_eq!(r.text().await.unwrap(), "local");

    assert_eq!(
        proxy
            .metric(
                "gatehouse_plugin_calls_total",
                &[
                    ("plugin", "add-headers"),
                    ("hook", "on_request"),
                    ("outcome", "ok")
                ]
            )
            .await,
        Some(2.0)
    );
    // The compiled component went to the private cache, keyed by its SHA-256.
    let cached: Vec<_> = std::fs::read_dir(proxy.dir.path().join("plugin-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let digest =
        hex(ring::digest::digest(&ring::digest::SHA256, &std::fs::read(&wasm).unwrap()).as_ref());
    assert!(
        cached
            .iter()
            .any(|f| f.starts_with(&digest) && f.ends_with(".cwasm")),
        "{cached:?}"
    );
}

#[tokio::test]
async fn route_hint_switches_pool_within_the_tenant_only() {
    let stable = Upstream::start("stable");
    let canary = Upstream::start("canary");
    let other = Upstream::start("other");
    let wasm = plugin("examples/canary");
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}, {{ name: beta }}]
pools:
  - {{ name: stable, tenant: acme, targets: [{{ addr: "{}" }}] }}
  - {{ name: canary, tenant: acme, targets: [{{ addr: "{}" }}] }}
  - {{ name: beta-pool, tenant: beta, targets: [{{ addr: "{}" }}] }}
plugins: [{{ name: canary, tenant: acme, path: "{}" }}]
domains:
  - hosts: [app.test]
    tenant: acme
    routes:
      - path: /
        pool: stable
        plugins: [{{ plugin: canary, timeout: 100ms, config: {{ pool: canary, percent: 0, header: x-canary, cookie: canary }} }}]
      - path: /steal
        pool: stable
        plugins: [{{ plugin: canary, timeout: 100ms, config: {{ pool: beta-pool, percent: 100 }} }}]
"#,
        stable.addr,
        canary.addr,
        other.addr,
        wasm.display()
    ))
    .await;
    let c = proxy.client(&["app.test"]);
    let get = |path: &str, header: Option<(&str, &str)>| {
        let mut rb = c.get(proxy.url("app.test", path));
        if let Some((k, v)) = header {
            rb = rb.header(k, v);
        }
        rb.send()
    };

    let r = get("/", None).await.unwrap();
    assert_eq!(r.headers()["x-served-by-canary"], "0");
    assert_eq!(json(r).await["server"], "stable");

    let r = get("/", Some(("x-canary", "1"))).await.unwrap();
    assert_eq!(r.headers()["x-served-by-canary"], "1");
    let body = json(r).await;
    assert_eq!(body["server"], "canary");
    assert_eq!(body["headers"]["x-canary"], "1");

    let r = get("/", Some(("cookie", "a=b; canary=true")))
        .await
        .unwrap();
    assert_eq!(json(r).await["server"], "canary");

    // A hint naming another tenant's pool is an invalid decision (fail closed: 500).
    let r = get("/steal", None).await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(json(r).await["error"], "plugin_failed");
    assert_eq!(other.hits(), 0);
    assert!(proxy.log().contains("is not a pool of this tenant"));
}

#[tokio::test]
async fn api_key_auth_blocks_and_admits() {
    let up = Upstream::start("api");
    let wasm = plugin("examples/api-key-auth");
    let key = "k3y-for-ci";
    let digest = hex(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref());
    let secret = "token-secret";
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: api, tenant: acme, targets: [{{ addr: "{}" }}] }}]
plugins: [{{ name: auth, tenant: acme, path: "{}" }}]
domains:
  - hosts: [api.test]
    tenant: acme
    plugins: [{{ plugin: auth, timeout: 100ms, config: {{ keys: {{ ci: "{digest}" }}, hmac_secret: "{secret}" }} }}]
    routes: [{{ path: /, pool: api }}]
"#,
        up.addr,
        wasm.display()
    ))
    .await;
    let c = proxy.client(&["api.test"]);
    let url = proxy.url("api.test", "/orders");

    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("Bearer"));
    let r = c
        .get(&url)
        .header("x-api-key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(up.hits(), 0, "refused requests never reach the upstream");

    let r = c.get(&url).header("x-api-key", key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["headers"]["x-auth-subject"], "ci");
    assert!(
        body["headers"].get("x-api-key").is_none(),
        "the key is not forwarded: {body}"
    );

    let token = |subject: &str, expiry: u64| {
        let signed = format!("{subject}.{expiry}");
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        format!(
            "{signed}.{}",
            hex(ring::hmac::sign(&k, signed.as_bytes()).as_ref())
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = c
        .get(&url)
        .bearer_auth(token("alice", now + 300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["headers"]["x-auth-subject"], "alice");
    let r = c
        .get(&url)
        .bearer_auth(token("alice", now - 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "expired token");
    let forged = token("alice", now + 300).replace("alice", "admin");
    let r = c.get(&url).bearer_auth(forged).send().await.unwrap();
    assert_eq!(r.status(), 403, "subject changed after signing");
    assert_eq!(
        proxy
            .metric(
                "gatehouse_plugin_counter_total",
                &[("plugin", "auth"), ("name", "refused")]
            )
            .await,
        Some(3.0)
    );
}

#[tokio::test]
async fn kv_state_persists_per_tenant_and_instances_share_nothing() {
    let up = Upstream::start("web");
    let wasm = plugin("hostile/state-probe");
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}, {{ name: beta }}]
pools:
  - {{ name: web, tenant: acme, targets: [{{ addr: "{addr}" }}] }}
  - {{ name: beta-web, tenant: beta, targets: [{{ addr: "{addr}" }}] }}
plugins:
  - {{ name: probe, tenant: acme, path: "{wasm}" }}
  - {{ name: beta-probe, tenant: beta, path: "{wasm}" }}
domains:
  - {{ hosts: [a.test], tenant: acme, plugins: [{{ plugin: probe, timeout: 100ms }}], routes: [{{ path: /, pool: web }}] }}
  - {{ hosts: [b.test], tenant: beta, plugins: [{{ plugin: beta-probe, timeout: 100ms }}], routes: [{{ path: /, pool: beta-web }}] }}
"#,
        addr = up.addr,
        wasm = wasm.display()
    ))
    .await;
    let c = proxy.client(&["a.test", "b.test"]);
    for i in 1..=3 {
        let r = c.get(proxy.url("a.test", "/")).send().await.unwrap();
        // The instance on-request used, kept for on-response: its second call.
        assert_eq!(
            r.headers()["x-probe-global-calls"],
            "2",
            "response hook, request {i}"
        );
        assert_eq!(r.headers()["x-probe-kv-hits"], i.to_string().as_str());
        let body = json(r).await;
        assert_eq!(
            body["headers"]["x-probe-global-calls"], "1",
            "request hook, request {i}"
        );
        assert_eq!(body["headers"]["x-probe-kv-hits"], i.to_string());
    }
    // Same plugin bytes, another tenant: its own store.
    let r = c.get(proxy.url("b.test", "/")).send().await.unwrap();
    assert_eq!(r.headers()["x-probe-kv-hits"], "1");
}

#[tokio::test]
async fn a_request_keeps_its_instance_until_its_response_then_releases_it() {
    let up = Upstream::start("web");
    let wasm = plugin("hostile/state-probe");
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: web, tenant: acme, targets: [{{ addr: "{addr}" }}] }}]
plugins: [{{ name: probe, tenant: acme, path: "{wasm}" }}]
domains:
  - {{ hosts: [a.test], tenant: acme, plugins: [{{ plugin: probe, timeout: 100ms }}], routes: [{{ path: /, pool: web }}] }}
"#,
        addr = up.addr,
        wasm = wasm.display()
    ))
    .await;
    let c = proxy.client(&["a.test"]);
    let pending: Vec<_> = (0..3)
        .map(|_| tokio::spawn(c.get(proxy.url("a.test", "/hold")).send()))
        .collect();
    eventually(
        Duration::from_secs(10),
        "3 requests held upstream",
        || async { (up.in_hold.load(std::sync::atomic::Ordering::SeqCst) == 3).then_some(()) },
    )
    .await;
    // Each waits for its response with the instance its on-request used.
    assert_eq!(
        proxy.metric("gatehouse_plugin_instances_kept", &[]).await,
        Some(3.0)
    );
    up.release.notify_waiters();
    for p in pending {
        let r = p.await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-probe-global-calls"], "2");
    }
    eventually(
        Duration::from_secs(10),
        "kept instances released",
        || async {
            (proxy.metric("gatehouse_plugin_instances_kept", &[]).await == Some(0.0)).then_some(())
        },
    )
    .await;
    assert_eq!(
        proxy
            .metric(
                "gatehouse_plugin_instances_not_kept_total",
                &[("plugin", "probe")]
            )
            .await,
        Some(0.0)
    );
}

fn hostile_config(up: &Upstream, wasm: &std::path::Path, name: &str, extra: &str) -> String {
    format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: evil }}, {{ name: good }}]
pools:
  - {{ name: evil-web, tenant: evil, targets: [{{ addr: "{addr}" }}] }}
  - {{ name: good-web, tenant: good, targets: [{{ addr: "{addr}" }}] }}
plugins: [{{ name: {name}, tenant: evil, path: "{wasm}" }}]
domains:
  - hosts: [evil.test]
    tenant: evil
    routes:
      - {{ path: /, pool: evil-web, plugins: [{{ plugin: {name}{extra} }}] }}
      - {{ path: /open, pool: evil-web, plugins: [{{ plugin: {name}, failure_mode: open{extra} }}] }}
  - {{ hosts: [good.test], tenant: good, routes: [{{ path: /, pool: good-web }}] }}
"#,
        addr = up.addr,
        wasm = wasm.display()
    )
}

#[tokio::test]
async fn infinite_loop_stops_at_the_deadline_and_spares_other_tenants() {
    let up = Upstream::start("web");
    let wasm = plugin("hostile/infinite-loop");
    let proxy = Proxy::start(&hostile_config(&up, &wasm, "spin", ", timeout: 20ms")).await;
    let c = proxy.client(&["evil.test", "good.test"]);

    let started = Instant::now();
    let r = c.get(proxy.url("evil.test", "/")).send().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.status(), 503, "fail closed on timeout");
    assert_eq!(json(r).await["error"], "plugin_failed");
    assert!(
        elapsed >= Duration::from_millis(20),
        "stopped early: {elapsed:?}"
    );
    // Deadline + one 1 ms tick, plus scheduling slack on a loaded 2-core machine.
    assert!(
        elapsed < Duration::from_millis(250),
        "stopped late: {elapsed:?}"
    );
    assert_eq!(
        proxy
            .metric(
                "gatehouse_plugin_calls_total",
                &[("plugin", "spin"), ("outcome", "timeout")]
            )
            .await,
        Some(1.0)
    );

    // Fail open: the request goes on as if the plugin had said "continue".
    let r = c.get(proxy.url("evil.test", "/open")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["server"], "web");

    // Hammer the loop while another tenant's requests keep flowing.
    let hammer = {
        let c = c.clone();
        let url = proxy.url("evil.test", "/");
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(2);
            let mut statuses = Vec::new();
            while Instant::now() < until {
                statuses.push(c.get(&url).send().await.unwrap().status().as_u16());
            }
            statuses
        })
    };
    let mut latencies = Vec::new();
    for _ in 0..40 {
        let t = Instant::now();
        let r = c.get(proxy.url("good.test", "/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        latencies.push(t.elapsed());
    }
    let statuses = hammer.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    assert!(
        p50 < Duration::from_millis(50),
        "other tenant's median latency {p50:?}"
    );
    // After repeated timeouts the circuit opened: later calls did not even run.
    let open = proxy
        .metric(
            "gatehouse_plugin_calls_total",
            &[("plugin", "spin"), ("outcome", "circuit_open")],
        )
        .await
        .unwrap_or(0.0);
    assert!(open > 0.0, "circuit never opened");
    assert_eq!(
        proxy
            .metric("gatehouse_plugin_circuit_open", &[("plugin", "spin")])
            .await,
        Some(1.0)
    );
    assert!(proxy.log().contains("plugin circuit opened"));
}

#[tokio::test]
async fn memory_bomb_stops_at_the_cap() {
    let up = Upstream::start("web");
    let wasm = plugin("hostile/memory-bomb");
    let proxy = Proxy::start(&hostile_config(
        &up,
        &wasm,
        "bomb",
        ", memory_limit_mb: 8, timeout: 100ms",
    ))
    .await;
    let c = proxy.client(&["evil.test", "good.test"]);
    let r = c.get(proxy.url("evil.test", "/")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        proxy
            .metric(
                "gatehouse_plugin_calls_total",
                &[("plugin", "bomb"), ("outcome", "out_of_memory")]
            )
            .await,
        Some(1.0)
    );
    assert_eq!(
        c.get(proxy.url("good.test", "/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn trap_is_contained_to_its_request() {
    let up = Upstream::start("web");
    let wasm = plugin("hostile/trap");
    let proxy = Proxy::start(&hostile_config(&up, &wasm, "trap", ", timeout: 100ms")).await;
    let c = proxy.client(&["evil.test"]);
    let r = c.get(proxy.url("evil.test", "/boom")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    // The next request gets a fresh instance and is served.
    let r = c.get(proxy.url("evil.test", "/fine")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["headers"]["x-trap-plugin"], "survived");
    assert_eq!(
        proxy
            .metric(
                "gatehouse_plugin_calls_total",
                &[("plugin", "trap"), ("outcome", "trap")]
            )
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn oversized_output_log_floods_and_host_abuse_stay_bounded() {
    let up = Upstream::start("web");
    let huge = plugin("hostile/huge-output");
    let proxy = Proxy::start(&hostile_config(
        &up,
        &huge,
        "huge",
        ", timeout: 100ms, memory_limit_mb: 32",
    ))
    .await;
    let c = proxy.client(&["evil.test"]);
    for path in ["/", "/headers"] {
        let r = c.get(proxy.url("evil.test", path)).send().await.unwrap();
        assert_eq!(r.status(), 500, "{path}");
    }
    assert_eq!(
        proxy
            .metric(
                "gatehouse_plugin_calls_total",
                &[("plugin", "huge"), ("outcome", "invalid_decision")]
            )
            .await,
        Some(2.0)
    );
    drop(proxy);

    let flood = plugin("hostile/log-flood");
    let proxy = Proxy::start(&hostile_config(&up, &flood, "flood", ", timeout: 100ms")).await;
    let c = proxy.client(&["evil.test"]);
    let before = proxy.log().len();
    let r = c.get(proxy.url("evil.test", "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["headers"]["x-flooded"], "1");
    let written = proxy.log().len() - before;
    assert!(
        written < 64 * 1024,
        "a flood of 40 MB of log lines wrote {written} bytes"
    );
    assert!(
        proxy
            .metric("gatehouse_plugin_log_dropped_total", &[("plugin", "flood")])
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    drop(proxy);

    let abuse = plugin("hostile/host-abuse");
    let proxy = Proxy::start(&hostile_config(&up, &abuse, "abuse", ", timeout: 100ms")).await;
    let c = proxy.client(&["evil.test"]);
    let r = c.get(proxy.url("evil.test", "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["headers"]["x-kv-too-large"], "refused");
    assert_eq!(body["headers"]["x-unknown-property"], "none");
    let names = proxy
        .metrics()
        .await
        .samples
        .iter()
        .filter(|s| {
            s.metric == "gatehouse_plugin_counter_total" && s.labels.get("plugin") == Some("abuse")
        })
        .count();
    assert_eq!(names, 32, "counter names are capped per plugin");
}

#[tokio::test]
async fn hot_swap_under_traffic_drops_nothing() {
    let up = Upstream::start("web");
    let v1 = plugin("examples/add-headers");
    let v2 = plugin("hostile/state-probe");
    let config = |wasm: &std::path::Path| {
        format!(
            r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: web, tenant: acme, targets: [{{ addr: "{}" }}] }}]
plugins: [{{ name: policy, tenant: acme, path: "{}" }}]
domains:
  - hosts: [example.test]
    tenant: acme
    plugins: [{{ plugin: policy, timeout: 100ms, config: {{ response: {{ x-policy: v1 }} }} }}]
    routes: [{{ path: /, pool: web }}]
"#,
            up.addr,
            wasm.display()
        )
    };
    let proxy = Proxy::start(&config(&v1)).await;
    let c = proxy.client(&["example.test"]);
    let url = proxy.url("example.test", "/");
    let traffic = {
        let c = c.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let mut seen_v2 = 0;
            let mut statuses = Vec::new();
            // Until the new version has answered for a while.
            while seen_v2 < 50 {
                let r = c.get(&url).send().await.unwrap();
                statuses.push(r.status().as_u16());
                if r.headers().contains_key("x-probe-kv-hits") {
                    seen_v2 += 1;
                }
            }
            statuses
        })
    };
    eventually(Duration::from_secs(10), "traffic on v1", || async {
        let ok = proxy
            .metric(
                "gatehouse_plugin_calls_total",
                &[("plugin", "policy"), ("outcome", "ok")],
            )
            .await
            .unwrap_or(0.0);
        (ok > 20.0).then_some(())
    })
    .await;
    proxy.write_config(&config(&v2));
    proxy.wait_version(2).await;
    let statuses = tokio::time::timeout(Duration::from_secs(30), traffic)
        .await
        .expect("v2 never answered")
        .unwrap();
    assert!(statuses.len() > 50);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// A component built against `gatehouse:plugin@1.0.0`: the WIT of this
/// repository with its version bumped, and a module whose functions do nothing.
fn incompatible_component() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let wit = std::fs::read_to_string(root.join("wit/plugin.wit"))
        .unwrap()
        .replace("gatehouse:plugin@0.1.0", "gatehouse:plugin@1.0.0");
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("plugin.wit", &wit).unwrap();
    let world = resolve.select_world(&[pkg], Some("policy")).unwrap();
    let mut module =
        wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

#[tokio::test]
async fn incompatible_and_malformed_plugins_are_rejected() {
    let up = Upstream::start("web");
    let good = plugin("examples/add-headers");
    let dir = tempfile::tempdir().unwrap();
    let incompatible = dir.path().join("v1.wasm");
    std::fs::write(&incompatible, incompatible_component()).unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm but not really").unwrap();

    let inspect = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["plugin", "inspect"])
            .arg(file)
            .output()
            .unwrap()
    };
    let out = inspect(&good);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("gatehouse:plugin@0.1.0"), "{stdout}");
    assert!(
        stdout.contains("exports: gatehouse:plugin/handler@0.1.0"),
        "{stdout}"
    );
    let out = inspect(&incompatible);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("built for gatehouse:plugin@1.0.0"),
        "{stderr}"
    );
    assert!(stderr.contains("rebuild the plugin"), "{stderr}");
    let out = inspect(&garbage);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly component"));

    // A running proxy keeps its plugin when a reload brings a bad one.
    let config = |wasm: &std::path::Path, sha: Option<&str>| {
        format!(
            r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: web, tenant: acme, targets: [{{ addr: "{}" }}] }}]
plugins: [{{ name: policy, tenant: acme, path: "{}"{} }}]
domains:
  - hosts: [example.test]
    tenant: acme
    plugins: [{{ plugin: policy, timeout: 100ms, config: {{ response: {{ x-policy: kept }} }} }}]
    routes: [{{ path: /, pool: web }}]
"#,
            up.addr,
            wasm.display(),
            sha.map(|s| format!(", sha256: \"{s}\""))
                .unwrap_or_default()
        )
    };
    let proxy = Proxy::start(&config(&good, None)).await;
    let c = proxy.client(&["example.test"]);
    for (bad, expected) in [
        (
            config(&incompatible, None),
            "built for gatehouse:plugin@1.0.0",
        ),
        (config(&garbage, None), "not a WebAssembly component"),
        (config(&good, Some(&"0".repeat(64))), "plugins[0].sha256"),
    ] {
        let failures = proxy
            .metric("gatehouse_config_reload_failures_total", &[])
            .await
            .unwrap();
        proxy.write_config(&bad);
        eventually(Duration::from_secs(10), "reload rejected", || async {
            (proxy
                .metric("gatehouse_config_reload_failures_total", &[])
                .await
                .unwrap()
                > failures)
                .then_some(())
        })
        .await;
        assert!(proxy.log().contains(expected), "log lacks {expected:?}");
        let r = c.get(proxy.url("example.test", "/")).send().await.unwrap();
        assert_eq!(r.headers()["x-policy"], "kept");
    }
    // `gatehouse check` reports the field path.
    std::fs::write(
        dir.path().join("bad.yaml"),
        config(&garbage, None)
            .replace("{dir}", &dir.path().display().to_string())
            .replace("{http}", "0")
            .replace("{internal}", "0"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check", "--config"])
        .arg(dir.path().join("bad.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plugins[0].path"), "{stderr}");
}

#[tokio::test]
async fn the_guide_example_works_as_documented() {
    let up = Upstream::start("web");
    let wasm = plugin("examples/hello");
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: api, tenant: acme, targets: [{{ addr: "{}" }}] }}]
plugins: [{{ name: hello, tenant: acme, path: "{}" }}]
domains:
  - hosts: [api.example.com]
    tenant: acme
    plugins: [{{ plugin: hello, timeout: 100ms, config: {{ required_header: x-api-client }} }}]
    routes: [{{ path: /, pool: api }}]
"#,
        up.addr,
        wasm.display()
    ))
    .await;
    let c = proxy.client(&["api.example.com"]);
    let url = proxy.url("api.example.com", "/");
    assert_eq!(c.get(&url).send().await.unwrap().status(), 403);
    for seen in ["1", "2"] {
        let r = c
            .get(&url)
            .header("x-api-client", "ci")
            .header("x-internal-debug", "secret")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = json(r).await;
        assert_eq!(body["headers"]["x-hello"], "acme");
        assert_eq!(body["headers"]["x-hello-seen"], seen);
        assert!(body["headers"].get("x-internal-debug").is_none());
    }
}

#[tokio::test]
async fn ip_block_refuses_listed_networks_and_countries() {
    let up = Upstream::start("web");
    let wasm = plugin("examples/ip-block");
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: web, tenant: acme, targets: [{{ addr: "{}" }}] }}]
plugins: [{{ name: ip-block, tenant: acme, path: "{}" }}]
domains:
  - hosts: [open.test]
    tenant: acme
    plugins: [{{ plugin: ip-block, timeout: 100ms, config: {{ deny: ["203.0.113.0/24"], country_header: cf-ipcountry, deny_countries: [XX] }} }}]
    routes: [{{ path: /, pool: web }}]
  - hosts: [closed.test]
    tenant: acme
    plugins: [{{ plugin: ip-block, timeout: 100ms, config: {{ deny: ["127.0.0.0/8"], status: 451 }} }}]
    routes: [{{ path: /, pool: web }}]
"#,
        up.addr,
        wasm.display()
    ))
    .await;
    let c = proxy.client(&["open.test", "closed.test"]);
    let r = c.get(proxy.url("open.test", "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(proxy.url("open.test", "/"))
        .header("cf-ipcountry", "xx")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The client IP is the connection's, not a header the client controls.
    let r = c
        .get(proxy.url("closed.test", "/"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 451);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn rate_limits_can_count_the_user_a_plugin_authenticated() {
    let up = Upstream::start("api");
    let wasm = plugin("examples/api-key-auth");
    let digest = |k: &str| hex(ring::digest::digest(&ring::digest::SHA256, k.as_bytes()).as_ref());
    let proxy = Proxy::start(&format!(
        r#"{PLUGIN_LISTENERS}
tenants: [{{ name: acme }}]
pools: [{{ name: api, tenant: acme, targets: [{{ addr: "{}" }}] }}]
plugins: [{{ name: auth, tenant: acme, path: "{}" }}]
domains:
  - hosts: [api.test]
    tenant: acme
    plugins: [{{ plugin: auth, timeout: 100ms, config: {{ keys: {{ alice: "{}", bob: "{}" }} }} }}]
    rate_limits: [{{ name: per-user, requests: 2, per: 1m, key: plugin }}]
    routes: [{{ path: /, pool: api }}]
"#,
        up.addr,
        wasm.display(),
        digest("alice-key"),
        digest("bob-key"),
    ))
    .await;
    let c = proxy.client(&["api.test"]);
    let url = proxy.url("api.test", "/orders");
    let get = |key: &'static str| c.get(&url).header("x-api-key", key).send();

    // All from one address: the buckets are the users'.
    for left in [1, 0] {
        let r = get("alice-key").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["ratelimit"],
            format!("\"per-user\";r={left}").as_str()
        );
    }
    let r = get("alice-key").await.unwrap();
    assert_eq!(r.status(), 429, "alice used her two requests");
    assert!(r.headers().contains_key("retry-after"));
    let r = get("bob-key").await.unwrap();
    assert_eq!(r.status(), 200, "bob has his own bucket");
    assert_eq!(r.headers()["ratelimit"], "\"per-user\";r=1");
    assert_eq!(
        up.hits(),
        3,
        "the refused request never reached the upstream"
    );
    // Requests the plugin refuses count too, under the client's address, so
    // guessing keys is throttled as well.
    for _ in 0..2 {
        let r = get("guessed-key").await.unwrap();
        assert_eq!(r.status(), 403);
    }
    let r = get("guessed-key").await.unwrap();
    assert_eq!(r.status(), 429, "a third wrong key from one address");
    assert_eq!(up.hits(), 3);
}
