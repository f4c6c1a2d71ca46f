//! Unit tests of parsing and validation.

use std::path::Path;

use super::*;
use crate::model::{HostPattern, RouteAction, TemplatePart, Variable};

fn load(yaml: &str) -> Result<Config, ConfigErrors> {
    load_str(yaml, Path::new("."))
}

fn messages(e: &ConfigErrors) -> Vec<String> {
    e.iter().map(|e| e.to_string()).collect()
}

/// Every expected error (by prefix) is reported, and nothing else.
fn assert_exactly(errs: &[String], expected: &[&str]) {
    for want in expected {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

const MINIMAL: &str = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme }]
pools:
  - { name: api, tenant: acme, targets: [{ addr: "127.0.0.1:9000" }] }
domains:
  - hosts: [Example.COM, "*.example.org"]
    tenant: acme
    routes:
      - { path: /api, pool: api }
      - { path: /, respond: { status: 200, body: hi } }
"#;

#[test]
fn minimal_config_validates() {
    let cfg = load(MINIMAL).unwrap();
    assert_eq!(cfg.domains.len(), 1);
    assert_eq!(
        cfg.domains[0].hosts,
        vec![
            HostPattern::Exact("example.com".into()),
            HostPattern::Wildcard("example.org".into())
        ]
    );
    assert!(matches!(
        cfg.domains[0].routes[0].action,
        RouteAction::Pool(0)
    ));
    assert_eq!(cfg.pools[0].retries, 1);
    assert_eq!(cfg.limits.max_header_count, 100);
    assert_eq!(cfg.limits.waf_held_body_bytes, 256 * 1024 * 1024);
}

#[test]
fn the_waf_held_body_budget_holds_at_least_one_inspection() {
    let yaml = format!("limits: {{ waf_held_body_bytes: 65536 }}\n{MINIMAL}");
    let errs = messages(&load(&yaml).unwrap_err());
    assert!(
        errs.iter()
            .any(|e| e.starts_with("limits.waf_held_body_bytes") && e.contains("at least")),
        "{errs:?}"
    );
    let yaml = format!("limits: {{ waf_held_body_bytes: 1048576 }}\n{MINIMAL}");
    assert_eq!(load(&yaml).unwrap().limits.waf_held_body_bytes, 1 << 20);
}

#[test]
fn reports_every_error_with_its_path() {
    let yaml = r#"
listeners: { http: "nonsense" }
tenants: [{ name: acme }, { name: acme }]
pools:
  - { name: api, tenant: ghost, targets: [] }
domains:
  - hosts: ["bad host!"]
    tenant: acme
    routes:
      - { path: /x, pool: nope }
      - { path: y, respond: { status: 99 } }
      - { path: /z }
      - { path: /w, redirect: { to: "https://a", status: 200 } }
"#;
    let errs = messages(&load(yaml).unwrap_err());
    let expected = [
        "listeners.http: invalid listen address",
        "tenants[1].name: duplicate tenant",
        "pools[0].tenant: unknown tenant \"ghost\"",
        "pools[0].targets: at least one target is required",
        "domains[0].hosts[0]: invalid hostname",
        "domains[0].routes[0].pool: unknown pool \"nope\"",
        "domains[0].routes[1].path: path \"y\" must start with '/'",
        "domains[0].routes[1].respond.status: status must be 200..=599, got 99",
        "domains[0].routes[2]: exactly one of",
        "domains[0].routes[3].redirect.status: redirect status must be",
        "listeners: at least one of `http` or `https` must be set",
    ];
    assert_exactly(&errs, &expected);
}

#[test]
fn unknown_field_is_rejected_with_path() {
    let yaml = "listeners: { http: \"127.0.0.1:80\" }\ndomains:\n  - hosts: [a.com]\n    tenant: t\n    routs: []\n";
    let errs = load(yaml).unwrap_err();
    let e = &errs.0[0];
    assert_eq!(e.path, "domains[0].routs");
    assert!(e.message.contains("unknown field `routs`"), "{e}");
}

#[test]
fn type_error_names_the_field() {
    let yaml = "listeners: { http: \"127.0.0.1:80\" }\npools:\n  - { name: p, tenant: t, targets: [{ addr: a, weight: heavy }] }\n";
    let e = &load(yaml).unwrap_err().0[0];
    assert_eq!(e.path, "pools[0].targets[0].weight");
}

#[test]
fn pool_of_another_tenant_is_refused() {
    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: a }, { name: b }]
pools: [{ name: bp, tenant: b, targets: [{ addr: "127.0.0.1:1" }] }]
domains: [{ hosts: [a.com], tenant: a, routes: [{ pool: bp }] }]
"#;
    let errs = messages(&load(yaml).unwrap_err());
    assert_eq!(
        errs,
        vec!["domains[0].routes[0].pool: pool \"bp\" belongs to another tenant"]
    );
}

#[test]
fn duplicate_host_across_domains_is_refused() {
    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: a }]
domains:
  - { hosts: [a.com], tenant: a }
  - { hosts: [A.com.], tenant: a }
"#;
    let errs = messages(&load(yaml).unwrap_err());
    assert_eq!(
        errs,
        vec!["domains[1].hosts[0]: host a.com is already served by domains[0].hosts[0]"]
    );
}

#[test]
fn templates_parse_variables_and_reject_unknown_ones() {
    let t = validate::parse_template("ip=$client_ip; id=$request_id $$5").unwrap();
    assert_eq!(
        t.parts,
        vec![
            TemplatePart::Literal("ip=".into()),
            TemplatePart::Var(Variable::ClientIp),
            TemplatePart::Literal("; id=".into()),
            TemplatePart::Var(Variable::RequestId),
            TemplatePart::Literal(" $5".into()),
        ]
    );
    let err = validate::parse_template("$nope").unwrap_err();
    assert!(err.contains("unknown variable $nope"), "{err}");
}

#[test]
fn header_rule_errors_have_paths() {
    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: a }]
domains:
  - hosts: [a.com]
    tenant: a
    headers:
      request: { set: { "X-Ip": "$client_addr" }, remove: ["bad name"] }
"#;
    let errs = messages(&load(yaml).unwrap_err());
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("domains[0].headers.request.remove[0]: invalid header name"));
    assert!(
        errs[1].starts_with("domains[0].headers.request.set.X-Ip: unknown variable $client_addr")
    );
}

#[test]
fn rules_cannot_touch_framing_headers_or_host() {
    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: a }]
domains:
  - hosts: [a.com]
    tenant: a
    headers:
      request:
        set: { Transfer-Encoding: chunked, Host: other.com, X-Fine: "1" }
        remove: [content-length]
      response: { add: { Connection: close } }
    routes:
      - path: /
        respond: { body: x, headers: { Content-Length: "99", TE: trailers, X-Ok: y } }
"#;
    let errs = messages(&load(yaml).unwrap_err());
    assert_exactly(
        &errs,
        &[
            "domains[0].headers.request.remove[0]: header \"content-length\" is managed by the proxy",
            "domains[0].headers.request.set.Transfer-Encoding: header \"transfer-encoding\" is managed by the proxy",
            "domains[0].headers.request.set.Host: header \"host\" is managed by the proxy",
            "domains[0].headers.response.add.Connection: header \"connection\" is managed by the proxy",
            "domains[0].routes[0].respond.headers.Content-Length: header \"content-length\" is managed by the proxy",
            "domains[0].routes[0].respond.headers.TE: header \"te\" is managed by the proxy",
        ],
    );
}

#[test]
fn https_listener_needs_a_certificate() {
    let yaml = r#"
listeners: { https: "127.0.0.1:0" }
tenants: [{ name: a }]
domains: [{ hosts: [a.com], tenant: a, certificate: nope }]
"#;
    let errs = messages(&load(yaml).unwrap_err());
    assert!(
        errs.contains(&"domains[0].certificate: unknown certificate \"nope\"".to_string()),
        "{errs:#?}"
    );
}

#[test]
fn consistent_hash_needs_a_key() {
    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: a }]
pools:
  - { name: p, tenant: a, algorithm: consistent_hash, targets: [{ addr: "127.0.0.1:1" }] }
  - { name: q, tenant: a, algorithm: consistent_hash, hash_key: "header:X-User", targets: [{ addr: "127.0.0.1:1" }] }
"#;
    let errs = messages(&load(yaml).unwrap_err());
    assert_eq!(
        errs,
        vec!["pools[0].hash_key: required for algorithm consistent_hash"]
    );
}

#[test]
fn never_panics_on_garbage() {
    // A cheap deterministic fuzz: every prefix and a set of byte mutations of a
    // valid config must yield Ok or Err, never a panic.
    let base = MINIMAL.as_bytes();
    for cut in 0..base.len() {
        if let Ok(s) = std::str::from_utf8(&base[..cut]) {
            let _ = load(s);
        }
    }
    let junk = [
        b'{', b'}', b'[', b':', b'-', b'*', b'$', b'\n', b' ', b'"', b'0',
    ];
    for i in (0..base.len()).step_by(3) {
        for j in junk {
            let mut m = base.to_vec();
            m[i] = j;
            if let Ok(s) = std::str::from_utf8(&m) {
                let _ = load(s);
            }
        }
    }
}

#[test]
fn responses_redirects_and_https_policy_are_checked() {
    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: a }]
domains:
  - hosts: [a.com]
    tenant: a
    force_https: true
    routes:
      - { path: /a, respond: { status: 103 } }
      - { path: /b, respond: { status: 204, body: "x" } }
      - { path: /c, redirect: { to: "//evil.example", keep_path: true } }
      - { path: /d, redirect: { to: "evil.example" } }
      - { path: /e, redirect: { to: "/elsewhere", keep_path: true } }
      - { path: /f, redirect: { to: "https://b.com/x" } }
"#;
    let errs = messages(&load(yaml).unwrap_err());
    let expected = [
        "domains[0].force_https: needs an https listener",
        "domains[0].routes[0].respond.status: status must be 200..=599, got 103",
        "domains[0].routes[1].respond.body: a 204 response cannot have a body",
        "domains[0].routes[2].redirect.to: invalid redirect target \"//evil.example\"",
        "domains[0].routes[3].redirect.to: invalid redirect target \"evil.example\"",
    ];
    assert_exactly(&errs, &expected);
}

#[test]
fn plugin_bindings_resolve_with_defaults() {
    let cfg = load(
        r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme }]
plugins:
  - { name: auth, tenant: acme, path: plugins/auth.wasm, sha256: "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF" }
domains:
  - hosts: [example.com]
    tenant: acme
    plugins: [{ plugin: auth, config: { keys: [a, b] } }]
    routes:
      - path: /
        respond: { status: 200 }
        plugins: [{ plugin: auth, timeout: 20ms, memory_limit_mb: 32, failure_mode: open, failure_status: 429 }]
"#,
    )
    .unwrap();
    let p = &cfg.plugins[0];
    assert_eq!(p.path, Path::new("./plugins/auth.wasm"));
    assert_eq!(p.sha256.unwrap()[31], 0xff);
    let d = &cfg.domains[0].plugins[0];
    assert_eq!(d.plugin, 0);
    assert_eq!(&*d.config, r#"{"keys":["a","b"]}"#);
    assert_eq!(d.timeout, crate::model::DEFAULT_PLUGIN_TIMEOUT);
    assert_eq!(d.memory_limit, crate::model::DEFAULT_PLUGIN_MEMORY);
    assert_eq!(d.failure_mode, crate::model::FailureMode::Closed);
    let r = &cfg.domains[0].routes[0].plugins[0];
    assert_eq!(&*r.config, "{}");
    assert_eq!(r.timeout, std::time::Duration::from_millis(20));
    assert_eq!(r.memory_limit, 32 << 20);
    assert_eq!(r.failure_mode, crate::model::FailureMode::Open);
    assert_eq!(r.failure_status.unwrap().as_u16(), 429);
}

#[test]
fn plugin_errors_have_paths_and_tenants_stay_apart() {
    let errs = messages(
        &load(
            r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme }, { name: beta }]
plugins:
  - { name: auth, tenant: acme, path: a.wasm, sha256: "abc" }
  - { name: auth, tenant: nobody, path: "" }
  - { name: beta-only, tenant: beta, path: b.wasm }
domains:
  - hosts: [example.com]
    tenant: acme
    plugins:
      - { plugin: beta-only }
      - { plugin: missing }
      - { plugin: auth, timeout: 0s, memory_limit_mb: 65, failure_status: 302 }
      - { plugin: auth, timeout: 101ms }
    routes: [{ path: /, respond: { status: 200 } }]
"#,
        )
        .unwrap_err(),
    );
    assert_exactly(
        &errs,
        &[
            "plugins[0].sha256",
            "plugins[1].name: duplicate name",
            "plugins[1].tenant: unknown tenant",
            "plugins[1].path",
            "domains[0].plugins[0].plugin: plugin \"beta-only\" belongs to another tenant",
            "domains[0].plugins[1].plugin: unknown plugin",
            "domains[0].plugins[2].timeout",
            "domains[0].plugins[2].memory_limit_mb",
            "domains[0].plugins[2].failure_status",
            "domains[0].plugins[3].timeout",
        ],
    );
}

#[test]
fn qualified_names_let_tenants_reuse_a_name_but_only_under_their_own_qualifier() {
    let errs = messages(
        &load(
            r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme }, { name: beta }]
pools:
  - { name: acme/web, tenant: acme, targets: [{ addr: "127.0.0.1:1" }] }
  - { name: beta/web, tenant: beta, targets: [{ addr: "127.0.0.1:1" }] }
  - { name: acme/stolen, tenant: beta, targets: [{ addr: "127.0.0.1:1" }] }
  - { name: a/b/c, tenant: beta, targets: [{ addr: "127.0.0.1:1" }] }
domains:
  - hosts: [a.example]
    tenant: acme
    routes: [{ path: /, pool: acme/web }]
  - hosts: [b.example]
    tenant: beta
    routes: [{ path: /, pool: beta/web }]
"#,
        )
        .unwrap_err(),
    );
    assert_exactly(
        &errs,
        &[
            "pools[2].name: \"acme/stolen\" is qualified by tenant \"acme\" but belongs to \"beta\"",
            "pools[3].name: invalid name",
        ],
    );
}

#[test]
fn file_types_survive_a_json_round_trip() {
    let text = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme }]
pools:
  - name: web
    tenant: acme
    targets: [{ addr: "127.0.0.1:1", weight: 3 }]
    timeouts: { connect: 1500ms }
    health_check: { active: { interval: 2s, expect_status: [200, 204] } }
domains:
  - hosts: [a.example]
    tenant: acme
    routes: [{ path: /api, match: exact, pool: web }]
"#;
    let parsed = crate::parse_yaml(text).unwrap();
    let json = serde_json::to_string(&parsed).unwrap();
    let again = crate::parse_yaml(&json).unwrap();
    assert_eq!(json, serde_json::to_string(&again).unwrap());
    assert_eq!(
        again.pools[0].timeouts.connect,
        Some(std::time::Duration::from_millis(1500))
    );
    assert_eq!(
        again.domains[0].routes[0].path_match,
        crate::file::PathMatch::Exact
    );
}

#[test]
fn security_headers_resolve_presets_and_check_their_fields() {
    let cfg = load(
        r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme }]
domains:
  - hosts: [a.example]
    tenant: acme
    security_headers: { preset: basic, frame_options: deny, content_type_options: false }
    routes: [{ path: /, respond: { status: 200 } }]
"#,
    )
    .unwrap();
    let sec = &cfg.domains[0].security_headers;
    let names: Vec<&str> = sec.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "x-frame-options",
            "content-security-policy",
            "referrer-policy"
        ]
    );
    assert_eq!(sec.headers[0].1, "DENY");
    assert!(sec.hsts.is_none() && sec.strip_server_headers);

    let errs = messages(
        &load(
            r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme }]
domains:
  - hosts: [a.example]
    tenant: acme
    security_headers:
      referrer_policy: "sometimes"
      permissions_policy: ""
      hsts: { max_age: 30d, preload: true }
    routes: [{ path: /, respond: { status: 200 } }]
"#,
        )
        .unwrap_err(),
    );
    assert_exactly(
        &errs,
        &[
            "domains[0].security_headers.referrer_policy",
            "domains[0].security_headers.permissions_policy",
            "domains[0].security_headers.hsts.preload",
        ],
    );
}

#[test]
fn rate_limits_are_checked_with_their_paths() {
    let errs = messages(
        &load(
            r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme, rate_limit: { requests: 0, per: 1s } }]
domains:
  - hosts: [a.example]
    tenant: acme
    rate_limits:
      - { name: a, requests: 10, per: 500ms }
      - { name: a, requests: 10, per: 1m, burst: 0 }
      - { name: b, requests: 10, per: 1m, key: "query:x" }
    routes:
      - path: /
        respond: { status: 200 }
        rate_limits: [{ name: "Bad Name", requests: 1, per: 2d }]
"#,
        )
        .unwrap_err(),
    );
    assert_exactly(
        &errs,
        &[
            "tenants[0].rate_limit.requests",
            "domains[0].rate_limits[0].per",
            "domains[0].rate_limits[1].name: duplicate",
            "domains[0].rate_limits[1].burst",
            "domains[0].rate_limits[2].key",
            "domains[0].routes[0].rate_limits[0].name",
            "domains[0].routes[0].rate_limits[0].per",
        ],
    );
}

#[test]
fn cache_policies_merge_per_route_and_report_errors_with_paths() {
    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
limits: { cache_object_bytes: 0, cache_tenant_bytes: 100 }
tenants: [{ name: acme, cache_bytes: 10 }]
pools:
  - { name: api, tenant: acme, targets: [{ addr: "127.0.0.1:9000" }] }
domains:
  - hosts: [a.test]
    tenant: acme
    cache:
      default_ttl: 0s
      lock_timeout: 2m
      bypass: { cookies: ["bad cookie"], headers: ["bad header"], methods: ["G E T"], paths: [nope] }
      key: { query: none, query_only: [id], query_except: ["a=b"] }
    routes:
      - { path: /x, pool: api, cache: { force_ttl: 1s, default_ttl: 1m } }
"#;
    let errs = messages(&load(yaml).unwrap_err());
    assert_exactly(
        &errs,
        &[
            "limits.cache_object_bytes",
            "limits.cache_tenant_bytes",
            "tenants[0].cache_bytes",
            "domains[0].cache.default_ttl",
            "domains[0].cache.lock_timeout",
            "domains[0].cache.bypass.cookies[0]",
            "domains[0].cache.bypass.headers[0]",
            "domains[0].cache.bypass.methods[0]",
            "domains[0].cache.bypass.paths[0]",
            "domains[0].cache.key.query_only",
            "domains[0].cache.key.query_except[0]",
            "domains[0].routes[0].cache.default_ttl",
        ],
    );

    let yaml = r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: acme, cache_bytes: 1048576 }]
pools:
  - { name: api, tenant: acme, targets: [{ addr: "127.0.0.1:9000" }] }
domains:
  - hosts: [a.test]
    tenant: acme
    cache: { default_ttl: 5m, bypass: { cookies: [session] }, key: { query_except: [utm] } }
    routes:
      - { path: /micro, pool: api, cache: { force_ttl: 1s, default_ttl: null } }
      - { path: /off, pool: api, cache: { enabled: false } }
      - { path: /local, respond: { status: 200 } }
      - { path: /, pool: api }
"#;
    let cfg = load(yaml).unwrap();
    let route = |p: &str| {
        cfg.domains[0]
            .routes
            .iter()
            .find(|r| r.path == p)
            .unwrap()
            .cache
            .clone()
    };
    let root = route("/").expect("the domain's policy applies");
    assert_eq!(root.default_ttl, Some(std::time::Duration::from_secs(300)));
    assert_eq!(root.bypass_cookies, ["session"]);
    assert_eq!(
        root.query,
        crate::cache::QueryKey::Except(vec!["utm".to_string()])
    );
    let micro = route("/micro").unwrap();
    assert_eq!(micro.force_ttl, Some(std::time::Duration::from_secs(1)));
    assert_eq!(micro.bypass_cookies, ["session"], "refined field by field");
    assert!(route("/off").is_none());
    assert!(route("/local").is_none(), "local answers are not cached");
    assert_eq!(cfg.tenant_cache_bytes, [("acme".to_string(), 1 << 20)]);
    assert_eq!(cfg.limits.cache_object_bytes, 8 << 20);
}

#[test]
fn a_published_part_that_collides_with_the_nodes_file_is_left_out_alone() {
    use crate::published::{validate_isolating, Reserved, Sections};
    let file = crate::parse_yaml(
        r#"
listeners: { http: "127.0.0.1:0" }
tenants: [{ name: ops }]
domains:
  - { hosts: [status.example.net], tenant: ops, routes: [{ path: /, respond: { body: ok } }] }
"#,
    )
    .unwrap();
    let published: Sections = serde_json::from_value(serde_json::json!({
        "tenants": [{ "name": "ops" }, { "name": "squatter" }, { "name": "good" }],
        "domains": [
            { "hosts": ["evil.example.com"], "tenant": "ops",
              "routes": [{ "path": "/", "respond": { "body": "x" } }] },
            { "hosts": ["status.example.net"], "tenant": "squatter",
              "routes": [{ "path": "/", "respond": { "body": "x" } }] },
            { "hosts": ["good.example.com"], "tenant": "good",
              "routes": [{ "path": "/", "respond": { "body": "x" } }] }
        ]
    }))
    .unwrap();
    let (cfg, refused) = validate_isolating(&file, &published, Path::new(".")).unwrap();
    let tenants: Vec<&str> = refused.iter().map(|r| r.tenant.as_str()).collect();
    assert_eq!(tenants, ["ops", "squatter"], "{refused:#?}");
    let hosts: Vec<String> = cfg
        .domains
        .iter()
        .flat_map(|d| d.hosts.iter().map(|h| h.to_string()))
        .collect();
    assert_eq!(hosts, ["status.example.net", "good.example.com"]);
    assert!(cfg
        .domains
        .iter()
        .all(|d| d.tenant != "ops" || d.hosts.len() == 1));
    assert_eq!(
        Reserved::of(&file),
        Reserved {
            tenants: vec!["ops".into()],
            hosts: vec!["status.example.net".into()],
        }
    );
    // A problem in the file itself still refuses everything.
    let mut broken = file.clone();
    broken.domains[0].hosts = vec!["bad host".into()];
    assert!(validate_isolating(&broken, &published, Path::new(".")).is_err());
}

#[test]
fn problems_found_after_validation_are_attributed_to_their_tenant_part() {
    use crate::published::{parts_at_fault, Sections};
    let file = crate::parse_yaml(
        "listeners: { http: \"127.0.0.1:0\" }\ntenants: [{ name: ops }]\n\
         certificates: [{ name: own, self_signed: true }]\n",
    )
    .unwrap();
    let published: Sections = serde_json::from_value(serde_json::json!({
        "tenants": [{ "name": "acme" }, { "name": "beta" }],
        "certificates": [{ "name": "acme/site", "cert_pem": "x", "key_pem": "y" }],
        "domains": [{ "hosts": ["b.example.com"], "tenant": "beta", "certificate": "beta/c",
                      "routes": [{ "path": "/", "respond": { "body": "x" } }] }],
        "plugins": [{ "name": "beta/auth", "tenant": "beta", "path": "p.wasm" }]
    }))
    .unwrap();
    let errors = |paths: &[&str]| {
        let mut e = ConfigErrors::default();
        for p in paths {
            e.push(*p, "cannot be built");
        }
        e
    };
    let parts = parts_at_fault(
        &file,
        &published,
        &errors(&["certificates[1]", "plugins[0].path"]),
    )
    .unwrap();
    let tenants: Vec<&str> = parts.iter().map(|p| p.tenant.as_str()).collect();
    assert_eq!(tenants, ["acme", "beta"]);
    // The file's own certificate is nobody's part: the whole is refused.
    assert!(parts_at_fault(&file, &published, &errors(&["certificates[0]"])).is_none());
    assert!(parts_at_fault(&file, &published, &errors(&["listeners.http"])).is_none());
}
