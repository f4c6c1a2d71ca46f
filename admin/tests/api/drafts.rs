//! Draft objects: pools, domains, routes, certificates.

use super::*;

/// A self-signed certificate for `names`, valid from `from` to `to` (years).
pub fn certificate(names: &[&str], from: i32, to: i32) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub async fn pools_routes_and_domains_keep_their_references(api: Api) {
    api.tenant("acme").await;
    let t = Some(api.admin.as_str());
    let pool = json!({ "targets": [{ "addr": "127.0.0.1:9000", "weight": 2 }] });
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            t,
            Some(pool.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers[header::ETAG], "\"1\"");
    assert_eq!(r.body["spec"]["targets"][0]["weight"], 2);

    // Invalid specs fail with the field, checked by the proxy's own validation.
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/bad",
            t,
            Some(json!({ "targets": [{ "addr": "no-port" }] })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "targets[0].addr");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/bad",
            t,
            Some(json!({ "targets": [], "colour": 1 })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "colour");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/Bad!",
            t,
            Some(pool.clone()),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");

    // A route needs its domain and its pool.
    let route = json!({ "path": "/api", "pool": "web" });
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/app.example.com/routes/api",
            t,
            Some(route.clone()),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // Domain policies are checked by the proxy's validation too.
    let bad = json!({ "security_headers": { "preset": "strict", "referrer_policy": "sometimes" } });
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/app.example.com",
            t,
            Some(bad),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "security_headers.referrer_policy");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/App.Example.COM",
            t,
            Some(json!({ "security_headers": { "preset": "basic" } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["name"], "app.example.com");
    assert_eq!(r.body["status"], "pending");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/app.example.com/routes/api",
            t,
            Some(json!({ "pool": "nope" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "pool");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/app.example.com/routes/api",
            t,
            Some(json!({ "path": "api", "pool": "web" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "path");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/app.example.com/routes/api",
            t,
            Some(route.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["name"], "api");

    // A pool in use cannot go; the route can, then the pool.
    let r = api
        .call(Method::DELETE, "/v1/tenants/acme/pools/web", t, None)
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    // Lost updates are refused: stale If-Match, create-only on an existing object.
    let r = api
        .raw(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            t,
            Some(pool.to_string()),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let r = api
        .raw(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            t,
            Some(pool.to_string()),
            &[("if-none-match", "*")],
        )
        .await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let r = api
        .raw(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            t,
            Some(pool.to_string()),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers[header::ETAG], "\"2\"");

    let r = api
        .call(
            Method::GET,
            "/v1/tenants/acme/domains/app.example.com/routes",
            t,
            None,
        )
        .await;
    assert_eq!(
        r.body["routes"].as_array().unwrap().len(),
        1,
        "{:?}",
        r.body
    );
    // Deleting the domain takes its routes with it; then the pool is free.
    let r = api
        .call(
            Method::DELETE,
            "/v1/tenants/acme/domains/app.example.com",
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = api
        .call(Method::DELETE, "/v1/tenants/acme/pools/web", t, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);

    let actions: Vec<String> = api
        .audit("?tenant=acme")
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "pool.create ok",
        "pool.update ok",
        "pool.put precondition_failed",
        "pool.delete conflict",
        "domain.create ok",
        "route.create ok",
        "route.delete ok",
        "domain.delete ok",
        "pool.delete ok",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "no {want:?} in {actions:#?}"
        );
    }
}

pub async fn tenants_cannot_point_pools_at_the_edge_itself(api: Api) {
    api.tenant("acme").await;
    let api = api.refusing_internal_targets();
    let t = Some(api.admin.as_str());
    for internal in [
        "127.0.0.1:9900",
        "localhost:80",
        "[::1]:80",
        "169.254.169.254:80",
        "0.0.0.0:80",
        "[::ffff:127.0.0.1]:80",
    ] {
        let body = json!({ "targets": [{ "addr": "10.1.2.3:80" }, { "addr": internal }] });
        let r = api
            .call(Method::PUT, "/v1/tenants/acme/pools/web", t, Some(body))
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(r.body["error"]["field"], "targets[1].addr", "{internal}");
    }
    // Private networks are where upstreams usually are.
    let body = json!({ "targets": [{ "addr": "10.1.2.3:80" }, { "addr": "192.168.0.10:8080" }] });
    let r = api
        .call(Method::PUT, "/v1/tenants/acme/pools/web", t, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// Issue 22, item 10: a pending (never verified) domain keeps its name from
/// other tenants only for the platform's pending TTL; then another tenant's
/// claim withdraws it from the holder's draft and published part. Wildcards
/// over public suffixes are refused, and a 409 never names the holder.
pub async fn pending_claims_expire_and_public_suffixes_cannot_be_claimed(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let t = Some(api.admin.as_str());
    let host = "claimed.example.com";
    let uri = |tenant: &str| format!("/v1/tenants/{tenant}/domains/{host}");
    let r = api
        .call(Method::PUT, &uri("acme"), t, Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(
            Method::PUT,
            &format!("{}/routes/root", uri("acme")),
            t,
            Some(json!({ "respond": { "body": "x" } })),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = api
        .call(Method::POST, "/v1/publish", t, Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(Method::PUT, &uri("beta"), t, Some(json!({})))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(!r.body.to_string().contains("acme"), "{:?}", r.body);
    for wildcard in ["*.github.io", "*.co.uk"] {
        let r = api
            .call(
                Method::PUT,
                &format!("/v1/tenants/beta/domains/{wildcard}"),
                t,
                Some(json!({})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{wildcard}: {:?}",
            r.body
        );
        assert!(r.body.to_string().contains("public suffix"), "{:?}", r.body);
    }

    // A published pending claim deleted from its draft (and never published
    // again) holds nothing: it is withdrawn when someone else claims the
    // name. Before, the name was free in the draft while every node still
    // served the old claim, and the second tenant's part was the one left out.
    let gone = "gone.example.com";
    let r = api
        .call(
            Method::PUT,
            &format!("/v1/tenants/acme/domains/{gone}"),
            t,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(Method::POST, "/v1/publish", t, Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/tenants/acme/domains/{gone}"),
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = api
        .call(
            Method::PUT,
            &format!("/v1/tenants/beta/domains/{gone}"),
            t,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api.call(Method::GET, "/v1/versions", t, None).await;
    let latest = r.body["versions"][0]["version"].as_i64().unwrap();
    let r = api
        .call(Method::GET, &format!("/v1/versions/{latest}"), t, None)
        .await;
    assert!(
        r.body["document"]["tenants"]["acme"]["domain"]
            .get(gone)
            .is_none(),
        "{:?}",
        r.body
    );
    let published = latest;

    // With a pending TTL of zero, the claim is stale at the next millisecond.
    let api = api.with_pending_domain_ttl(std::time::Duration::ZERO);
    let t = Some(api.admin.as_str());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = api
            .call(Method::PUT, &uri("beta"), t, Some(json!({})))
            .await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert_error(&r, StatusCode::CONFLICT, "conflict");
        assert!(
            std::time::Instant::now() < deadline,
            "the claim never expired"
        );
    }
    let r = api.call(Method::GET, &uri("acme"), t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = api
        .call(
            Method::GET,
            &format!("/v1/versions/{}", published + 1),
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let doc = &r.body["document"]["tenants"];
    assert!(doc["acme"]["domain"].get(host).is_none(), "{doc:?}");
    assert!(doc["acme"]["route"].is_null(), "{doc:?}");
    let events = api.audit("?action=domain.expire").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["tenant"], "acme");
}

/// Issue 22, item 15: a refused attempt is the caller's event (never written
/// into the tenant it aimed at, with names it made up), invalid mutations
/// (400) are audited too, and one token cannot grow the log without bound.
pub async fn refusals_are_audited_under_the_caller_and_bounded(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let viewer = api.token(&api.admin, "viewer", Some("beta")).await;
    let made_up = "x".repeat(300);
    let r = api
        .call(
            Method::PUT,
            &format!("/v1/tenants/acme/pools/{made_up}"),
            Some(&viewer),
            Some(json!({ "targets": [{ "addr": "10.0.0.1:80" }] })),
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    let in_acme = api.audit("?tenant=acme").await;
    assert!(
        in_acme.iter().all(|e| e["outcome"] == "ok"),
        "a refusal was written into the tenant it aimed at: {in_acme:?}"
    );
    let in_beta = api.audit("?tenant=beta").await;
    let refusal = in_beta
        .iter()
        .find(|e| e["outcome"] != "ok")
        .unwrap_or_else(|| panic!("no refusal under the caller: {in_beta:?}"));
    assert!(
        refusal["target"].as_str().unwrap().len() <= 256,
        "{refusal}"
    );

    // An invalid mutation (400) is audited, under its route.
    let op = api.token(&api.admin, "operator", Some("acme")).await;
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            Some(&op),
            Some(json!({ "targets": [{ "addr": "not an address" }] })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    let invalid = api
        .audit("?action=PUT%20/v1/tenants/%7Btenant%7D/pools/%7Bname%7D")
        .await;
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(invalid[0]["outcome"], "invalid");
    assert_eq!(invalid[0]["tenant"], "acme");

    // One token's refusals are bounded (60 a minute).
    for _ in 0..80 {
        let r = api
            .call(
                Method::DELETE,
                "/v1/tenants/acme/pools/web",
                Some(&viewer),
                None,
            )
            .await;
        assert!(r.status.is_client_error());
    }
    let written = api
        .audit("?tenant=beta&limit=500")
        .await
        .iter()
        .filter(|e| e["outcome"] != "ok")
        .count();
    assert!(
        written <= 60,
        "{written} refusal events from one token in a minute"
    );
}

/// Issue 22, item 17: a tenant's plugins take at most its storage quota
/// (409 with the figures; a component used twice counts once), and a
/// component nothing refers to — no draft plugin, no stored version — is
/// deleted after its grace period.
pub async fn plugin_storage_is_bounded_per_tenant_and_unreferenced_components_collected(api: Api) {
    use gatehouse_admin::blobs::collect;
    api.tenant("acme").await;
    let bytes = component("0.1.0");
    let size = bytes.len() as u64;
    async fn upload(api: &Api, name: &str, bytes: Vec<u8>) -> Reply {
        let uri = format!("/v1/tenants/acme/plugins/{name}");
        api.upload(Method::PUT, &uri, &api.admin, "application/wasm", bytes)
            .await
    }
    let small = api.with_plugin_storage(size - 1);
    let r = upload(&small, "auth", bytes.clone()).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&size.to_string()) && message.contains(&(size - 1).to_string()),
        "{message}"
    );
    let api = small.with_plugin_storage(size);
    for name in ["auth", "auth-copy"] {
        let r = upload(&api, name, bytes.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {:?}", r.body);
    }
    let store = api.store.clone();
    let blobs = || {
        let store = store.clone();
        async move {
            sqlx::query("SELECT sha256 FROM blobs")
                .fetch_all(store.pool())
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(blobs().await, 1);

    // Published, then deleted from the draft: a stored version refers to it.
    let r = api
        .call(
            Method::POST,
            "/v1/publish",
            Some(&api.admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    for name in ["auth", "auth-copy"] {
        let r = api
            .call(
                Method::DELETE,
                &format!("/v1/tenants/acme/plugins/{name}"),
                Some(&api.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }
    let grace = std::time::Duration::ZERO;
    assert_eq!(collect(&api.store, grace).await.unwrap(), 0);
    assert_eq!(collect(&api.store, grace).await.unwrap(), 0);
    assert_eq!(blobs().await, 1, "a stored version refers to it");

    // The version still pins it: it counts against the quota.
    let other = api.token(&api.admin, "admin", Some("acme")).await;
    async fn scratch(api: &Api, token: &str) -> Reply {
        api.upload(
            Method::PUT,
            "/v1/tenants/acme/plugins/scratch",
            token,
            "application/wasm",
            component("0.1.1"),
        )
        .await
    }
    let r = scratch(&api, &other).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    // A component only ever in the draft goes once unreferenced and past grace.
    let api = api.with_plugin_storage(3 * size);
    let r = scratch(&api, &other).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(blobs().await, 2);
    let r = api
        .call(
            Method::DELETE,
            "/v1/tenants/acme/plugins/scratch",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(collect(&api.store, grace).await.unwrap(), 0, "first marked");
    assert_eq!(collect(&api.store, grace).await.unwrap(), 1);
    assert_eq!(blobs().await, 1);
}

pub async fn hostnames_are_canonical_and_unique_across_tenants(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let beta = api.token(&api.admin, "owner", Some("beta")).await;
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/B%C3%BCcher.example.",
            Some(&api.admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["name"], "xn--bcher-kva.example");
    let token = r.body["verification"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 32);
    assert_eq!(
        r.body["verification"]["http_url"],
        format!("http://xn--bcher-kva.example/.well-known/gatehouse-challenge/{token}")
    );
    // Another spelling of the same name, by another tenant: taken.
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/beta/domains/XN--BCHER-KVA.example",
            Some(&beta),
            Some(json!({})),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    for bad in ["10.0.0.1", "localhost", "a..b", "*.*.example"] {
        let r = api
            .call(
                Method::PUT,
                &format!("/v1/tenants/beta/domains/{bad}"),
                Some(&beta),
                Some(json!({})),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    }
    // Nor may one tenant's name overlap another's: an exact name under a
    // wildcard would take the wildcard's traffic for it, and the reverse.
    let put = |tenant: &'static str, host: &'static str, token: String| {
        let api = &api;
        async move {
            api.call(
                Method::PUT,
                &format!("/v1/tenants/{tenant}/domains/{host}"),
                Some(&token),
                Some(json!({})),
            )
            .await
            .status
        }
    };
    let admin = api.admin.clone();
    assert_eq!(
        put("acme", "*.shop.example", admin.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put("beta", "www.shop.example", beta.clone()).await,
        StatusCode::CONFLICT
    );
    // Two labels down is not covered by the wildcard.
    assert_eq!(
        put("beta", "a.b.shop.example", beta.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put("beta", "*.b.shop.example", beta.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put("acme", "x.b.shop.example", admin.clone()).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        put("acme", "*.c.shop.example", admin.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put("beta", "c.shop.example", beta.clone()).await,
        StatusCode::CONFLICT
    );
    // Within a tenant, overlapping names are the tenant's business.
    assert_eq!(
        put("acme", "www.shop.example", admin.clone()).await,
        StatusCode::CREATED
    );
    // And it cannot see it.
    let r = api
        .call(
            Method::GET,
            "/v1/tenants/acme/domains/xn--bcher-kva.example",
            Some(&beta),
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

pub async fn domain_ownership_is_verified_over_http(api: Api) {
    api.tenant("acme").await;
    let owner = api.token(&api.admin, "owner", Some("acme")).await;
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/shop.example.com",
            Some(&owner),
            Some(json!({})),
        )
        .await;
    let token = r.body["verification"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The "edge": answers the challenge path for this host only.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = listener.local_addr().unwrap();
    let served = token.clone();
    let app = axum::Router::new().route(
        &format!("/.well-known/gatehouse-challenge/{served}"),
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let served = served.clone();
            async move {
                if headers[header::HOST] == "shop.example.com" {
                    (StatusCode::OK, served)
                } else {
                    (StatusCode::NOT_FOUND, String::new())
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let verify = json!({ "method": "http" });
    // Without a way to reach the edge, verification fails and the domain stays pending.
    let r = api
        .call(
            Method::POST,
            "/v1/tenants/acme/domains/shop.example.com/verify",
            Some(&owner),
            Some(verify.clone()),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    // Skipping the check is for platform admins only.
    let r = api
        .call(
            Method::POST,
            "/v1/tenants/acme/domains/shop.example.com/verify",
            Some(&owner),
            Some(json!({ "method": "skip" })),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let api = api.with_verify_via(edge);
    let r = api
        .call(
            Method::POST,
            "/v1/tenants/acme/domains/shop.example.com/verify",
            Some(&owner),
            Some(verify),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "active");
    let events = api.audit("?action=domain.verify").await;
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ok").count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.len() >= 3, "{outcomes:?}");
}

pub async fn certificates_are_checked_and_their_keys_never_shown(api: Api) {
    api.tenant("acme").await;
    let t = Some(api.admin.as_str());
    let (cert, key) = certificate(&["*.example.com", "example.com"], 2020, 2090);
    let (_, other_key) = certificate(&["example.com"], 2020, 2090);
    let (expired, expired_key) = certificate(&["example.com"], 2000, 2001);
    let put = |cert: &str, key: &str| json!({ "cert_pem": cert, "key_pem": key });
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/certificates/main",
            t,
            Some(put(&cert, &other_key)),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "key_pem");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/certificates/main",
            t,
            Some(put(&expired, &expired_key)),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "cert_pem");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/certificates/main",
            t,
            Some(put("junk", &key)),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/certificates/main",
            t,
            Some(put(&cert, &key)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.body["spec"]["names"],
        json!(["*.example.com", "example.com"])
    );
    assert!(!r.body.to_string().contains("PRIVATE KEY"), "{}", r.body);

    // The domain's name must be covered.
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/a.b.example.com",
            t,
            Some(json!({ "certificate": "main" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "certificate");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/www.example.com",
            t,
            Some(json!({ "certificate": "main" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // A replacement that no longer covers a user is refused; deleting a used one too.
    let (narrow, narrow_key) = certificate(&["example.com"], 2020, 2090);
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/certificates/main",
            t,
            Some(put(&narrow, &narrow_key)),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    let r = api
        .call(
            Method::DELETE,
            "/v1/tenants/acme/certificates/main",
            t,
            None,
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // Expiry filter: this one ends in 2090.
    let r = api
        .call(
            Method::GET,
            "/v1/tenants/acme/certificates?expiring_within=30d",
            t,
            None,
        )
        .await;
    assert_eq!(r.body["certificates"], json!([]), "{:?}", r.body);
    let r = api
        .call(
            Method::GET,
            "/v1/tenants/acme/certificates?expiring_within=36500d",
            t,
            None,
        )
        .await;
    assert_eq!(
        r.body["certificates"].as_array().unwrap().len(),
        1,
        "{:?}",
        r.body
    );
    let r = api
        .call(
            Method::GET,
            "/v1/tenants/acme/certificates?expiring_within=soon",
            t,
            None,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");

    // At rest the key is sealed; the audit log never has it.
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let stored: String = sqlx::query_scalar("SELECT spec FROM objects WHERE kind = 'certificate'")
        .fetch_one(api.store.pool())
        .await
        .unwrap();
    assert!(
        !stored.contains(&key_body[..40]) && stored.contains("\"key_sealed\":\"gh1."),
        "{stored}"
    );
    let audit = api.audit("?tenant=acme").await;
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(&key_body[..40]) && !text.contains("key_sealed"));
}

/// Issue 22, item 7: an HTTP ownership check connects only where tenants'
/// pools may (a name resolving inside is refused before any connection),
/// and a failed check tells nothing about what answered or did not.
pub async fn http_ownership_checks_follow_the_target_policy_and_tell_nothing(api: Api) {
    api.tenant("acme").await;
    let dns = support::dns::ChallTestSrv::start().await;
    dns.set_a("inside.example.com", std::net::Ipv4Addr::LOCALHOST)
        .await;
    let strict = api.with_dns_resolver_refusing_internal(dns.dns);
    let t = Some(strict.admin.as_str());
    let verify = |api: &Api, host: &str| {
        let uri = format!("/v1/tenants/acme/domains/{host}/verify");
        let token = api.admin.clone();
        let app = api.app.clone();
        async move {
            let req = axum::http::Request::post(uri)
                .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(r#"{"method":"http"}"#))
                .unwrap();
            let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let r = strict
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/inside.example.com",
            t,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (status, body) = verify(&strict, "inside.example.com").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("may not reach"), "{body}");
    // With loopback allowed, the check connects; nothing answers on port 80
    // here, and the refusal says only that the token did not come back.
    let open = strict.with_dns_resolver(dns.dns);
    let (status, body) = verify(&open, "inside.example.com").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("did not answer with the token"), "{body}");
    for detail in ["refused", "status", "error sending", "connect"] {
        assert!(!body.to_lowercase().contains(detail), "{detail}: {body}");
    }
}

pub async fn domain_ownership_is_verified_by_dns(api: Api) {
    api.tenant("acme").await;
    let owner = api.token(&api.admin, "owner", Some("acme")).await;
    let dns = support::dns::ChallTestSrv::start().await;
    let api = api.with_dns_resolver(dns.dns);
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/*.apps.example.com",
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let name = r.body["verification"]["dns_name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(name, "_gatehouse-challenge.apps.example.com");
    let token = r.body["verification"]["dns_value"]
        .as_str()
        .unwrap()
        .to_string();
    async fn verify(api: &Api, owner: &str) -> Reply {
        api.call(
            Method::POST,
            "/v1/tenants/acme/domains/*.apps.example.com/verify",
            Some(owner),
            Some(json!({ "method": "dns" })),
        )
        .await
    }
    // No record, then a wrong one: still pending.
    let r = verify(&api, &owner).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    dns.set_txt(&name, "someone-elses-token").await;
    let r = verify(&api, &owner).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let r = api
        .call(
            Method::GET,
            "/v1/tenants/acme/domains/*.apps.example.com",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "pending");
    dns.set_txt(&name, &token).await;
    let r = verify(&api, &owner).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "active");
}

/// A component of this repository's plugin world at `version`, whose functions do nothing.
pub fn component(version: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wit = std::fs::read_to_string(root.join("wit/plugin.wit"))
        .unwrap()
        .replace(
            "gatehouse:plugin@0.1.0",
            &format!("gatehouse:plugin@{version}"),
        );
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

pub async fn plugins_are_validated_as_the_proxy_loads_them_and_stored_by_digest(api: Api) {
    api.tenant("acme").await;
    let admin = api.token(&api.admin, "admin", Some("acme")).await;
    let good = component("0.1.0");
    let uri = "/v1/tenants/acme/plugins/auth";
    let r = api
        .upload(Method::PUT, uri, &admin, "application/json", good.clone())
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unsupported_media_type");
    let r = api
        .upload(
            Method::PUT,
            uri,
            &admin,
            "application/wasm",
            b"\0asm junk".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "body");
    let r = api
        .upload(
            Method::PUT,
            uri,
            &admin,
            "application/wasm",
            component("1.0.0"),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");

    let r = api
        .upload(Method::PUT, uri, &admin, "application/wasm", good.clone())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let sha: String = ring::digest::digest(&ring::digest::SHA256, &good)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r.body["spec"]["sha256"], sha.as_str());
    assert_eq!(r.body["spec"]["size"], good.len());
    assert_eq!(r.body["spec"]["version"], "0.1.0");
    // The same bytes under another name are stored once.
    let r = api
        .upload(
            Method::PUT,
            "/v1/tenants/acme/plugins/auth2",
            &admin,
            "application/octet-stream",
            good.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let blobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs")
        .fetch_one(api.store.pool())
        .await
        .unwrap();
    assert_eq!(blobs, 1);

    // Bindings name plugins of the tenant; a bound plugin cannot be deleted.
    let bind = |name: &str| json!({ "plugins": [{ "plugin": name, "config": { "k": 1 }, "failure_mode": "open" }] });
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/a.example.com",
            Some(&admin),
            Some(bind("nope")),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "plugins[0].plugin");
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/a.example.com",
            Some(&admin),
            Some(bind("auth")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api.call(Method::DELETE, uri, Some(&admin), None).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    // An operator may not upload plugins.
    let op = api.token(&api.admin, "operator", Some("acme")).await;
    let r = api
        .upload(
            Method::PUT,
            "/v1/tenants/acme/plugins/x",
            &op,
            "application/wasm",
            good.clone(),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // Nodes fetch the bytes by digest.
    let r = api
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&api.admin),
            Some(json!({ "name": "n", "role": "node" })),
        )
        .await;
    let node = r.body["token"].as_str().unwrap().to_string();
    let req = Request::get(format!("/v1/dataplane/plugins/{sha}"))
        .header(header::AUTHORIZATION, format!("Bearer {node}"))
        .body(Body::empty())
        .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/wasm");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.as_ref(), good.as_slice());
}

/// A request runs its domain's chain and then its route's: the two together
/// are bounded (`--max-plugin-chain`, the nodes' `limits.plugins.max_chain`,
/// default 16). One object over the bound is refused when it is written;
/// a domain and a route that are each within it but not together are
/// refused when published, naming the route's field.
pub async fn plugin_chains_are_bounded_per_request(api: Api) {
    api.tenant("acme").await;
    let admin = api.token(&api.admin, "admin", Some("acme")).await;
    let r = api
        .upload(
            Method::PUT,
            "/v1/tenants/acme/plugins/auth",
            &admin,
            "application/wasm",
            component("0.1.0"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let chain = |n: usize| {
        json!((0..n)
            .map(|i| json!({ "plugin": "auth", "config": { "i": i } }))
            .collect::<Vec<_>>())
    };
    let domain = "/v1/tenants/acme/domains/a.example.com";
    let r = api
        .call(
            Method::PUT,
            domain,
            Some(&admin),
            Some(json!({ "plugins": chain(17) })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "plugins");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("at most 16"), "{message}");
    let r = api
        .call(
            Method::PUT,
            domain,
            Some(&admin),
            Some(json!({ "plugins": chain(10) })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let route = format!("{domain}/routes/api");
    let r = api
        .call(
            Method::PUT,
            &route,
            Some(&admin),
            Some(json!({ "path": "/api", "respond": { "status": 204 }, "plugins": chain(17) })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "plugins");
    // Only verified domains are published.
    let r = api
        .call(
            Method::POST,
            &format!("{domain}/verify"),
            Some(&api.admin),
            Some(json!({ "method": "skip" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // 10 on the domain and 7 here: each fits, together they do not.
    let r = api
        .call(
            Method::PUT,
            &route,
            Some(&admin),
            Some(json!({ "path": "/api", "respond": { "status": 204 }, "plugins": chain(7) })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(Method::POST, "/v1/publish", Some(&admin), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let problems = r.body["error"]["details"].to_string();
    assert!(
        problems.contains("tenants/acme/domains/a.example.com/routes/api.plugins")
            && problems.contains("at most 16"),
        "{problems}"
    );
    // Within the bound, it publishes.
    let r = api
        .call(
            Method::PUT,
            &route,
            Some(&admin),
            Some(json!({ "path": "/api", "respond": { "status": 204 }, "plugins": chain(6) })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = api
        .call(Method::POST, "/v1/publish", Some(&admin), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}
