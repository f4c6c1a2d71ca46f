//! Automatic bans: N failing responses within a window ban the client from
//! the domain; bans are listed and lifted on the internal listener.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn repeated_failures_ban_the_client_until_lifted() {
    let up = Upstream::start("app");
    let cfg = format!(
        r#"{LISTENERS}
tenants: [{{ name: t }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{}" }}] }}]
domains:
  - hosts: [guarded.test]
    tenant: t
    bans: {{ after: {{ 404: 3 }}, window: 1m, duration: 10m }}
    routes: [{{ path: /app, pool: p }}]
  - {{ hosts: [other.test], tenant: t, routes: [{{ path: /, pool: p }}] }}
"#,
        up.addr
    );
    let proxy = Proxy::start_with_internal_token(&cfg).await;
    let client = proxy.client(&["guarded.test", "other.test"]);
    let get = |host: &'static str, path: &'static str| {
        let client = client.clone();
        let url = proxy.url(host, path);
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(get("guarded.test", "/app").await.status(), 200);
    for _ in 0..3 {
        assert_eq!(get("guarded.test", "/probe").await.status(), 404);
    }
    let r = get("guarded.test", "/app").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "banned");
    assert_eq!(up.hits(), 1, "a banned client never reaches the upstream");
    // Only that domain.
    assert_eq!(get("other.test", "/").await.status(), 200);
    assert_eq!(
        proxy
            .metric("gatehouse_bans_total", &[("tenant", "t")])
            .await,
        Some(1.0)
    );

    let internal = format!("http://{}/bans", proxy.internal);
    let admin = reqwest::Client::new();
    // Bans name clients and lifting them changes what a domain admits: the
    // internal listener's token is required.
    let r = reqwest::get(&internal).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = admin
        .delete(format!("{internal}?ip=127.0.0.1"))
        .bearer_auth("internal-token-0123456789abcdef0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let bans: Value = admin
        .get(&internal)
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ban = &bans["bans"][0];
    assert_eq!(ban["ip"], "127.0.0.1", "{bans}");
    assert_eq!(ban["domain"], "guarded.test");
    let left = ban["remaining_seconds"].as_u64().unwrap();
    assert!((590..=600).contains(&left), "{left}");

    let lifted: Value = admin
        .delete(format!("{internal}?ip=127.0.0.1&domain=guarded.test"))
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lifted["lifted"], 1);
    assert_eq!(get("guarded.test", "/app").await.status(), 200);
    let r = admin
        .delete(&internal)
        .bearer_auth(INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "lifting needs an address");

    // Without a configured token the endpoints are off, whoever asks.
    let open = Proxy::start(&cfg).await;
    for path in ["bans", "cache/purge"] {
        let r = admin
            .post(format!("http://{}/{path}", open.internal))
            .bearer_auth(INTERNAL_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = admin
        .delete(format!("http://{}/bans?ip=127.0.0.1", open.internal))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[test]
fn ban_policies_are_validated() {
    let (ok, err) = check_config(
        r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: t }]
domains:
  - hosts: [a.test]
    tenant: t
    bans: { after: { 200: 3, 401: 0 }, window: 2d }
    routes: [{ path: /, respond: { status: 200 } }]
"#,
    );
    assert!(!ok);
    for field in [
        "domains[0].bans.after.200",
        "domains[0].bans.after.401",
        "domains[0].bans.window",
    ] {
        assert!(err.contains(field), "{field} in {err}");
    }
}
