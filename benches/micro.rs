//! Criterion micro-benchmarks of the data plane's per-request and per-reload costs:
//! host+path route lookup and SNI certificate resolution with 10, 10,000 and
//! 100,000 domains (exact and wildcard), and a full config snapshot build +
//! swap for 10,000 domains with 10,000 certificates (the hot-reload path), and
//! the per-request cost of a WebAssembly plugin: a fresh instance plus its
//! `on-request` and `on-response`, of `plugins/examples/add-headers`, and a
//! minimal plugin's `on-request` as the floor (both built at bench start), and
//! one rate-limit check, and the WAF's inspection of typical requests at
//! paranoia 1 (a JSON API call with a 2 KiB body, a search page view).
//!
//! Run: `cargo bench --bench micro` (add `-- --quick` for a fast pass).
//!
//! Allocation-heavy paths are measured with the allocator the `gatehouse`
//! binary ships with (mimalloc), not the system one.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse_config::Config;
use gatehouse_proxy::route::{normalize_host, Router};
use gatehouse_proxy::snapshot::{Snapshot, SnapshotStore};
use gatehouse_proxy::tls::{CertGeneration, CertMap};
use http::Method;

// The same global allocator as `src/main.rs`: what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 3] = [10, 10_000, 100_000];

/// PEM pairs for `n` distinct self-signed certificates.
fn certs(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let c = rcgen::generate_simple_self_signed(vec![format!("d{i}.bench.test")]).unwrap();
            (c.cert.pem(), c.key_pair.serialize_pem())
        })
        .collect()
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("      {l}\n")).collect()
}

/// A config with `n` domains, each with a prefix route and an exact route.
/// `wildcard` makes every domain `*.dI.bench.test`; certificates are
/// `distinct_certs` inline PEMs shared round-robin by the domains.
fn config_yaml(n: usize, wildcard: bool, pems: &[(String, String)]) -> String {
    let mut y = String::with_capacity(n * 160 + pems.len() * 1200);
    y.push_str("listeners: { http: \"127.0.0.1:0\", https: \"127.0.0.1:0\" }\n");
    y.push_str("tenants: [{ name: t }]\n");
    y.push_str("pools: [{ name: p, tenant: t, targets: [{ addr: \"127.0.0.1:9\" }] }]\n");
    y.push_str("certificates:\n");
    for (i, (cert, key)) in pems.iter().enumerate() {
        y.push_str(&format!(
            "  - name: c{i}\n    cert_pem: |\n{}    key_pem: |\n{}",
            indent(cert),
            indent(key)
        ));
    }
    y.push_str("domains:\n");
    for i in 0..n {
        let host = if wildcard {
            format!("\"*.d{i}.bench.test\"")
        } else {
            format!("d{i}.bench.test")
        };
        y.push_str(&format!(
            "  - {{ hosts: [{host}], tenant: t, certificate: c{}, routes: [{{ path: /api, pool: p }}, {{ path: /, match: exact, respond: {{ body: ok }} }}] }}\n",
            i % pems.len()
        ));
    }
    y
}

fn load(n: usize, wildcard: bool, pems: &[(String, String)]) -> Config {
    gatehouse_config::load_str(&config_yaml(n, wildcard, pems), Path::new(".")).unwrap()
}

fn request_host(i: usize, wildcard: bool) -> String {
    if wildcard {
        format!("www.d{i}.bench.test:8443")
    } else {
        format!("D{i}.bench.test:8443")
    }
}

fn route_lookup(c: &mut Criterion) {
    let pems = certs(4);
    let mut group = c.benchmark_group("route_lookup");
    for wildcard in [false, true] {
        for n in SIZES {
            let router = Router::new(&load(n, wildcard, &pems), &[], &[]);
            // A spread of hosts so lookups are not served from one cache line.
            let hosts: Vec<String> = (0..1024)
                .map(|k| request_host((k * 7919) % n, wildcard))
                .collect();
            let kind = if wildcard { "wildcard" } else { "exact" };
            let mut k = 0;
            group.bench_function(BenchmarkId::new(kind, n), |b| {
                b.iter(|| {
                    k = (k + 1) % hosts.len();
                    // What a request does: normalise Host, find the domain, match the path.
                    let host = normalize_host(black_box(&hosts[k])).unwrap();
                    let found = router.lookup(&host).unwrap();
                    black_box(found.domain.match_route(&Method::GET, "/api/v1/users"));
                })
            });
        }
    }
    group.finish();
}

fn sni_resolution(c: &mut Criterion) {
    let pems = certs(16);
    let mut group = c.benchmark_group("sni_resolution");
    for wildcard in [false, true] {
        for n in SIZES {
            let certs =
                CertMap::build(&load(n, wildcard, &pems), CertGeneration::Skip, None).unwrap();
            let names: Vec<String> = (0..1024)
                .map(|k| {
                    let i = (k * 7919) % n;
                    if wildcard {
                        format!("www.d{i}.bench.test")
                    } else {
                        format!("d{i}.bench.test")
                    }
                })
                .collect();
            let kind = if wildcard { "wildcard" } else { "exact" };
            let mut k = 0;
            group.bench_function(BenchmarkId::new(kind, n), |b| {
                b.iter(|| {
                    k = (k + 1) % names.len();
                    black_box(certs.lookup(Some(black_box(&names[k]))).unwrap());
                })
            });
        }
    }
    group.finish();
}

fn snapshot_build_and_swap(c: &mut Criterion) {
    // 10,000 domains, each with its own certificate: the reload a large tenant
    // base causes. Measured from YAML text to the swapped pointer.
    let pems = certs(10_000);
    let yaml = config_yaml(10_000, false, &pems);
    let first = Snapshot::compile(
        gatehouse_config::load_str(&yaml, Path::new(".")).unwrap(),
        1,
        None,
        CertGeneration::Skip,
    )
    .unwrap();
    let store = Arc::new(SnapshotStore::new(first));
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    // First load: every certificate is parsed and its key checked.
    group.bench_function("cold_build_10k_domains_10k_certs", |b| {
        b.iter(|| {
            let cfg = gatehouse_config::load_str(black_box(&yaml), Path::new(".")).unwrap();
            black_box(Snapshot::compile(cfg, 1, None, CertGeneration::Skip).unwrap());
        })
    });
    // A reload: unchanged certificates are reused from the previous snapshot.
    group.bench_function("parse_validate_compile_swap_10k_domains_10k_certs", |b| {
        b.iter(|| {
            let prev = store.load();
            let cfg = gatehouse_config::load_str(black_box(&yaml), Path::new(".")).unwrap();
            let next = Snapshot::compile(cfg, prev.version + 1, Some(&prev), CertGeneration::Skip)
                .unwrap();
            store.store(next);
        })
    });
    group.finish();
}

/// Builds `plugins/<crate_path>` with `gatehouse plugin build`.
fn build_plugin(crate_path: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join(format!(
        "target/bench-plugins/{}.wasm",
        crate_path.replace('/', "-")
    ));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["plugin", "build"])
        .arg(root.join("plugins").join(crate_path))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("running gatehouse plugin build");
    assert!(status.success(), "building plugin {crate_path} failed");
    out
}

fn plugin_call(c: &mut Criterion) {
    use gatehouse_plugin_host::{
        load_plugins, Header, PluginCall, Properties, RequestLine, RequestView, ResponseView,
    };
    let add_headers = build_plugin("examples/add-headers");
    // The floor: an `on-request` that parses nothing and sets one header.
    let minimal = build_plugin("hostile/trap");
    let yaml = format!(
        r#"
listeners: {{ http: "127.0.0.1:0" }}
# The bench runs hooks back to back on one core: more than the default
# per-tenant plugin CPU budget (250ms/s) allows.
limits: {{ plugins: {{ tenant_cpu: 64s }} }}
tenants: [{{ name: acme }}]
plugins:
  - {{ name: add-headers, tenant: acme, path: "{}" }}
  - {{ name: minimal, tenant: acme, path: "{}" }}
domains:
  - hosts: [example.com]
    tenant: acme
    plugins:
      - {{ plugin: add-headers, config: {{ request: {{ x-a: "1", x-b: "2" }}, response: {{ x-c: "3" }} }} }}
      - {{ plugin: minimal }}
    routes: [{{ path: /, respond: {{ status: 200 }} }}]
"#,
        add_headers.display(),
        minimal.display()
    );
    let cfg = gatehouse_config::load_str(&yaml, Path::new(".")).unwrap();
    let plugins = load_plugins(&cfg, &[]).unwrap();
    let binding = cfg.domains[0].plugins[0].clone();
    // A request's properties, with its own CPU and log budgets (one per
    // iteration, as the proxy makes one per request).
    let domain: Arc<str> = Arc::from("example.com");
    let tenant: Arc<str> = Arc::from("acme");
    let request = || {
        Arc::new(Properties {
            request_id: "0123456789abcdef0123456789abcdef".into(),
            client_ip: "203.0.113.7".into(),
            http_version: "HTTP/1.1",
            domain: domain.clone(),
            route: "/".into(),
            tenant: tenant.clone(),
            ..Properties::default()
        })
    };
    // Hooks are futures; the proxy polls them on its Tokio workers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let header = |n: &str, v: &str| Header {
        name: n.into(),
        value: v.as_bytes().to_vec(),
    };
    let mut head = RequestView {
        line: RequestLine {
            method: "GET".into(),
            scheme: "https".into(),
            authority: "example.com".into(),
            path: "/products?page=2".into(),
        },
        headers: vec![
            header("host", "example.com"),
            header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
            ),
            header("accept", "text/html,application/xhtml+xml"),
            header("accept-language", "en-GB,en;q=0.5"),
            header("cookie", "session=abcdef0123456789"),
        ],
    };
    let mut response = ResponseView {
        status: 200,
        headers: vec![
            header("content-type", "text/html"),
            header("content-length", "1234"),
        ],
    };
    let binding1 = cfg.domains[0].plugins[1].clone();
    let no_pools = |_: &str| None;
    let mut group = c.benchmark_group("plugin");
    // What a request pays: one instance, kept from `on-request` for `on-response`.
    group.bench_function("add_headers_request_and_response", |b| {
        b.iter(|| {
            let props = request();
            let call = PluginCall {
                plugin: &plugins[0],
                binding: &binding,
                props: &props,
            };
            let mut slot = None;
            rt.block_on(async {
                let req = call
                    .on_request(&mut slot, black_box(&mut head), &no_pools)
                    .await
                    .unwrap();
                let resp = call
                    .on_response(&mut slot, black_box(&mut head), black_box(&mut response))
                    .await
                    .unwrap();
                black_box((req, resp))
            })
        })
    });
    // The same when the keep caps are reached: a fresh instance per hook.
    group.bench_function("add_headers_request_and_response_not_kept", |b| {
        b.iter(|| {
            let props = request();
            let call = PluginCall {
                plugin: &plugins[0],
                binding: &binding,
                props: &props,
            };
            rt.block_on(async {
                let req = call
                    .on_request(&mut None, black_box(&mut head), &no_pools)
                    .await
                    .unwrap();
                let resp = call
                    .on_response(&mut None, black_box(&mut head), black_box(&mut response))
                    .await
                    .unwrap();
                black_box((req, resp))
            })
        })
    });
    // One hook in an instance that already exists: the call without
    // instantiation or reset (an instance lives for one request; only this
    // bench reuses one).
    let mut warm = None;
    let props = request();
    rt.block_on(
        PluginCall {
            plugin: &plugins[0],
            binding: &binding,
            props: &props,
        }
        .on_request(&mut warm, &mut head, &no_pools),
    )
    .unwrap();
    group.bench_function("add_headers_request_in_existing_instance", |b| {
        b.iter(|| {
            let props = request();
            let call = PluginCall {
                plugin: &plugins[0],
                binding: &binding,
                props: &props,
            };
            black_box(
                rt.block_on(call.on_request(&mut warm, black_box(&mut head), &no_pools))
                    .unwrap(),
            )
        })
    });
    drop(warm);
    group.bench_function("add_headers_request_only", |b| {
        b.iter(|| {
            let props = request();
            let call = PluginCall {
                plugin: &plugins[0],
                binding: &binding,
                props: &props,
            };
            black_box(
                rt.block_on(call.on_request(&mut None, black_box(&mut head), &no_pools))
                    .unwrap(),
            )
        })
    });
    group.bench_function("minimal_request_only", |b| {
        b.iter(|| {
            let props = request();
            let call = PluginCall {
                plugin: &plugins[1],
                binding: &binding1,
                props: &props,
            };
            black_box(
                rt.block_on(call.on_request(&mut None, black_box(&mut head), &no_pools))
                    .unwrap(),
            )
        })
    });
    group.finish();
}

/// One rate-limit check: a token taken from a client's bucket, with 1 and
/// 100,000 clients' buckets in the limiter (goal: <= 200 ns).
fn rate_limit_check(c: &mut Criterion) {
    use gatehouse_config::model::{RateLimitKey, RateLimitRule, RateQuota};
    use gatehouse_proxy::ratelimit::{limiter, request_key};
    let mut group = c.benchmark_group("rate_limit");
    for clients in [1usize, 100_000] {
        let rule = RateLimitRule {
            name: format!("bench-{clients}"),
            // Never refuses during the bench: the cost measured is the admitting path.
            quota: RateQuota {
                requests: u32::MAX / 2,
                per: std::time::Duration::from_secs(1),
                burst: u32::MAX / 2,
            },
            key: RateLimitKey::ClientIp,
            headers: Default::default(),
        };
        let l = limiter("bench", &rule);
        let ips: Vec<String> = (0..clients)
            .map(|i| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255))
            .collect();
        for ip in &ips {
            l.check(ip);
        }
        let headers = http::HeaderMap::new();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("check_client_ip", clients), |b| {
            b.iter(|| {
                i = (i + 7919) % ips.len();
                let key = request_key(&l.rule.key, &ips[i], &headers, None);
                black_box(l.check(black_box(&key)))
            })
        });
    }
    group.finish();
}

/// The WAF on typical requests at paranoia 1 (goal: <= 20 µs median with a
/// 2 KiB JSON body): browser headers with cookies, a query string, the body.
fn waf_inspect(c: &mut Criterion) {
    use gatehouse_proxy::waf::{RequestInput, Waf};
    let file: gatehouse_config::waf::Waf =
        serde_yaml_ng::from_str("{mode: block, paranoia: 1}").unwrap();
    let policy = gatehouse_config::waf::check(&file, "waf", &mut |p, m| panic!("{p}: {m}"));
    let waf = Waf::new(policy).unwrap();
    let mut headers = http::HeaderMap::new();
    for (k, v) in [
        ("host", "shop.example.com"),
        ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
        ("accept", "application/json, text/plain, */*"),
        ("accept-language", "en-GB,en;q=0.9,de;q=0.8"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://shop.example.com/cart?step=2"),
        ("cookie", "session=9f3c2a7be01d4c5f8a6e; _ga=GA1.2.1234567890.1700000000; consent=necessary%2Cstatistics"),
        ("content-type", "application/json"),
    ] {
        headers.insert(k, v.parse().unwrap());
    }
    // Distinct values per item (as in real orders); only the keys repeat.
    let products = [
        "Organic cotton t-shirt, relaxed fit (navy)",
        "Merino wool socks, 3-pack",
        "Stainless steel water bottle 750 ml",
        "Recycled polyester rain jacket - men's M",
        "Bamboo toothbrush (soft), set of 4",
        "Trail running shoes, size 42 / UK 8",
        "Linen tea towel: lemons & leaves",
        "Ceramic pour-over coffee dripper",
    ];
    let notes = [
        "Leave it with the neighbour if nobody's home; thanks!",
        "Gift wrap please, it's a birthday present",
        "Ring twice, the bell is broken.",
        "Deliver after 5pm if possible",
        "",
        "Please don't fold the tea towels",
    ];
    let mut items = Vec::new();
    while serde_json::to_string(&items).unwrap().len() < 1900 {
        let n = items.len();
        items.push(serde_json::json!({
            "sku": format!("SKU-{:05}", 7919 * (n + 1) % 100_000),
            "name": products[n % products.len()],
            "qty": n % 3 + 1,
            "price": 4.95 + n as f64 * 3.5,
            "gift": n % 2 == 0,
            "note": notes[n % notes.len()]
        }));
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "customer": {"id": "c-81723", "email": "ana@example.com"},
        "items": items,
        "created_at": "2026-11-23T08:00:00Z"
    }))
    .unwrap();
    let mut group = c.benchmark_group("waf");
    group.bench_function(BenchmarkId::new("inspect_json_post", body.len()), |b| {
        b.iter(|| {
            let input = RequestInput {
                method: "POST",
                raw_uri: b"/api/v1/orders?currency=EUR&source=web",
                version: http::Version::HTTP_11,
                host: None,
                headers: &headers,
                body: black_box(&body),
                body_truncated: false,
            };
            black_box(waf.inspect(&input, "/api/v1/orders"))
        })
    });
    group.bench_function("inspect_search_get", |b| {
        b.iter(|| {
            let input = RequestInput {
                method: "GET",
                raw_uri: b"/search?q=wool+socks+for+hiking+%28size+42%29&page=2&sort=-rating",
                version: http::Version::HTTP_11,
                host: None,
                headers: &headers,
                body: b"",
                body_truncated: false,
            };
            black_box(waf.inspect(&input, "/search"))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    route_lookup,
    sni_resolution,
    snapshot_build_and_swap,
    plugin_call,
    rate_limit_check,
    waf_inspect
);
criterion_main!(benches);
