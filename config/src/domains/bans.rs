//! `domains[].bans`: automatic bans of clients that keep failing. Holds the
//! file type, the checked [`model::BanPolicy`] and [`check`].

use std::time::Duration;

use crate::check::Checker;
use model::BanPolicy;

pub mod file {
    //! Bans as operators write them.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

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
}

pub mod model {
    //! Bans, checked.

    use std::time::Duration;

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
}

pub(crate) fn check(b: &file::Bans, path: &str, cx: &mut Checker<'_>) -> BanPolicy {
    const DAY: Duration = Duration::from_secs(86_400);
    let mut after = Vec::with_capacity(b.after.len());
    for (status, n) in &b.after {
        if !(400..=599).contains(status) {
            cx.err(
                format!("{path}.after.{status}"),
                "only 4xx and 5xx statuses count",
            );
        } else if *n == 0 {
            cx.err(format!("{path}.after.{status}"), "must be at least 1");
        } else {
            after.push((*status, *n));
        }
    }
    match b.waf_blocks {
        Some(0) => cx.err(format!("{path}.waf_blocks"), "must be at least 1"),
        Some(n) => after.push((BanPolicy::WAF_BLOCK, n)),
        None if b.after.is_empty() => cx.err(
            format!("{path}.after"),
            "name at least one status, e.g. {401: 20}, or waf_blocks",
        ),
        None => {}
    }
    let mut bounded = |v: Option<Duration>, default: Duration, field: &str| {
        let d = v.unwrap_or(default);
        if d < Duration::from_secs(1) || d > DAY {
            cx.err(format!("{path}.{field}"), "must be between 1s and 1d");
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
