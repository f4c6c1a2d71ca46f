//! Request quotas: the rate limits of domains and routes
//! (`domains[].rate_limits`, `...routes[].rate_limits`) and the quota a
//! tenant's `rate_limit` uses. Holds the file types, the checked rules and
//! their checks ([`check`], [`quota`]).

use std::collections::HashSet;
use std::time::Duration;

use http::HeaderName;

use crate::check::{valid_simple_name, Checker};
use model::{RateLimitKey, RateLimitRule, RateQuota};

pub mod file {
    //! Quotas and rate limits as operators write them.

    use std::time::Duration;

    use serde::{Deserialize, Serialize};

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
}

pub mod model {
    //! Quotas and rate limits, checked.

    use std::time::Duration;

    use http::HeaderName;

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
}

/// Checks a quota: at least one request, a period of 1s to 1d, a burst of
/// at least 1 (default: `requests`).
pub(crate) fn quota(
    requests: u32,
    per: Duration,
    burst: Option<u32>,
    path: &str,
    cx: &mut Checker<'_>,
) -> Option<RateQuota> {
    let mut ok = true;
    if requests == 0 {
        cx.err(format!("{path}.requests"), "must be at least 1");
        ok = false;
    }
    if per < Duration::from_secs(1) || per > Duration::from_secs(86_400) {
        cx.err(format!("{path}.per"), "must be between 1s and 1d");
        ok = false;
    }
    if burst == Some(0) {
        cx.err(format!("{path}.burst"), "must be at least 1");
        ok = false;
    }
    ok.then(|| RateQuota {
        requests,
        per,
        burst: burst.unwrap_or(requests),
    })
}

pub(crate) fn check(
    limits: &[file::RateLimit],
    path: &str,
    cx: &mut Checker<'_>,
) -> Vec<RateLimitRule> {
    let mut out = Vec::with_capacity(limits.len());
    let mut names = HashSet::new();
    for (i, l) in limits.iter().enumerate() {
        let lpath = format!("{path}[{i}]");
        if !valid_simple_name(&l.name) {
            cx.err(
                format!("{lpath}.name"),
                "use 1-63 characters of a-z, 0-9, '-' and '_'",
            );
        } else if !names.insert(l.name.as_str()) {
            cx.err(
                format!("{lpath}.name"),
                format!("duplicate rate limit {:?}", l.name),
            );
        }
        let key = match l.key.as_deref().unwrap_or("client_ip") {
            "client_ip" => Some(RateLimitKey::ClientIp),
            "global" => Some(RateLimitKey::Global),
            "plugin" => Some(RateLimitKey::Plugin),
            other => match other.split_once(':') {
                Some(("header", name)) => match HeaderName::from_bytes(name.trim().as_bytes()) {
                    Ok(h) => Some(RateLimitKey::Header(h)),
                    Err(_) => None,
                },
                Some(("cookie", name)) if !name.trim().is_empty() => {
                    Some(RateLimitKey::Cookie(name.trim().to_string()))
                }
                _ => None,
            },
        };
        if key.is_none() {
            cx.err(
                format!("{lpath}.key"),
                "expected client_ip, global, plugin, header:<name> or cookie:<name>",
            );
        }
        let quota = quota(l.requests, l.per, l.burst, &lpath, cx);
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
