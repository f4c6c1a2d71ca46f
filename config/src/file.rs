//! The config file as written by operators: serde types mirroring the YAML.
//!
//! Every struct denies unknown fields so a typo is an error, not a silently
//! ignored setting. These types are never seen by the data plane: `validate`
//! turns them into the checked model in `model`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Root of a Gatehouse config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::FileConfig))]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Addresses the proxy binds. Changing them requires a restart.
    #[serde(default)]
    pub listeners: Listeners,
    /// Process-wide settings (threads, graceful shutdown).
    #[serde(default)]
    pub server: Server,
    /// Request limits applied before routing.
    #[serde(default)]
    pub limits: Limits,
    /// TLS termination policy.
    #[serde(default)]
    pub tls: Tls,
    /// Where the real client address comes from behind other proxies.
    #[serde(default)]
    pub client_ip: ClientIp,
    /// Tenants: the owners of domains and pools.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// Virtual hosts with their routes.
    #[serde(default)]
    pub domains: Vec<Domain>,
    /// Upstream pools that routes forward to.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// Certificates that domains reference for TLS termination.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// WebAssembly policy plugins that domains and routes bind.
    #[serde(default)]
    pub plugins: Vec<Plugin>,
    /// Run the admin API in the same process (`gatehouse run`); the proxy then
    /// also serves what tenants publish through it. Takes effect at start.
    #[serde(default)]
    pub admin: Option<Admin>,
}

/// The in-process admin API of `gatehouse run`. Relative paths are relative to
/// the working directory (as with `gatehouse admin`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Admin))]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address of the admin API (default `127.0.0.1:9900`; keep it private).
    pub listen: Option<String>,
    /// Database URL (default `sqlite://data/gatehouse.db`).
    pub database: Option<String>,
    /// Key file sealing private keys at rest (default `data/secrets.key`, created when missing).
    pub secrets_key_file: Option<String>,
    /// Where the proxy keeps the last applied version and plugin components
    /// (default `data/node`).
    pub state_dir: Option<String>,
    /// The ACME CA the admin orders certificates from (default: none, ordering refused).
    #[serde(default)]
    pub acme: Option<AdminAcme>,
}

/// `admin.acme`: as `gatehouse admin --acme-*`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::AdminAcme))]
#[serde(deny_unknown_fields)]
pub struct AdminAcme {
    /// ACME directory URL.
    pub directory_url: String,
    /// Account contacts (`mailto:ops@example.com`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// PEM file of CA certificates trusted for the ACME server itself.
    pub ca_bundle: Option<String>,
    /// External account binding key id.
    pub eab_kid: Option<String>,
    /// File holding the EAB HMAC key (base64url).
    pub eab_hmac_key_file: Option<String>,
    /// Seconds validation and issuance may take per order (default 60).
    pub timeout_seconds: Option<u64>,
    /// Seconds between looks for renewals due (default 300).
    pub renew_check_seconds: Option<u64>,
}

/// Listening addresses (`host:port`). Each is optional; at least one of
/// `http`/`https` must be set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Listeners))]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// Plain HTTP/1.1 listener, e.g. `0.0.0.0:80`.
    pub http: Option<String>,
    /// TLS listener (HTTP/1.1 and HTTP/2 via ALPN), e.g. `0.0.0.0:443`.
    pub https: Option<String>,
    /// Internal listener serving `/metrics`, `/healthz` and `/readyz`.
    /// Bind it to loopback or a private network.
    pub internal: Option<String>,
}

/// Process-wide settings. These take effect at start only.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Server))]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Worker threads per listener service; default: number of CPU cores.
    pub threads: Option<usize>,
    /// How long SIGTERM waits for in-flight requests before exiting (default 10s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub grace_period: Option<Duration>,
    /// Pid file, used by zero-downtime binary upgrades (default none).
    pub pid_file: Option<String>,
    /// Unix socket on which a new binary receives the listening sockets
    /// during a zero-downtime upgrade (`gatehouse run --upgrade`).
    pub upgrade_sock: Option<String>,
    /// Directory for compiled plugin artifacts, keyed by the plugin's SHA-256
    /// (default: `$XDG_CACHE_HOME/gatehouse/plugins` or `~/.cache/gatehouse/plugins`).
    /// It must be private to the proxy's user: the proxy refuses a group- or
    /// world-writable directory and then compiles without a disk cache.
    pub plugin_cache_dir: Option<String>,
}

/// Limits enforced on every request before routing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Limits))]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Maximum total size of request header names and values in bytes (default 32768); larger → 431.
    pub max_header_bytes: Option<usize>,
    /// Maximum number of request header fields (default 100, at most 256); more → 431.
    pub max_header_count: Option<usize>,
    /// Maximum length of the request target in bytes (default 8192); longer → 414.
    pub max_uri_bytes: Option<usize>,
    /// Maximum request body size in bytes (default 67108864, 64 MiB; 0 = unlimited);
    /// larger → 413, checked from Content-Length up front and while streaming.
    pub max_body_bytes: Option<u64>,
    /// Most request body bytes the WAF may hold in memory at once, over all requests,
    /// while it waits to inspect them (default 268435456, 256 MiB; at least 1048576).
    /// A request that would go over gets 503 `waf_busy` instead of being held.
    pub waf_held_body_bytes: Option<u64>,
    /// Edge cache bytes per tenant on each node, for tenants without their own
    /// `cache_bytes` (default 67108864, 64 MiB).
    pub cache_tenant_bytes: Option<u64>,
    /// Largest response body the edge cache stores (default 8388608, 8 MiB; at most 1 GiB).
    /// Larger responses are passed through uncached.
    pub cache_object_bytes: Option<u64>,
    /// Maximum time to receive a request head and between body reads (default 30s).
    /// Slow clients (slowloris) are disconnected after it.
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub client_read_timeout: Option<Duration>,
    /// Maximum time a write to the client may block (default 30s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub client_write_timeout: Option<Duration>,
    /// How long an idle keep-alive client connection stays open (default 60s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub keepalive_timeout: Option<Duration>,
}

/// What to do with a TLS handshake whose SNI matches no configured certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::UnknownSni))]
#[serde(rename_all = "snake_case")]
pub enum UnknownSni {
    /// Abort the handshake (the default): never present a certificate for a name we do not serve.
    #[default]
    Reject,
    /// Present `tls.default_certificate`.
    DefaultCertificate,
}

/// TLS termination policy for the `https` listener.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Tls))]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Behaviour for an unknown or missing SNI (default `reject`).
    #[serde(default)]
    pub unknown_sni: UnknownSni,
    /// Certificate name used when `unknown_sni: default_certificate`.
    pub default_certificate: Option<String>,
}

/// A tenant: the unit of ownership and isolation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Tenant))]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Unique name, `[a-z0-9_-]`, at most 63 characters.
    pub name: String,
    /// A ceiling on all of the tenant's requests together (every domain, every client).
    #[serde(default)]
    pub rate_limit: Option<Quota>,
    /// Bytes of edge cache the tenant's objects may use on each node
    /// (default `limits.cache_tenant_bytes`; at least 65536).
    pub cache_bytes: Option<u64>,
}

/// A number of requests per period, with a burst.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Quota))]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests allowed per `per`, at least 1.
    #[cfg_attr(feature = "schema", schema(minimum = 1))]
    pub requests: u32,
    /// The period (1s to 1d).
    #[serde(with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = String, example = "1m"))]
    pub per: Duration,
    /// Requests allowed at once after a quiet time (default `requests`).
    #[cfg_attr(feature = "schema", schema(minimum = 1))]
    pub burst: Option<u32>,
}

/// Automatic bans (fail2ban-like): a client that gets `after[status]` responses
/// of a status within `window` is refused (403) on this domain for `duration`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Bans))]
#[serde(deny_unknown_fields)]
pub struct Bans {
    /// Status (400-599) → how many within the window ban the client, e.g. `{401: 20, 404: 100}`.
    #[serde(default)]
    pub after: BTreeMap<u16, u32>,
    /// Requests blocked by the WAF within the window that ban the client.
    pub waf_blocks: Option<u32>,
    /// The counting window (default 1m, at most 1d).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "1m"))]
    pub window: Option<Duration>,
    /// How long a ban lasts (default 10m, at most 1d).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "10m"))]
    pub duration: Option<Duration>,
}

/// A rate limit of a domain or route: a token bucket per key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::RateLimit))]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Name shown in `RateLimit-Policy` and metrics, unique within its domain or route.
    pub name: String,
    /// Requests allowed per `per`, at least 1.
    pub requests: u32,
    /// The period (1s to 1d).
    #[serde(with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = String, example = "1m"))]
    pub per: Duration,
    /// Requests allowed at once after a quiet time (default `requests`).
    pub burst: Option<u32>,
    /// What the buckets are per: `client_ip` (default), `header:<name>` (an API key),
    /// `cookie:<name>`, `plugin` (the key the route's plugins set, e.g. a verified
    /// user; the client address without one), or `global` (one bucket for everyone).
    pub key: Option<String>,
    /// How the limit is advertised on responses (default `ietf`).
    #[serde(default)]
    pub headers: RateLimitHeaders,
}

/// Response headers advertising a rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::RateLimitHeaders))]
pub enum RateLimitHeaders {
    /// `RateLimit-Policy` and `RateLimit` (IETF httpapi draft), one item per rule.
    #[default]
    #[serde(rename = "ietf")]
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
    /// (seconds until the bucket is full again) of the most restrictive rule.
    #[serde(rename = "x-ratelimit")]
    XRateLimit,
    /// Both sets.
    #[serde(rename = "both")]
    Both,
    /// Nothing but `Retry-After` on a 429.
    #[serde(rename = "none")]
    None,
}

impl RateLimitHeaders {
    /// Whether the IETF headers are sent.
    pub fn ietf(self) -> bool {
        matches!(self, RateLimitHeaders::Ietf | RateLimitHeaders::Both)
    }

    /// Whether the `X-RateLimit-*` headers are sent.
    pub fn x_ratelimit(self) -> bool {
        matches!(self, RateLimitHeaders::XRateLimit | RateLimitHeaders::Both)
    }
}

/// A virtual host and its routes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Domain))]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// Hostnames served: exact (`example.com`) or a one-label wildcard (`*.example.com`).
    pub hosts: Vec<String>,
    /// Owning tenant.
    pub tenant: String,
    /// Certificate (by name) served for these hosts on the HTTPS listener.
    pub certificate: Option<String>,
    /// Redirect plain-HTTP requests to HTTPS with 308.
    #[serde(default)]
    pub force_https: bool,
    /// Header edits applied to every request/response of this domain.
    #[serde(default)]
    pub headers: HeaderRules,
    /// Security response headers (default: none added).
    #[serde(default)]
    pub security_headers: Option<SecurityHeaders>,
    /// Client addresses allowed or denied (CIDRs), checked before routing.
    #[serde(default)]
    pub ip_rules: IpRules,
    /// Rate limits on every request of this domain.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// Automatic bans of clients that keep failing (default off).
    #[serde(default)]
    pub bans: Option<Bans>,
    /// Request inspection (WAF): attacks scored and blocked (default off).
    #[serde(default)]
    pub waf: Option<crate::waf::Waf>,
    /// Edge caching of the responses of routes that forward to a pool (default off);
    /// routes refine it with their own `cache`.
    #[serde(default)]
    pub cache: Option<crate::cache::Cache>,
    /// Plugins run on every request of this domain, in order, before the route's.
    #[serde(default)]
    pub plugins: Vec<PluginBinding>,
    /// Routes, matched by longest path (exact beats prefix).
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// The header a trusted proxy reports the client address in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::ClientIpHeader))]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For` (default).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

/// How the client address is found. Without trusted proxies it is the
/// connection's peer address and forwarding headers are not believed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::ClientIp))]
#[serde(deny_unknown_fields)]
pub struct ClientIp {
    /// Proxies (CIDRs) whose forwarding header is believed; the client is the
    /// rightmost address in it that is not itself a trusted proxy.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// `x-forwarded-for` (default) or `forwarded`.
    #[serde(default)]
    pub header: ClientIpHeader,
    /// Load balancers (CIDRs) that open every connection with a PROXY
    /// protocol v1 or v2 header (HAProxy, AWS NLB, ...): the client is the
    /// source address in it. Connections from these peers without a valid
    /// header are closed; other peers' connections are never read as PROXY.
    #[serde(default)]
    pub proxy_protocol: Vec<String>,
}

/// Per-domain client address rules (IPv4 and IPv6 CIDRs). `deny` always
/// wins; a non-empty `allow` admits only its addresses. Refused: 403.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::IpRules))]
#[serde(deny_unknown_fields)]
pub struct IpRules {
    /// Only these addresses (empty: everyone).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Never these addresses.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A starting set of security headers; the fields of [`SecurityHeaders`] override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::SecurityPreset))]
#[serde(rename_all = "snake_case")]
pub enum SecurityPreset {
    /// `nosniff`, framing by the same origin only, `strict-origin-when-cross-origin`
    /// referrers, `Server`/`X-Powered-By` removed; no HSTS.
    Basic,
    /// Basic, plus HSTS for a year with subdomains, no framing at all, no referrer,
    /// and sensors, camera, microphone, geolocation, payment and USB disabled.
    Strict,
}

/// How the domain's pages may be framed (`X-Frame-Options` and CSP `frame-ancestors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::FrameOptions))]
#[serde(rename_all = "snake_case")]
pub enum FrameOptions {
    /// Never (`DENY`, `frame-ancestors 'none'`).
    Deny,
    /// By pages of the same origin (`SAMEORIGIN`, `frame-ancestors 'self'`).
    Sameorigin,
    /// No framing headers.
    Off,
}

/// HTTP Strict Transport Security, sent on HTTPS responses only.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Hsts))]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    /// How long browsers remember to use HTTPS only (default 365d; 0s clears it).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "365d"))]
    pub max_age: Option<Duration>,
    /// Also for every subdomain.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Ask to be in browsers' preload lists (needs `include_subdomains` and at least a year).
    #[serde(default)]
    pub preload: bool,
}

/// Security response headers of a domain. Each is added only when the
/// response does not already carry it, so an application can send a stricter
/// policy of its own; `strip_server_headers` removes what the upstream sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::SecurityHeaders))]
#[serde(deny_unknown_fields)]
pub struct SecurityHeaders {
    /// Start from `basic` or `strict` (default: nothing).
    pub preset: Option<SecurityPreset>,
    /// HSTS on HTTPS responses (`false`-like: leave out by not setting it and no `strict` preset).
    pub hsts: Option<Hsts>,
    /// `X-Content-Type-Options: nosniff`.
    pub content_type_options: Option<bool>,
    /// Framing policy.
    pub frame_options: Option<FrameOptions>,
    /// `Referrer-Policy`, e.g. `strict-origin-when-cross-origin`.
    pub referrer_policy: Option<String>,
    /// `Permissions-Policy`, e.g. `camera=(), microphone=()`.
    pub permissions_policy: Option<String>,
    /// Remove `Server` and `X-Powered-By` from upstream responses.
    pub strip_server_headers: Option<bool>,
}

/// Request and response header edits.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::HeaderRules))]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Edits applied to the request before it is forwarded upstream.
    #[serde(default)]
    pub request: HeaderEdits,
    /// Edits applied to the response before it is sent to the client.
    #[serde(default)]
    pub response: HeaderEdits,
}

/// One set of header edits, applied in the order remove, set, add.
/// Values may use variables: `$client_ip`, `$request_id`, `$host`, `$scheme`,
/// `$request_uri`, `$tenant`; write `$$` for a literal `$`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::HeaderEdits))]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    /// Header names to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Headers to set, replacing any existing values.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers to append, keeping existing values.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

/// How a route's `path` is compared with the request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::PathMatch))]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// Segment-aware prefix: `/api` matches `/api`, `/api/` and `/api/x` but not `/apix`.
    #[default]
    Prefix,
    /// The path must be equal.
    Exact,
}

/// One route: a path (and optional methods) mapped to exactly one action.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Route))]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Path to match, starting with `/` (default `/`).
    pub path: Option<String>,
    /// `prefix` (default) or `exact`.
    #[serde(default, rename = "match")]
    pub path_match: PathMatch,
    /// Allowed methods; empty means all. A path match with another method gets 405.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Forward to this upstream pool (same tenant).
    pub pool: Option<String>,
    /// Answer directly.
    pub respond: Option<Respond>,
    /// Redirect the client.
    pub redirect: Option<Redirect>,
    /// Serve files from a directory.
    #[serde(rename = "static")]
    pub static_files: Option<StaticFiles>,
    /// Plugins run on this route's requests, in order, after the domain's.
    #[serde(default)]
    pub plugins: Vec<PluginBinding>,
    /// Rate limits on this route's requests, after the domain's.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// Edge caching for this route, refining the domain's `cache` field by field.
    #[serde(default)]
    pub cache: Option<crate::cache::Cache>,
}

/// A fixed response.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Respond))]
#[serde(deny_unknown_fields)]
pub struct Respond {
    /// Status code (default 200).
    pub status: Option<u16>,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body (default empty).
    #[serde(default)]
    pub body: String,
}

/// A redirect.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Redirect))]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// Target URL. With `keep_path`, the request path and query are appended.
    pub to: String,
    /// 301, 302, 303, 307 or 308 (default 302).
    pub status: Option<u16>,
    /// Append the request path and query to `to` (default false).
    #[serde(default)]
    pub keep_path: bool,
}

/// Static file serving from a directory.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::StaticFiles))]
#[serde(deny_unknown_fields)]
pub struct StaticFiles {
    /// Directory served. Requests never escape it (no `..`, no symlinks out).
    pub root: String,
    /// Index files tried for a directory (default `[index.html]`).
    pub index: Option<Vec<String>>,
    /// Strip the route's path prefix before mapping to a file (default true).
    pub strip_prefix: Option<bool>,
    /// `Cache-Control` value sent with files (default none).
    pub cache_control: Option<String>,
}

/// Load-balancing algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Algorithm))]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Smooth weighted round robin (default).
    #[default]
    RoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConnections,
    /// Rendezvous hashing on `hash_key`: a key sticks to one target while it is healthy.
    ConsistentHash,
}

/// An upstream pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Pool))]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Unique name.
    pub name: String,
    /// Owning tenant; only that tenant's domains may route to it.
    pub tenant: String,
    /// Upstream servers.
    pub targets: Vec<Target>,
    /// Load-balancing algorithm (default `round_robin`).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Key for `consistent_hash`: `$client_ip`, `$request_uri`, `$host`, or `header:<name>`.
    pub hash_key: Option<String>,
    /// TLS to the upstream (default off).
    pub tls: Option<UpstreamTls>,
    /// Speak HTTP/2 to the upstream (h2 over TLS via ALPN, h2c prior knowledge without TLS),
    /// e.g. for gRPC.
    #[serde(default)]
    pub http2: bool,
    /// Host header sent upstream (default: the client's Host).
    pub host_header: Option<String>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Extra attempts on another target after a connect failure, for idempotent requests (default 1).
    pub retries: Option<u32>,
    /// Active and passive health checking.
    #[serde(default)]
    pub health_check: HealthCheck,
}

/// One upstream server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Target))]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `ip:port` or `hostname:port` (resolved when the config is loaded).
    pub addr: String,
    /// Relative weight, 1..=1000 (default 1).
    pub weight: Option<u32>,
}

/// TLS towards an upstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::UpstreamTls))]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// SNI and verified name (default: the target's host part).
    pub sni: Option<String>,
    /// Verify the upstream certificate chain and name (default true).
    pub verify: Option<bool>,
    /// PEM file of CA certificates trusted for this pool instead of the system
    /// roots (for internal PKI).
    pub ca_path: Option<String>,
}

/// Upstream timeouts.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Timeouts))]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP (+TLS) connect timeout (default 3s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub connect: Option<Duration>,
    /// Maximum wait for each read from the upstream (default 30s); exceeded → 504.
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub read: Option<Duration>,
    /// Maximum wait for each write to the upstream (default 30s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub write: Option<Duration>,
    /// How long an idle pooled upstream connection is kept (default 60s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub idle: Option<Duration>,
}

/// Health checking for a pool.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::HealthCheck))]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Periodic probes (default off).
    pub active: Option<ActiveHealthCheck>,
    /// Eject a target after consecutive failed requests (default on: 5 failures, 10s).
    pub passive: Option<PassiveHealthCheck>,
}

/// Kind of active probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::ProbeKind))]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `GET path` must answer with an expected status (default).
    #[default]
    Http,
    /// A TCP connect must succeed.
    Tcp,
}

/// Active health check settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::ActiveHealthCheck))]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthCheck {
    /// `http` (default) or `tcp`.
    #[serde(default)]
    pub kind: ProbeKind,
    /// Path probed by `http` checks (default `/`).
    pub path: Option<String>,
    /// Statuses counted healthy (default 200..=399), as `[low, high]`.
    #[cfg_attr(feature = "schema", schema(min_items = 2, max_items = 2))]
    pub expect_status: Option<[u16; 2]>,
    /// Time between probes (default 5s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub interval: Option<Duration>,
    /// Probe timeout (default 2s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub timeout: Option<Duration>,
    /// Consecutive successes to mark a target up (default 2).
    pub rise: Option<u32>,
    /// Consecutive failures to mark a target down (default 3).
    pub fall: Option<u32>,
}

/// Passive health check settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::PassiveHealthCheck))]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthCheck {
    /// Consecutive connect failures / 5xx-free failures before ejection (default 5, 0 = off).
    pub consecutive_failures: Option<u32>,
    /// How long an ejected target is skipped (default 10s).
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub ejection_time: Option<Duration>,
}

/// A certificate chain and private key, in PEM.
#[derive(Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Certificate))]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Unique name referenced by domains.
    pub name: String,
    /// Path to the PEM certificate chain (leaf first).
    pub cert_path: Option<String>,
    /// Path to the PEM private key.
    pub key_path: Option<String>,
    /// Inline PEM certificate chain.
    pub cert_pem: Option<String>,
    /// Inline PEM private key.
    pub key_pem: Option<String>,
    /// Generate a self-signed certificate at `cert_path`/`key_path` for the hosts of the
    /// domains using it when the files do not exist yet (development and quickstart only).
    #[serde(default)]
    pub self_signed: bool,
}

// Written out to leave an inline private key out of every log and panic message.
impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("name", &self.name)
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("cert_pem", &self.cert_pem.as_ref().map(|p| p.len()))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .field("self_signed", &self.self_signed)
            .finish()
    }
}

/// A WebAssembly policy plugin (a component targeting `gatehouse:plugin`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Plugin))]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Unique name, used by bindings, logs and metrics.
    pub name: String,
    /// Owning tenant: only this tenant's domains can bind the plugin.
    pub tenant: String,
    /// Path to the component (`.wasm`), relative to the config file.
    pub path: String,
    /// Expected SHA-256 of the file, hex. When set, a file with other
    /// content is rejected (the previous config keeps serving).
    pub sha256: Option<String>,
}

/// What a request gets when its plugin fails (trap, timeout, memory, invalid decision).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::FailureMode))]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Answer with an error status (503 for timeouts and an open circuit,
    /// 500 otherwise, or `failure_status`). The default: right for auth.
    #[default]
    Closed,
    /// Skip the plugin and carry on as if it had returned "continue".
    Open,
}

/// One plugin in a domain's or route's chain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::PluginBinding))]
#[serde(deny_unknown_fields)]
pub struct PluginBinding {
    /// Plugin name (same tenant as the domain).
    pub plugin: String,
    /// Configuration handed to the plugin as JSON (any YAML value; default `{}`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = Option<Object>))]
    pub config: Option<serde_json::Value>,
    /// CPU time a hook call may use (default 5ms, at most 100ms); checked every
    /// 1 ms, with a wall-clock cap of 4× (at least +50ms) for a starved call.
    #[serde(default, with = "humantime_serde")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
    pub timeout: Option<Duration>,
    /// Linear memory cap per instance in MiB (default 16, at most 64).
    pub memory_limit_mb: Option<u32>,
    /// `closed` (default) or `open`.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Status sent when the plugin fails closed (overrides 500/503).
    pub failure_status: Option<u16>,
}
