//! `limits`: request limits enforced before routing, and the process-wide
//! WAF and edge cache budgets. Holds the file type, the checked limits with
//! their defaults and bounds, and [`check`].

use std::time::Duration;

use crate::check::Checker;
use model::{Limits, PluginLimits};

/// Default and least `limits.waf_held_body_bytes`.
const DEFAULT_WAF_HELD_BODY_BYTES: u64 = 256 * 1024 * 1024;
const MIN_WAF_HELD_BODY_BYTES: u64 = 1024 * 1024;
/// Default and least edge cache quota of a tenant; default and largest
/// cached object.
const DEFAULT_CACHE_TENANT_BYTES: u64 = 64 * 1024 * 1024;
pub(crate) const MIN_CACHE_TENANT_BYTES: u64 = 64 * 1024;
const DEFAULT_CACHE_OBJECT_BYTES: u64 = 8 * 1024 * 1024;
const MAX_CACHE_OBJECT_BYTES: u64 = 1 << 30;

/// Bounds and defaults of `limits.plugins`.
pub mod plugin_defaults {
    use std::time::Duration;

    /// Bindings one request runs (the domain's and the route's together).
    pub const MAX_CHAIN: usize = 16;
    /// The most `limits.plugins.max_chain` may be.
    pub const MAX_CHAIN_CEILING: usize = 64;
    /// CPU all of one request's hooks may use together.
    pub const REQUEST_CPU: Duration = Duration::from_millis(50);
    /// Plugin CPU a tenant may use per second on a node.
    pub const TENANT_CPU: Duration = Duration::from_millis(250);
    /// Linear memory of a tenant's live and kept instances on a node.
    pub const TENANT_MEMORY_MB: u32 = 256;
    /// Linear memory of all tenants' instances on a node.
    pub const MEMORY_MB: u32 = 1024;
    /// Plugin log bytes one request may write.
    pub const REQUEST_LOG_BYTES: usize = 16 * 1024;
    /// Plugin log bytes a tenant may write per second on a node.
    pub const TENANT_LOG_BYTES: usize = 1024 * 1024;
}

/// Header count above which Pingora's HTTP/1 parser itself rejects a request (with 400).
pub const PARSER_MAX_HEADERS: usize = 256;

pub mod file {
    //! `limits` as operators write it.

    use std::time::Duration;

    use serde::{Deserialize, Serialize};

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
        /// Most of `waf_held_body_bytes` one tenant's requests may hold together (default a
        /// quarter of it, at least 1048576): slow uploads to one tenant cannot take the
        /// budget every other tenant's WAF-inspected requests need.
        pub waf_held_body_bytes_per_tenant: Option<u64>,
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
        /// What tenants' plugins may use on this node (the platform's settings; tenants
        /// cannot change them).
        #[serde(default)]
        pub plugins: PluginLimits,
    }

    /// `limits.plugins`: budgets that keep one tenant's plugins from taking CPU,
    /// memory or log volume from the others.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::PluginLimits))]
    #[serde(deny_unknown_fields)]
    pub struct PluginLimits {
        /// Most plugin bindings one request runs, the domain's and the route's chains
        /// together (default 16, at most 64). Longer chains are refused.
        pub max_chain: Option<usize>,
        /// CPU time all of one request's hook calls may use together (default 50ms,
        /// 1ms to 1s); a call's deadline is the smaller of its own and what is left.
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "50ms"))]
        pub request_cpu: Option<Duration>,
        /// Plugin CPU time each tenant may use per second on this node (default 250ms,
        /// a quarter of a core; bursts up to one second's worth). A tenant over it has
        /// its plugin-bound requests shed; `tenants[].plugin_cpu` overrides it.
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "250ms"))]
        pub tenant_cpu: Option<Duration>,
        /// MiB of linear memory each tenant's plugin instances (running and kept for
        /// `on-response`) may use on this node (default 256, at least 64);
        /// `tenants[].plugin_memory_mb` overrides it.
        pub tenant_memory_mb: Option<u32>,
        /// MiB of linear memory all plugin instances on this node may use together
        /// (default 1024, at least 64).
        pub memory_mb: Option<u32>,
        /// Plugin log bytes one request may write, all its hooks together (default 16384).
        pub request_log_bytes: Option<usize>,
        /// Plugin log bytes each tenant may write per second on this node (default 1048576).
        pub tenant_log_bytes: Option<usize>,
    }
}

pub mod model {
    //! `limits` with their defaults applied.

    use std::time::Duration;

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
        /// Most of it one tenant's requests hold at once.
        pub waf_held_body_bytes_per_tenant: u64,
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
        /// Tenants' plugin budgets.
        pub plugins: PluginLimits,
    }

    /// `limits.plugins`, checked.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PluginLimits {
        /// Most bindings one request runs.
        pub max_chain: usize,
        /// CPU of all of one request's hook calls.
        pub request_cpu: Duration,
        /// Plugin CPU per second of a tenant without its own.
        pub tenant_cpu: Duration,
        /// Linear memory bytes of a tenant without its own.
        pub tenant_memory: usize,
        /// Linear memory bytes of all tenants together.
        pub memory: usize,
        /// Log bytes per request.
        pub request_log_bytes: usize,
        /// Log bytes per second per tenant.
        pub tenant_log_bytes: usize,
    }

    impl Default for PluginLimits {
        fn default() -> Self {
            use super::plugin_defaults as d;
            PluginLimits {
                max_chain: d::MAX_CHAIN,
                request_cpu: d::REQUEST_CPU,
                tenant_cpu: d::TENANT_CPU,
                tenant_memory: (d::TENANT_MEMORY_MB as usize) << 20,
                memory: (d::MEMORY_MB as usize) << 20,
                request_log_bytes: d::REQUEST_LOG_BYTES,
                tenant_log_bytes: d::TENANT_LOG_BYTES,
            }
        }
    }
}

pub(crate) fn check(l: &file::Limits, cx: &mut Checker<'_>) -> Limits {
    let max_header_count = cx.positive(l.max_header_count, 100, "limits.max_header_count");
    if max_header_count > PARSER_MAX_HEADERS {
        cx.err(
            "limits.max_header_count",
            format!("must be at most {PARSER_MAX_HEADERS} (the HTTP/1 parser's own limit)"),
        );
    }
    let waf_held_body_bytes = match l.waf_held_body_bytes {
        // A smaller budget could not hold one request's largest
        // inspection (`waf.inspect_body_bytes` is at most 1 MiB).
        Some(n) if n < MIN_WAF_HELD_BODY_BYTES => {
            cx.err(
                "limits.waf_held_body_bytes",
                format!("must be at least {MIN_WAF_HELD_BODY_BYTES} (1 MiB)"),
            );
            DEFAULT_WAF_HELD_BODY_BYTES
        }
        Some(n) => n,
        None => DEFAULT_WAF_HELD_BODY_BYTES,
    };
    let waf_held_body_bytes_per_tenant = match l.waf_held_body_bytes_per_tenant {
        Some(n) if n < MIN_WAF_HELD_BODY_BYTES || n > waf_held_body_bytes => {
            cx.err(
                "limits.waf_held_body_bytes_per_tenant",
                format!(
                    "must be between {MIN_WAF_HELD_BODY_BYTES} (1 MiB) and limits.waf_held_body_bytes ({waf_held_body_bytes})"
                ),
            );
            waf_held_body_bytes
        }
        Some(n) => n,
        None => (waf_held_body_bytes / 4).max(MIN_WAF_HELD_BODY_BYTES),
    };
    Limits {
        max_header_bytes: cx.positive(l.max_header_bytes, 32 * 1024, "limits.max_header_bytes"),
        max_header_count,
        max_uri_bytes: cx.positive(l.max_uri_bytes, 8 * 1024, "limits.max_uri_bytes"),
        max_body_bytes: match l.max_body_bytes {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(64 * 1024 * 1024),
        },
        waf_held_body_bytes,
        waf_held_body_bytes_per_tenant,
        cache_tenant_bytes: match l.cache_tenant_bytes {
            Some(n) if n < MIN_CACHE_TENANT_BYTES => {
                cx.err(
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
                cx.err(
                    "limits.cache_object_bytes",
                    format!("must be between 1 and {MAX_CACHE_OBJECT_BYTES} (1 GiB)"),
                );
                DEFAULT_CACHE_OBJECT_BYTES
            }
            Some(n) => n,
            None => DEFAULT_CACHE_OBJECT_BYTES,
        },
        client_read_timeout: cx.duration(
            l.client_read_timeout,
            Duration::from_secs(30),
            "limits.client_read_timeout",
        ),
        client_write_timeout: cx.duration(
            l.client_write_timeout,
            Duration::from_secs(30),
            "limits.client_write_timeout",
        ),
        keepalive_timeout: cx.duration(
            l.keepalive_timeout,
            Duration::from_secs(60),
            "limits.keepalive_timeout",
        ),
        plugins: plugin_limits(&l.plugins, cx),
    }
}

fn plugin_limits(l: &file::PluginLimits, cx: &mut Checker<'_>) -> PluginLimits {
    use plugin_defaults as d;
    let defaults = PluginLimits::default();
    let max_chain = match l.max_chain {
        Some(n) if n == 0 || n > d::MAX_CHAIN_CEILING => {
            cx.err(
                "limits.plugins.max_chain",
                format!("must be between 1 and {}, got {n}", d::MAX_CHAIN_CEILING),
            );
            defaults.max_chain
        }
        Some(n) => n,
        None => defaults.max_chain,
    };
    let request_cpu = match l.request_cpu {
        Some(t) if t < Duration::from_millis(1) || t > Duration::from_secs(1) => {
            cx.err("limits.plugins.request_cpu", "must be between 1ms and 1s");
            defaults.request_cpu
        }
        Some(t) => t,
        None => defaults.request_cpu,
    };
    let tenant_cpu =
        tenant_cpu(l.tenant_cpu, "limits.plugins.tenant_cpu", cx).unwrap_or(defaults.tenant_cpu);
    let tenant_memory = memory_mb(l.tenant_memory_mb, "limits.plugins.tenant_memory_mb", cx)
        .unwrap_or(defaults.tenant_memory);
    let memory = memory_mb(l.memory_mb, "limits.plugins.memory_mb", cx).unwrap_or(defaults.memory);
    PluginLimits {
        max_chain,
        request_cpu,
        tenant_cpu,
        tenant_memory,
        memory,
        request_log_bytes: cx.positive(
            l.request_log_bytes,
            defaults.request_log_bytes,
            "limits.plugins.request_log_bytes",
        ),
        tenant_log_bytes: cx.positive(
            l.tenant_log_bytes,
            defaults.tenant_log_bytes,
            "limits.plugins.tenant_log_bytes",
        ),
    }
}

/// A tenant's plugin CPU per second at `path`: at least 1ms, at most 64s
/// (64 cores' worth).
pub(crate) fn tenant_cpu(
    v: Option<Duration>,
    path: &str,
    cx: &mut Checker<'_>,
) -> Option<Duration> {
    let t = v?;
    if t < Duration::from_millis(1) || t > Duration::from_secs(64) {
        cx.err(path, "must be between 1ms and 64s (CPU time per second)");
        return None;
    }
    Some(t)
}

/// A plugin memory budget in MiB at `path`, in bytes: at least one
/// instance's largest memory (64 MiB), at most 1 TiB.
pub(crate) fn memory_mb(v: Option<u32>, path: &str, cx: &mut Checker<'_>) -> Option<usize> {
    let mb = v?;
    let least = (crate::model::MAX_PLUGIN_MEMORY >> 20) as u32;
    if mb < least || mb > 1 << 20 {
        cx.err(
            path,
            format!(
                "must be between {least} (one instance's largest memory) and 1048576 MiB, got {mb}"
            ),
        );
        return None;
    }
    Some((mb as usize) << 20)
}
