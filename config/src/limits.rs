//! `limits`: request limits enforced before routing, and the process-wide
//! WAF and edge cache budgets. Holds the file type, the checked limits with
//! their defaults and bounds, and [`check`].

use std::time::Duration;

use crate::check::Checker;
use model::Limits;

/// Default and least `limits.waf_held_body_bytes`.
const DEFAULT_WAF_HELD_BODY_BYTES: u64 = 256 * 1024 * 1024;
const MIN_WAF_HELD_BODY_BYTES: u64 = 1024 * 1024;
/// Default and least edge cache quota of a tenant; default and largest
/// cached object.
const DEFAULT_CACHE_TENANT_BYTES: u64 = 64 * 1024 * 1024;
pub(crate) const MIN_CACHE_TENANT_BYTES: u64 = 64 * 1024;
const DEFAULT_CACHE_OBJECT_BYTES: u64 = 8 * 1024 * 1024;
const MAX_CACHE_OBJECT_BYTES: u64 = 1 << 30;

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
}

pub(crate) fn check(l: &file::Limits, cx: &mut Checker<'_>) -> Limits {
    let max_header_count = cx.positive(l.max_header_count, 100, "limits.max_header_count");
    if max_header_count > PARSER_MAX_HEADERS {
        cx.err(
            "limits.max_header_count",
            format!("must be at most {PARSER_MAX_HEADERS} (the HTTP/1 parser's own limit)"),
        );
    }
    Limits {
        max_header_bytes: cx.positive(l.max_header_bytes, 32 * 1024, "limits.max_header_bytes"),
        max_header_count,
        max_uri_bytes: cx.positive(l.max_uri_bytes, 8 * 1024, "limits.max_uri_bytes"),
        max_body_bytes: match l.max_body_bytes {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(64 * 1024 * 1024),
        },
        waf_held_body_bytes: match l.waf_held_body_bytes {
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
        },
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
    }
}
