//! Automatic bans: a client that keeps getting failing statuses from a domain
//! (`bans.after`, e.g. 20 × 401 within a minute) is refused there for a while.
//!
//! Strike counters and bans live in bounded caches (moka), keyed by domain
//! and client address, so a flood of distinct addresses cannot grow memory
//! without limit: past the cap the least recently used entries go first.
//! Bans are listed and lifted through the internal listener (`/bans`).
//! One [`Bans`] per node, in its `NodeState`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gatehouse_config::model::BanPolicy;
use moka::sync::Cache;

/// Most (domain, client) pairs tracked at once, for strikes and for bans each.
const MAX_TRACKED: u64 = 1_000_000;
/// Nothing is kept longer than this (the longest window or ban allowed).
const MAX_AGE: Duration = Duration::from_secs(86_400);

type Key = (Arc<str>, IpAddr);

/// Strikes within the current window: (count, window start).
type Strikes = Arc<Mutex<(u32, Instant)>>;

/// A ban, as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ban {
    /// The domain (its hosts, as in metrics).
    pub domain: String,
    /// The client.
    pub ip: IpAddr,
    /// Seconds left.
    pub remaining_seconds: u64,
    /// When it started (Unix seconds).
    pub since_unix: u64,
}

/// A node's strike counters and bans.
pub struct Bans {
    strikes: Cache<(Arc<str>, IpAddr, u16), Strikes>,
    /// Banned until (monotonic) and since (wall clock, for listing).
    bans: Cache<Key, (Instant, SystemTime)>,
}

impl Default for Bans {
    fn default() -> Self {
        Bans {
            strikes: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_live(MAX_AGE)
                .build(),
            bans: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_live(MAX_AGE)
                .build(),
        }
    }
}

impl Bans {
    /// Whether `ip` is banned from `domain` now.
    pub fn is_banned(&self, domain: &Arc<str>, ip: IpAddr) -> bool {
        match self.bans.get(&(domain.clone(), ip)) {
            Some((until, _)) if until > Instant::now() => true,
            Some(_) => {
                self.bans.invalidate(&(domain.clone(), ip));
                false
            }
            None => false,
        }
    }

    /// Counts a response of `status` to `ip` on `domain`; returns true when it
    /// banned the client.
    pub fn strike(&self, domain: &Arc<str>, ip: IpAddr, status: u16, policy: &BanPolicy) -> bool {
        let Some(threshold) = policy.threshold(status) else {
            return false;
        };
        let now = Instant::now();
        let counter = self.strikes.get_with((domain.clone(), ip, status), || {
            Arc::new(Mutex::new((0, now)))
        });
        let reached = {
            let mut c = counter.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(c.1) > policy.window {
                *c = (0, now);
            }
            c.0 += 1;
            c.0 >= threshold
        };
        if reached {
            self.strikes.invalidate(&(domain.clone(), ip, status));
            self.bans.insert(
                (domain.clone(), ip),
                (now + policy.duration, SystemTime::now()),
            );
            tracing::warn!(domain = %domain, client_ip = %ip, status, threshold, ban_seconds = policy.duration.as_secs(), "client banned");
        }
        reached
    }

    /// Every ban in force.
    pub fn list(&self) -> Vec<Ban> {
        let now = Instant::now();
        let mut out: Vec<Ban> = self
            .bans
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .map(|(k, (until, since))| Ban {
                domain: k.0.to_string(),
                ip: k.1,
                remaining_seconds: until.duration_since(now).as_secs(),
                since_unix: since
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            })
            .collect();
        out.sort_by(|a, b| (&a.domain, a.ip).cmp(&(&b.domain, b.ip)));
        out
    }

    /// Lifts bans of `ip` (on `domain` only, when given); returns how many.
    pub fn lift(&self, ip: IpAddr, domain: Option<&str>) -> usize {
        let victims: Vec<Key> = self
            .bans
            .iter()
            .filter(|(k, _)| k.1 == ip && domain.is_none_or(|d| &*k.0 == d))
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in &victims {
            self.bans.invalidate(k);
        }
        victims.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BanPolicy {
        BanPolicy {
            after: vec![(404, 3)],
            window: Duration::from_secs(60),
            duration: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_nth_strike_within_the_window_bans_and_lifting_unbans() {
        let d: Arc<str> = Arc::from("unit.test");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let bans = Bans::default();
        assert!(
            !bans.strike(&d, ip, 500, &policy()),
            "500 does not count here"
        );
        assert!(!bans.strike(&d, ip, 404, &policy()));
        assert!(!bans.strike(&d, ip, 404, &policy()));
        assert!(!bans.is_banned(&d, ip));
        assert!(bans.strike(&d, ip, 404, &policy()));
        assert!(bans.is_banned(&d, ip));
        let other: Arc<str> = Arc::from("other.test");
        assert!(!bans.is_banned(&other, ip), "bans are per domain");
        assert!(bans
            .list()
            .iter()
            .any(|b| b.domain == "unit.test" && b.ip == ip));
        assert_eq!(bans.lift(ip, Some("unit.test")), 1);
        assert!(!bans.is_banned(&d, ip));
    }
}
