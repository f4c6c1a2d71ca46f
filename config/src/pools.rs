//! `pools`: upstream servers that routes forward to, with balancing, TLS,
//! timeouts and health checks. Holds the file types, the checked pool and
//! [`check`] (which resolves target addresses, once, at load time).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::check::Checker;
use crate::hosts::parse_host_pattern;
use file::Algorithm;
use model::{ActiveHealthCheck, HashKey, PassiveHealthCheck, Pool, Target, Timeouts, UpstreamTls};

pub mod file {
    //! `pools[]` as operators write them.

    use std::time::Duration;

    use serde::{Deserialize, Serialize};

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
        /// Set when the pool arrived from a control plane (a tenant's): its
        /// addresses are held to the published target policy. Never read
        /// from a file or the API.
        #[serde(skip)]
        #[cfg_attr(feature = "schema", schema(ignore))]
        pub published: bool,
    }

    /// One upstream server.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Target))]
    #[serde(deny_unknown_fields)]
    pub struct Target {
        /// `ip:port`, `[v6]:port` or `hostname:port` (a name is resolved by each
        /// proxy at run time and again when its records expire).
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
}

pub mod model {
    //! `pools[]`, checked, with targets resolved.

    use std::net::SocketAddr;
    use std::time::Duration;

    use http::{HeaderName, HeaderValue};

    pub use super::file::{Algorithm, ProbeKind};

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
        /// Arrived from a control plane: held to the target policy.
        pub published: bool,
    }

    /// One upstream server.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Target {
        /// Address as written (`host:port`), used as the target's identity in metrics.
        pub name: String,
        /// The address, when `name` is an IP literal. `None`: `host` is a DNS
        /// name, resolved by the proxy at run time (never by validation: a
        /// name that stops resolving must not make the config invalid).
        pub addr: Option<SocketAddr>,
        /// Host part of `name` (default SNI; the name to resolve).
        pub host: String,
        /// Port part of `name`.
        pub port: u16,
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
}

/// Checks one pool at `path`, after `validate` has checked its name and tenant.
pub(crate) fn check(p: &file::Pool, path: &str, cx: &mut Checker<'_>) -> Pool {
    if p.targets.is_empty() {
        cx.err(format!("{path}.targets"), "at least one target is required");
    }
    let mut targets = Vec::with_capacity(p.targets.len());
    let mut seen = HashSet::new();
    for (ti, t) in p.targets.iter().enumerate() {
        let tpath = format!("{path}.targets[{ti}]");
        let weight = t.weight.unwrap_or(1);
        if !(1..=1000).contains(&weight) {
            cx.err(
                format!("{tpath}.weight"),
                format!("weight must be 1..=1000, got {weight}"),
            );
        }
        if !seen.insert(t.addr.clone()) {
            cx.err(
                format!("{tpath}.addr"),
                format!("duplicate target {:?}", t.addr),
            );
        }
        match parse_target(&t.addr) {
            Ok((addr, host, port)) => targets.push(Target {
                name: t.addr.clone(),
                addr,
                host,
                port,
                weight,
            }),
            Err(msg) => cx.err(format!("{tpath}.addr"), msg),
        }
    }
    let hash_key = match (&p.algorithm, &p.hash_key) {
        (Algorithm::ConsistentHash, None) => {
            cx.err(
                format!("{path}.hash_key"),
                "required for algorithm consistent_hash",
            );
            None
        }
        (Algorithm::ConsistentHash, Some(k)) => match parse_hash_key(k) {
            Ok(k) => Some(k),
            Err(msg) => {
                cx.err(format!("{path}.hash_key"), msg);
                None
            }
        },
        (_, Some(_)) => {
            cx.err(
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
                cx.err(format!("{path}.tls.sni"), format!("invalid SNI {sni:?}"));
            }
        }
        let ca = t
            .ca_path
            .as_ref()
            .and_then(|ca| ca_bundle(ca, &format!("{path}.tls.ca_path"), cx));
        UpstreamTls {
            sni: t.sni.clone(),
            verify: t.verify.unwrap_or(true),
            ca,
        }
    });
    let host_header = p
        .host_header
        .as_ref()
        .and_then(|h| cx.header_value(h, &format!("{path}.host_header")));
    let to = &p.timeouts;
    let timeouts = Timeouts {
        connect: cx.duration(
            to.connect,
            Duration::from_secs(3),
            &format!("{path}.timeouts.connect"),
        ),
        read: cx.duration(
            to.read,
            Duration::from_secs(30),
            &format!("{path}.timeouts.read"),
        ),
        write: cx.duration(
            to.write,
            Duration::from_secs(30),
            &format!("{path}.timeouts.write"),
        ),
        idle: cx.duration(
            to.idle,
            Duration::from_secs(60),
            &format!("{path}.timeouts.idle"),
        ),
    };
    let retries = p.retries.unwrap_or(1);
    if retries > 10 {
        cx.err(format!("{path}.retries"), "must be at most 10");
    }
    let active_health = p
        .health_check
        .active
        .as_ref()
        .map(|a| active_health(a, &format!("{path}.health_check.active"), cx));
    let passive = p.health_check.passive.clone().unwrap_or_default();
    let passive_health = PassiveHealthCheck {
        consecutive_failures: passive.consecutive_failures.unwrap_or(5),
        ejection_time: cx.duration(
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
        published: p.published,
    }
}

fn active_health(
    a: &file::ActiveHealthCheck,
    path: &str,
    cx: &mut Checker<'_>,
) -> ActiveHealthCheck {
    let probe_path = a.path.clone().unwrap_or_else(|| "/".to_string());
    if !probe_path.starts_with('/')
        || probe_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        cx.err(
            format!("{path}.path"),
            format!("invalid probe path {probe_path:?}"),
        );
    }
    let expect_status = match a.expect_status {
        Some([lo, hi]) if (100..=599).contains(&lo) && lo <= hi && hi <= 599 => (lo, hi),
        Some(range) => {
            cx.err(
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
        cx.err(format!("{path}.rise"), "must be at least 1");
    }
    if fall == 0 {
        cx.err(format!("{path}.fall"), "must be at least 1");
    }
    ActiveHealthCheck {
        kind: a.kind,
        path: probe_path,
        expect_status,
        interval: cx.duration(
            a.interval,
            Duration::from_secs(5),
            &format!("{path}.interval"),
        ),
        timeout: cx.duration(
            a.timeout,
            Duration::from_secs(2),
            &format!("{path}.timeout"),
        ),
        rise: rise.max(1),
        fall: fall.max(1),
    }
}

/// Reads a PEM bundle of CA certificates.
fn ca_bundle(file: &str, path: &str, cx: &mut Checker<'_>) -> Option<Vec<Vec<u8>>> {
    let full = cx.resolve_path(file);
    let pem = match std::fs::read(&full) {
        Ok(pem) => pem,
        Err(e) => {
            cx.err(path, format!("cannot read {}: {e}", full.display()));
            return None;
        }
    };
    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Some(certs.into_iter().map(|c| c.to_vec()).collect()),
        Ok(_) => {
            cx.err(path, "no PEM certificate found");
            None
        }
        Err(e) => {
            cx.err(path, format!("invalid PEM certificate: {e}"));
            None
        }
    }
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

/// Splits `ip:port`, `[v6]:port` or `hostname:port`. A hostname is only
/// checked for form here: it is resolved at run time.
fn parse_target(addr: &str) -> Result<(Option<SocketAddr>, String, u16), String> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok((Some(sa), sa.ip().to_string(), sa.port()));
    }
    let invalid = || format!("invalid target {addr:?}: expected host:port");
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    if port == 0 {
        return Err(format!("invalid target {addr:?}: port 0"));
    }
    if !crate::hosts::is_dns_name(host) {
        return Err(format!(
            "invalid target {addr:?}: {host:?} is neither an IP address nor a DNS name"
        ));
    }
    Ok((None, host.to_ascii_lowercase(), port))
}
