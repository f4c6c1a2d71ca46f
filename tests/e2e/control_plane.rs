//! The control plane end to end: an admin process, proxies following it
//! (`gatehouse proxy`, and `gatehouse run` with an in-process admin), real
//! upstreams, publishing, rollback, NACKs and restarts without the admin.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::admin::Admin;
use crate::support::*;

/// A platform-admin token preset for the admin processes of these tests.
fn preset_token() -> String {
    format!("gh_e2etests_{}", "c".repeat(40))
}

/// The admin API as a client.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base: &str, token: &str) -> Api {
        Api {
            base: base.to_string(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends and requires a 2xx; returns the body.
    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.send(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        body
    }

    /// Tenant `acme` with pool `web` → `target`, active domain `host`, route `/` → `web`.
    async fn site(&self, host: &str, target: std::net::SocketAddr) {
        use reqwest::Method;
        let (status, _) = self
            .send(Method::POST, "/v1/tenants", Some(json!({ "name": "acme" })))
            .await;
        assert!(status == 201 || status == 409, "{status}");
        self.ok(
            Method::PUT,
            "/v1/tenants/acme/pools/web",
            Some(json!({ "targets": [{ "addr": target.to_string() }] })),
        )
        .await;
        self.domain(host, json!({})).await;
    }

    /// Domain `host` of `acme` with `spec`, route `/` → `web`, verified.
    async fn domain(&self, host: &str, spec: Value) {
        use reqwest::Method;
        self.ok(
            Method::PUT,
            &format!("/v1/tenants/acme/domains/{host}"),
            Some(spec),
        )
        .await;
        self.ok(
            Method::PUT,
            &format!("/v1/tenants/acme/domains/{host}/routes/root"),
            Some(json!({ "pool": "web" })),
        )
        .await;
        self.ok(
            Method::POST,
            &format!("/v1/tenants/acme/domains/{host}/verify"),
            Some(json!({ "method": "skip" })),
        )
        .await;
    }

    async fn publish(&self) -> u64 {
        let body = self
            .ok(reqwest::Method::POST, "/v1/publish", Some(json!({})))
            .await;
        body["version"]["version"].as_u64().unwrap()
    }

    async fn node_token(&self, name: &str) -> String {
        let body = self
            .ok(
                reqwest::Method::POST,
                "/v1/tokens",
                Some(json!({ "name": name, "role": "node" })),
            )
            .await;
        body["token"].as_str().unwrap().to_string()
    }

    async fn node(&self, id: &str) -> Value {
        let body = self.ok(reqwest::Method::GET, "/v1/nodes", None).await;
        body["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// Which upstream answers `host` through `proxy`, if any.
async fn served_by(proxy: &Proxy, host: &str) -> Option<String> {
    let r = proxy
        .client(&[host])
        .get(proxy.url(host, "/"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    body["server"].as_str().map(str::to_string)
}

/// Waits until `host` is served by `server`; returns how long that took.
async fn until_served(proxy: &Proxy, host: &str, server: &str, deadline: Duration) -> Duration {
    let started = Instant::now();
    eventually(deadline, &format!("{host} served by {server}"), || async {
        (served_by(proxy, host).await.as_deref() == Some(server)).then_some(())
    })
    .await;
    started.elapsed()
}

const NODE: &str = r#"
listeners:
  http: "127.0.0.1:{http}"
  internal: "127.0.0.1:{internal}"
server:
  threads: 1
  grace_period: 1s
  upgrade_sock: "{dir}/upgrade.sock"
  plugin_cache_dir: "{dir}/plugin-cache"
"#;

/// Starts `gatehouse proxy` following `admin` with `token`, keeping its state in `state`.
async fn start_node(admin_url: &str, token: &str, state: &std::path::Path, id: &str) -> Proxy {
    start_node_with(admin_url, token, state, id, &[]).await
}

async fn start_node_with(
    admin_url: &str,
    token: &str,
    state: &std::path::Path,
    id: &str,
    extra: &[&str],
) -> Proxy {
    let state = state.display().to_string();
    let mut command = vec![
        "proxy",
        "--admin-url",
        admin_url,
        "--state-dir",
        &state,
        "--node-id",
        id,
    ];
    command.extend_from_slice(extra);
    Proxy::start_command(
        tempfile::tempdir().unwrap(),
        NODE,
        &command,
        &[("GATEHOUSE_NODE_TOKEN", token)],
    )
    .await
}

/// [`start_node`] with its own config file `yaml` (rendered like [`NODE`]).
async fn start_node_from(
    yaml: &str,
    admin_url: &str,
    token: &str,
    state: &std::path::Path,
    id: &str,
) -> Proxy {
    let state = state.display().to_string();
    Proxy::start_command(
        tempfile::tempdir().unwrap(),
        yaml,
        &[
            "proxy",
            "--admin-url",
            admin_url,
            "--state-dir",
            &state,
            "--node-id",
            id,
        ],
        &[("GATEHOUSE_NODE_TOKEN", token)],
    )
    .await
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: String,
    admin: Admin,
    api: Api,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/gatehouse.db", dir.path().display());
    let token = preset_token();
    let admin = Admin::start(&db, &[("GATEHOUSE_ADMIN_TOKEN", &token)]).await;
    let api = Api::new(&admin.base, &token);
    Fixture {
        _dir: dir,
        db,
        admin,
        api,
    }
}

#[tokio::test]
async fn a_published_site_reaches_a_separate_proxy_within_a_second_and_rolls_back() {
    let f = fixture().await;
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    // Nothing published yet: the node serves nothing.
    assert_eq!(served_by(&proxy, "app.example.com").await, None);

    f.api.site("app.example.com", a.addr).await;
    let v1 = f.api.publish().await;
    let took = until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(1),
        "the first publish took {took:?} to reach the proxy"
    );

    f.api
        .ok(
            reqwest::Method::PUT,
            "/v1/tenants/acme/pools/web",
            Some(json!({ "targets": [{ "addr": b.addr.to_string() }] })),
        )
        .await;
    // A draft edit changes nothing until it is published.
    assert_eq!(
        served_by(&proxy, "app.example.com").await.as_deref(),
        Some("a")
    );
    let v2 = f.api.publish().await;
    let took = until_served(&proxy, "app.example.com", "b", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "publish took {took:?}");

    let body = f
        .api
        .ok(
            reqwest::Method::POST,
            &format!("/v1/versions/{v1}/rollback"),
            Some(json!({})),
        )
        .await;
    let v3 = body["version"]["version"].as_u64().unwrap();
    assert_eq!(v3, v2 + 1);
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    eventually(
        Duration::from_secs(5),
        "the node to report version 3",
        || async { (f.api.node("edge-1").await["applied_version"] == v3).then_some(()) },
    )
    .await;
    // The applied version is on disk, private to the proxy's user.
    let file = state.path().join("snapshot.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["version"], v3);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn a_tenant_part_the_node_cannot_load_keeps_running_its_previous_part() {
    let f = fixture().await;
    let a = Upstream::start("a");
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    f.api.site("app.example.com", a.addr).await;

    // A real plugin, uploaded and bound: served with its header.
    let wasm = std::fs::read(plugin("examples/add-headers")).unwrap();
    let r = reqwest::Client::new()
        .put(format!("{}/v1/tenants/acme/plugins/tagger", f.admin.base))
        .bearer_auth(&f.api.token)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let binding = json!({ "plugins": [{ "plugin": "tagger", "config": { "response": { "x-tagged": "yes" } } }] });
    f.api
        .ok(
            reqwest::Method::PUT,
            "/v1/tenants/acme/domains/app.example.com",
            Some(binding),
        )
        .await;
    let v1 = f.api.publish().await;
    let client = proxy.client(&["app.example.com"]);
    eventually(Duration::from_secs(10), "the plugin's header", || async {
        let r = client
            .get(proxy.url("app.example.com", "/"))
            .send()
            .await
            .ok()?;
        (r.headers().get("x-tagged")? == "yes").then_some(())
    })
    .await;

    // The next version names a component this node cannot compile (say, an
    // admin newer than the node let it through): written straight into the
    // store, as the API would refuse it.
    let garbage = b"\0asm\x0d\0\x01\0 not a component".to_vec();
    let sha = ring_sha256(&garbage);
    let store = gatehouse_admin::store::Store::connect(&f.db).await.unwrap();
    sqlx::query("INSERT INTO blobs (sha256, bytes, size, created_ms) VALUES ($1, $2, $3, 0)")
        .bind(&sha)
        .bind(garbage.clone())
        .bind(garbage.len() as i64)
        .execute(store.pool())
        .await
        .unwrap();
    let spec: String =
        sqlx::query_scalar("SELECT spec FROM objects WHERE kind = 'plugin' AND name = 'tagger'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let mut spec: Value = serde_json::from_str(&spec).unwrap();
    spec["sha256"] = json!(sha);
    sqlx::query("UPDATE objects SET spec = $1 WHERE kind = 'plugin' AND name = 'tagger'")
        .bind(spec.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    let v2 = f.api.publish().await;
    assert_eq!(v2, v1 + 1);

    // Version 2 is applied without acme's new part (issue 22): acme runs
    // its part of version 1, and the ACK says why.
    let node = eventually(
        Duration::from_secs(10),
        "the node to apply version 2",
        || async {
            let n = f.api.node("edge-1").await;
            (n["applied_version"] == v2).then_some(n)
        },
    )
    .await;
    assert_eq!(node["refused"][0]["tenant"], "acme", "{node}");
    let problems = node["refused"][0]["problems"].to_string();
    assert!(problems.contains("plugins["), "{problems}");
    let refused = proxy.metric(
        "gatehouse_published_rejected_total",
        &[("reason", "tenant_part")],
    );
    assert_eq!(refused.await, Some(1.0));
    // Still serving acme's version-1 part, plugin and all.
    let r = client
        .get(proxy.url("app.example.com", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tagged"], "yes");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("snapshot.json")).unwrap())
            .unwrap();
    assert_eq!(saved["version"], v2);
}

fn ring_sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_restarted_proxy_serves_its_last_snapshot_while_the_admin_is_down() {
    let mut f = fixture().await;
    let a = Upstream::start("a");
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    f.api.site("app.example.com", a.addr).await;
    let v1 = f.api.publish().await;
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    eventually(Duration::from_secs(5), "the ACK", || async {
        (f.api.node("edge-1").await["applied_version"] == v1).then_some(())
    })
    .await;

    f.admin.kill();
    drop(proxy);
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    // Ready means serving: no waiting for an admin that is not there.
    assert_eq!(
        served_by(&proxy, "app.example.com").await.as_deref(),
        Some("a")
    );
    assert!(
        proxy.log().contains("serving the last applied snapshot"),
        "{}",
        proxy.log()
    );
}

#[tokio::test]
async fn a_node_refuses_an_older_version_unless_forced() {
    let f = fixture().await;
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    f.api.site("app.example.com", a.addr).await;
    f.api.publish().await;
    f.api
        .ok(
            reqwest::Method::PUT,
            "/v1/tenants/acme/pools/web",
            Some(json!({ "targets": [{ "addr": b.addr.to_string() }] })),
        )
        .await;
    let v2 = f.api.publish().await;
    until_served(&proxy, "app.example.com", "b", Duration::from_secs(5)).await;
    // The admin's database loses its last version (a restore from an older backup).
    let store = gatehouse_admin::store::Store::connect(&f.db).await.unwrap();
    sqlx::query("DELETE FROM snapshots WHERE version = $1")
        .bind(v2 as i64)
        .execute(store.pool())
        .await
        .unwrap();
    // The node's waiting poll sees the current version change (to 1) within a second.
    let node = eventually(
        Duration::from_secs(40),
        "the node to refuse version 1",
        || async {
            let n = f.api.node("edge-1").await;
            (n["last_error_version"] == 1).then_some(n)
        },
    )
    .await;
    assert!(
        node["last_error"].as_str().unwrap().contains("older"),
        "{node}"
    );
    assert_eq!(
        served_by(&proxy, "app.example.com").await.as_deref(),
        Some("b")
    );
    let older = proxy.metric("gatehouse_published_rejected_total", &[("reason", "older")]);
    assert_eq!(older.await, Some(1.0));

    // Told to, the node takes it.
    drop(proxy);
    let proxy = start_node_with(
        &f.admin.base,
        &node_token,
        state.path(),
        "edge-1",
        &["--force-snapshot"],
    )
    .await;
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_node_refuses_an_empty_version() {
    let f = fixture().await;
    let a = Upstream::start("a");
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    f.api.site("app.example.com", a.addr).await;
    f.api.publish().await;
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    // The only tenant goes; publishing everything publishes nothing.
    f.api
        .ok(reqwest::Method::DELETE, "/v1/tenants/acme", None)
        .await;
    let v2 = f.api.publish().await;
    let node = eventually(
        Duration::from_secs(10),
        "the node to refuse the empty version",
        || async {
            let n = f.api.node("edge-1").await;
            (n["last_error_version"] == v2).then_some(n)
        },
    )
    .await;
    assert!(
        node["last_error"].as_str().unwrap().contains("empty"),
        "{node}"
    );
    assert_eq!(
        served_by(&proxy, "app.example.com").await.as_deref(),
        Some("a")
    );
    let empty = proxy.metric("gatehouse_published_rejected_total", &[("reason", "empty")]);
    assert_eq!(empty.await, Some(1.0));
}

#[tokio::test]
async fn gatehouse_run_with_an_admin_section_serves_what_is_published() {
    let a = Upstream::start("a");
    let admin_port = free_port();
    let yaml = format!(
        r#"
listeners:
  http: "127.0.0.1:{{http}}"
  internal: "127.0.0.1:{{internal}}"
server:
  threads: 1
  grace_period: 1s
  upgrade_sock: "{{dir}}/upgrade.sock"
admin:
  listen: "127.0.0.1:{admin_port}"
  database: "sqlite://{{dir}}/data/gatehouse.db"
  secrets_key_file: "{{dir}}/data/secrets.key"
  state_dir: "{{dir}}/data/node"
"#
    );
    let proxy = Proxy::start_command(
        tempfile::tempdir().unwrap(),
        &yaml,
        &["run"],
        &[("GATEHOUSE_ADMIN_TOKEN", "")],
    )
    .await;
    let base = format!("http://127.0.0.1:{admin_port}");
    // The bootstrap token is printed once on standard error (here: the log file).
    let token = eventually(Duration::from_secs(20), "the bootstrap token", || async {
        proxy
            .log()
            .lines()
            .find_map(|l| l.split("store it now): ").nth(1).map(str::to_string))
    })
    .await;
    let api = Api::new(&base, &token);
    api.site("app.example.com", a.addr).await;
    api.publish().await;
    let took = until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The ACK follows the swap.
    eventually(Duration::from_secs(5), "the local node's ACK", || async {
        (api.node("local").await["applied_version"] == 1).then_some(())
    })
    .await;
}

/// The only platform-admin token, installed from `GATEHOUSE_ADMIN_TOKEN`,
/// revokes itself; the process restarts with the same environment. The
/// revoked token must stay revoked, and the data plane must keep serving:
/// it crash-looped on the token's unique prefix.
#[tokio::test]
async fn a_revoked_preset_admin_token_stays_revoked_and_never_stops_the_data_plane() {
    use reqwest::Method;
    let a = Upstream::start("a");
    let data = tempfile::tempdir().unwrap();
    let data = data.path().display();
    let admin_port = free_port();
    let yaml = format!(
        r#"
listeners:
  http: "127.0.0.1:{{http}}"
  internal: "127.0.0.1:{{internal}}"
server:
  threads: 1
  grace_period: 1s
  upgrade_sock: "{{dir}}/upgrade.sock"
admin:
  listen: "127.0.0.1:{admin_port}"
  database: "sqlite://{data}/gatehouse.db"
  secrets_key_file: "{data}/secrets.key"
  state_dir: "{data}/node"
"#
    );
    let preset = "gh_presetaa_0123456789abcdef0123456789abcdef01234567";
    let env = [("GATEHOUSE_ADMIN_TOKEN", preset)];
    let mut proxy = Proxy::start_command(tempfile::tempdir().unwrap(), &yaml, &["run"], &env).await;
    let api = Api::new(&format!("http://127.0.0.1:{admin_port}"), preset);
    let tokens = eventually(Duration::from_secs(10), "the admin API", || async {
        let r = api
            .http
            .get(format!("{}/v1/tokens", api.base))
            .bearer_auth(preset);
        let r = r.send().await.ok()?;
        (r.status() == 200).then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await;
    api.site("app.example.com", a.addr).await;
    api.publish().await;
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    // The preset (not the node token `gatehouse run` installs for itself).
    let id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "platform-admin")
        .and_then(|t| t["id"].as_str())
        .unwrap();
    api.ok(Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await;
    proxy.terminate();
    proxy.wait_exit(Duration::from_secs(10)).await;

    let proxy = Proxy::start_command(tempfile::tempdir().unwrap(), &yaml, &["run"], &env).await;
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    eventually(
        Duration::from_secs(10),
        "the refusal in the log",
        || async {
            proxy
                .log()
                .contains("GATEHOUSE_ADMIN_TOKEN was revoked")
                .then_some(())
        },
    )
    .await;
    let (status, _) = api.send(Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, 401, "the revoked token stays revoked");
    assert!(
        !proxy.log().contains(&preset[12..]),
        "the secret was logged"
    );
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(1)).await;
}

/// A node resolving pool targets through `dns` (refreshing every second).
async fn start_node_resolving_with(
    admin_url: &str,
    token: &str,
    dns: std::net::SocketAddr,
) -> (Proxy, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let yaml =
        format!("{NODE}upstream_dns: {{ nameservers: [\"{dns}\"], min_ttl: 1s, max_ttl: 2s }}\n");
    let proxy = start_node_from(&yaml, admin_url, token, state.path(), "edge-1").await;
    (proxy, state)
}

/// Issue 22, item 1: a target name is resolved by the proxy while it runs,
/// never by validation. One that does not resolve is a down target, not an
/// invalid config: every other site publishes and is served, and the name
/// is served as soon as it resolves; once it stops resolving, the last good
/// answer is kept.
#[tokio::test]
async fn a_target_name_that_does_not_resolve_is_down_and_never_blocks_anyones_config() {
    use reqwest::Method;
    let dns = dns::ChallTestSrv::start().await;
    let f = fixture().await;
    let (named, other) = (Upstream::start("named"), Upstream::start("other"));
    let node_token = f.api.node_token("edge-1").await;
    let (proxy, _state) = start_node_resolving_with(&f.admin.base, &node_token, dns.dns).await;
    f.api.site("other.example.com", other.addr).await;
    let name = format!("app.upstream.test:{}", named.addr.port());
    f.api
        .ok(
            Method::PUT,
            "/v1/tenants/acme/pools/named",
            Some(json!({ "targets": [{ "addr": name }] })),
        )
        .await;
    f.api.domain("named.example.com", json!({})).await;
    f.api
        .ok(
            Method::PUT,
            "/v1/tenants/acme/domains/named.example.com/routes/root",
            Some(json!({ "pool": "named" })),
        )
        .await;
    f.api.publish().await;
    until_served(&proxy, "other.example.com", "other", Duration::from_secs(5)).await;
    let r = proxy
        .client(&["named.example.com"])
        .get(proxy.url("named.example.com", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "no_upstream_available");
    let labels = [("pool", "acme/named"), ("target", name.as_str())];
    assert_eq!(
        proxy.metric("gatehouse_upstream_healthy", &labels).await,
        Some(0.0)
    );
    // `gatehouse check` agrees: a file with the same pool is valid.
    let yaml = "listeners: { http: \"127.0.0.1:0\" }\ntenants: [{ name: t }]\n\
                pools: [{ name: p, tenant: t, targets: [{ addr: \"nowhere.invalid:80\" }] }]\n";
    let (ok, out) = check_config(yaml);
    assert!(ok, "{out}");

    dns.set_a("app.upstream.test", std::net::Ipv4Addr::LOCALHOST)
        .await;
    until_served(
        &proxy,
        "named.example.com",
        "named",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        proxy.metric("gatehouse_upstream_healthy", &labels).await,
        Some(1.0)
    );

    dns.clear_a("app.upstream.test").await;
    let failures = [("pool", "acme/named"), ("reason", "dns")];
    eventually(Duration::from_secs(10), "a failed resolution", || async {
        proxy
            .metric("gatehouse_upstream_resolution_failures_total", &failures)
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;
    assert_eq!(
        served_by(&proxy, "named.example.com").await.as_deref(),
        Some("named")
    );
}

/// Issue 22, items 5 and 6: the platform's target policy is applied by the
/// node to every address it resolves for a tenant's pool (a name accepted
/// when it was written may later point inside), and whatever the policy
/// allows, no tenant's pool reaches the node's internal listener or the
/// admin API.
#[tokio::test]
async fn tenants_pools_never_reach_refused_addresses_the_internal_listener_or_the_admin() {
    use reqwest::Method;
    let dns = dns::ChallTestSrv::start().await;
    let up = Upstream::start("inside");
    // The default policy: loopback is refused for tenants.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/gatehouse.db", dir.path().display());
    let token = preset_token();
    let admin = Admin::start_with(&db, &[("GATEHOUSE_ADMIN_TOKEN", &token)], &[]).await;
    let api = Api::new(&admin.base, &token);
    let node_token = api.node_token("edge-1").await;
    let (proxy, _state) = start_node_resolving_with(&admin.base, &node_token, dns.dns).await;
    // The admin cannot resolve the name (its resolver is the system's):
    // accepted. The node resolves it to loopback: refused there.
    let name = format!("rebind.upstream.test:{}", up.addr.port());
    dns.set_a("rebind.upstream.test", std::net::Ipv4Addr::LOCALHOST)
        .await;
    api.ok(Method::POST, "/v1/tenants", Some(json!({ "name": "acme" })))
        .await;
    api.ok(
        Method::PUT,
        "/v1/tenants/acme/pools/web",
        Some(json!({ "targets": [{ "addr": name }] })),
    )
    .await;
    api.domain("inside.example.com", json!({})).await;
    api.publish().await;
    let refused = [("pool", "acme/web"), ("reason", "refused")];
    eventually(Duration::from_secs(10), "the refused answer", || async {
        proxy
            .metric("gatehouse_upstream_resolution_failures_total", &refused)
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;
    let r = proxy
        .client(&["inside.example.com"])
        .get(proxy.url("inside.example.com", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(up.hits(), 0, "the node connected to a refused address");
    drop(proxy);

    // An open policy (`--allow-internal-targets`): loopback is fine, but
    // never the node's internal listener nor the admin API.
    let f = fixture().await;
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    let admin_addr = f.admin.base.trim_start_matches("http://").to_string();
    f.api.site("fine.example.com", up.addr).await;
    for (host, target) in [
        ("internal.example.com", proxy.internal.to_string()),
        ("admin.example.com", admin_addr),
    ] {
        let pool = host.split('.').next().unwrap();
        f.api
            .ok(
                Method::PUT,
                &format!("/v1/tenants/acme/pools/{pool}"),
                Some(json!({ "targets": [{ "addr": target }] })),
            )
            .await;
        f.api.domain(host, json!({})).await;
        f.api
            .ok(
                Method::PUT,
                &format!("/v1/tenants/acme/domains/{host}/routes/root"),
                Some(json!({ "pool": pool })),
            )
            .await;
    }
    f.api.publish().await;
    until_served(&proxy, "fine.example.com", "inside", Duration::from_secs(5)).await;
    for host in ["internal.example.com", "admin.example.com"] {
        let r = proxy
            .client(&[host])
            .get(proxy.url(host, "/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{host}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "no_upstream_available", "{host}");
    }
}

/// Issue 22, item 3: the names a node's own config file defines are
/// reported to the admin, which refuses them to tenants (409, naming no
/// one); a collision the node still meets (here: the operator adds a name
/// already published) costs only the colliding tenant's part, and the node
/// says so.
#[tokio::test]
async fn names_a_nodes_file_defines_are_kept_from_tenants_and_a_collision_costs_only_its_tenant() {
    use reqwest::Method;
    let f = fixture().await;
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let local = |extra: &str| {
        format!(
            "{NODE}tenants: [{{ name: ops }}]\ndomains:\n  - {{ hosts: [status.example.net], tenant: ops, routes: [{{ path: /, respond: {{ body: local }} }}] }}\n{extra}"
        )
    };
    let proxy = start_node_from(
        &local(""),
        &f.admin.base,
        &node_token,
        state.path(),
        "edge-1",
    )
    .await;
    f.api.site("app.example.com", a.addr).await;
    f.api.publish().await;
    until_served(&proxy, "app.example.com", "a", Duration::from_secs(5)).await;
    eventually(
        Duration::from_secs(5),
        "the node's reserved names",
        || async {
            let node = f.api.node("edge-1").await;
            (node["reserved"] == json!({ "tenants": ["ops"], "hosts": ["status.example.net"] }))
                .then_some(())
        },
    )
    .await;
    let (status, body) = f
        .api
        .send(Method::POST, "/v1/tenants", Some(json!({ "name": "ops" })))
        .await;
    assert_eq!(status, 409, "{body}");
    for host in ["status.example.net", "*.example.net"] {
        let (status, body) = f
            .api
            .send(
                Method::PUT,
                &format!("/v1/tenants/acme/domains/{host}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 409, "{host}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("reserved") && !message.contains("edge-1"),
            "{message}"
        );
    }

    // The operator now defines a name tenant acme has published.
    proxy.write_config(&local(
        "  - { hosts: [app.example.com], tenant: ops, routes: [{ path: /, respond: { body: mine } }] }\n",
    ));
    eventually(
        Duration::from_secs(10),
        "the node's own app.example.com",
        || async {
            let r = proxy
                .client(&["app.example.com"])
                .get(proxy.url("app.example.com", "/"))
                .send()
                .await
                .ok()?;
            (r.text().await.ok()? == "mine").then_some(())
        },
    )
    .await;
    // Another tenant publishes: the node applies it without acme's part.
    f.api
        .ok(Method::POST, "/v1/tenants", Some(json!({ "name": "beta" })))
        .await;
    for (uri, body) in [
        (
            "/v1/tenants/beta/pools/web",
            json!({ "targets": [{ "addr": b.addr.to_string() }] }),
        ),
        ("/v1/tenants/beta/domains/beta.example.com", json!({})),
        (
            "/v1/tenants/beta/domains/beta.example.com/routes/root",
            json!({ "pool": "web" }),
        ),
    ] {
        f.api.ok(Method::PUT, uri, Some(body)).await;
    }
    f.api
        .ok(
            Method::POST,
            "/v1/tenants/beta/domains/beta.example.com/verify",
            Some(json!({ "method": "skip" })),
        )
        .await;
    let v2 = f.api.publish().await;
    until_served(&proxy, "beta.example.com", "b", Duration::from_secs(5)).await;
    let node = eventually(Duration::from_secs(5), "the node's report", || async {
        let node = f.api.node("edge-1").await;
        (node["applied_version"] == v2).then_some(node)
    })
    .await;
    assert_eq!(node["refused"][0]["tenant"], "acme", "{node}");
    let problems = node["refused"][0]["problems"].to_string();
    assert!(problems.contains("app.example.com"), "{problems}");
    let status = proxy
        .client(&["status.example.net"])
        .get(proxy.url("status.example.net", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.text().await.unwrap(), "local");
}

#[tokio::test]
async fn a_purge_through_the_admin_reaches_the_nodes_cache() {
    use reqwest::Method;
    let f = fixture().await;
    let up = Upstream::start("origin");
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    let host = "cached.example.com";
    f.api.site(host, up.addr).await;
    // The echo origin says nothing about caching: the domain forces a TTL.
    f.api
        .ok(
            Method::PUT,
            &format!("/v1/tenants/acme/domains/{host}"),
            Some(json!({ "cache": { "force_ttl": "5m" } })),
        )
        .await;
    f.api.publish().await;
    let get = || async {
        let r = proxy
            .client(&[host])
            .get(proxy.url(host, "/"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let cache = r
            .headers()
            .get("cache-status")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, cache)
    };
    eventually(Duration::from_secs(5), "the cached site", || async {
        let (status, cache) = get().await;
        (status == 200 && cache.contains("hit")).then_some(())
    })
    .await;
    let fetched = up.hits();
    assert!(get().await.1.contains("hit"));
    assert_eq!(up.hits(), fetched, "hits stay at the edge");

    // Tenant isolation of purges is the admin's (RBAC) and the store's (tests there).
    let (status, _) = f
        .api
        .send(
            Method::POST,
            "/v1/tenants/acme/cache/purge",
            Some(json!({ "host": host })),
        )
        .await;
    assert_eq!(status, 202);
    eventually(Duration::from_secs(5), "the purge on the node", || async {
        let (_, cache) = get().await;
        cache.contains("fwd=miss").then_some(())
    })
    .await;
    assert_eq!(up.hits(), fetched + 1, "one refetch after the purge");
}

#[allow(dead_code)]
#[path = "../../admin/tests/support/dns.rs"]
mod dns;
#[allow(dead_code)]
#[path = "../../admin/tests/support/pebble.rs"]
mod pebble;

#[tokio::test]
async fn pebble_validates_http_01_through_the_node_listener() {
    use gatehouse_admin::acme;
    use reqwest::Method;
    let f = fixture().await;
    let node_token = f.api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_node(&f.admin.base, &node_token, state.path(), "edge-1").await;
    // The name is not configured anywhere yet: validation comes before routing.
    let host = "new-tenant-site.example.test";
    let dns = dns::ChallTestSrv::start().await;
    dns.set_a(host, std::net::Ipv4Addr::LOCALHOST).await;
    // Pebble validates on the node's HTTP listener, and refuses some nonces.
    let pebble = pebble::Pebble::start(dns.dns, proxy.http.port(), 10).await;
    let settings = acme::Settings {
        directory_url: pebble.directory.clone(),
        contact: vec![],
        eab: None,
        ca_bundle: Some(pebble.tls_ca.clone()),
        timeout: Duration::from_secs(30),
        renew_check: Duration::from_secs(300),
    };
    let (account, _) = acme::account(&settings, None).await.unwrap();
    let pending = acme::begin(&account, &[host.to_string()]).await.unwrap();
    let challenge = pending.challenges[0].clone();
    let path = format!("/v1/acme/challenges/{}", challenge.token);
    f.api
        .ok(
            Method::PUT,
            &path,
            Some(json!({ "host": host, "key_authorization": challenge.key_authorization })),
        )
        .await;
    // Ready only once the node says it serves the token.
    eventually(
        Duration::from_secs(5),
        "every node serving the token",
        || async {
            (f.api.ok(Method::GET, &path, None).await["nodes_ready"] == true).then_some(())
        },
    )
    .await;
    // What a validation request for the token gets, asked as `name`.
    let fetch = |name: &'static str| {
        let url = proxy.url(
            name,
            &format!("/.well-known/acme-challenge/{}", challenge.token),
        );
        let client = proxy.client(&[name]);
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(
        fetch(host).await,
        (200, challenge.key_authorization.clone())
    );
    assert_ne!(
        fetch("other.example.test").await.0,
        200,
        "only the challenge's host gets the answer"
    );

    let issued = acme::complete(pending, settings.timeout).await.unwrap();
    assert!(issued.chain_pem.contains("BEGIN CERTIFICATE"));
    f.api.send(Method::DELETE, &path, None).await;
    eventually(Duration::from_secs(5), "the token withdrawn", || async {
        (fetch(host).await.0 != 200).then_some(())
    })
    .await;
}

/// SHA-256 (hex) of the leaf `https` presents for `host`, verified against `root`.
async fn served_fingerprint(root: &str, host: &str, https: std::net::SocketAddr) -> Option<String> {
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).ok()?)
        .resolve(host, https)
        .tls_info(true)
        .build()
        .ok()?;
    let r = client
        .get(format!("https://{host}:{}/", https.port()))
        .send()
        .await
        .ok()?;
    let leaf = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf);
    Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// A node with an HTTPS listener too (no certificate until one is published).
const NODE_TLS: &str = r#"
listeners:
  http: "127.0.0.1:{http}"
  https: "127.0.0.1:{https}"
  internal: "127.0.0.1:{internal}"
server:
  threads: 1
  grace_period: 1s
  upgrade_sock: "{dir}/upgrade.sock"
"#;

/// Issue 22, item 8: an order interrupted by the admin stopping (here:
/// killed while it waits for the nodes to serve the challenge) is taken up
/// again on its own once its lease ends, and ends with the certificate
/// deployed: no state but `active` is left without a next attempt.
#[tokio::test]
async fn an_acme_order_interrupted_by_an_admin_crash_is_retried_until_deployed() {
    use reqwest::Method;
    let up = Upstream::start("a");
    let dns = dns::ChallTestSrv::start().await;
    let mut pebble = pebble::Pebble::new();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/gatehouse.db", dir.path().display());
    let token = preset_token();
    let ca = pebble.tls_ca.display().to_string();
    let directory = pebble.directory.clone();
    let env = [
        ("GATEHOUSE_ADMIN_TOKEN", token.as_str()),
        ("GATEHOUSE_ACME_DIRECTORY", directory.as_str()),
        ("GATEHOUSE_ACME_CA_BUNDLE", ca.as_str()),
        ("GATEHOUSE_ACME_RENEW_CHECK_SECONDS", "1"),
    ];
    // Short stages, so the order's lease (every stage at its longest) is short.
    let options = ["--allow-internal-targets", "--acme-timeout-seconds", "3"];
    let mut admin = Admin::start_with(&db, &env, &options).await;
    let port: u16 = admin.base.rsplit(':').next().unwrap().parse().unwrap();
    let api = Api::new(&admin.base, &token);
    let node_token = api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let node = start_node_from(NODE_TLS, &admin.base, &node_token, state.path(), "edge-1").await;
    pebble.run(dns.dns, node.http.port(), 0).await;
    let host = "crash.acme-tenant.test";
    dns.set_a(host, std::net::Ipv4Addr::LOCALHOST).await;
    api.site(host, up.addr).await;
    api.publish().await;
    until_served(&node, host, "a", Duration::from_secs(5)).await;
    // A second node that polled once and went quiet: the order waits for it
    // to serve the challenge, and the admin is killed meanwhile.
    let quiet = api.node_token("edge-2").await;
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v1/dataplane/snapshot?after=0&wait=0s&node=edge-2",
            admin.base
        ))
        .bearer_auth(&quiet)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let order = {
        let (base, token) = (admin.base.clone(), token.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/tenants/acme/domains/{host}/acme"))
                .bearer_auth(token)
                .send()
                .await
        })
    };
    eventually(Duration::from_secs(10), "the order under way", || async {
        let (status, body) = api
            .send(
                Method::GET,
                &format!("/v1/tenants/acme/domains/{host}/acme"),
                None,
            )
            .await;
        (status == 200 && body["status"] == "pending_validation").then_some(())
    })
    .await;
    admin.kill();
    assert!(
        order.await.unwrap().is_err(),
        "the order was answered before the kill"
    );

    let _admin = Admin::start_at(port, &db, &env, &options).await;
    api.ok(Method::DELETE, "/v1/nodes/edge-2", None).await;
    let deployed = eventually(
        Duration::from_secs(60),
        "the order taken up again",
        || async {
            let (_, body) = api
                .send(
                    Method::GET,
                    &format!("/v1/tenants/acme/domains/{host}/acme"),
                    None,
                )
                .await;
            (body["status"] == "active").then_some(body)
        },
    )
    .await;
    assert!(deployed["not_after_ms"].as_i64().is_some(), "{deployed}");
    assert_eq!(deployed["next_attempt_ms"], Value::Null, "{deployed}");
    // The node presents it.
    eventually(
        Duration::from_secs(10),
        "the certificate on the node",
        || async {
            let tcp = tokio::net::TcpStream::connect(node.https).await.ok()?;
            tls_handshake(tcp, host, rustls::DEFAULT_VERSIONS)
                .await
                .ok()
        },
    )
    .await;
}

#[tokio::test]
async fn a_verified_domain_gets_a_certificate_from_the_acme_ca_and_serves_https_with_it() {
    use reqwest::Method;
    let up = Upstream::start("a");
    let dns = dns::ChallTestSrv::start().await;
    // Pebble's address is fixed before the admin starts; it runs once the
    // node's HTTP port (where it validates) is known.
    let mut pebble = pebble::Pebble::new();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/gatehouse.db", dir.path().display());
    let token = preset_token();
    let ca = pebble.tls_ca.display().to_string();
    let admin = Admin::start(
        &db,
        &[
            ("GATEHOUSE_ADMIN_TOKEN", &token),
            ("GATEHOUSE_ACME_DIRECTORY", &pebble.directory),
            ("GATEHOUSE_ACME_CA_BUNDLE", &ca),
            // Look for due renewals every second (default: five minutes).
            ("GATEHOUSE_ACME_RENEW_CHECK_SECONDS", "1"),
        ],
    )
    .await;
    let api = Api::new(&admin.base, &token);
    let node_token = api.node_token("edge-1").await;
    let state = tempfile::tempdir().unwrap();
    let node = start_node_from(NODE_TLS, &admin.base, &node_token, state.path(), "edge-1").await;
    pebble.run(dns.dns, node.http.port(), 5).await;

    let host = "shop.acme-tenant.test";
    dns.set_a(host, std::net::Ipv4Addr::LOCALHOST).await;
    api.site(host, up.addr).await;
    api.publish().await;
    // A draft change the tenant has not published: the order must not release it.
    let dead = DeadPort::new();
    api.ok(
        Method::PUT,
        "/v1/tenants/acme/pools/web",
        Some(json!({ "targets": [{ "addr": dead.addr.to_string() }] })),
    )
    .await;
    // The order: challenges on every node, validation by Pebble through the
    // node's listener, the certificate stored (key sealed), used by the
    // domain and published on its own.
    let issued = api
        .ok(
            Method::POST,
            &format!("/v1/tenants/acme/domains/{host}/acme"),
            None,
        )
        .await;
    let name = issued["certificate"].as_str().unwrap().to_string();
    let suffix = name.strip_prefix("acme-shop-acme-tenant-test-").unwrap();
    assert!(
        suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    assert_eq!(issued["info"]["names"], json!([host]));
    assert!(issued["published_version"].as_i64().is_some(), "{issued}");
    let domain = api
        .ok(
            Method::GET,
            &format!("/v1/tenants/acme/domains/{host}"),
            None,
        )
        .await;
    assert_eq!(domain["spec"]["certificate"], name, "{domain}");
    let cert = api
        .ok(
            Method::GET,
            &format!("/v1/tenants/acme/certificates/{name}"),
            None,
        )
        .await;
    assert!(
        !cert.to_string().contains("PRIVATE KEY"),
        "the key is never shown"
    );

    // The node serves HTTPS for the name with a chain that validates
    // against this Pebble run's root, still to the published pool.
    let root = pebble.issuing_root_pem().await;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve(host, node.https)
        .build()
        .unwrap();
    let url = format!("https://{host}:{}/", node.https.port());
    let body: Value = eventually(
        Duration::from_secs(10),
        "HTTPS with the ACME certificate",
        || async {
            let r = client.get(&url).send().await.ok()?;
            (r.status() == 200).then_some(())?;
            r.json().await.ok()
        },
    )
    .await;
    assert_eq!(body["server"], "a");

    // The domain's ACME state: active, renewed two thirds into the lifetime.
    let acme_state = api
        .ok(
            Method::GET,
            &format!("/v1/tenants/acme/domains/{host}/acme"),
            None,
        )
        .await;
    assert_eq!(acme_state["status"], "active", "{acme_state}");
    let (not_before, not_after) = (
        issued["info"]["not_before_ms"].as_i64().unwrap(),
        issued["info"]["not_after_ms"].as_i64().unwrap(),
    );
    let renew_at = acme_state["renew_at_ms"].as_i64().unwrap();
    assert!(not_before < renew_at && renew_at < not_after);
    assert_eq!(acme_state["attempts"], 0);

    // A forced renewal replaces the certificate while a client keeps
    // connecting (a TLS handshake per request): no request fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handshakes = {
        let stop = stop.clone();
        let root = root.clone();
        let node_https = node.https;
        let url = url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
                .resolve(host, node_https)
                .pool_max_idle_per_host(0)
                .tls_info(true)
                .build()
                .unwrap();
            let (mut ok, mut failed, mut leaves) = (0, 0, std::collections::HashSet::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        if let Some(leaf) = r
                            .extensions()
                            .get::<reqwest::tls::TlsInfo>()
                            .and_then(|t| t.peer_certificate())
                        {
                            leaves.insert(leaf.to_vec());
                        }
                        ok += 1;
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed, leaves.len())
        })
    };
    let renewed = api
        .ok(
            Method::POST,
            &format!("/v1/tenants/acme/domains/{host}/acme"),
            None,
        )
        .await;
    assert_ne!(
        renewed["info"]["fingerprint_sha256"],
        issued["info"]["fingerprint_sha256"]
    );
    let fingerprint = renewed["info"]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(
        Duration::from_secs(10),
        "the renewed certificate served",
        || async {
            (served_fingerprint(&root, host, node.https).await? == fingerprint).then_some(())
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed, leaves) = handshakes.await.unwrap();
    assert_eq!(failed, 0, "{ok} handshakes succeeded, {failed} failed");
    assert!(
        ok > 0 && leaves >= 1,
        "{ok} requests, {leaves} certificates seen"
    );

    // Scheduled renewal: once the certificate is due (two thirds into its
    // lifetime; made due here through the store), the admin renews and
    // deploys it on its own, and schedules the next one.
    let store = gatehouse_admin::store::Store::connect(&db).await.unwrap();
    sqlx::query("UPDATE acme_domains SET renew_at_ms = 0 WHERE host = $1")
        .bind(host)
        .execute(store.pool())
        .await
        .unwrap();
    let cert_path = format!("/v1/tenants/acme/certificates/{name}");
    let auto = eventually(Duration::from_secs(20), "the scheduled renewal", || async {
        let c = api.ok(Method::GET, &cert_path, None).await;
        let now = c["spec"]["fingerprint_sha256"].as_str()?.to_string();
        (now != fingerprint).then_some(now)
    })
    .await;
    // The order's state is recorded just after the certificate is stored.
    let acme_path = format!("/v1/tenants/acme/domains/{host}/acme");
    let acme_state = eventually(Duration::from_secs(10), "the renewal recorded", || async {
        let state = api.ok(Method::GET, &acme_path, None).await;
        (state["status"] == "active").then_some(state)
    })
    .await;
    assert_eq!(acme_state["status"], "active");
    assert!(acme_state["renew_at_ms"].as_i64().unwrap() > 0);
    eventually(
        Duration::from_secs(10),
        "the renewed certificate deployed",
        || async { (served_fingerprint(&root, host, node.https).await? == auto).then_some(()) },
    )
    .await;

    // A domain that asks for ACME gets its certificate once verified, with
    // no order request at all.
    let auto_host = "auto.acme-tenant.test";
    dns.set_a(auto_host, std::net::Ipv4Addr::LOCALHOST).await;
    api.domain(auto_host, json!({ "acme": true })).await;
    api.publish().await;
    eventually(
        Duration::from_secs(20),
        "HTTPS for the ACME domain",
        || async {
            served_fingerprint(&root, auto_host, node.https)
                .await
                .map(|_| ())
        },
    )
    .await;
    let auto_state = api
        .ok(
            Method::GET,
            &format!("/v1/tenants/acme/domains/{auto_host}/acme"),
            None,
        )
        .await;
    assert_eq!(auto_state["status"], "active", "{auto_state}");

    // A challenge the CA cannot reach: a visible failed state with its reason.
    let broken = "broken.acme-tenant.test";
    dns.set_a(broken, std::net::Ipv4Addr::new(127, 0, 0, 2))
        .await;
    api.domain(broken, json!({})).await;
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/v1/tenants/acme/domains/{broken}/acme"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let failed_state = api
        .ok(
            Method::GET,
            &format!("/v1/tenants/acme/domains/{broken}/acme"),
            None,
        )
        .await;
    assert_eq!(failed_state["status"], "failed", "{failed_state}");
    assert!(
        failed_state["error"].as_str().unwrap().contains(broken),
        "{failed_state}"
    );
    assert_eq!(failed_state["attempts"], 1);
    assert!(failed_state["next_attempt_ms"].as_i64().is_some());
    // A certificate near its end whose renewal keeps failing is warned about.
    let in_a_day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 86_400_000;
    sqlx::query("UPDATE acme_domains SET not_after_ms = $1 WHERE host = $2")
        .bind(in_a_day)
        .bind(broken)
        .execute(store.pool())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the expiry warning", || async {
        admin
            .logged("ACME certificate within 14 days of its end without a successful renewal")
            .then_some(())
    })
    .await;
    assert!(admin.logged(broken));

    // Without a verified domain, or for a name it does not own, a tenant gets nothing.
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/tenants/acme/domains/unknown.acme-tenant.test/acme",
            None,
        )
        .await;
    assert_eq!(status, 404);
}
