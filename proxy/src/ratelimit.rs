//! Rate limiting: token buckets per key (governor), kept across reloads.
//!
//! Each configured limit (a tenant's ceiling, a domain's or a route's rule)
//! is one keyed governor limiter. Limiters live in a process-wide registry
//! keyed by where the rule sits and what it says, so a reload that keeps a
//! rule keeps its buckets (clients cannot reset their limits by waiting for a
//! config change), and a changed rule starts afresh. `housekeeping` drops
//! buckets that have refilled completely (they hold no information), which
//! bounds memory by the keys active within one period, and forgets limiters
//! no snapshot uses any more.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use gatehouse_config::file::RateLimitHeaders;
use gatehouse_config::model::{RateLimitKey, RateLimitRule, RateQuota};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

// Buckets are keyed by a keyed 64-bit hash of the key: no allocation per
// check, 8 bytes per bucket key, and (the hash being seeded per process)
// clients cannot choose keys that share a victim's bucket.
type Keyed =
    RateLimiter<u64, DefaultKeyedStateStore<u64>, DefaultClock, StateInformationMiddleware>;

/// One rule's buckets.
pub struct Limiter {
    /// The rule (name, quota, key).
    pub rule: RateLimitRule,
    buckets: Keyed,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("rule", &self.rule).finish()
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted; this many requests are left in the bucket.
    Allowed {
        /// Remaining burst capacity.
        remaining: u32,
    },
    /// Refused: the next request is admitted after this long.
    Limited {
        /// Wait before retrying.
        retry_after: Duration,
    },
}

fn governor_quota(q: &RateQuota) -> Quota {
    let requests = NonZeroU32::new(q.requests).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
    // One token every per/requests; validation keeps `per` >= 1s and requests >= 1.
    let interval = q.per / requests.get();
    Quota::with_period(interval.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(requests))
        .allow_burst(burst)
}

impl Limiter {
    fn new(rule: RateLimitRule) -> Self {
        let buckets = RateLimiter::keyed(governor_quota(&rule.quota))
            .with_middleware::<StateInformationMiddleware>();
        Limiter {
            rule,
            buckets,
            hasher: Default::default(),
        }
    }

    /// Takes one token from `key`'s bucket.
    pub fn check(&self, key: &str) -> Outcome {
        use std::hash::BuildHasher;
        match self.buckets.check_key(&self.hasher.hash_one(key)) {
            Ok(state) => Outcome::Allowed {
                remaining: state.remaining_burst_capacity(),
            },
            Err(not_until) => Outcome::Limited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    /// The `RateLimit-Policy` item of this rule (IETF httpapi draft):
    /// `"name";q=<requests>;w=<seconds>`.
    pub fn policy(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.rule.name,
            self.rule.quota.requests,
            self.rule.quota.per.as_secs()
        )
    }
}

/// What a limiter is identified by across reloads: where the rule is, and the rule.
type LimiterId = (String, RateLimitRule);

fn registry() -> &'static Mutex<HashMap<LimiterId, Weak<Limiter>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<LimiterId, Weak<Limiter>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The limiter of `rule` at `scope` (e.g. `domain:acme:shop.example`): the
/// existing one while any snapshot holds it, else a new one.
pub fn limiter(scope: &str, rule: &RateLimitRule) -> Arc<Limiter> {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    // How a rule is advertised does not change its buckets.
    let rule = RateLimitRule {
        headers: Default::default(),
        ..rule.clone()
    };
    let id = (scope.to_string(), rule.clone());
    if let Some(l) = reg.get(&id).and_then(Weak::upgrade) {
        return l;
    }
    let l = Arc::new(Limiter::new(rule));
    reg.insert(id, Arc::downgrade(&l));
    l
}

/// A rule of a route: its limiter and how it is advertised.
#[derive(Debug, Clone)]
pub struct BoundLimit {
    pub limiter: Arc<Limiter>,
    pub headers: RateLimitHeaders,
}

/// [`limiter`], with the rule's header style.
pub fn bind(scope: &str, rule: &RateLimitRule) -> BoundLimit {
    BoundLimit {
        limiter: limiter(scope, rule),
        headers: rule.headers,
    }
}

/// Response headers of the rules a request passed (or the one that refused it).
#[derive(Debug, Default, Clone)]
pub struct Advertised {
    /// `RateLimit-Policy` items.
    policies: Vec<String>,
    /// `RateLimit` items.
    states: Vec<String>,
    /// `X-RateLimit-*` of the most restrictive rule: limit, remaining, reset seconds.
    x: Option<(u32, u32, u64)>,
}

impl Advertised {
    /// Records `limit`'s outcome for the response headers.
    pub fn add(&mut self, limit: &BoundLimit, outcome: Outcome) {
        let rule = &limit.limiter.rule;
        let (remaining, reset) = match outcome {
            Outcome::Allowed { remaining } => (remaining, refill_secs(&rule.quota, remaining)),
            Outcome::Limited { retry_after } => (0, ceil_secs(retry_after)),
        };
        if limit.headers.ietf() {
            self.policies.push(limit.limiter.policy());
            self.states.push(match outcome {
                Outcome::Allowed { .. } => format!("\"{}\";r={remaining}", rule.name),
                Outcome::Limited { .. } => format!("\"{}\";r=0;t={reset}", rule.name),
            });
        }
        if limit.headers.x_ratelimit() && self.x.is_none_or(|(_, r, _)| remaining < r) {
            // A burst above the rate is the most a client can have at once.
            let most = rule.quota.requests.max(rule.quota.burst);
            self.x = Some((most, remaining, reset));
        }
    }

    /// The headers to add to a response.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.policies.is_empty() {
            out.push(("ratelimit-policy", self.policies.join(", ")));
            out.push(("ratelimit", self.states.join(", ")));
        }
        if let Some((limit, remaining, reset)) = self.x {
            out.push(("x-ratelimit-limit", limit.to_string()));
            out.push(("x-ratelimit-remaining", remaining.to_string()));
            out.push(("x-ratelimit-reset", reset.to_string()));
        }
        out
    }
}

/// Whole seconds, rounded up.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Seconds until a bucket with `remaining` tokens is full again.
fn refill_secs(q: &RateQuota, remaining: u32) -> u64 {
    let missing = u64::from(q.burst.saturating_sub(remaining));
    let per_token = q.per / q.requests.max(1);
    ceil_secs(per_token * u32::try_from(missing).unwrap_or(u32::MAX))
}

/// A tenant's aggregate ceiling as a rule with a single bucket.
pub fn tenant_limiter(tenant: &str, quota: RateQuota) -> Arc<Limiter> {
    let rule = RateLimitRule {
        name: format!("tenant-{tenant}"),
        quota,
        key: RateLimitKey::Global,
        headers: RateLimitHeaders::None,
    };
    limiter(&format!("tenant:{tenant}"), &rule)
}

/// Drops full buckets and unused limiters; run every few seconds.
pub fn housekeeping() {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|_, weak| match weak.upgrade() {
        Some(l) => {
            l.buckets.retain_recent();
            l.buckets.shrink_to_fit();
            true
        }
        None => false,
    });
}

/// The bucket key of a request for `key`: the client address, a header's or
/// a cookie's value (a request without it shares the empty key's bucket), or
/// one bucket for all.
pub fn request_key<'a>(
    key: &RateLimitKey,
    client_ip: &'a str,
    headers: &'a http::HeaderMap,
    plugin_key: Option<&'a str>,
) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    match key {
        RateLimitKey::ClientIp => Cow::Borrowed(client_ip),
        // Plugin keys and addresses never share a bucket by accident.
        RateLimitKey::Plugin => match plugin_key {
            Some(k) => Cow::Owned(format!("p:{k}")),
            None => Cow::Owned(format!("ip:{client_ip}")),
        },
        RateLimitKey::Global => Cow::Borrowed(""),
        RateLimitKey::Header(name) => headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .unwrap_or(Cow::Borrowed("")),
        RateLimitKey::Cookie(name) => headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| Cow::Owned(v.trim().to_string()))
            })
            .unwrap_or(Cow::Borrowed("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, requests: u32, per_secs: u64, burst: u32) -> RateLimitRule {
        RateLimitRule {
            name: name.into(),
            quota: RateQuota {
                requests,
                per: Duration::from_secs(per_secs),
                burst,
            },
            headers: Default::default(),
            key: RateLimitKey::ClientIp,
        }
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refuses_with_the_wait() {
        let l = limiter("test:burst", &rule("r", 60, 60, 3));
        for left in [2, 1, 0] {
            assert_eq!(l.check("a"), Outcome::Allowed { remaining: left });
        }
        match l.check("a") {
            Outcome::Limited { retry_after } => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            other => panic!("{other:?}"),
        }
        // Keys are independent.
        assert_eq!(l.check("b"), Outcome::Allowed { remaining: 2 });
        assert_eq!(l.policy(), "\"r\";q=60;w=60");
    }

    #[test]
    fn the_same_rule_at_the_same_place_keeps_its_buckets_while_in_use() {
        let first = limiter("test:keep", &rule("r", 1, 60, 1));
        assert!(matches!(first.check("a"), Outcome::Allowed { .. }));
        let again = limiter("test:keep", &rule("r", 1, 60, 1));
        assert!(matches!(again.check("a"), Outcome::Limited { .. }));
        // A changed rule starts afresh.
        let changed = limiter("test:keep", &rule("r", 2, 60, 2));
        assert!(matches!(changed.check("a"), Outcome::Allowed { .. }));
        drop((first, again, changed));
        housekeeping();
        let fresh = limiter("test:keep", &rule("r", 1, 60, 1));
        assert!(matches!(fresh.check("a"), Outcome::Allowed { .. }));
    }

    #[test]
    fn keys_come_from_the_request() {
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", "k1".parse().unwrap());
        h.append(http::header::COOKIE, "a=1; session=s9".parse().unwrap());
        let header = RateLimitKey::Header(http::HeaderName::from_static("x-api-key"));
        assert_eq!(request_key(&header, "1.2.3.4", &h, None), "k1");
        assert_eq!(
            request_key(&RateLimitKey::Cookie("session".into()), "1.2.3.4", &h, None),
            "s9"
        );
        assert_eq!(
            request_key(&RateLimitKey::Cookie("none".into()), "1.2.3.4", &h, None),
            ""
        );
        assert_eq!(
            request_key(&RateLimitKey::ClientIp, "1.2.3.4", &h, None),
            "1.2.3.4"
        );
    }
}
