//! Hot reload under load, rejected reloads, SIGHUP and graceful shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

fn versioned(up: &Upstream, body: &str) -> String {
    format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{}" }}] }}]
domains:
  - hosts: [r.test]
    tenant: t
    headers: {{ response: {{ set: {{ X-Config: "{body}" }} }} }}
    routes:
      - {{ path: /local, respond: {{ body: "{body}" }} }}
      - {{ path: /, pool: p }}
"#,
        up.addr
    )
}

#[tokio::test]
async fn twenty_reloads_during_two_thousand_requests_lose_nothing() {
    let up = Upstream::start("r");
    let proxy = Proxy::start(&versioned(&up, "v1")).await;
    let c = proxy.client(&["r.test"]);
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    // 4 concurrent clients × 500 requests, alternating proxied and local routes.
    for w in 0..4 {
        let c = c.clone();
        let url_up = proxy.url("r.test", "/up");
        let url_local = proxy.url("r.test", "/local");
        let done = done.clone();
        let failures = failures.clone();
        workers.push(tokio::spawn(async move {
            for i in 0..500 {
                let url = if (i + w) % 2 == 0 {
                    &url_up
                } else {
                    &url_local
                };
                match c.get(url).send().await {
                    Ok(r) if r.status() == 200 => {
                        // Header rules and route body come from one snapshot: a
                        // request that saw half of a reload would mix versions.
                        let header = r
                            .headers()
                            .get("x-config")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let body = r.text().await.unwrap_or_default();
                        let consistent = match &header {
                            Some(h) => url == &url_up || &body == h,
                            None => false,
                        };
                        if !consistent {
                            eprintln!("mixed config: header {header:?}, body {body:?}");
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(r) => {
                        eprintln!("unexpected response {}", r.status());
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for version in 2..=21u64 {
        // Spread the reloads over the run.
        let target = (version as usize - 1) * 90;
        eventually(Duration::from_secs(60), "request progress", || {
            let done = done.clone();
            async move { (done.load(Ordering::SeqCst) >= target).then_some(()) }
        })
        .await;
        proxy.write_config(&versioned(&up, &format!("v{version}")));
        proxy.wait_version(version).await;
    }
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 2000);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during reloads"
    );
    let r = c.get(proxy.url("r.test", "/local")).send().await.unwrap();
    assert_eq!(r.headers()["x-config"], "v21");
    assert_eq!(
        proxy.metric("gatehouse_config_reloads_total", &[]).await,
        Some(20.0)
    );
}

#[tokio::test]
async fn broken_config_keeps_the_old_one_serving() {
    let up = Upstream::start("r");
    let proxy = Proxy::start(&versioned(&up, "good")).await;
    let c = proxy.client(&["r.test"]);
    // Semantically invalid (unknown pool), then syntactically broken.
    let bad_ref = versioned(&up, "bad").replace("pool: p }", "pool: missing }");
    proxy.write_config(&bad_ref);
    eventually(
        Duration::from_secs(10),
        "reload failure counted",
        || async {
            (proxy
                .metric("gatehouse_config_reload_failures_total", &[])
                .await
                == Some(1.0))
            .then_some(())
        },
    )
    .await;
    let r = c.get(proxy.url("r.test", "/local")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "good");
    proxy.write_config("listeners: [this is: not: valid");
    eventually(Duration::from_secs(10), "second reload failure", || async {
        (proxy
            .metric("gatehouse_config_reload_failures_total", &[])
            .await
            == Some(2.0))
        .then_some(())
    })
    .await;
    let r = c.get(proxy.url("r.test", "/up")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-config"], "good");
    assert_eq!(
        proxy.metric("gatehouse_config_version", &[]).await,
        Some(1.0)
    );
    let log = proxy.log();
    assert!(
        log.contains("unknown pool \\\"missing\\\""),
        "errors are logged with their path:\n{log}"
    );
    // A fixed file is picked up again.
    proxy.write_config(&versioned(&up, "fixed"));
    proxy.wait_version(2).await;
    let r = c.get(proxy.url("r.test", "/local")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "fixed");
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_drains_in_flight_requests() {
    let up = Upstream::start("r");
    let proxy_cfg = versioned(&up, "one");
    let mut proxy = Proxy::start(&proxy_cfg).await;
    let c = proxy.client(&["r.test"]);
    // The file is unchanged, so the watcher stays quiet: only SIGHUP can
    // produce version 2. (tls.rs checks that SIGHUP applies new certificates.)
    std::process::Command::new("kill")
        .arg("-HUP")
        .arg(proxy_pid(&proxy))
        .status()
        .unwrap();
    proxy.wait_version(2).await;
    assert!(proxy.log().contains("SIGHUP: reloading config"));
    assert_eq!(
        c.get(proxy.url("r.test", "/local"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "one"
    );

    // A request in flight when SIGTERM arrives still completes.
    let slow_url = proxy.url("r.test", "/slow?ms=500");
    let sc = c.clone();
    let in_flight =
        tokio::spawn(async move { sc.get(slow_url).send().await.map(|r| r.status().as_u16()) });
    eventually(
        Duration::from_secs(5),
        "slow request reached upstream",
        || async { (up.hits() >= 1).then_some(()) },
    )
    .await;
    proxy.terminate();
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    let status = proxy.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn binary_upgrade_hands_over_listeners_without_failed_requests() {
    let up = Upstream::start("r");
    let mut old = Proxy::start(&versioned(&up, "v")).await;
    // A new connection per request, so every request exercises accept().
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .resolve("r.test", old.http)
        .build()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (stop, ok, failed, retried) =
            (stop.clone(), ok.clone(), failed.clone(), retried.clone());
        let url = old.url("r.test", "/local");
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let mut result = client.get(&url).send().await;
                // Pingora 0.9 drops connections still waiting for their first request
                // when the old process stops accepting; like browsers and curl, the
                // client retries an idempotent request whose connection closed
                // before any response byte (RFC 9110 §9.2.2).
                if matches!(&result, Err(e) if e.is_request() && !e.is_connect()) {
                    retried.fetch_add(1, Ordering::SeqCst);
                    result = client.get(&url).send().await;
                }
                match result {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!("failed during upgrade: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        })
    };
    let mut new = old.spawn_upgrade();
    let sock = old.dir.path().join("upgrade.sock");
    eventually(
        Duration::from_secs(10),
        "new process waiting on the upgrade socket",
        || {
            let sock = sock.clone();
            async move { sock.exists().then_some(()) }
        },
    )
    .await;
    std::process::Command::new("kill")
        .arg("-QUIT")
        .arg(old.pid().to_string())
        .status()
        .unwrap();
    old.wait_exit(Duration::from_secs(30)).await;
    assert!(
        new.try_wait().unwrap().is_none(),
        "the new process must keep running"
    );
    // Only the new process can answer now.
    let served_before = ok.load(Ordering::SeqCst);
    eventually(
        Duration::from_secs(10),
        "requests served by the new process",
        || {
            let ok = ok.clone();
            async move { (ok.load(Ordering::SeqCst) >= served_before + 20).then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    let _ = new.kill();
    let _ = new.wait();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the upgrade"
    );
    // Connection refused never happens (the sockets are handed over, not re-bound);
    // at most the one accept race at the moment the old process stops.
    assert!(
        retried.load(Ordering::SeqCst) <= 2,
        "{} requests needed a retry",
        retried.load(Ordering::SeqCst)
    );
}

fn proxy_pid(proxy: &Proxy) -> String {
    proxy.pid().to_string()
}
