//! File types → validated model, collecting every error with its field path.
//!
//! Validation never stops at the first problem: each section is checked and
//! every error recorded, so `gatehouse check` can list them all at once.
//! Nothing here panics on any input.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ConfigErrors;
use crate::file;
use crate::model::*;

/// Default and least `limits.waf_held_body_bytes`.
const DEFAULT_WAF_HELD_BODY_BYTES: u64 = 256 * 1024 * 1024;
const MIN_WAF_HELD_BODY_BYTES: u64 = 1024 * 1024;
/// Default and least edge cache quota of a tenant; default and largest
/// cached object.
const DEFAULT_CACHE_TENANT_BYTES: u64 = 64 * 1024 * 1024;
const MIN_CACHE_TENANT_BYTES: u64 = 64 * 1024;
const DEFAULT_CACHE_OBJECT_BYTES: u64 = 8 * 1024 * 1024;
const MAX_CACHE_OBJECT_BYTES: u64 = 1 << 30;

/// Header count above which Pingora's HTTP/1 parser itself rejects a request (with 400).
pub const PARSER_MAX_HEADERS: usize = 256;

/// Validates `cfg`; relative paths are resolved against `base_dir`
/// (the directory of the config file).
pub fn validate(cfg: &file::FileConfig, base_dir: &Path) -> Result<Config, ConfigErrors> {
    validate_with(cfg, base_dir, Mode::File)
}

/// What the config is for, where that changes the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A complete config file.
    File,
    /// A node following a control plane: domains and certificates arrive
    /// with published versions, so an https listener without a certificate
    /// yet is fine (handshakes are refused until one is published).
    Node,
}

/// [`validate`] for a given [`Mode`].
pub fn validate_with(
    cfg: &file::FileConfig,
    base_dir: &Path,
    mode: Mode,
) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        errors: ConfigErrors::default(),
        base_dir,
        plugin_index: HashMap::new(),
    };
    let listeners = v.listeners(&cfg.listeners);
    let server = v.server(&cfg.server);
    let limits = v.limits(&cfg.limits);
    let tenants = v.tenants(&cfg.tenants);
    let tenant_rate_limits = cfg
        .tenants
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let q = t.rate_limit.as_ref()?;
            let path = format!("tenants[{i}].rate_limit");
            v.quota(q.requests, q.per, q.burst, &path)
                .map(|quota| (t.name.clone(), quota))
        })
        .collect();
    let tenant_cache_bytes = cfg
        .tenants
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let bytes = t.cache_bytes?;
            if bytes < MIN_CACHE_TENANT_BYTES {
                v.err(
                    format!("tenants[{i}].cache_bytes"),
                    format!("must be at least {MIN_CACHE_TENANT_BYTES}"),
                );
            }
            Some((t.name.clone(), bytes))
        })
        .collect();
    let cert_index = v.name_index(
        cfg.certificates.iter().map(|c| c.name.as_str()),
        "certificates",
    );
    let pool_index = v.name_index(cfg.pools.iter().map(|p| p.name.as_str()), "pools");
    let pools: Vec<Pool> = cfg
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| v.pool(p, &format!("pools[{i}]"), &tenants))
        .collect();
    let plugins = v.plugins(&cfg.plugins, &tenants);
    let domains: Vec<Domain> = v.domains(cfg, &tenants, &cert_index, &pool_index);
    let mut certificates: Vec<Certificate> = cfg
        .certificates
        .iter()
        .enumerate()
        .map(|(i, c)| v.certificate(c, &format!("certificates[{i}]")))
        .collect();
    for d in &domains {
        if let Some(ci) = d.certificate {
            certificates[ci].hosts.extend(d.hosts.iter().cloned());
        }
    }
    let tls = v.tls(&cfg.tls, &cert_index);
    let client_ip = ClientIp {
        trusted_proxies: v.ip_set(&cfg.client_ip.trusted_proxies, "client_ip.trusted_proxies"),
        header: cfg.client_ip.header,
        proxy_protocol: v.ip_set(&cfg.client_ip.proxy_protocol, "client_ip.proxy_protocol"),
    };
    if let Some(admin) = &cfg.admin {
        v.listen_addr(&admin.listen, "admin.listen");
    }

    if listeners.http.is_none() && listeners.https.is_none() {
        v.err("listeners", "at least one of `http` or `https` must be set");
    }
    let serves_default =
        tls.unknown_sni == UnknownSni::DefaultCertificate && tls.default_certificate.is_some();
    if mode == Mode::File
        && listeners.https.is_some()
        && !domains.iter().any(|d| d.certificate.is_some())
        && !serves_default
    {
        v.err(
            "listeners.https",
            "an https listener needs at least one domain with a `certificate`, or `tls.unknown_sni: default_certificate`",
        );
    }
    if listeners.https.is_none() {
        for (i, d) in cfg.domains.iter().enumerate() {
            if d.force_https {
                v.err(
                    format!("domains[{i}].force_https"),
                    "needs an https listener (`listeners.https`) to redirect to",
                );
            }
        }
    }

    if v.errors.is_empty() {
        Ok(Config {
            listeners,
            server,
            limits,
            tls,
            client_ip,
            tenants: tenants.into_iter().collect(),
            tenant_rate_limits,
            tenant_cache_bytes,
            domains,
            pools,
            certificates,
            plugins,
        })
    } else {
        Err(v.errors)
    }
}

struct Validator<'a> {
    errors: ConfigErrors,
    base_dir: &'a Path,
    /// Plugin name → (index, tenant), for resolving bindings.
    plugin_index: HashMap<String, (usize, String)>,
}

impl Validator<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(path, message);
    }

    fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn listen_addr(&mut self, value: &Option<String>, path: &str) -> Option<SocketAddr> {
        let s = value.as_ref()?;
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    format!("invalid listen address {s:?}: expected ip:port, e.g. 0.0.0.0:8080"),
                );
                None
            }
        }
    }

    fn listeners(&mut self, l: &file::Listeners) -> Listeners {
        let out = Listeners {
            http: self.listen_addr(&l.http, "listeners.http"),
            https: self.listen_addr(&l.https, "listeners.https"),
            internal: self.listen_addr(&l.internal, "listeners.internal"),
        };
        let all = [
            ("listeners.http", out.http),
            ("listeners.https", out.https),
            ("listeners.internal", out.internal),
        ];
        for (i, (path, a)) in all.iter().enumerate() {
            for (other, b) in &all[..i] {
                if let (Some(a), Some(b)) = (a, b) {
                    if a == b && a.port() != 0 {
                        self.err(*path, format!("address {a} is also used by {other}"));
                    }
                }
            }
        }
        out
    }

    fn server(&mut self, s: &file::Server) -> Server {
        let threads = match s.threads {
            Some(0) => {
                self.err("server.threads", "must be at least 1");
                1
            }
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        Server {
            threads,
            grace_period: s.grace_period.unwrap_or(Duration::from_secs(10)),
            pid_file: s.pid_file.as_deref().map(|p| self.resolve_path(p)),
            upgrade_sock: self.resolve_path(
                s.upgrade_sock
                    .as_deref()
                    .unwrap_or("/tmp/gatehouse_upgrade.sock"),
            ),
            plugin_cache_dir: match &s.plugin_cache_dir {
                Some(dir) => Some(self.resolve_path(dir)),
                None => default_plugin_cache_dir(),
            },
        }
    }

    fn positive(&mut self, v: Option<usize>, default: usize, path: &str) -> usize {
        match v {
            Some(0) => {
                self.err(path, "must be greater than 0");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    fn duration(&mut self, v: Option<Duration>, default: Duration, path: &str) -> Duration {
        match v {
            Some(d) if d.is_zero() => {
                self.err(path, "must be greater than 0");
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    fn limits(&mut self, l: &file::Limits) -> Limits {
        let max_header_count = self.positive(l.max_header_count, 100, "limits.max_header_count");
        if max_header_count > PARSER_MAX_HEADERS {
            self.err(
                "limits.max_header_count",
                format!("must be at most {PARSER_MAX_HEADERS} (the HTTP/1 parser's own limit)"),
            );
        }
        Limits {
            max_header_bytes: self.positive(
                l.max_header_bytes,
                32 * 1024,
                "limits.max_header_bytes",
            ),
            max_header_count,
            max_uri_bytes: self.positive(l.max_uri_bytes, 8 * 1024, "limits.max_uri_bytes"),
            max_body_bytes: match l.max_body_bytes {
                Some(0) => None,
                Some(n) => Some(n),
                None => Some(64 * 1024 * 1024),
            },
            waf_held_body_bytes: match l.waf_held_body_bytes {
                // A smaller budget could not hold one request's largest
                // inspection (`waf.inspect_body_bytes` is at most 1 MiB).
                Some(n) if n < MIN_WAF_HELD_BODY_BYTES => {
                    self.err(
                        "limits.waf_held_body_bytes",
                        format!("must be at least {MIN_WAF_HELD_BODY_BYTES} (1 MiB)"),
                    );
                    DEFAULT_WAF_HELD_BODY_BYTES
                }
                Some(n) => n,
                None => DEFAULT_WAF_HELD_BODY_BYTES,
            },
            cache_tenant_bytes: match l.cache_tenant_bytes {
                Some(n) if n < MIN_CACHE_TENANT_BYTES => {
                    self.err(
                        "limits.cache_tenant_bytes",
                        format!("must be at least {MIN_CACHE_TENANT_BYTES}"),
                    );
                    DEFAULT_CACHE_TENANT_BYTES
                }
                Some(n) => n,
                None => DEFAULT_CACHE_TENANT_BYTES,
            },
            cache_object_bytes: match l.cache_object_bytes {
                Some(n) if n == 0 || n > MAX_CACHE_OBJECT_BYTES => {
                    self.err(
                        "limits.cache_object_bytes",
                        format!("must be between 1 and {MAX_CACHE_OBJECT_BYTES} (1 GiB)"),
                    );
                    DEFAULT_CACHE_OBJECT_BYTES
                }
                Some(n) => n,
                None => DEFAULT_CACHE_OBJECT_BYTES,
            },
            client_read_timeout: self.duration(
                l.client_read_timeout,
                Duration::from_secs(30),
                "limits.client_read_timeout",
            ),
            client_write_timeout: self.duration(
                l.client_write_timeout,
                Duration::from_secs(30),
                "limits.client_write_timeout",
            ),
            keepalive_timeout: self.duration(
                l.keepalive_timeout,
                Duration::from_secs(60),
                "limits.keepalive_timeout",
            ),
        }
    }

    fn tenants(&mut self, tenants: &[file::Tenant]) -> HashSet<String> {
        let mut out = HashSet::new();
        for (i, t) in tenants.iter().enumerate() {
            let path = format!("tenants[{i}].name");
            if !valid_simple_name(&t.name) {
                self.err(
                    &path,
                    format!(
                        "invalid tenant name {:?}: use 1-63 characters of a-z, 0-9, '-' and '_'",
                        t.name
                    ),
                );
            }
            if !out.insert(t.name.clone()) {
                self.err(&path, format!("duplicate tenant {:?}", t.name));
            }
        }
        out
    }

    fn name_index<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
        section: &str,
    ) -> HashMap<String, usize> {
        let mut index = HashMap::new();
        for (i, name) in names.enumerate() {
            let path = format!("{section}[{i}].name");
            if !valid_name(name) {
                self.err(
                    &path,
                    format!(
                        "invalid name {name:?}: use 1-63 characters of a-z, 0-9, '-' and '_', \
                         optionally qualified by the tenant as tenant/name"
                    ),
                );
            }
            // The first definition wins; later ones are the errors.
            if index.contains_key(name) {
                self.err(&path, format!("duplicate name {name:?}"));
            } else {
                index.insert(name.to_string(), i);
            }
        }
        index
    }

    fn plugins(&mut self, plugins: &[file::Plugin], tenants: &HashSet<String>) -> Vec<Plugin> {
        let index = self.name_index(plugins.iter().map(|p| p.name.as_str()), "plugins");
        self.plugin_index = index
            .into_iter()
            .map(|(name, i)| (name, (i, plugins[i].tenant.clone())))
            .collect();
        let mut out = Vec::with_capacity(plugins.len());
        for (i, p) in plugins.iter().enumerate() {
            let path = format!("plugins[{i}]");
            self.tenant_ref(&p.tenant, tenants, &format!("{path}.tenant"));
            self.qualifier(&p.name, &p.tenant, &format!("{path}.name"));
            if p.path.is_empty() {
                self.err(format!("{path}.path"), "must name a .wasm component file");
            }
            let sha256 = p.sha256.as_deref().and_then(|hex| match parse_sha256(hex) {
                Some(d) => Some(d),
                None => {
                    self.err(
                        format!("{path}.sha256"),
                        format!("expected 64 hex digits, got {hex:?}"),
                    );
                    None
                }
            });
            out.push(Plugin {
                name: p.name.clone(),
                tenant: p.tenant.clone(),
                path: self.resolve_path(&p.path),
                sha256,
            });
        }
        out
    }

    fn plugin_chain(
        &mut self,
        bindings: &[file::PluginBinding],
        tenant: &str,
        path: &str,
    ) -> Vec<PluginBinding> {
        let mut out = Vec::with_capacity(bindings.len());
        for (bi, b) in bindings.iter().enumerate() {
            let bpath = format!("{path}[{bi}]");
            let Some((plugin, owner)) = self.plugin_index.get(&b.plugin).cloned() else {
                self.err(
                    format!("{bpath}.plugin"),
                    format!("unknown plugin {:?}", b.plugin),
                );
                continue;
            };
            if owner != tenant {
                self.err(
                    format!("{bpath}.plugin"),
                    format!("plugin {:?} belongs to another tenant", b.plugin),
                );
                continue;
            }
            let timeout = b.timeout.unwrap_or(DEFAULT_PLUGIN_TIMEOUT);
            if timeout.is_zero() || timeout > MAX_PLUGIN_TIMEOUT {
                self.err(
                    format!("{bpath}.timeout"),
                    format!(
                        "must be between 1ms and {}ms",
                        MAX_PLUGIN_TIMEOUT.as_millis()
                    ),
                );
            }
            let max_mb = (MAX_PLUGIN_MEMORY >> 20) as u32;
            let memory_limit = match b.memory_limit_mb {
                None => DEFAULT_PLUGIN_MEMORY,
                Some(mb) if (1..=max_mb).contains(&mb) => (mb as usize) << 20,
                Some(mb) => {
                    self.err(
                        format!("{bpath}.memory_limit_mb"),
                        format!("must be between 1 and {max_mb}, got {mb}"),
                    );
                    DEFAULT_PLUGIN_MEMORY
                }
            };
            let failure_status = match b.failure_status {
                Some(code) if (400..=599).contains(&code) => {
                    self.status(code, &format!("{bpath}.failure_status"))
                }
                Some(code) => {
                    self.err(
                        format!("{bpath}.failure_status"),
                        format!("must be 400..=599, got {code}"),
                    );
                    None
                }
                None => None,
            };
            let config = match &b.config {
                None => "{}".to_string(),
                Some(v) => v.to_string(),
            };
            out.push(PluginBinding {
                plugin,
                config: config.into(),
                timeout,
                memory_limit,
                failure_mode: b.failure_mode,
                failure_status,
            });
        }
        out
    }

    /// A qualified name (`tenant/name`) must be qualified by its owner.
    fn qualifier(&mut self, name: &str, tenant: &str, path: &str) {
        if let Some((qualifier, _)) = name.split_once('/') {
            if qualifier != tenant && valid_name(name) {
                self.err(
                    path,
                    format!(
                        "{name:?} is qualified by tenant {qualifier:?} but belongs to {tenant:?}"
                    ),
                );
            }
        }
    }

    fn tenant_ref(&mut self, tenant: &str, tenants: &HashSet<String>, path: &str) {
        if !tenants.contains(tenant) {
            self.err(path, format!("unknown tenant {tenant:?}"));
        }
    }

    fn tls(&mut self, t: &file::Tls, cert_index: &HashMap<String, usize>) -> Tls {
        let default_certificate = t.default_certificate.as_ref().and_then(|name| {
            let found = cert_index.get(name).copied();
            if found.is_none() {
                self.err(
                    "tls.default_certificate",
                    format!("unknown certificate {name:?}"),
                );
            }
            found
        });
        if t.unknown_sni == UnknownSni::DefaultCertificate && t.default_certificate.is_none() {
            self.err(
                "tls.default_certificate",
                "required when `tls.unknown_sni` is `default_certificate`",
            );
        }
        Tls {
            unknown_sni: t.unknown_sni,
            default_certificate,
        }
    }

    fn domains(
        &mut self,
        cfg: &file::FileConfig,
        tenants: &HashSet<String>,
        cert_index: &HashMap<String, usize>,
        pool_index: &HashMap<String, usize>,
    ) -> Vec<Domain> {
        let mut seen_hosts: HashMap<HostPattern, String> = HashMap::new();
        let mut out = Vec::with_capacity(cfg.domains.len());
        for (di, d) in cfg.domains.iter().enumerate() {
            let dpath = format!("domains[{di}]");
            self.tenant_ref(&d.tenant, tenants, &format!("{dpath}.tenant"));
            if d.hosts.is_empty() {
                self.err(format!("{dpath}.hosts"), "at least one host is required");
            }
            let mut hosts = Vec::with_capacity(d.hosts.len());
            for (hi, h) in d.hosts.iter().enumerate() {
                let hpath = format!("{dpath}.hosts[{hi}]");
                match parse_host_pattern(h) {
                    Ok(p) => {
                        if let Some(prev) = seen_hosts.insert(p.clone(), hpath.clone()) {
                            self.err(&hpath, format!("host {p} is already served by {prev}"));
                        }
                        hosts.push(p);
                    }
                    Err(msg) => self.err(&hpath, msg),
                }
            }
            let certificate = d.certificate.as_ref().and_then(|name| {
                let found = cert_index.get(name).copied();
                if found.is_none() {
                    self.err(
                        format!("{dpath}.certificate"),
                        format!("unknown certificate {name:?}"),
                    );
                }
                found
            });
            let request_headers =
                self.header_edits(&d.headers.request, &format!("{dpath}.headers.request"));
            let response_headers =
                self.header_edits(&d.headers.response, &format!("{dpath}.headers.response"));
            let ip_rules = IpRules {
                allow: (!d.ip_rules.allow.is_empty())
                    .then(|| self.ip_set(&d.ip_rules.allow, &format!("{dpath}.ip_rules.allow"))),
                deny: self.ip_set(&d.ip_rules.deny, &format!("{dpath}.ip_rules.deny")),
            };
            let rate_limits = self.rate_limits(&d.rate_limits, &format!("{dpath}.rate_limits"));
            let bans = d
                .bans
                .as_ref()
                .map(|b| self.bans(b, &format!("{dpath}.bans")));
            let waf = d.waf.as_ref().and_then(|w| {
                let policy =
                    crate::waf::check(w, &format!("{dpath}.waf"), &mut |p, m| self.err(p, m));
                (policy.mode != crate::waf::WafMode::Off).then_some(policy)
            });
            if let Some(c) = &d.cache {
                crate::cache::check(c, &format!("{dpath}.cache"), &mut |p, m| self.err(p, m));
            }
            let security_headers = match &d.security_headers {
                Some(h) => self.security_headers(h, &format!("{dpath}.security_headers")),
                None => SecurityHeaders::default(),
            };
            let plugins = self.plugin_chain(&d.plugins, &d.tenant, &format!("{dpath}.plugins"));
            let routes = d
                .routes
                .iter()
                .enumerate()
                .filter_map(|(ri, r)| {
                    self.route(
                        r,
                        &format!("{dpath}.routes[{ri}]"),
                        &d.tenant,
                        d.cache.as_ref(),
                        cfg,
                        pool_index,
                    )
                })
                .collect();
            out.push(Domain {
                hosts,
                tenant: d.tenant.clone(),
                certificate,
                force_https: d.force_https,
                request_headers,
                response_headers,
                security_headers,
                ip_rules,
                rate_limits,
                bans,
                waf,
                plugins,
                routes,
            });
        }
        out
    }

    /// Checks a quota: at least one request, a period of 1s to 1d, a burst of
    /// at least 1 (default: `requests`).
    fn quota(
        &mut self,
        requests: u32,
        per: Duration,
        burst: Option<u32>,
        path: &str,
    ) -> Option<RateQuota> {
        let mut ok = true;
        if requests == 0 {
            self.err(format!("{path}.requests"), "must be at least 1");
            ok = false;
        }
        if per < Duration::from_secs(1) || per > Duration::from_secs(86_400) {
            self.err(format!("{path}.per"), "must be between 1s and 1d");
            ok = false;
        }
        if burst == Some(0) {
            self.err(format!("{path}.burst"), "must be at least 1");
            ok = false;
        }
        ok.then(|| RateQuota {
            requests,
            per,
            burst: burst.unwrap_or(requests),
        })
    }

    fn rate_limits(&mut self, limits: &[file::RateLimit], path: &str) -> Vec<RateLimitRule> {
        let mut out = Vec::with_capacity(limits.len());
        let mut names = HashSet::new();
        for (i, l) in limits.iter().enumerate() {
            let lpath = format!("{path}[{i}]");
            if !valid_simple_name(&l.name) {
                self.err(
                    format!("{lpath}.name"),
                    "use 1-63 characters of a-z, 0-9, '-' and '_'",
                );
            } else if !names.insert(l.name.as_str()) {
                self.err(
                    format!("{lpath}.name"),
                    format!("duplicate rate limit {:?}", l.name),
                );
            }
            let key = match l.key.as_deref().unwrap_or("client_ip") {
                "client_ip" => Some(RateLimitKey::ClientIp),
                "global" => Some(RateLimitKey::Global),
                "plugin" => Some(RateLimitKey::Plugin),
                other => match other.split_once(':') {
                    Some(("header", name)) => {
                        match HeaderName::from_bytes(name.trim().as_bytes()) {
                            Ok(h) => Some(RateLimitKey::Header(h)),
                            Err(_) => None,
                        }
                    }
                    Some(("cookie", name)) if !name.trim().is_empty() => {
                        Some(RateLimitKey::Cookie(name.trim().to_string()))
                    }
                    _ => None,
                },
            };
            if key.is_none() {
                self.err(
                    format!("{lpath}.key"),
                    "expected client_ip, global, plugin, header:<name> or cookie:<name>",
                );
            }
            let quota = self.quota(l.requests, l.per, l.burst, &lpath);
            if let (Some(key), Some(quota)) = (key, quota) {
                out.push(RateLimitRule {
                    name: l.name.clone(),
                    quota,
                    key,
                    headers: l.headers,
                });
            }
        }
        out
    }

    fn bans(&mut self, b: &file::Bans, path: &str) -> BanPolicy {
        const DAY: Duration = Duration::from_secs(86_400);
        let mut after = Vec::with_capacity(b.after.len());
        for (status, n) in &b.after {
            if !(400..=599).contains(status) {
                self.err(
                    format!("{path}.after.{status}"),
                    "only 4xx and 5xx statuses count",
                );
            } else if *n == 0 {
                self.err(format!("{path}.after.{status}"), "must be at least 1");
            } else {
                after.push((*status, *n));
            }
        }
        match b.waf_blocks {
            Some(0) => self.err(format!("{path}.waf_blocks"), "must be at least 1"),
            Some(n) => after.push((BanPolicy::WAF_BLOCK, n)),
            None if b.after.is_empty() => self.err(
                format!("{path}.after"),
                "name at least one status, e.g. {401: 20}, or waf_blocks",
            ),
            None => {}
        }
        let mut bounded = |v: Option<Duration>, default: Duration, field: &str| {
            let d = v.unwrap_or(default);
            if d < Duration::from_secs(1) || d > DAY {
                self.err(format!("{path}.{field}"), "must be between 1s and 1d");
            }
            d
        };
        let window = bounded(b.window, Duration::from_secs(60), "window");
        let duration = bounded(b.duration, Duration::from_secs(600), "duration");
        BanPolicy {
            after,
            window,
            duration,
        }
    }

    /// Parses CIDRs (or bare addresses) into a set, naming a bad entry.
    fn ip_set(&mut self, cidrs: &[String], path: &str) -> IpSet {
        match IpSet::parse(cidrs) {
            Ok(set) => set,
            Err((i, text)) => {
                self.err(
                    format!("{path}[{i}]"),
                    format!("invalid CIDR {text:?}: expected e.g. 10.0.0.0/8, 2001:db8::/32 or an address"),
                );
                IpSet::default()
            }
        }
    }

    /// Resolves a domain's security headers: the preset, then each field.
    fn security_headers(&mut self, h: &file::SecurityHeaders, path: &str) -> SecurityHeaders {
        use file::{FrameOptions, SecurityPreset};
        const YEAR: Duration = Duration::from_secs(365 * 86_400);
        let preset = h.preset;
        let strict = preset == Some(SecurityPreset::Strict);
        let any = preset.is_some();
        let nosniff = h.content_type_options.unwrap_or(any);
        let frame = h.frame_options.unwrap_or(match preset {
            Some(SecurityPreset::Strict) => FrameOptions::Deny,
            Some(SecurityPreset::Basic) => FrameOptions::Sameorigin,
            None => FrameOptions::Off,
        });
        let referrer = h.referrer_policy.clone().or_else(|| match preset {
            Some(SecurityPreset::Strict) => Some("no-referrer".into()),
            Some(SecurityPreset::Basic) => Some("strict-origin-when-cross-origin".into()),
            None => None,
        });
        let permissions = h.permissions_policy.clone().or_else(|| {
            strict.then(|| {
                "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), \
                 microphone=(), payment=(), usb=()"
                    .into()
            })
        });
        let hsts = h.hsts.clone().or(strict.then_some(file::Hsts {
            max_age: Some(YEAR),
            include_subdomains: true,
            preload: false,
        }));
        let mut out = SecurityHeaders {
            strip_server_headers: h.strip_server_headers.unwrap_or(any),
            ..SecurityHeaders::default()
        };
        let mut add = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.headers.push((HeaderName::from_static(name), v));
            }
        };
        if nosniff {
            add("x-content-type-options", "nosniff");
        }
        match frame {
            FrameOptions::Deny => {
                add("x-frame-options", "DENY");
                add("content-security-policy", "frame-ancestors 'none'");
            }
            FrameOptions::Sameorigin => {
                add("x-frame-options", "SAMEORIGIN");
                add("content-security-policy", "frame-ancestors 'self'");
            }
            FrameOptions::Off => {}
        }
        if let Some(r) = &referrer {
            const POLICIES: [&str; 8] = [
                "no-referrer",
                "no-referrer-when-downgrade",
                "origin",
                "origin-when-cross-origin",
                "same-origin",
                "strict-origin",
                "strict-origin-when-cross-origin",
                "unsafe-url",
            ];
            // A comma list is allowed: browsers use the last token they know.
            if r.split(',').all(|t| POLICIES.contains(&t.trim())) {
                add("referrer-policy", r);
            } else {
                self.err(
                    format!("{path}.referrer_policy"),
                    format!(
                        "unknown referrer policy {r:?}; one of {}",
                        POLICIES.join(", ")
                    ),
                );
            }
        }
        if let Some(p) = &permissions {
            if HeaderValue::from_str(p).is_ok() && !p.trim().is_empty() {
                add("permissions-policy", p);
            } else {
                self.err(
                    format!("{path}.permissions_policy"),
                    "must be a non-empty header value, e.g. \"camera=(), microphone=()\"",
                );
            }
        }
        if let Some(hsts) = hsts {
            let max_age = hsts.max_age.unwrap_or(YEAR);
            if hsts.preload && (!hsts.include_subdomains || max_age < YEAR) {
                self.err(
                    format!("{path}.hsts.preload"),
                    "preload lists require include_subdomains and a max_age of at least 365d",
                );
            }
            let mut v = format!("max-age={}", max_age.as_secs());
            if hsts.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if hsts.preload {
                v.push_str("; preload");
            }
            out.hsts = HeaderValue::from_str(&v).ok();
        }
        out
    }

    fn route(
        &mut self,
        r: &file::Route,
        path: &str,
        tenant: &str,
        domain_cache: Option<&crate::cache::Cache>,
        cfg: &file::FileConfig,
        pool_index: &HashMap<String, usize>,
    ) -> Option<Route> {
        let route_path = r.path.clone().unwrap_or_else(|| "/".to_string());
        if !route_path.starts_with('/') {
            self.err(
                format!("{path}.path"),
                format!("path {route_path:?} must start with '/'"),
            );
        }
        let mut methods = Vec::new();
        for (mi, m) in r.methods.iter().enumerate() {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => self.err(
                    format!("{path}.methods[{mi}]"),
                    format!("invalid method {m:?}"),
                ),
            }
        }
        let set = [
            r.pool.is_some(),
            r.respond.is_some(),
            r.redirect.is_some(),
            r.static_files.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            self.err(
                path,
                "exactly one of `pool`, `respond`, `redirect` or `static` must be set",
            );
            return None;
        }
        let action = if let Some(pool) = &r.pool {
            let Some(&pi) = pool_index.get(pool) else {
                self.err(format!("{path}.pool"), format!("unknown pool {pool:?}"));
                return None;
            };
            if cfg.pools[pi].tenant != tenant {
                self.err(
                    format!("{path}.pool"),
                    format!("pool {pool:?} belongs to another tenant"),
                );
                return None;
            }
            RouteAction::Pool(pi)
        } else if let Some(resp) = &r.respond {
            RouteAction::Respond(self.respond(resp, &format!("{path}.respond"))?)
        } else if let Some(red) = &r.redirect {
            RouteAction::Redirect(self.redirect(red, &format!("{path}.redirect"))?)
        } else {
            let s = r.static_files.as_ref()?;
            RouteAction::Static(self.static_files(s, &format!("{path}.static"))?)
        };
        let plugins = self.plugin_chain(&r.plugins, tenant, &format!("{path}.plugins"));
        let rate_limits = self.rate_limits(&r.rate_limits, &format!("{path}.rate_limits"));
        if let Some(c) = &r.cache {
            crate::cache::check(c, &format!("{path}.cache"), &mut |p, m| self.err(p, m));
        }
        let cache = crate::cache::merge(domain_cache, r.cache.as_ref());
        // Local answers cost nothing to make again; only forwarded requests are cached.
        let cache = cache.filter(|_| matches!(action, RouteAction::Pool(_)));
        Some(Route {
            path: route_path,
            path_match: r.path_match,
            methods,
            action,
            plugins,
            rate_limits,
            cache,
        })
    }

    fn status(&mut self, code: u16, path: &str) -> Option<StatusCode> {
        match StatusCode::from_u16(code) {
            Ok(s) if code >= 100 => Some(s),
            _ => {
                self.err(path, format!("invalid status code {code}"));
                None
            }
        }
    }

    fn respond(&mut self, r: &file::Respond, path: &str) -> Option<Respond> {
        let code = r.status.unwrap_or(200);
        if !(200..=599).contains(&code) {
            // A 1xx is an interim response: the client would wait for a final one forever.
            self.err(
                format!("{path}.status"),
                format!("status must be 200..=599, got {code}"),
            );
            return None;
        }
        let status = self.status(code, &format!("{path}.status"))?;
        if matches!(code, 204 | 304) && !r.body.is_empty() {
            // RFC 9110 §15.3.5, §15.4.5: these responses cannot carry content.
            self.err(
                format!("{path}.body"),
                format!("a {code} response cannot have a body"),
            );
        }
        let mut headers = Vec::new();
        for (name, value) in &r.headers {
            let hpath = format!("{path}.headers.{name}");
            if let (Some(n), Some(v)) = (
                self.header_name(name, &hpath),
                self.header_value(value, &hpath),
            ) {
                headers.push((n, v));
            }
        }
        Some(Respond {
            status,
            headers,
            body: r.body.clone(),
        })
    }

    fn redirect(&mut self, r: &file::Redirect, path: &str) -> Option<Redirect> {
        let code = r.status.unwrap_or(302);
        if ![301, 302, 303, 307, 308].contains(&code) {
            self.err(
                format!("{path}.status"),
                format!("redirect status must be 301, 302, 303, 307 or 308, got {code}"),
            );
            return None;
        }
        // An absolute URL, or a path on this host; never `//host` (a
        // scheme-relative URL that, with keep_path, becomes an open redirect).
        let absolute = http::Uri::try_from(r.to.as_str())
            .is_ok_and(|u| u.scheme().is_some() && u.authority().is_some());
        let local_path = r.to.starts_with('/') && !r.to.starts_with("//");
        if HeaderValue::from_str(&r.to).is_err() || !(absolute || local_path) {
            self.err(
                format!("{path}.to"),
                format!(
                    "invalid redirect target {:?}: use an absolute URL (https://host/...) or a path starting with one '/'",
                    r.to
                ),
            );
            return None;
        }
        Some(Redirect {
            to: r.to.clone(),
            status: StatusCode::from_u16(code).ok()?,
            keep_path: r.keep_path,
        })
    }

    fn static_files(&mut self, s: &file::StaticFiles, path: &str) -> Option<StaticFiles> {
        let root = self.resolve_path(&s.root);
        let root = match std::fs::canonicalize(&root) {
            Ok(r) if r.is_dir() => r,
            Ok(_) => {
                self.err(
                    format!("{path}.root"),
                    format!("{} is not a directory", root.display()),
                );
                return None;
            }
            Err(e) => {
                self.err(
                    format!("{path}.root"),
                    format!("cannot open {}: {e}", root.display()),
                );
                return None;
            }
        };
        let index = s
            .index
            .clone()
            .unwrap_or_else(|| vec!["index.html".to_string()]);
        for (i, name) in index.iter().enumerate() {
            if name.is_empty() || name.contains('/') || name == ".." || name == "." {
                self.err(
                    format!("{path}.index[{i}]"),
                    format!("invalid index file name {name:?}"),
                );
            }
        }
        let cache_control = s
            .cache_control
            .as_ref()
            .and_then(|c| self.header_value(c, &format!("{path}.cache_control")));
        Some(StaticFiles {
            root,
            index,
            strip_prefix: s.strip_prefix.unwrap_or(true),
            cache_control,
        })
    }

    fn header_name(&mut self, name: &str, path: &str) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(path, format!("invalid header name {name:?}"));
                None
            }
        }
    }

    fn header_value(&mut self, value: &str, path: &str) -> Option<HeaderValue> {
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.err(path, format!("invalid header value {value:?}"));
                None
            }
        }
    }

    fn header_edits(&mut self, e: &file::HeaderEdits, path: &str) -> HeaderEdits {
        let mut out = HeaderEdits::default();
        for (i, name) in e.remove.iter().enumerate() {
            if let Some(n) = self.header_name(name, &format!("{path}.remove[{i}]")) {
                out.remove.push(n);
            }
        }
        for (kind, map, dest) in [("set", &e.set, &mut out.set), ("add", &e.add, &mut out.add)] {
            for (name, value) in map {
                let fpath = format!("{path}.{kind}.{name}");
                let n = self.header_name(name, &fpath);
                let t = match parse_template(value) {
                    Ok(t) => Some(t),
                    Err(msg) => {
                        self.err(&fpath, msg);
                        None
                    }
                };
                if let (Some(n), Some(t)) = (n, t) {
                    dest.push((n, t));
                }
            }
        }
        out
    }

    fn pool(&mut self, p: &file::Pool, path: &str, tenants: &HashSet<String>) -> Pool {
        self.tenant_ref(&p.tenant, tenants, &format!("{path}.tenant"));
        self.qualifier(&p.name, &p.tenant, &format!("{path}.name"));
        if p.targets.is_empty() {
            self.err(format!("{path}.targets"), "at least one target is required");
        }
        let mut targets = Vec::with_capacity(p.targets.len());
        let mut seen = HashSet::new();
        for (ti, t) in p.targets.iter().enumerate() {
            let tpath = format!("{path}.targets[{ti}]");
            let weight = t.weight.unwrap_or(1);
            if !(1..=1000).contains(&weight) {
                self.err(
                    format!("{tpath}.weight"),
                    format!("weight must be 1..=1000, got {weight}"),
                );
            }
            if !seen.insert(t.addr.clone()) {
                self.err(
                    format!("{tpath}.addr"),
                    format!("duplicate target {:?}", t.addr),
                );
            }
            match resolve_target(&t.addr) {
                Ok((addr, host)) => targets.push(Target {
                    name: t.addr.clone(),
                    addr,
                    host,
                    weight,
                }),
                Err(msg) => self.err(format!("{tpath}.addr"), msg),
            }
        }
        let hash_key = match (&p.algorithm, &p.hash_key) {
            (Algorithm::ConsistentHash, None) => {
                self.err(
                    format!("{path}.hash_key"),
                    "required for algorithm consistent_hash",
                );
                None
            }
            (Algorithm::ConsistentHash, Some(k)) => match parse_hash_key(k) {
                Ok(k) => Some(k),
                Err(msg) => {
                    self.err(format!("{path}.hash_key"), msg);
                    None
                }
            },
            (_, Some(_)) => {
                self.err(
                    format!("{path}.hash_key"),
                    "only used with algorithm consistent_hash",
                );
                None
            }
            (_, None) => None,
        };
        let tls = p.tls.as_ref().map(|t| {
            if let Some(sni) = &t.sni {
                if parse_host_pattern(sni).is_err() {
                    self.err(format!("{path}.tls.sni"), format!("invalid SNI {sni:?}"));
                }
            }
            let ca = t
                .ca_path
                .as_ref()
                .and_then(|ca| self.ca_bundle(ca, &format!("{path}.tls.ca_path")));
            UpstreamTls {
                sni: t.sni.clone(),
                verify: t.verify.unwrap_or(true),
                ca,
            }
        });
        let host_header = p
            .host_header
            .as_ref()
            .and_then(|h| self.header_value(h, &format!("{path}.host_header")));
        let to = &p.timeouts;
        let timeouts = Timeouts {
            connect: self.duration(
                to.connect,
                Duration::from_secs(3),
                &format!("{path}.timeouts.connect"),
            ),
            read: self.duration(
                to.read,
                Duration::from_secs(30),
                &format!("{path}.timeouts.read"),
            ),
            write: self.duration(
                to.write,
                Duration::from_secs(30),
                &format!("{path}.timeouts.write"),
            ),
            idle: self.duration(
                to.idle,
                Duration::from_secs(60),
                &format!("{path}.timeouts.idle"),
            ),
        };
        let retries = p.retries.unwrap_or(1);
        if retries > 10 {
            self.err(format!("{path}.retries"), "must be at most 10");
        }
        let active_health = p
            .health_check
            .active
            .as_ref()
            .map(|a| self.active_health(a, &format!("{path}.health_check.active")));
        let passive = p.health_check.passive.clone().unwrap_or_default();
        let passive_health = PassiveHealthCheck {
            consecutive_failures: passive.consecutive_failures.unwrap_or(5),
            ejection_time: self.duration(
                passive.ejection_time,
                Duration::from_secs(10),
                &format!("{path}.health_check.passive.ejection_time"),
            ),
        };
        Pool {
            name: p.name.clone(),
            tenant: p.tenant.clone(),
            targets,
            algorithm: p.algorithm,
            hash_key,
            tls,
            http2: p.http2,
            host_header,
            timeouts,
            retries,
            active_health,
            passive_health,
        }
    }

    fn active_health(&mut self, a: &file::ActiveHealthCheck, path: &str) -> ActiveHealthCheck {
        let probe_path = a.path.clone().unwrap_or_else(|| "/".to_string());
        if !probe_path.starts_with('/')
            || probe_path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            self.err(
                format!("{path}.path"),
                format!("invalid probe path {probe_path:?}"),
            );
        }
        let expect_status = match a.expect_status {
            Some([lo, hi]) if (100..=599).contains(&lo) && lo <= hi && hi <= 599 => (lo, hi),
            Some(range) => {
                self.err(
                    format!("{path}.expect_status"),
                    format!("expected [low, high] within 100..=599, got {range:?}"),
                );
                (200, 399)
            }
            None => (200, 399),
        };
        let rise = a.rise.unwrap_or(2);
        let fall = a.fall.unwrap_or(3);
        if rise == 0 {
            self.err(format!("{path}.rise"), "must be at least 1");
        }
        if fall == 0 {
            self.err(format!("{path}.fall"), "must be at least 1");
        }
        ActiveHealthCheck {
            kind: a.kind,
            path: probe_path,
            expect_status,
            interval: self.duration(
                a.interval,
                Duration::from_secs(5),
                &format!("{path}.interval"),
            ),
            timeout: self.duration(
                a.timeout,
                Duration::from_secs(2),
                &format!("{path}.timeout"),
            ),
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    fn certificate(&mut self, c: &file::Certificate, path: &str) -> Certificate {
        let source = match (&c.cert_path, &c.key_path, &c.cert_pem, &c.key_pem) {
            (Some(cert), Some(key), None, None) => CertSource::Files {
                cert: self.resolve_path(cert),
                key: self.resolve_path(key),
            },
            (None, None, Some(cert_pem), Some(key_pem)) => CertSource::Inline {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
            _ => {
                self.err(
                    path,
                    "set either `cert_path` and `key_path`, or `cert_pem` and `key_pem`",
                );
                CertSource::Inline {
                    cert_pem: String::new(),
                    key_pem: String::new(),
                }
            }
        };
        if c.self_signed && !matches!(source, CertSource::Files { .. }) {
            self.err(
                format!("{path}.self_signed"),
                "needs `cert_path` and `key_path` to write the generated certificate to",
            );
        }
        let cert = Certificate {
            name: c.name.clone(),
            source,
            self_signed: c.self_signed,
            hosts: Vec::new(),
        };
        match &cert.source {
            CertSource::Files { cert: cp, key: kp } => {
                let missing = !cp.exists() && !kp.exists();
                if !(c.self_signed && missing) {
                    match std::fs::read(cp) {
                        Ok(pem) => self.check_cert_pem(&pem, &format!("{path}.cert_path")),
                        Err(e) => self.err(
                            format!("{path}.cert_path"),
                            format!("cannot read {}: {e}", cp.display()),
                        ),
                    }
                    match std::fs::read(kp) {
                        Ok(pem) => self.check_key_pem(&pem, &format!("{path}.key_path")),
                        Err(e) => self.err(
                            format!("{path}.key_path"),
                            format!("cannot read {}: {e}", kp.display()),
                        ),
                    }
                }
            }
            CertSource::Inline { cert_pem, key_pem } if !cert_pem.is_empty() => {
                self.check_cert_pem(cert_pem.as_bytes(), &format!("{path}.cert_pem"));
                self.check_key_pem(key_pem.as_bytes(), &format!("{path}.key_pem"));
            }
            CertSource::Inline { .. } => {}
        }
        cert
    }

    /// Reads a PEM bundle of CA certificates.
    fn ca_bundle(&mut self, file: &str, path: &str) -> Option<Vec<Vec<u8>>> {
        let full = self.resolve_path(file);
        let pem = match std::fs::read(&full) {
            Ok(pem) => pem,
            Err(e) => {
                self.err(path, format!("cannot read {}: {e}", full.display()));
                return None;
            }
        };
        match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => Some(certs.into_iter().map(|c| c.to_vec()).collect()),
            Ok(_) => {
                self.err(path, "no PEM certificate found");
                None
            }
            Err(e) => {
                self.err(path, format!("invalid PEM certificate: {e}"));
                None
            }
        }
    }

    fn check_cert_pem(&mut self, pem: &[u8], path: &str) {
        let mut count = 0;
        for c in CertificateDer::pem_slice_iter(pem) {
            if let Err(e) = c {
                self.err(path, format!("invalid PEM certificate: {e}"));
                return;
            }
            count += 1;
        }
        if count == 0 {
            self.err(path, "no PEM certificate found");
        }
    }

    fn check_key_pem(&mut self, pem: &[u8], path: &str) {
        if let Err(e) = PrivateKeyDer::from_pem_slice(pem) {
            self.err(path, format!("no usable PEM private key: {e}"));
        }
    }
}

/// Names of tenants, pools and certificates: short, lowercase, URL-safe.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `$XDG_CACHE_HOME/gatehouse/plugins`, else `$HOME/.cache/gatehouse/plugins`.
fn default_plugin_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("gatehouse").join("plugins"))
}

/// A simple name, or one qualified by its tenant as `tenant/name` (the form the
/// admin API publishes, so that two tenants may both have a pool called `web`).
fn valid_name(name: &str) -> bool {
    match name.split_once('/') {
        Some((tenant, local)) => valid_simple_name(tenant) && valid_simple_name(local),
        None => valid_simple_name(name),
    }
}

fn valid_simple_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses `example.com` or `*.example.com` into a lowercased pattern.
pub fn parse_host_pattern(h: &str) -> Result<HostPattern, String> {
    let lower = h.trim().to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "invalid hostname {h:?}: expected e.g. example.com or *.example.com"
        ));
    }
    Ok(if wild {
        HostPattern::Wildcard(name.to_string())
    } else {
        HostPattern::Exact(name.to_string())
    })
}

/// Parses a header value template with `$variables` (`$$` is a literal `$`).
pub fn parse_template(s: &str) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        lit.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            lit.push('$');
            rest = r;
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        let Some((_, var)) = Variable::ALL.iter().find(|(n, _)| *n == name) else {
            let known: Vec<String> = Variable::ALL.iter().map(|(n, _)| format!("${n}")).collect();
            return Err(format!(
                "unknown variable ${name} (known: {}; write $$ for a literal $)",
                known.join(", ")
            ));
        };
        if !lit.is_empty() {
            parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
        }
        parts.push(TemplatePart::Var(*var));
        rest = &rest[end..];
    }
    lit.push_str(rest);
    if HeaderValue::from_str(&lit).is_err() {
        return Err(format!("invalid header value {s:?}"));
    }
    if !lit.is_empty() {
        parts.push(TemplatePart::Literal(lit));
    }
    Ok(Template { parts })
}

fn parse_hash_key(k: &str) -> Result<HashKey, String> {
    match k {
        "$client_ip" => Ok(HashKey::ClientIp),
        "$request_uri" => Ok(HashKey::RequestUri),
        "$host" => Ok(HashKey::Host),
        _ => match k.strip_prefix("header:") {
            Some(h) => HeaderName::from_bytes(h.trim().as_bytes())
                .map(HashKey::Header)
                .map_err(|_| format!("invalid header name in hash key {k:?}")),
            None => Err(format!(
                "invalid hash key {k:?}: use $client_ip, $request_uri, $host or header:<name>"
            )),
        },
    }
}

/// Resolves `host:port` once, at load time.
fn resolve_target(addr: &str) -> Result<(SocketAddr, String), String> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok((sa, sa.ip().to_string()));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("invalid target {addr:?}: expected host:port"));
    };
    if port.parse::<u16>().is_err() || host.is_empty() {
        return Err(format!("invalid target {addr:?}: expected host:port"));
    }
    match (host, port.parse::<u16>().unwrap_or(0)).to_socket_addrs() {
        Ok(mut it) => match it.next() {
            Some(sa) => Ok((sa, host.to_string())),
            None => Err(format!("target {addr:?}: {host} resolves to no address")),
        },
        Err(e) => Err(format!("target {addr:?}: cannot resolve {host}: {e}")),
    }
}
