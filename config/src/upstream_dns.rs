//! `upstream_dns`: how the proxy resolves pool targets given by name. Names
//! are resolved at run time, never while validating (a name that stops
//! resolving must not make a config invalid); each answer is kept for its
//! TTL, bounded by `min_ttl` and `max_ttl`, and the last good answer is kept
//! while resolution fails. Holds the file types, the checked settings and
//! [`check`].

use std::time::Duration;

use crate::check::Checker;
use model::UpstreamDns;

/// Defaults.
pub mod defaults {
    use std::time::Duration;

    /// Shortest time an answer is used before it is resolved again.
    pub const MIN_TTL: Duration = Duration::from_secs(5);
    /// Longest time an answer is used before it is resolved again.
    pub const MAX_TTL: Duration = Duration::from_secs(300);
}

pub mod file {
    //! `upstream_dns` as operators write it.

    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    /// Resolution of pool targets given by name.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::UpstreamDns))]
    #[serde(deny_unknown_fields)]
    pub struct UpstreamDns {
        /// DNS servers (`ip:port`, UDP and TCP); empty: the system's
        /// (`/etc/resolv.conf`, with `/etc/hosts`).
        #[serde(default)]
        pub nameservers: Vec<String>,
        /// Shortest time an answer is used (default 5s); also the retry
        /// interval while a name does not resolve.
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
        pub min_ttl: Option<Duration>,
        /// Longest time an answer is used (default 5m).
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5m"))]
        pub max_ttl: Option<Duration>,
    }
}

pub mod model {
    //! `upstream_dns`, checked.

    use std::net::SocketAddr;
    use std::time::Duration;

    /// Resolution of pool targets given by name (see `file::UpstreamDns`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct UpstreamDns {
        /// DNS servers; empty: the system's.
        pub nameservers: Vec<SocketAddr>,
        /// Shortest time an answer is used; the retry interval on failure.
        pub min_ttl: Duration,
        /// Longest time an answer is used.
        pub max_ttl: Duration,
    }

    impl Default for UpstreamDns {
        fn default() -> Self {
            UpstreamDns {
                nameservers: Vec::new(),
                min_ttl: super::defaults::MIN_TTL,
                max_ttl: super::defaults::MAX_TTL,
            }
        }
    }
}

pub(crate) fn check(d: &file::UpstreamDns, cx: &mut Checker<'_>) -> UpstreamDns {
    let mut nameservers = Vec::new();
    for (i, n) in d.nameservers.iter().enumerate() {
        match n.parse() {
            Ok(a) => nameservers.push(a),
            Err(_) => cx.err(
                format!("upstream_dns.nameservers[{i}]"),
                format!("expected ip:port, got {n:?}"),
            ),
        }
    }
    let min_ttl = cx.duration(d.min_ttl, defaults::MIN_TTL, "upstream_dns.min_ttl");
    let max_ttl = cx.duration(d.max_ttl, defaults::MAX_TTL, "upstream_dns.max_ttl");
    if min_ttl > max_ttl {
        cx.err(
            "upstream_dns.min_ttl",
            "must not exceed upstream_dns.max_ttl",
        );
    }
    if max_ttl > Duration::from_secs(86_400) {
        cx.err("upstream_dns.max_ttl", "must be at most 1 day");
    }
    UpstreamDns {
        nameservers,
        min_ttl,
        max_ttl,
    }
}
