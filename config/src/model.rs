//! The validated config: what the data plane compiles into its runtime tables.
//!
//! Every value here has been checked (addresses parsed, references resolved to
//! indices, header names and values valid, templates parsed), so code that
//! consumes a [`Config`] never has to handle a malformed setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};

pub use crate::ipset::IpSet;

pub use crate::file::{Algorithm, FailureMode, PathMatch, ProbeKind, UnknownSni};

/// A complete, validated Gatehouse config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bound addresses.
    pub listeners: Listeners,
    /// Process-wide settings.
    pub server: Server,
    /// Request limits.
    pub limits: Limits,
    /// TLS termination policy.
    pub tls: Tls,
    /// Where the client address comes from.
    pub client_ip: ClientIp,
    /// Tenant names.
    pub tenants: Vec<String>,
    /// Tenants' aggregate request ceilings.
    pub tenant_rate_limits: Vec<(String, RateQuota)>,
    /// Tenants with their own edge cache quota, in bytes.
    pub tenant_cache_bytes: Vec<(String, u64)>,
    /// Virtual hosts.
    pub domains: Vec<Domain>,
    /// Upstream pools, referenced by index from routes.
    pub pools: Vec<Pool>,
    /// Certificates, referenced by index from domains.
    pub certificates: Vec<Certificate>,
    /// Plugins, referenced by index from bindings.
    pub plugins: Vec<Plugin>,
}

/// Bound addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// Plain HTTP listener.
    pub http: Option<SocketAddr>,
    /// TLS listener.
    pub https: Option<SocketAddr>,
    /// Internal listener (metrics, health).
    pub internal: Option<SocketAddr>,
}

/// Process-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Worker threads per service.
    pub threads: usize,
    /// Drain time on SIGTERM.
    pub grace_period: Duration,
    /// Pid file.
    pub pid_file: Option<PathBuf>,
    /// Socket for listener hand-off during binary upgrades.
    pub upgrade_sock: PathBuf,
    /// Directory for compiled plugin artifacts (`None`: no disk cache).
    pub plugin_cache_dir: Option<PathBuf>,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Max total header bytes (names + values).
    pub max_header_bytes: usize,
    /// Max header fields.
    pub max_header_count: usize,
    /// Max request-target length.
    pub max_uri_bytes: usize,
    /// Max request body bytes; `None` = unlimited.
    pub max_body_bytes: Option<u64>,
    /// Most body bytes the WAF holds for inspection at once (all requests).
    pub waf_held_body_bytes: u64,
    /// Edge cache bytes per tenant without its own quota.
    pub cache_tenant_bytes: u64,
    /// Largest body the edge cache stores.
    pub cache_object_bytes: u64,
    /// Client read timeout (header and body reads).
    pub client_read_timeout: Duration,
    /// Client write timeout.
    pub client_write_timeout: Duration,
    /// Idle keep-alive timeout.
    pub keepalive_timeout: Duration,
}

/// TLS termination policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Unknown SNI behaviour.
    pub unknown_sni: UnknownSni,
    /// Index into [`Config::certificates`] for the default certificate.
    pub default_certificate: Option<usize>,
}

/// A hostname pattern, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `example.com`
    Exact(String),
    /// `*.example.com`, stored as the suffix `example.com`; matches exactly one extra label.
    Wildcard(String),
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => write!(f, "{h}"),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// A virtual host.
#[derive(Debug, Clone)]
pub struct Domain {
    /// Host patterns served.
    pub hosts: Vec<HostPattern>,
    /// Owning tenant.
    pub tenant: String,
    /// Index into [`Config::certificates`].
    pub certificate: Option<usize>,
    /// Redirect plain HTTP to HTTPS.
    pub force_https: bool,
    /// Header edits.
    pub request_headers: HeaderEdits,
    /// Header edits on the response.
    pub response_headers: HeaderEdits,
    /// Security headers added to responses.
    pub security_headers: SecurityHeaders,
    /// Client addresses allowed and denied.
    pub ip_rules: IpRules,
    /// Rate limits on every request.
    pub rate_limits: Vec<RateLimitRule>,
    /// Automatic bans.
    pub bans: Option<BanPolicy>,
    /// Request inspection, unless off.
    pub waf: Option<crate::waf::WafPolicy>,
    /// Plugin chain run on every request, before the route's.
    pub plugins: Vec<PluginBinding>,
    /// Routes in file order.
    pub routes: Vec<Route>,
}

/// How the client address is found (see `file::ClientIp`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIp {
    /// Proxies whose forwarding header is believed.
    pub trusted_proxies: IpSet,
    /// The header they use.
    pub header: crate::file::ClientIpHeader,
    /// Peers whose connections start with a PROXY protocol header.
    pub proxy_protocol: IpSet,
}

/// A domain's client address rules: `deny` wins; a non-empty `allow` admits only its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    /// Admitted addresses; `None`: everyone.
    pub allow: Option<IpSet>,
    /// Refused addresses.
    pub deny: IpSet,
}

impl IpRules {
    /// Whether `ip` may use the domain.
    pub fn admits(&self, ip: std::net::IpAddr) -> bool {
        !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
    }
}

/// Security headers of a domain, ready to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityHeaders {
    /// Added to every response that lacks them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `Strict-Transport-Security`, added to HTTPS responses that lack it.
    pub hsts: Option<HeaderValue>,
    /// Remove `Server` and `X-Powered-By`.
    pub strip_server_headers: bool,
}

/// Header edits, applied in the order remove, set, add.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdits {
    /// Names removed.
    pub remove: Vec<HeaderName>,
    /// Names set (replacing).
    pub set: Vec<(HeaderName, Template)>,
    /// Names appended.
    pub add: Vec<(HeaderName, Template)>,
}

/// A header value with variables, parsed once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Literal text and variables in order.
    pub parts: Vec<TemplatePart>,
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Copied as is.
    Literal(String),
    /// Replaced per request.
    Var(Variable),
}

/// Per-request values usable in header templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    /// The client's IP address.
    ClientIp,
    /// The request id (`X-Request-Id`).
    RequestId,
    /// The request host, without port.
    Host,
    /// `http` or `https`.
    Scheme,
    /// Path and query as received.
    RequestUri,
    /// The domain's tenant.
    Tenant,
}

impl Variable {
    /// Variable names as written in templates (without `$`).
    pub const ALL: [(&'static str, Variable); 6] = [
        ("client_ip", Variable::ClientIp),
        ("request_id", Variable::RequestId),
        ("host", Variable::Host),
        ("scheme", Variable::Scheme),
        ("request_uri", Variable::RequestUri),
        ("tenant", Variable::Tenant),
    ];
}

/// A route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Path, starting with `/`.
    pub path: String,
    /// Prefix or exact.
    pub path_match: PathMatch,
    /// Allowed methods; empty = all.
    pub methods: Vec<Method>,
    /// What to do.
    pub action: RouteAction,
    /// Plugin chain run after the domain's.
    pub plugins: Vec<PluginBinding>,
    /// Rate limits, after the domain's.
    pub rate_limits: Vec<RateLimitRule>,
    /// Edge cache policy (merged with the domain's); `None`: not cached.
    pub cache: Option<crate::cache::CachePolicy>,
}

/// When a domain bans a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanPolicy {
    /// Status → responses within `window` that ban; WAF blocks count as
    /// status [`BanPolicy::WAF_BLOCK`].
    pub after: Vec<(u16, u32)>,
    /// Counting window.
    pub window: Duration,
    /// Ban length.
    pub duration: Duration,
}

impl BanPolicy {
    /// The pseudo-status WAF blocks are counted under.
    pub const WAF_BLOCK: u16 = 0;

    /// The threshold for `status`, if it counts.
    pub fn threshold(&self, status: u16) -> Option<u32> {
        self.after
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, n)| *n)
    }
}

/// A validated request quota: `burst` requests at once, refilled at
/// `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateQuota {
    /// Requests per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
    /// Bucket size.
    pub burst: u32,
}

/// What rate-limit buckets are per.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateLimitKey {
    /// The client address.
    ClientIp,
    /// What the route's plugins set with `host.rate-limit-key` (the client
    /// address when none did); counted after the plugins ran.
    Plugin,
    /// A request header's value (lowercase name).
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// One bucket for all.
    Global,
}

/// A named rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitRule {
    /// Name (policy name in headers, metrics label).
    pub name: String,
    /// The quota.
    pub quota: RateQuota,
    /// Bucket key.
    pub key: RateLimitKey,
    /// How it is advertised on responses.
    pub headers: crate::file::RateLimitHeaders,
}

/// What a route does.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to [`Config::pools`]`[i]`.
    Pool(usize),
    /// Fixed response.
    Respond(Respond),
    /// Redirect.
    Redirect(Redirect),
    /// Static files.
    Static(StaticFiles),
}

/// A fixed response.
#[derive(Debug, Clone)]
pub struct Respond {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: String,
}

/// A redirect.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// Target URL.
    pub to: String,
    /// 3xx status.
    pub status: StatusCode,
    /// Append request path and query.
    pub keep_path: bool,
}

/// Static file serving.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// Canonical root directory.
    pub root: PathBuf,
    /// Index file names.
    pub index: Vec<String>,
    /// Strip the route prefix.
    pub strip_prefix: bool,
    /// `Cache-Control` header value.
    pub cache_control: Option<HeaderValue>,
}

/// An upstream pool.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Unique name.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// Targets.
    pub targets: Vec<Target>,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Key for consistent hashing.
    pub hash_key: Option<HashKey>,
    /// Upstream TLS.
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 to the upstream.
    pub http2: bool,
    /// Host header override.
    pub host_header: Option<HeaderValue>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Extra attempts after connect failures.
    pub retries: u32,
    /// Active probes.
    pub active_health: Option<ActiveHealthCheck>,
    /// Passive ejection.
    pub passive_health: PassiveHealthCheck,
}

/// One upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Address as written (`host:port`), used as the target's identity in metrics.
    pub name: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Host part of `name` (default SNI).
    pub host: String,
    /// Weight.
    pub weight: u32,
}

/// Consistent-hash key source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// Client IP.
    ClientIp,
    /// Path and query.
    RequestUri,
    /// Host.
    Host,
    /// A request header's value.
    Header(HeaderName),
}

/// Upstream TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// SNI (None: the target's host).
    pub sni: Option<String>,
    /// Verify the certificate.
    pub verify: bool,
    /// CA certificates (DER) trusted instead of the system roots.
    pub ca: Option<Vec<Vec<u8>>>,
}

/// Upstream timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect.
    pub connect: Duration,
    /// Read.
    pub read: Duration,
    /// Write.
    pub write: Duration,
    /// Idle pooled connection.
    pub idle: Duration,
}

/// Active health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHealthCheck {
    /// HTTP or TCP.
    pub kind: ProbeKind,
    /// HTTP path.
    pub path: String,
    /// Healthy status range, inclusive.
    pub expect_status: (u16, u16),
    /// Interval.
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
    /// Successes to mark up.
    pub rise: u32,
    /// Failures to mark down.
    pub fall: u32,
}

/// Passive ejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveHealthCheck {
    /// Consecutive failures before ejection; 0 disables.
    pub consecutive_failures: u32,
    /// Ejection duration.
    pub ejection_time: Duration,
}

/// Where a certificate's PEM comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Files on disk.
    Files {
        /// Chain path.
        cert: PathBuf,
        /// Key path.
        key: PathBuf,
    },
    /// Inline PEM.
    Inline {
        /// Chain PEM.
        cert_pem: String,
        /// Key PEM.
        key_pem: String,
    },
}

/// A certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Unique name.
    pub name: String,
    /// PEM source.
    pub source: CertSource,
    /// Generate when files are missing.
    pub self_signed: bool,
    /// Host patterns of the domains that use it (for self-signed generation).
    pub hosts: Vec<HostPattern>,
}

/// Default CPU deadline of a plugin hook call.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_millis(5);
/// Largest deadline a binding may ask for.
pub const MAX_PLUGIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Default linear-memory cap of a plugin instance.
pub const DEFAULT_PLUGIN_MEMORY: usize = 16 << 20;
/// Largest memory cap a binding may ask for (the size of a pooled memory slot).
pub const MAX_PLUGIN_MEMORY: usize = 64 << 20;

/// A WebAssembly policy plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// Unique name.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// Component file.
    pub path: PathBuf,
    /// Expected SHA-256 of the file.
    pub sha256: Option<[u8; 32]>,
}

/// One plugin in a chain, with its settings.
#[derive(Debug, Clone)]
pub struct PluginBinding {
    /// Index into [`Config::plugins`].
    pub plugin: usize,
    /// Configuration as a JSON document.
    pub config: std::sync::Arc<str>,
    /// CPU deadline per hook call.
    pub timeout: Duration,
    /// Linear memory cap in bytes.
    pub memory_limit: usize,
    /// What a failure does to the request.
    pub failure_mode: FailureMode,
    /// Status overriding the default 500/503 when failing closed.
    pub failure_status: Option<StatusCode>,
}
