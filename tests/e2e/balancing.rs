//! Load balancing, health checks, retries and upstream failure statuses.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn pool_config(algorithm: &str, extra: &str, targets: &[String]) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|a| format!("{{ addr: \"{a}\" }}"))
        .collect();
    format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools:
  - name: p
    tenant: t
    algorithm: {algorithm}
    targets: [{}]
{extra}
domains:
  - {{ hosts: [lb.test], tenant: t, routes: [{{ path: /, pool: p }}] }}
"#,
        targets.join(", ")
    )
}

async fn server_of(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let name = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["server"].as_str().map(str::to_string))
        .unwrap_or(text);
    (status, name)
}

#[tokio::test]
async fn round_robin_spreads_evenly_and_honours_weights() {
    let ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let addrs: Vec<String> = ups.iter().map(|u| u.addr.to_string()).collect();
    let proxy = Proxy::start(&pool_config("round_robin", "", &addrs)).await;
    let c = proxy.client(&["lb.test"]);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let (status, name) = server_of(&c, &proxy.url("lb.test", "/")).await;
        assert_eq!(status, 200);
        *counts.entry(name).or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("c"), Some(&10), "{counts:?}");

    // Weights 3:1 after a reload.
    let weighted = format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools:
  - {{ name: p, tenant: t, targets: [{{ addr: "{}", weight: 3 }}, {{ addr: "{}", weight: 1 }}] }}
domains:
  - {{ hosts: [lb.test], tenant: t, routes: [{{ path: /, pool: p }}] }}
"#,
        addrs[0], addrs[1]
    );
    proxy.write_config(&weighted);
    proxy.wait_version(2).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        *counts
            .entry(server_of(&c, &proxy.url("lb.test", "/")).await.1)
            .or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
}

#[tokio::test]
async fn least_connections_avoids_the_busy_target() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let proxy = Proxy::start(&pool_config(
        "least_connections",
        "",
        &[a.addr.to_string(), b.addr.to_string()],
    ))
    .await;
    let c = proxy.client(&["lb.test"]);
    // Park one request on whichever target gets it.
    let hold_url = proxy.url("lb.test", "/hold");
    let hc = c.clone();
    let held =
        tokio::spawn(async move { hc.get(hold_url).send().await.unwrap().text().await.unwrap() });
    let busy = eventually(Duration::from_secs(5), "a held request", || async {
        if a.in_hold.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            Some("a")
        } else if b.in_hold.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            Some("b")
        } else {
            None
        }
    })
    .await;
    let idle = if busy == "a" { "b" } else { "a" };
    for _ in 0..10 {
        let (status, name) = server_of(&c, &proxy.url("lb.test", "/")).await;
        assert_eq!(status, 200);
        assert_eq!(
            name, idle,
            "least-connections sent a request to the busy target"
        );
    }
    let (busy_up, idle_up) = if busy == "a" { (&a, &b) } else { (&b, &a) };
    busy_up.release.notify_waiters();
    assert_eq!(held.await.unwrap(), busy);
    assert_eq!(idle_up.hits(), 10);
}

#[tokio::test]
async fn consistent_hash_sticks_a_key_to_one_target() {
    let ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let addrs: Vec<String> = ups.iter().map(|u| u.addr.to_string()).collect();
    let cfg = pool_config("consistent_hash", "    hash_key: \"header:X-User\"", &addrs);
    let proxy = Proxy::start(&cfg).await;
    let c = proxy.client(&["lb.test"]);
    let mut owners = HashMap::new();
    for user in 0..30 {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = c
                .get(proxy.url("lb.test", "/"))
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            seen.push(
                r.json::<Value>().await.unwrap()["server"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "user-{user} moved between {seen:?}"
        );
        owners.insert(user, seen[0].clone());
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert_eq!(
        distinct.len(),
        3,
        "30 keys should land on all 3 targets: {owners:?}"
    );
}

#[tokio::test]
async fn killed_target_is_ejected_by_health_checks_and_comes_back() {
    let mut a = Upstream::start("a");
    let b = Upstream::start("b");
    let a_port = a.addr.port();
    let extra = "    health_check:\n      active: { kind: http, path: /healthz, interval: 100ms, timeout: 500ms, rise: 2, fall: 2 }\n      passive: { consecutive_failures: 0 }";
    let proxy = Proxy::start(&pool_config(
        "round_robin",
        extra,
        &[a.addr.to_string(), b.addr.to_string()],
    ))
    .await;
    let c = proxy.client(&["lb.test"]);
    let a_name = a.addr.to_string();
    let labels = [("pool", "p"), ("target", a_name.as_str())];
    assert_eq!(
        proxy.metric("gatehouse_upstream_healthy", &labels).await,
        Some(1.0)
    );

    a.kill();
    eventually(Duration::from_secs(10), "target a marked down", || async {
        (proxy.metric("gatehouse_upstream_healthy", &labels).await == Some(0.0)).then_some(())
    })
    .await;
    for _ in 0..20 {
        let (status, name) = server_of(&c, &proxy.url("lb.test", "/")).await;
        assert_eq!((status, name.as_str()), (200, "b"));
    }

    let a2 = Upstream::start_on("a", a_port);
    eventually(
        Duration::from_secs(10),
        "target a healthy again",
        || async {
            (proxy.metric("gatehouse_upstream_healthy", &labels).await == Some(1.0)).then_some(())
        },
    )
    .await;
    let mut served_by_a = 0;
    for _ in 0..10 {
        if server_of(&c, &proxy.url("lb.test", "/")).await.1 == "a" {
            served_by_a += 1;
        }
    }
    assert_eq!(served_by_a, 5, "traffic should be shared again");
    assert!(
        a2.hits() >= 5,
        "the restarted target saw {} requests",
        a2.hits()
    );
}

/// A round-robin pool whose first target refuses connections and whose second answers.
async fn dead_and_live(extra: &str) -> (Upstream, DeadPort, Proxy) {
    let live = Upstream::start("live");
    let dead = DeadPort::new();
    let proxy = Proxy::start(&pool_config(
        "round_robin",
        extra,
        &[dead.addr.to_string(), live.addr.to_string()],
    ))
    .await;
    (live, dead, proxy)
}

#[tokio::test]
async fn connect_failure_is_retried_on_a_healthy_target() {
    let (_live, _dead, proxy) =
        dead_and_live("    retries: 1\n    health_check: { passive: { consecutive_failures: 0 } }")
            .await;
    let c = proxy.client(&["lb.test"]);
    for _ in 0..10 {
        let (status, name) = server_of(&c, &proxy.url("lb.test", "/")).await;
        assert_eq!((status, name.as_str()), (200, "live"));
    }
    // Non-idempotent requests are not retried: half of them hit the dead target.
    let mut bad_gateway = 0;
    for _ in 0..10 {
        let r = c
            .post(proxy.url("lb.test", "/"))
            .body("x")
            .send()
            .await
            .unwrap();
        if r.status() == 502 {
            bad_gateway += 1;
        }
    }
    assert_eq!(bad_gateway, 5);
    let failures = proxy
        .metric(
            "gatehouse_upstream_failures_total",
            &[("pool", "p"), ("kind", "connect")],
        )
        .await;
    // One rotation step per request: the dead target is first for every
    // other GET (5, each retried) and for every other POST (5, not retried).
    assert_eq!(failures, Some(10.0));
}

#[tokio::test]
async fn passive_ejection_after_consecutive_failures() {
    let (_live, dead, proxy) = dead_and_live(
        "    retries: 1\n    health_check: { passive: { consecutive_failures: 2, ejection_time: 60s } }",
    )
    .await;
    let c = proxy.client(&["lb.test"]);
    for _ in 0..20 {
        assert_eq!(server_of(&c, &proxy.url("lb.test", "/")).await.0, 200);
    }
    // Two failures eject the dead target; afterwards nothing is tried on it.
    let failures = proxy
        .metric(
            "gatehouse_upstream_failures_total",
            &[("pool", "p"), ("kind", "connect")],
        )
        .await;
    assert_eq!(failures, Some(2.0));
    let dead = dead.addr.to_string();
    let labels = [("pool", "p"), ("target", dead.as_str())];
    assert_eq!(
        proxy.metric("gatehouse_upstream_healthy", &labels).await,
        Some(0.0)
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_slow_upstream_is_504() {
    let slow = Upstream::start("slow");
    let dead_port = DeadPort::new();
    let dead = dead_port.addr;
    let cfg = format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools:
  - {{ name: dead, tenant: t, targets: [{{ addr: "{dead}" }}] }}
  - {{ name: slow, tenant: t, targets: [{{ addr: "{}" }}], timeouts: {{ read: 200ms }} }}
domains:
  - hosts: [e.test]
    tenant: t
    routes: [{{ path: /dead, pool: dead }}, {{ path: /slow, pool: slow }}]
"#,
        slow.addr
    );
    let proxy = Proxy::start(&cfg).await;
    let c = proxy.client(&["e.test"]);
    let r = c
        .get(proxy.url("e.test", "/dead?token=s3cret-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");

    let started = std::time::Instant::now();
    let r = c
        .get(proxy.url("e.test", "/slow?ms=3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "timeout not enforced"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "upstream_timeout"
    );

    let log = eventually(
        Duration::from_secs(5),
        "access log with reasons",
        || async {
            let log = proxy.log();
            (log.contains("\"status\":502") && log.contains("\"status\":504")).then_some(log)
        },
    )
    .await;
    let line502 = log.lines().find(|l| l.contains("\"status\":502")).unwrap();
    assert!(line502.contains("bad_gateway"), "{line502}");
    assert!(
        !log.contains("s3cret-token"),
        "query strings must not reach any log line, error logs included"
    );
    let line504 = log.lines().find(|l| l.contains("\"status\":504")).unwrap();
    assert!(line504.contains("upstream_timeout"), "{line504}");
}

#[tokio::test]
async fn stale_pooled_connection_is_retried_without_marking_the_target() {
    let addr = closes_reused_connections().await;
    let cfg = pool_config("round_robin", "", &[addr.to_string()]);
    let proxy = Proxy::start(&cfg).await;
    let c = proxy.client(&["lb.test"]);
    for i in 0..10 {
        let r = c.get(proxy.url("lb.test", "/")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    let target = addr.to_string();
    let labels = [("pool", "p"), ("target", target.as_str())];
    assert_eq!(
        proxy.metric("gatehouse_upstream_healthy", &labels).await,
        Some(1.0)
    );
    assert_eq!(
        proxy
            .metric("gatehouse_upstream_failures_total", &[("pool", "p")])
            .await,
        None,
        "a closed pooled connection is not the target's failure"
    );
}
