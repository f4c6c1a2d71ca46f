//! The admin API through its router (`oneshot`), on a real SQLite file.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use gatehouse_admin::store::Store;
use gatehouse_admin::{bootstrap, router, AppState, Bootstrap};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

#[path = "api/drafts.rs"]
mod drafts;
mod support;
#[path = "api/versions.rs"]
mod versions;

use drafts::*;
use versions::*;

/// Which database a test runs on: every test here runs on both.
#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of `db`: its URL, and the directory to keep alive.
async fn fresh(db: Db) -> (String, Option<tempfile::TempDir>) {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (
                format!("sqlite://{}/admin.db", dir.path().display()),
                Some(dir),
            )
        }
        Db::Postgres => (support::postgres().await.database().await, None),
    }
}

/// The state tests run with: fresh keys, and upstreams on loopback allowed
/// (the test servers live there).
fn test_state(store: &Store) -> AppState {
    let mut state = AppState::new(store.clone(), test_keys());
    state.target_policy = std::sync::Arc::new(
        gatehouse_admin::net::TargetPolicy::new(gatehouse_config::file::TargetPolicy::open())
            .unwrap(),
    );
    state
}

/// Fresh sealing keys for one test.
fn test_keys() -> gatehouse_admin::secrets::Keys {
    gatehouse_admin::secrets::Keys::parse(&gatehouse_admin::token::random_hex(32)).unwrap()
}

struct Api {
    app: Router,
    store: Store,
    admin: String,
    db: Db,
    _dir: Option<tempfile::TempDir>,
}

impl Api {
    /// The same API and database, sending ownership checks to `edge`.
    fn with_verify_via(mut self, edge: std::net::SocketAddr) -> Api {
        let mut state = test_state(&self.store);
        state.verify_via = Some(edge);
        self.app = router(state);
        self
    }

    /// The same API and database, with nodes whose plugin chains are at most `n` long.
    fn with_max_plugin_chain(mut self, n: usize) -> Api {
        let mut state = test_state(&self.store);
        state.max_plugin_chain = n;
        self.app = router(state);
        self
    }

    /// The same API and database, pending domains keeping their names for `ttl`.
    fn with_pending_domain_ttl(mut self, ttl: std::time::Duration) -> Api {
        let mut state = test_state(&self.store);
        state.pending_domain_ttl = ttl;
        self.app = router(state);
        self
    }

    /// The same API and database, tenants storing at most `bytes` of plugins.
    fn with_plugin_storage(mut self, bytes: u64) -> Api {
        let mut state = test_state(&self.store);
        state.plugin_storage_bytes = bytes;
        self.app = router(state);
        self
    }

    /// The same API and database with the production default: no internal targets.
    fn refusing_internal_targets(mut self) -> Api {
        self.app = router(AppState::new(self.store.clone(), test_keys()));
        self
    }

    /// The same API and database, asking `dns` for TXT records.
    fn with_dns_resolver(mut self, dns: std::net::SocketAddr) -> Api {
        let mut state = test_state(&self.store);
        state.dns_resolver = Some(dns);
        self.app = router(state);
        self
    }

    /// [`Api::with_dns_resolver`] with the production target policy.
    fn with_dns_resolver_refusing_internal(mut self, dns: std::net::SocketAddr) -> Api {
        let mut state = AppState::new(self.store.clone(), test_keys());
        state.dns_resolver = Some(dns);
        self.app = router(state);
        self
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    async fn new(db: Db) -> Api {
        let (url, dir) = fresh(db).await;
        let store = Store::connect(&url).await.unwrap();
        let Bootstrap::Generated(admin) = bootstrap(&store, None).await.unwrap() else {
            panic!("first start creates a token");
        };
        Api {
            app: router(test_state(&store)),
            store,
            admin,
            db,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.raw(method, uri, token, body.map(|b| b.to_string()), &[])
            .await
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        self.send(req).await
    }

    /// Sends `req` through the router; the body as JSON (or as text when it is not).
    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends `bytes` with `content_type` (uploads).
    async fn upload(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(bytes))
            .unwrap();
        self.send(req).await
    }

    async fn tenant(&self, name: &str) {
        let r = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(&self.admin),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }

    async fn token(&self, by: &str, role: &str, tenant: Option<&str>) -> String {
        let (uri, body) = match tenant {
            Some(t) => (
                format!("/v1/tenants/{t}/tokens"),
                json!({ "name": format!("{role} token"), "role": role }),
            ),
            None => (
                "/v1/tokens".to_string(),
                json!({ "name": "platform token" }),
            ),
        };
        let r = self.call(Method::POST, &uri, Some(by), Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }

    /// A new node token (for `/v1/dataplane`).
    async fn node_token(&self) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/tokens",
                Some(&self.admin),
                Some(json!({ "name": "edge-1", "role": "node" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }

    async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/audit{query}"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["events"].as_array().unwrap().clone()
    }
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{:?}", r.body);
    assert!(r.body["error"]["message"].is_string(), "{:?}", r.body);
}

async fn the_bootstrap_token_is_created_once(api: Api) {
    assert_eq!(
        bootstrap(&api.store, None).await.unwrap(),
        Bootstrap::Exists
    );
    let r = api
        .call(Method::GET, "/v1/tenants", Some(&api.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["tenants"], json!([]));
}

async fn a_preset_bootstrap_token_is_used_as_given(api: Api) {
    let (url, _dir) = fresh(api.db).await;
    let store = Store::connect(&url).await.unwrap();
    let preset = gatehouse_admin::token::generate().token;
    assert_eq!(
        bootstrap(&store, Some(&preset)).await.unwrap(),
        Bootstrap::PresetInstalled,
        "nothing to show"
    );
    let app = router(AppState::new(store.clone(), test_keys()));
    let call = |method: Method, path: String| {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {preset}"))
            .body(Body::empty())
            .unwrap();
        let app = app.clone();
        async move { app.oneshot(req).await.unwrap() }
    };
    assert_eq!(
        call(Method::GET, "/v1/tenants".into()).await.status(),
        StatusCode::OK
    );
    // Restarts with the same preset: nothing to do, nothing to say.
    let again = bootstrap(&store, Some(&preset)).await.unwrap();
    assert_eq!(again, Bootstrap::Exists);
    assert_eq!(again.warning(), None);
    // A different (or malformed) preset once an admin exists is not used,
    // and the operator is told.
    let other = gatehouse_admin::token::generate().token;
    for unused in [other.as_str(), "not-a-token"] {
        let outcome = bootstrap(&store, Some(unused)).await.unwrap();
        assert_eq!(outcome, Bootstrap::PresetUnused, "{unused}");
        let warning = outcome.warning().unwrap();
        assert!(
            warning.contains("GATEHOUSE_ADMIN_TOKEN is not used"),
            "{warning}"
        );
        assert!(!warning.contains(unused), "{warning}");
    }

    // The only platform admin revokes itself. Restarting with the same
    // preset must neither bring it back nor fail (it hit the prefix's
    // unique constraint, and `gatehouse run` crash-looped on it).
    let r = call(Method::GET, "/v1/tokens".into()).await;
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    let id = body["tokens"][0]["id"].as_str().unwrap().to_string();
    let r = call(Method::DELETE, format!("/v1/tokens/{id}")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let outcome = bootstrap(&store, Some(&preset)).await.unwrap();
    assert_eq!(outcome, Bootstrap::PresetRefused("was revoked"));
    assert!(outcome.warning().unwrap().contains("was revoked"));
    assert_eq!(
        call(Method::GET, "/v1/tenants".into()).await.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked preset stays revoked"
    );
    // Unset, a fresh token is generated.
    assert!(matches!(
        bootstrap(&store, None).await.unwrap(),
        Bootstrap::Generated(_)
    ));

    let (url, _other) = fresh(api.db).await;
    let store = Store::connect(&url).await.unwrap();
    assert!(bootstrap(&store, Some("not-a-token")).await.is_err());
}

async fn requests_without_a_valid_token_are_refused(api: Api) {
    let r = api.call(Method::GET, "/v1/tenants", None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let forged = gatehouse_admin::token::generate().token;
    let r = api
        .call(Method::GET, "/v1/tenants", Some(&forged), None)
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    // A real prefix with the wrong secret.
    let wrong = format!("{}{}", &api.admin[..12], "0".repeat(40));
    let r = api
        .call(Method::GET, "/v1/tenants", Some(&wrong), None)
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

async fn repeated_failures_are_rate_limited(api: Api) {
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(
            api.call(Method::GET, "/v1/tenants", Some("gh_nope"), None)
                .await
                .status,
        );
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    // A valid token from that client is served: the failures were someone
    // else's at the same address (a node behind NAT, or a tenant's pool
    // pointed at the admin from a node), and it must not lock the node out.
    let r = api
        .call(Method::GET, "/v1/tenants", Some(&api.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Failed attempts from there are still refused.
    let r = api
        .call(Method::GET, "/v1/tenants", Some("gh_nope"), None)
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_auth_failures");
}

async fn tenants_are_created_read_changed_and_deleted_with_audit(api: Api) {
    let r = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some(json!({ "name": "acme", "display_name": "ACME Corp" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["revision"], 1);
    assert_eq!(r.headers[header::ETAG], "\"1\"");
    assert!(r.headers.contains_key("x-request-id"));
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_string();

    let dup = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some(json!({ "name": "acme" })),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    assert_eq!(dup.body["error"]["field"], "name");

    let r = api
        .call(Method::GET, "/v1/tenants/acme", Some(&api.admin), None)
        .await;
    assert_eq!(r.body["display_name"], "ACME Corp");

    let stale = api
        .raw(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&api.admin),
            Some(json!({ "display_name": "x" }).to_string()),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_error(
        &stale,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    );
    let r = api
        .raw(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&api.admin),
            Some(json!({ "display_name": "Acme" }).to_string()),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["revision"], 2);
    assert_eq!(r.headers[header::ETAG], "\"2\"");

    let r = api
        .call(Method::DELETE, "/v1/tenants/acme", Some(&api.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(
            Method::GET,
            "/v1/tenants/acme/tokens",
            Some(&api.admin),
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .call(Method::GET, "/v1/tenants/acme", Some(&api.admin), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    let events = api.audit("?tenant=acme").await;
    let actions: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("tenant.delete", "ok"),
            ("tenant.update", "ok"),
            ("tenant.update", "precondition_failed"),
            ("tenant.create", "ok"),
        ]
    );
    let create = &events[3];
    assert_eq!(create["request_id"], request_id.as_str());
    assert_eq!(create["actor"], &api.admin[3..11]);
    assert_eq!(create["after"]["display_name"], "ACME Corp");
    assert_eq!(events[1]["before"]["display_name"], "ACME Corp");
    assert_eq!(events[1]["after"]["display_name"], "Acme");
    assert_eq!(events[0]["after"], Value::Null);
}

async fn a_tenant_token_sees_only_its_tenant(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let owner = api.token(&api.admin, "owner", Some("acme")).await;
    let viewer = api.token(&owner, "viewer", Some("acme")).await;

    let r = api
        .call(Method::GET, "/v1/tenants", Some(&viewer), None)
        .await;
    let names: Vec<_> = r.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("acme")]);
    for token in [&owner, &viewer] {
        let r = api
            .call(Method::GET, "/v1/tenants/beta", Some(token), None)
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        let r = api
            .call(Method::GET, "/v1/tenants/beta/tokens", Some(token), None)
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    // Another tenant's object is "not found", exactly like a missing one.
    let foreign = api
        .call(Method::GET, "/v1/tenants/beta", Some(&owner), None)
        .await;
    let missing = api
        .call(Method::GET, "/v1/tenants/nope", Some(&owner), None)
        .await;
    assert_eq!(foreign.status, missing.status);

    let r = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&viewer),
            Some(json!({ "display_name": "x" })),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(&owner),
            Some(json!({ "display_name": "x" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&owner),
            Some(json!({ "name": "gamma" })),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call(Method::DELETE, "/v1/tenants/acme", Some(&owner), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // The audit log of a tenant token is its own tenant's, whatever it asks.
    let r = api
        .call(Method::GET, "/v1/audit", Some(&viewer), None)
        .await;
    let events = r.body["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["tenant"] == "acme"), "{events:?}");
    let r = api
        .call(Method::GET, "/v1/audit?tenant=beta", Some(&viewer), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

async fn tokens_are_shown_once_bounded_by_role_and_revocable(api: Api) {
    api.tenant("acme").await;
    let admin = api.token(&api.admin, "admin", Some("acme")).await;
    let r = api
        .call(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(&admin),
            Some(json!({ "name": "ci", "role": "operator", "expires_in_days": 30 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let operator = r.body["token"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(r.body["expires_ms"].as_i64().unwrap() > 0);

    // An admin cannot mint an owner; an operator cannot mint anything.
    let r = api
        .call(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(&admin),
            Some(json!({ "name": "x", "role": "owner" })),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(&operator),
            Some(json!({ "name": "x", "role": "viewer" })),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = api
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // Listing never shows a secret.
    let r = api
        .call(Method::GET, "/v1/tokens", Some(&admin), None)
        .await;
    let listed = r.body.to_string();
    assert!(!listed.contains(&operator[12..]), "secret leaked: {listed}");
    assert!(!listed.contains("secret"), "{listed}");
    assert_eq!(r.body["tokens"].as_array().unwrap().len(), 2);

    let r = api
        .call(Method::GET, "/v1/tenants/acme", Some(&operator), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(Method::GET, "/v1/tenants/acme", Some(&operator), None)
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = api
        .call(Method::GET, "/v1/tokens", Some(&admin), None)
        .await;
    let revoked = r.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(revoked["revoked_ms"].as_i64().is_some());

    let events = api.audit("?action=token.revoke").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["target"], format!("token/{}", &operator[3..11]));
}

async fn bad_input_gets_a_4xx_naming_the_field(api: Api) {
    let r = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some(json!({ "name": "acme", "colour": "red" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "colour");
    let r = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some(json!({ "name": 7 })),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "name");
    let r = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some(json!({ "name": "Bad Name" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "name");
    let r = api
        .raw(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some("{\"name\":".into()),
            &[],
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = api
        .raw(
            Method::POST,
            "/v1/tenants",
            Some(&api.admin),
            Some("x".repeat(2 * 1024 * 1024)),
            &[],
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let r = api
        .call(Method::GET, "/v1/nothing-here", Some(&api.admin), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .call(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(&api.admin),
            Some(json!({ "name": "x", "role": "emperor" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["field"], "role");
    let r = api
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&api.admin),
            Some(json!({ "name": "x", "expires_in_days": 9999 })),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "expires_in_days");
    let r = api
        .call(Method::GET, "/v1/audit?colour=red", Some(&api.admin), None)
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(r.body["error"]["field"], "colour");
    let r = api
        .call(Method::GET, "/v1/audit?limit=lots", Some(&api.admin), None)
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_query");
    let r = api
        .call(Method::TRACE, "/v1/tenants", Some(&api.admin), None)
        .await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

async fn the_audit_log_is_append_only(api: Api) {
    api.tenant("acme").await;
    let update = sqlx::query("UPDATE audit_events SET outcome = 'ok'")
        .execute(api.store.pool())
        .await;
    assert!(update.is_err(), "updating an event must fail");
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(api.store.pool())
        .await;
    assert!(delete.is_err(), "deleting an event must fail");
    assert_eq!(api.audit("").await.len(), 1);
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = gatehouse_admin::openapi().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("GATEHOUSE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "admin/openapi.json differs from the code; regenerate it with \
         GATEHOUSE_UPDATE_OPENAPI=1 cargo test -p gatehouse-admin --test api the_committed_openapi"
    );
}

/// Each role × each endpoint × its own and a foreign tenant: the expected status.
async fn rbac_matrix(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let owner = api.token(&api.admin, "owner", Some("acme")).await;
    let tokens = [
        ("platform-admin", api.admin.clone()),
        ("owner", owner.clone()),
        ("admin", api.token(&owner, "admin", Some("acme")).await),
        (
            "operator",
            api.token(&owner, "operator", Some("acme")).await,
        ),
        ("viewer", api.token(&owner, "viewer", Some("acme")).await),
    ];
    // (method, path with {t} for the tenant, body, [own tenant: platform, owner, admin,
    // operator, viewer], [foreign tenant: same order]).
    type Row = (Method, &'static str, Option<Value>, [u16; 5], [u16; 5]);
    let rows: Vec<Row> = vec![
        (
            Method::GET,
            "/v1/tenants/{t}",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::PATCH,
            "/v1/tenants/{t}",
            Some(json!({ "display_name": "x" })),
            [200, 200, 200, 403, 403],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::DELETE,
            "/v1/tenants/{t}",
            None,
            [0, 403, 403, 403, 403],
            [0, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/tenants/{t}/tokens",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/tenants/{t}/tokens",
            Some(json!({ "name": "m", "role": "viewer" })),
            [201, 201, 201, 403, 403],
            [201, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/audit?tenant={t}",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        // The tenant's request ceiling is the platform's to set; the tenant reads it.
        (
            Method::PUT,
            "/v1/tenants/{t}/rate-limit",
            Some(json!({ "requests": 1000, "per": "1s" })),
            [201, 403, 403, 403, 403],
            [201, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/tenants/{t}/rate-limit",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::DELETE,
            "/v1/tenants/{t}/rate-limit",
            None,
            [204, 403, 403, 403, 403],
            [204, 404, 404, 404, 404],
        ),
        // Draft objects: operators run pools and routes, admins the rest.
        (
            Method::GET,
            "/v1/tenants/{t}/pools",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/tenants/{t}/pools/p2",
            Some(json!({ "targets": [{ "addr": "127.0.0.1:9000" }] })),
            [200, 200, 200, 200, 403],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/tenants/{t}/pools/p2",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::DELETE,
            "/v1/tenants/{t}/pools/missing",
            None,
            [404, 404, 404, 404, 403],
            [404, 404, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/tenants/{t}/domains/www.{t}.example",
            Some(json!({})),
            [200, 200, 200, 403, 403],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/tenants/{t}/domains",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/tenants/{t}/domains/www.{t}.example/verify",
            Some(json!({ "method": "skip" })),
            [200, 403, 403, 403, 403],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/tenants/{t}/domains/www.{t}.example/routes/r",
            Some(json!({ "respond": { "status": 204 } })),
            [200, 200, 200, 200, 403],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/tenants/{t}/domains/www.{t}.example/routes/r",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/tenants/{t}/certificates",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::DELETE,
            "/v1/tenants/{t}/certificates/missing",
            None,
            [404, 404, 404, 403, 403],
            [404, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/tenants/{t}/plugins",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::DELETE,
            "/v1/tenants/{t}/plugins/missing",
            None,
            [404, 404, 404, 403, 403],
            [404, 404, 404, 404, 404],
        ),
        // Versions: operators publish and roll back their tenant.
        (
            Method::POST,
            "/v1/publish",
            Some(json!({ "tenant": "{t}" })),
            [200, 200, 200, 200, 403],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/versions",
            None,
            [200, 200, 200, 200, 200],
            [200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/diff?tenant={t}",
            None,
            [200, 200, 200, 200, 200],
            [200, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/versions/1/rollback",
            Some(json!({ "tenant": "{t}" })),
            [200, 200, 200, 403, 403],
            [200, 404, 404, 404, 404],
        ),
        // Nodes are the platform's.
        (
            Method::GET,
            "/v1/nodes",
            None,
            [200, 403, 403, 403, 403],
            [200, 403, 403, 403, 403],
        ),
        // Snapshots carry private keys: node tokens only.
        (
            Method::GET,
            "/v1/dataplane/snapshot?wait=0s",
            None,
            [403, 403, 403, 403, 403],
            [403, 403, 403, 403, 403],
        ),
        // Purging is an operator's job, within the tenant; the feed is the nodes'.
        (
            Method::POST,
            "/v1/tenants/{t}/cache/purge",
            Some(json!({ "tag": "x" })),
            [202, 202, 202, 202, 403],
            [202, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/dataplane/purges",
            None,
            [403, 403, 403, 403, 403],
            [403, 403, 403, 403, 403],
        ),
    ];
    // Created and replaced are both success here.
    let class = |s: u16| if s == 201 || s == 202 { 200 } else { s };
    let mut failures = Vec::new();
    for (method, path, body, own, foreign) in &rows {
        for (tenant, expected) in [("acme", own), ("beta", foreign)] {
            for ((role, token), want) in tokens.iter().zip(expected) {
                if *want == 0 {
                    continue; // covered below without destroying the fixture
                }
                let uri = path.replace("{t}", tenant);
                let body = body
                    .as_ref()
                    .map(|b| serde_json::from_str(&b.to_string().replace("{t}", tenant)).unwrap());
                let got = api
                    .call(method.clone(), &uri, Some(token), body)
                    .await
                    .status
                    .as_u16();
                if class(got) != class(*want) {
                    failures.push(format!("{role} {method} {uri}: {got}, expected {want}"));
                }
            }
        }
    }
    // Tenant lifecycle is the platform's.
    for (role, token) in &tokens {
        let r = api
            .call(
                Method::POST,
                "/v1/tenants",
                Some(token),
                Some(json!({ "name": format!("new-{role}") })),
            )
            .await;
        let want = if *role == "platform-admin" { 201 } else { 403 };
        if r.status.as_u16() != want {
            failures.push(format!(
                "{role} POST /v1/tenants: {}, expected {want}",
                r.status
            ));
        }
    }
    let r = api
        .call(
            Method::DELETE,
            "/v1/tenants/new-platform-admin",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        failures.is_empty(),
        "RBAC mismatches:\n{}",
        failures.join("\n")
    );
}

/// Runs each named test on SQLite and on PostgreSQL.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Api::new(super::Db::Sqlite).await).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Api::new(super::Db::Postgres).await).await
            })*
        }
    };
}

/// Purges are numbered, audited and fed to nodes in order, each with its
/// tenant; a node starts from the latest; bad targets name the field.
async fn cache_purges_reach_nodes_in_order_with_their_tenant(api: Api) {
    api.tenant("acme").await;
    api.tenant("beta").await;
    let owner = api.token(&api.admin, "owner", Some("acme")).await;
    let operator = api.token(&owner, "operator", Some("acme")).await;
    let node = api.node_token().await;
    let feed = |after: Option<u64>| {
        let uri = match after {
            Some(a) => format!("/v1/dataplane/purges?after={a}&wait=0s"),
            None => "/v1/dataplane/purges".to_string(),
        };
        let node = node.clone();
        let api = &api;
        async move {
            let r = api.call(Method::GET, &uri, Some(&node), None).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body
        }
    };
    // A starting node begins at the latest purge: none yet.
    assert_eq!(feed(None).await, json!({ "latest": 0, "purges": [] }));

    let purge = |token: String, tenant: &'static str, body: Value| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/cache/purge"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let r = purge(
        operator.clone(),
        "acme",
        json!({ "url": "https://a.test/p/1" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["id"], 1);
    let r = purge(api.admin.clone(), "beta", json!({ "all": true })).await;
    assert_eq!(r.body["id"], 2);
    let r = purge(operator.clone(), "acme", json!({ "prefix": "a.test/img/" })).await;
    assert_eq!(r.body["id"], 3);

    let all = feed(Some(0)).await;
    assert_eq!(all["latest"], 3);
    let got: Vec<(u64, String, Value)> = all["purges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().unwrap(),
                p["tenant"].as_str().unwrap().to_string(),
                p["target"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "acme".into(), json!({ "url": "https://a.test/p/1" })),
            (2, "beta".into(), json!({ "all": true })),
            (3, "acme".into(), json!({ "prefix": "a.test/img/" })),
        ]
    );
    let rest = feed(Some(2)).await;
    assert_eq!(rest["purges"].as_array().unwrap().len(), 1);
    assert_eq!(feed(Some(3)).await, json!({ "latest": 3, "purges": [] }));
    // A starting node asks for what happened since it started.
    let r = api
        .call(
            Method::GET,
            "/v1/dataplane/purges?since_ms=0",
            Some(&node),
            None,
        )
        .await;
    assert_eq!(r.body["purges"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["latest"], 3);
    let r = api
        .call(
            Method::GET,
            "/v1/dataplane/purges?since_ms=99999999999999",
            Some(&node),
            None,
        )
        .await;
    assert_eq!(r.body, json!({ "latest": 3, "purges": [] }));
    // A node ahead of the admin (a restored database) is told where it stands.
    assert_eq!(feed(Some(9)).await["latest"], 3);
    assert_eq!(feed(None).await["latest"], 3);

    // The target must name exactly one thing, well-formed.
    for (body, field) in [
        (json!({}), "url"),
        (json!({ "tag": "a", "all": true }), "url"),
        (json!({ "tag": "two words" }), "tag"),
        (json!({ "host": "bad host" }), "host"),
        (json!({ "url": "https:///nohost" }), "url"),
    ] {
        let r = purge(operator.clone(), "acme", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{body}");
    }
    let r = purge(operator.clone(), "acme", json!({ "tags": "x" })).await;
    assert!(r.status.is_client_error());
    let events = api.audit("?tenant=acme").await;
    assert!(
        events.iter().any(|e| e["action"] == "cache.purge"),
        "{events:?}"
    );
}

/// ACME challenges are published by platform admins, fed to nodes with a
/// version, and ready only once every live node acknowledged that version.
async fn acme_challenges_are_ready_once_every_node_serves_them(api: Api) {
    api.tenant("acme").await;
    let owner = api.token(&api.admin, "owner", Some("acme")).await;
    let node = api.node_token().await;
    let token = "tok_0123456789abcdefABCDEF";
    let body = json!({ "host": "Shop.Example.COM", "key_authorization": format!("{token}.thumb") });
    let uri = format!("/v1/acme/challenges/{token}");
    // Tenants cannot publish challenges (they would prove names they do not own).
    let r = api
        .call(Method::PUT, &uri, Some(&owner), Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (bad, field) in [
        (
            json!({ "host": "x.test", "key_authorization": "other.thumb" }),
            "key_authorization",
        ),
        (
            json!({ "host": "not a host", "key_authorization": format!("{token}.t") }),
            "host",
        ),
        (
            json!({ "host": "x.test", "key_authorization": format!("{token}.t"), "ttl_seconds": 0 }),
            "ttl_seconds",
        ),
    ] {
        let r = api
            .call(Method::PUT, &uri, Some(&api.admin), Some(bad))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert_eq!(r.body["error"]["field"], field);
    }
    let r = api
        .call(
            Method::PUT,
            "/v1/acme/challenges/short",
            Some(&api.admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A node that serves nothing yet, seen just now.
    let poll = |after: i64| {
        let node = node.clone();
        let api = &api;
        async move {
            let r = api
                .call(
                    Method::GET,
                    &format!("/v1/dataplane/challenges?after={after}&wait=0s&node=edge-1"),
                    Some(&node),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body
        }
    };
    let empty = poll(0).await;
    assert_eq!(empty["challenges"], json!([]));

    let r = api
        .call(Method::PUT, &uri, Some(&api.admin), Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let version = r.body["version"].as_i64().unwrap();
    assert_eq!(r.body["nodes_ready"], false);
    assert_eq!(r.body["waiting_on"], json!(["edge-1"]));

    let set = poll(0).await;
    assert_eq!(set["version"], version);
    assert_eq!(
        set["challenges"],
        json!([{ "host": "shop.example.com", "token": token, "key_authorization": format!("{token}.thumb") }])
    );
    // Not ready until the node says it serves that set...
    let r = api.call(Method::GET, &uri, Some(&api.admin), None).await;
    assert_eq!(r.body["nodes_ready"], false);
    // ...which its next poll does.
    poll(version).await;
    let r = api.call(Method::GET, &uri, Some(&api.admin), None).await;
    assert_eq!(r.body["nodes_ready"], true, "{:?}", r.body);

    let r = api.call(Method::DELETE, &uri, Some(&api.admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let after = poll(version).await;
    assert!(after["version"].as_i64().unwrap() > version);
    assert_eq!(after["challenges"], json!([]));
    let r = api.call(Method::GET, &uri, Some(&api.admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let events = api.audit("?action=acme.challenge").await;
    assert!(!events.is_empty());
}

on_both_databases!(
    acme_challenges_are_ready_once_every_node_serves_them,
    cache_purges_reach_nodes_in_order_with_their_tenant,
    rbac_matrix,
    the_bootstrap_token_is_created_once,
    requests_without_a_valid_token_are_refused,
    repeated_failures_are_rate_limited,
    tenants_are_created_read_changed_and_deleted_with_audit,
    a_tenant_token_sees_only_its_tenant,
    tokens_are_shown_once_bounded_by_role_and_revocable,
    bad_input_gets_a_4xx_naming_the_field,
    the_audit_log_is_append_only,
    a_preset_bootstrap_token_is_used_as_given,
    pools_routes_and_domains_keep_their_references,
    tenants_cannot_point_pools_at_the_edge_itself,
    hostnames_are_canonical_and_unique_across_tenants,
    pending_claims_expire_and_public_suffixes_cannot_be_claimed,
    refusals_are_audited_under_the_caller_and_bounded,
    http_ownership_checks_follow_the_target_policy_and_tell_nothing,
    plugin_storage_is_bounded_per_tenant_and_unreferenced_components_collected,
    domain_ownership_is_verified_over_http,
    domain_ownership_is_verified_by_dns,
    certificates_are_checked_and_their_keys_never_shown,
    plugins_are_validated_as_the_proxy_loads_them_and_stored_by_digest,
    plugin_chains_are_bounded_per_request,
    publishing_validates_everything_and_versions_roll_back,
    a_tenants_publish_never_fails_on_another_tenants_part,
    nodes_poll_versions_and_report_on_them,
    a_tenant_sees_only_its_part_of_versions,
    tenant_rate_limits_are_set_by_the_platform_and_published,
    deleting_a_tenant_unpublishes_it_and_retires_its_name,
);
