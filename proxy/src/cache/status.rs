//! The `Cache-Status` response header (RFC 9211) and the result label the
//! access log and metrics use, from where Pingora's cache state machine ended.
//!
//! | outcome                                   | header                                        |
//! |-------------------------------------------|-----------------------------------------------|
//! | fresh object served                       | `gatehouse; hit; ttl=<s>`                      |
//! | stale served, one refresh in background   | `gatehouse; hit; ttl=<-s>; detail=stale-while-revalidate` |
//! | stale served, origin failing              | `gatehouse; hit; ttl=<-s>; detail=stale-if-error` |
//! | nothing stored                            | `gatehouse; fwd=miss[; stored]`                |
//! | stored but stale: refetched               | `gatehouse; fwd=stale; fwd-status=<code>[; stored]` |
//! | stored but stale: origin said 304         | `gatehouse; fwd=stale; fwd-status=304; ttl=<s>` |
//! | request skipped the cache                 | `gatehouse; fwd=bypass; detail=<rule>`         |
//! | response not storable                     | `gatehouse; fwd=miss; detail=<reason>`         |
//! | URL recently not storable (no lock taken) | `gatehouse; fwd=miss; detail=predicted-uncacheable` |

use std::time::SystemTime;

use pingora::cache::{CacheMeta, CachePhase, NoCacheReason};

/// The cache's name in `Cache-Status`.
const NAME: &str = "gatehouse";

/// What happened to one request on a cached route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Label for metrics and the access log.
    pub result: &'static str,
    /// The `Cache-Status` value.
    pub header: String,
}

/// Seconds of freshness left (negative once stale).
fn ttl(meta: &CacheMeta, now: SystemTime) -> i64 {
    let until = meta.fresh_until();
    match until.duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs().max(1)).unwrap_or(i64::MAX),
    }
}

fn reason(r: &NoCacheReason) -> &'static str {
    match r {
        NoCacheReason::OriginNotCache => "origin-not-cacheable",
        NoCacheReason::ResponseTooLarge | NoCacheReason::PredictedResponseTooLarge => "too-large",
        NoCacheReason::StorageError => "storage-error",
        NoCacheReason::UpstreamError => "upstream-error",
        NoCacheReason::Custom(why) => why,
        _ => "not-stored",
    }
}

/// The outcome of a request whose cache ended in `phase`. `meta` is the
/// stored object's, where the phase has one; `stored` says the response
/// was found storable; `status` is the status sent.
pub fn outcome(
    phase: CachePhase,
    meta: Option<&CacheMeta>,
    stored: bool,
    status: u16,
    now: SystemTime,
) -> Outcome {
    let stored_param = if stored { "; stored" } else { "" };
    let (result, header) = match (phase, meta) {
        (CachePhase::Hit, Some(m)) => ("hit", format!("{NAME}; hit; ttl={}", ttl(m, now))),
        (CachePhase::StaleUpdating, Some(m)) => (
            "stale",
            format!(
                "{NAME}; hit; ttl={}; detail=stale-while-revalidate",
                ttl(m, now)
            ),
        ),
        (CachePhase::Stale, Some(m)) => (
            "stale",
            format!("{NAME}; hit; ttl={}; detail=stale-if-error", ttl(m, now)),
        ),
        (CachePhase::Revalidated, Some(m)) => (
            "revalidated",
            format!("{NAME}; fwd=stale; fwd-status=304; ttl={}", ttl(m, now)),
        ),
        (CachePhase::RevalidatedNoCache(_), _) => {
            ("revalidated", format!("{NAME}; fwd=stale; fwd-status=304"))
        }
        (CachePhase::Expired, _) => (
            "expired",
            format!("{NAME}; fwd=stale; fwd-status={status}{stored_param}"),
        ),
        (CachePhase::Miss, _) => ("miss", format!("{NAME}; fwd=miss{stored_param}")),
        (CachePhase::Bypass, _) => (
            "uncacheable",
            format!("{NAME}; fwd=miss; detail=predicted-uncacheable"),
        ),
        (CachePhase::Disabled(r), _) => (
            "uncacheable",
            format!("{NAME}; fwd=miss; detail={}", reason(&r)),
        ),
        _ => ("miss", format!("{NAME}; fwd=miss")),
    };
    Outcome { result, header }
}

/// The outcome of a request a bypass rule kept away from the cache.
pub fn bypassed(rule: &'static str) -> Outcome {
    Outcome {
        result: "bypass",
        header: format!("{NAME}; fwd=bypass; detail={rule}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::ResponseHeader;
    use std::time::Duration;

    fn meta(fresh_for: i64, now: SystemTime) -> CacheMeta {
        let until = if fresh_for >= 0 {
            now + Duration::from_secs(fresh_for as u64)
        } else {
            now - Duration::from_secs((-fresh_for) as u64)
        };
        CacheMeta::new(until, now, 0, 0, ResponseHeader::build(200, None).unwrap())
    }

    #[test]
    fn hits_say_how_long_they_stay_fresh() {
        let now = SystemTime::now();
        let o = outcome(CachePhase::Hit, Some(&meta(60, now)), false, 200, now);
        assert_eq!(o.result, "hit");
        assert_eq!(o.header, "gatehouse; hit; ttl=60");
        let o = outcome(
            CachePhase::StaleUpdating,
            Some(&meta(-5, now)),
            false,
            200,
            now,
        );
        assert_eq!(o.result, "stale");
        assert_eq!(
            o.header,
            "gatehouse; hit; ttl=-5; detail=stale-while-revalidate"
        );
    }

    #[test]
    fn forwarded_requests_say_why_and_whether_stored() {
        let now = SystemTime::now();
        assert_eq!(
            outcome(CachePhase::Miss, None, true, 200, now).header,
            "gatehouse; fwd=miss; stored"
        );
        assert_eq!(
            outcome(CachePhase::Expired, None, true, 200, now).header,
            "gatehouse; fwd=stale; fwd-status=200; stored"
        );
        let o = outcome(
            CachePhase::Disabled(NoCacheReason::Custom("set-cookie")),
            None,
            false,
            200,
            now,
        );
        assert_eq!(o.result, "uncacheable");
        assert_eq!(o.header, "gatehouse; fwd=miss; detail=set-cookie");
        assert_eq!(
            bypassed("cookie").header,
            "gatehouse; fwd=bypass; detail=cookie"
        );
    }
}
