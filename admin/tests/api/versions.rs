//! Publishing, versions, rollback and the data-plane protocol.

use super::*;

/// Creates pool `web`, active domain `host` and a route forwarding `/` to the pool.
pub async fn site(api: &Api, tenant: &str, host: &str, target: &str) {
    let t = Some(api.admin.as_str());
    for (uri, body) in [
        (
            format!("/v1/tenants/{tenant}/pools/web"),
            json!({ "targets": [{ "addr": target }] }),
        ),
        (format!("/v1/tenants/{tenant}/domains/{host}"), json!({})),
        (
            format!("/v1/tenants/{tenant}/domains/{host}/routes/root"),
            json!({ "pool": "web" }),
        ),
    ] {
        let r = api.call(Method::PUT, &uri, t, Some(body)).await;
        assert!(r.status.is_success(), "{uri}: {:?}", r.body);
    }
    let r = api
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant}/domains/{host}/verify"),
            t,
            Some(json!({ "method": "skip" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn publish(api: &Api, token: &str, body: Value) -> Reply {
    api.call(Method::POST, "/v1/publish", Some(token), Some(body))
        .await
}

/// Issue 22, item 2: a publish validates the parts it changes, each on its
/// own; another tenant's part, even one no longer valid (here: the platform
/// lowered the plugin chain bound below what it published), cannot make it
/// fail. That tenant's own next publish is refused, naming its objects.
pub async fn a_tenants_publish_never_fails_on_another_tenants_part(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let beta = api.token(&api.admin, "admin", Some("beta")).await;
    let r = api
        .upload(
            Method::PUT,
            "/v1/tenants/beta/plugins/auth",
            &beta,
            "application/wasm",
            component("0.1.0"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    site(&api, "beta", "beta.example.com", "127.0.0.1:9002").await;
    let chain: Vec<Value> = (0..3)
        .map(|i| json!({ "plugin": "auth", "config": { "i": i } }))
        .collect();
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/beta/domains/beta.example.com",
            Some(&beta),
            Some(json!({ "plugins": chain })),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = publish(&api, &beta, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let api = api.with_max_plugin_chain(2);
    site(&api, "acme", "app.example.com", "127.0.0.1:9001").await;
    let acme = api.token(&api.admin, "operator", Some("acme")).await;
    let r = publish(&api, &acme, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // A platform-wide publish changing only acme's part passes too.
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            Some(&api.admin),
            Some(json!({ "targets": [{ "addr": "127.0.0.1:9003" }] })),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = publish(&api, &api.admin, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // beta's own next publish must fix its part first.
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/beta/pools/web",
            Some(&beta),
            Some(json!({ "targets": [{ "addr": "127.0.0.1:9004" }] })),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = publish(&api, &beta, json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let problems = r.body["error"]["details"].to_string();
    assert!(
        problems.contains("tenants/beta/domains/beta.example.com.plugins"),
        "{problems}"
    );
}

pub async fn publishing_validates_everything_and_versions_roll_back(api: Api) {
    api.tenant("acme").await;
    let op = api.token(&api.admin, "operator", Some("acme")).await;
    site(&api, "acme", "app.example.com", "127.0.0.1:9001").await;
    let r = publish(&api, &op, json!({ "note": "first" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["version"]["version"], 1);
    assert_eq!(r.body["version"]["scope"], "acme");
    let first_hash = r.body["version"]["hash"].as_str().unwrap().to_string();
    assert_eq!(first_hash.len(), 64);
    assert_eq!(
        r.body["changes"].as_array().unwrap().len(),
        3,
        "{:?}",
        r.body
    );
    // Nothing new: no new version.
    let r = publish(&api, &op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["changed"], false);

    // Edit the draft: the preview shows it, the proxies do not see it yet.
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            Some(&op),
            Some(json!({ "targets": [{ "addr": "127.0.0.1:9002" }] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.call(Method::GET, "/v1/diff", Some(&op), None).await;
    assert_eq!(r.body["from"], 1, "{:?}", r.body);
    let changes = r.body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{:?}", r.body);
    assert_eq!(changes[0]["kind"], "pool");
    assert_eq!(changes[0]["change"], "changed");
    // A stale If-Match refuses the publish.
    let r = api
        .raw(
            Method::POST,
            "/v1/publish",
            Some(&op),
            Some("{}".into()),
            &[("if-match", "\"0\"")],
        )
        .await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let r = api
        .raw(
            Method::POST,
            "/v1/publish",
            Some(&op),
            Some("{}".into()),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["version"]["version"], 2);

    // Rollback: version 1's content as version 3, and the draft follows. It
    // rewrites domains, certificates and plugins too: a tenant admin's call.
    let r = api
        .call(
            Method::POST,
            "/v1/versions/1/rollback",
            Some(&op),
            Some(json!({})),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let adm = api.token(&api.admin, "admin", Some("acme")).await;
    let r = api
        .call(
            Method::POST,
            "/v1/versions/1/rollback",
            Some(&adm),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["version"]["version"], 3);
    assert_eq!(r.body["version"]["rollback_of"], 1);
    assert_eq!(r.body["version"]["hash"], first_hash.as_str());
    let r = api
        .call(Method::GET, "/v1/tenants/acme/pools/web", Some(&op), None)
        .await;
    assert_eq!(r.body["spec"]["targets"][0]["addr"], "127.0.0.1:9001");
    let r = api
        .call(Method::GET, "/v1/diff?from=2&to=3", Some(&op), None)
        .await;
    assert_eq!(
        r.body["changes"].as_array().unwrap().len(),
        1,
        "{:?}",
        r.body
    );
    let r = api.call(Method::GET, "/v1/versions", Some(&op), None).await;
    assert_eq!(r.headers[header::ETAG], "\"3\"");
    let numbers: Vec<i64> = r.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);

    // Whole-config validation: two pools may be fine alone and clash together
    // (here: a target that does not resolve is caught by the same code at publish).
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/domains/app.example.com",
            Some(&api.admin),
            Some(json!({ "headers": { "request": { "set": { "x-id": "$nope" } } } })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "headers.request.set.x-id");

    // A viewer cannot publish; the refusal is audited.
    let viewer = api.token(&api.admin, "viewer", Some("acme")).await;
    let r = publish(&api, &viewer, json!({})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let events = api.audit("?action=config.publish").await;
    assert!(
        events.iter().any(|e| e["outcome"] == "forbidden"),
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e["outcome"] == "ok").count(),
        2,
        "{events:?}"
    );
    let rollbacks = api.audit("?action=config.rollback").await;
    assert_eq!(rollbacks.iter().filter(|e| e["outcome"] == "ok").count(), 1);
    assert_eq!(
        rollbacks
            .iter()
            .filter(|e| e["outcome"] == "forbidden")
            .count(),
        1
    );
}

pub async fn nodes_poll_versions_and_report_on_them(api: Api) {
    api.tenant("acme").await;
    let r = api
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&api.admin),
            Some(json!({ "name": "edge-1", "role": "node" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let node = r.body["token"].as_str().unwrap().to_string();
    // A node token reaches nothing else; a tenant token cannot poll.
    let r = api
        .call(Method::GET, "/v1/tenants", Some(&node), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let owner = api.token(&api.admin, "owner", Some("acme")).await;
    let r = api
        .call(Method::GET, "/v1/dataplane/snapshot", Some(&owner), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // Nothing published: the wait ends with 304.
    let r = api
        .call(
            Method::GET,
            "/v1/dataplane/snapshot?after=0&wait=0s&node=edge-1",
            Some(&node),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    // A waiting poll returns as soon as a version is published.
    site(&api, "acme", "app.example.com", "127.0.0.1:9001").await;
    let poll = {
        let app = api.app.clone();
        let node = node.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let req = Request::get("/v1/dataplane/snapshot?after=0&wait=20s&node=edge-1")
                .header(header::AUTHORIZATION, format!("Bearer {node}"))
                .body(Body::empty())
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap(),
                started.elapsed(),
            )
        })
    };
    let r = publish(&api, &api.admin, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (status, snap, took) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert_eq!(snap["version"], 1);
    let cfg = &snap["config"];
    assert_eq!(cfg["pools"][0]["name"], "acme/web");
    assert_eq!(cfg["domains"][0]["hosts"], json!(["app.example.com"]));
    assert_eq!(cfg["domains"][0]["routes"][0]["pool"], "acme/web");
    // The same version is not sent again.
    let r = api
        .call(
            Method::GET,
            "/v1/dataplane/snapshot?after=1&wait=0s&node=edge-1",
            Some(&node),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    let hash = snap["hash"].as_str().unwrap();
    let r = api
        .call(
            Method::POST,
            "/v1/dataplane/report",
            Some(&node),
            Some(json!({ "node": "edge-1", "version": 1, "hash": hash, "applied": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = api
        .call(
            Method::POST,
            "/v1/dataplane/report",
            Some(&node),
            Some(json!({ "node": "edge-1", "version": 2, "hash": "x", "applied": false, "error": "plugins[0]: does not compile" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(Method::GET, "/v1/nodes", Some(&api.admin), None)
        .await;
    let n = &r.body["nodes"][0];
    assert_eq!(n["id"], "edge-1", "{:?}", r.body);
    assert_eq!(n["applied_version"], 1);
    assert_eq!(n["last_error_version"], 2);
    assert_eq!(n["last_error"], "plugins[0]: does not compile");
    let r = api.call(Method::GET, "/v1/nodes", Some(&owner), None).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Decommissioned nodes can be forgotten (by platform admins).
    let r = api
        .call(Method::DELETE, "/v1/nodes/edge-1", Some(&owner), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call(Method::DELETE, "/v1/nodes/edge-1", Some(&api.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(Method::GET, "/v1/nodes", Some(&api.admin), None)
        .await;
    assert_eq!(r.body["nodes"], json!([]));
    let r = api
        .call(Method::DELETE, "/v1/nodes/edge-1", Some(&api.admin), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(api.audit("?action=node.delete").await.len(), 2);
    let r = api
        .call(
            Method::GET,
            "/v1/dataplane/snapshot?node=bad%20id",
            Some(&node),
            None,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");
}

pub async fn a_tenant_sees_only_its_part_of_versions(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let acme = api.token(&api.admin, "owner", Some("acme")).await;
    let beta = api.token(&api.admin, "owner", Some("beta")).await;
    site(&api, "acme", "a.example.com", "127.0.0.1:9001").await;
    site(&api, "beta", "b.example.com", "127.0.0.1:9002").await;
    assert_eq!(
        publish(&api, &acme, json!({})).await.status,
        StatusCode::CREATED
    );
    // Beta publishing does not publish acme's draft edits.
    let r = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            Some(&acme),
            Some(json!({ "targets": [{ "addr": "127.0.0.1:9003" }] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = publish(&api, &beta, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let changes = r.body["changes"].as_array().unwrap();
    assert!(changes.iter().all(|c| c["tenant"] == "beta"), "{changes:?}");
    let r = api
        .call(Method::GET, "/v1/versions/2", Some(&api.admin), None)
        .await;
    let doc = &r.body["document"]["tenants"];
    assert_eq!(
        doc["acme"]["pool"]["web"]["spec"]["targets"][0]["addr"], "127.0.0.1:9001",
        "{doc:?}"
    );
    // Each tenant sees its own part, and only versions of its own scope (or everyone's).
    let r = api
        .call(Method::GET, "/v1/versions/2", Some(&beta), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let tenants: Vec<&String> = r.body["document"]["tenants"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(tenants, ["beta"]);
    let r = api
        .call(Method::GET, "/v1/versions", Some(&acme), None)
        .await;
    let scopes: Vec<&Value> = r.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["scope"])
        .collect();
    assert_eq!(scopes, [&json!("acme")]);
    // Version 1 was acme's publish: its note and publisher are acme's business.
    let r = api
        .call(Method::GET, "/v1/versions/1", Some(&beta), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // A tenant cannot publish or roll back another.
    let r = publish(&api, &beta, json!({ "tenant": "acme" })).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .call(
            Method::POST,
            "/v1/versions/1/rollback",
            Some(&beta),
            Some(json!({ "tenant": "acme" })),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .call(Method::GET, "/v1/diff?tenant=acme", Some(&beta), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

pub async fn deleting_a_tenant_unpublishes_it_and_retires_its_name(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    site(&api, "acme", "a.example.com", "127.0.0.1:9001").await;
    site(&api, "beta", "b.example.com", "127.0.0.1:9002").await;
    let r = publish(&api, &api.admin, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(Method::DELETE, "/v1/tenants/acme", Some(&api.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // A new version without it, at once.
    let r = api
        .call(Method::GET, "/v1/versions/2", Some(&api.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["scope"], "acme");
    assert_eq!(r.body["note"], "tenant deleted");
    let tenants: Vec<&String> = r.body["document"]["tenants"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(tenants, ["beta"]);
    // Its name is not given out again: old versions still hold its objects.
    let r = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some(json!({ "name": "acme" })),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(r.body["error"]["field"], "name");
}

pub async fn tenant_rate_limits_are_set_by_the_platform_and_published(api: Api) {
    api.tenant("acme").await;
    let uri = "/v1/tenants/acme/rate-limit";
    let r = api.call(Method::GET, uri, Some(&api.admin), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // Bad quotas are refused with the field, nothing stored.
    for (body, field) in [
        (json!({ "requests": 0, "per": "1s" }), "requests"),
        (json!({ "requests": 10, "per": "2d" }), "per"),
        (json!({ "requests": 10, "per": "1s", "burst": 0 }), "burst"),
    ] {
        let r = api
            .call(Method::PUT, uri, Some(&api.admin), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        // One problem is the error's field; several are its details.
        let mut fields: Vec<&str> = r.body["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["field"].as_str())
            .collect();
        fields.extend(r.body["error"]["field"].as_str());
        assert!(
            fields.iter().any(|f| f.contains(field)),
            "{body}: {:?}",
            r.body
        );
    }
    let r = api.call(Method::GET, uri, Some(&api.admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = api
        .call(
            Method::PUT,
            uri,
            Some(&api.admin),
            Some(json!({ "requests": 500, "per": "1s", "burst": 800 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["spec"]["requests"], 500);
    let audit = api.audit("?action=rate_limit.create").await;
    assert!(!audit.is_empty(), "audited");

    // Published with the tenant's part: the proxies get `tenants[].rate_limit`.
    site(&api, "acme", "app.example.com", "127.0.0.1:9001").await;
    let r = publish(&api, &api.admin, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let node = api.node_token().await;
    let r = api
        .call(
            Method::GET,
            "/v1/dataplane/snapshot?after=0&wait=0s&node=edge-1",
            Some(&node),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let tenants = r.body["config"]["tenants"].as_array().unwrap();
    let acme = tenants.iter().find(|t| t["name"] == "acme").unwrap();
    assert_eq!(acme["rate_limit"]["requests"], 500);
    assert_eq!(acme["rate_limit"]["burst"], 800);

    // A tenant admin's rollback to a version from before the ceiling was
    // raised keeps the ceiling in force: it is not the tenant's to change.
    let r = api
        .call(
            Method::PUT,
            uri,
            Some(&api.admin),
            Some(json!({ "requests": 50, "per": "1s" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = publish(&api, &api.admin, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let admin = api.token(&api.admin, "admin", Some("acme")).await;
    let r = api
        .call(
            Method::POST,
            "/v1/versions/1/rollback",
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(
            Method::GET,
            "/v1/dataplane/snapshot?after=2&wait=0s&node=edge-1",
            Some(&node),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["version"], 3);
    let tenants = r.body["config"]["tenants"].as_array().unwrap();
    let acme = tenants.iter().find(|t| t["name"] == "acme").unwrap();
    assert_eq!(
        acme["rate_limit"]["requests"], 50,
        "the ceiling in force stays"
    );
    let r = api.call(Method::GET, uri, Some(&admin), None).await;
    assert_eq!(r.body["spec"]["requests"], 50, "and so does the draft's");
}
