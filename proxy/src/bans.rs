//! Automatic bans: a client that keeps getting failing statuses from a domain
//! (`bans.after`, e.g. 20 × 401 within a minute) is refused there for a while.
//!
//! Strike counters and bans live in bounded caches (moka), one pair per
//! tenant, keyed by domain and client address: a flood of distinct addresses
//! cannot grow memory without limit (past a tenant's cap its least recently
//! used entries go first), and one tenant's flood only ever evicts its own
//! entries, never another tenant's bans.
//! Bans are listed and lifted through the internal listener (`/bans`).
//! One [`Bans`] per node, in its `NodeState`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gatehouse_config::model::BanPolicy;
use moka::sync::Cache;

/// Most (domain, client) pairs tracked at once per tenant, for strikes and
/// for bans each.
const MAX_TRACKED_PER_TENANT: u64 = 100_000;
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

/// One tenant's strike counters and bans.
struct TenantBans {
    strikes: Cache<(Arc<str>, IpAddr, u16), Strikes>,
    /// Banned until (monotonic) and since (wall clock, for listing).
    bans: Cache<Key, (Instant, SystemTime)>,
}

impl TenantBans {
    fn new(capacity: u64) -> Self {
        TenantBans {
            strikes: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(MAX_AGE)
                .build(),
            bans: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(MAX_AGE)
                .build(),
        }
    }
}

/// A node's strike counters and bans, per tenant.
pub struct Bans {
    tenants: Mutex<HashMap<Arc<str>, Arc<TenantBans>>>,
    per_tenant: u64,
}

impl Default for Bans {
    fn default() -> Self {
        Bans::with_capacity(MAX_TRACKED_PER_TENANT)
    }
}

impl Bans {
    /// Bans tracking at most `per_tenant` pairs per tenant (strikes and
    /// bans each).
    pub fn with_capacity(per_tenant: u64) -> Self {
        Bans {
            tenants: Mutex::new(HashMap::new()),
            per_tenant,
        }
    }

    fn of(&self, tenant: &Arc<str>) -> Arc<TenantBans> {
        let mut all = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(tenant.clone())
            .or_insert_with(|| Arc::new(TenantBans::new(self.per_tenant)))
            .clone()
    }

    fn all(&self) -> Vec<Arc<TenantBans>> {
        let all = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        all.values().cloned().collect()
    }

    /// Whether `ip` is banned from `tenant`'s `domain` now.
    pub fn is_banned(&self, tenant: &Arc<str>, domain: &Arc<str>, ip: IpAddr) -> bool {
        let t = self.of(tenant);
        match t.bans.get(&(domain.clone(), ip)) {
            Some((until, _)) if until > Instant::now() => true,
            Some(_) => {
                t.bans.invalidate(&(domain.clone(), ip));
                false
            }
            None => false,
        }
    }

    /// Counts a response of `status` to `ip` on `tenant`'s `domain`; returns
    /// true when it banned the client.
    pub fn strike(
        &self,
        tenant: &Arc<str>,
        domain: &Arc<str>,
        ip: IpAddr,
        status: u16,
        policy: &BanPolicy,
    ) -> bool {
        let Some(threshold) = policy.threshold(status) else {
            return false;
        };
        let t = self.of(tenant);
        let now = Instant::now();
        let counter = t.strikes.get_with((domain.clone(), ip, status), || {
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
            t.strikes.invalidate(&(domain.clone(), ip, status));
            t.bans.insert(
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
            .all()
            .iter()
            .flat_map(|t| t.bans.iter().collect::<Vec<_>>())
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
        let mut lifted = 0;
        for t in self.all() {
            let victims: Vec<Key> = t
                .bans
                .iter()
                .filter(|(k, _)| k.1 == ip && domain.is_none_or(|d| &*k.0 == d))
                .map(|(k, _)| (*k).clone())
                .collect();
            for k in &victims {
                t.bans.invalidate(k);
            }
            lifted += victims.len();
        }
        lifted
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
        let t: Arc<str> = Arc::from("t");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let bans = Bans::default();
        assert!(
            !bans.strike(&t, &d, ip, 500, &policy()),
            "500 does not count here"
        );
        assert!(!bans.strike(&t, &d, ip, 404, &policy()));
        assert!(!bans.strike(&t, &d, ip, 404, &policy()));
        assert!(!bans.is_banned(&t, &d, ip));
        assert!(bans.strike(&t, &d, ip, 404, &policy()));
        assert!(bans.is_banned(&t, &d, ip));
        let other: Arc<str> = Arc::from("other.test");
        assert!(!bans.is_banned(&t, &other, ip), "bans are per domain");
        assert!(bans
            .list()
            .iter()
            .any(|b| b.domain == "unit.test" && b.ip == ip));
        assert_eq!(bans.lift(ip, Some("unit.test")), 1);
        assert!(!bans.is_banned(&t, &d, ip));
    }

    /// Issue 22, item 14: one tenant's flood of distinct clients evicts only
    /// its own entries; another tenant's bans stay.
    #[test]
    fn a_flood_on_one_tenant_never_evicts_another_tenants_bans() {
        let bans = Bans::with_capacity(100);
        let (victim, flooder): (Arc<str>, Arc<str>) = (Arc::from("victim"), Arc::from("flooder"));
        let d: Arc<str> = Arc::from("v.test");
        let banned: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            bans.strike(&victim, &d, banned, 404, &policy());
        }
        assert!(bans.is_banned(&victim, &d, banned));
        let f: Arc<str> = Arc::from("f.test");
        for i in 0..20_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..3 {
                bans.strike(&flooder, &f, ip, 404, &policy());
            }
        }
        for t in bans.all() {
            t.bans.run_pending_tasks();
            t.strikes.run_pending_tasks();
        }
        assert!(
            bans.is_banned(&victim, &d, banned),
            "the flood evicted another tenant's ban"
        );
        let flooded = bans.of(&flooder);
        assert!(
            flooded.bans.entry_count() <= 100,
            "{}",
            flooded.bans.entry_count()
        );
    }
}
