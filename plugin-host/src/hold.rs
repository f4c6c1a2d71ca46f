//! Instances kept between a request's two hooks, and the caps on keeping them.
//!
//! A request's instance is created for its `on-request` and, when possible,
//! kept for its `on-response`, so a request pays for one instantiation and one
//! slot reset instead of two. Kept instances occupy pool slots while the
//! upstream answers, which can take as long as the upstream likes (long polls),
//! so keeping is capped: per tenant (one tenant's slow upstream cannot take the
//! pool from the others) and in total (slots always remain for the transient
//! instances of hooks that are running). When a cap is reached the instance is
//! simply not kept: `on-response` then gets a fresh one. Requests never fail
//! because of these caps; they only lose the saving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The caps a [`Held`] is taken under.
#[derive(Debug)]
pub(crate) struct HoldCaps {
    /// Instances kept across all tenants.
    pub total: AtomicU32,
    /// Most instances kept at once, all tenants together.
    pub max_total: u32,
    /// Most instances one tenant may keep at once.
    pub max_per_tenant: u32,
}

/// Proof that an instance may be kept; releases its place when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    caps: &'static HoldCaps,
    tenant: Arc<AtomicU32>,
}

impl Held {
    /// Takes a place for `tenant` (its counter from [`tenant_counter`]) if
    /// both caps allow.
    pub fn try_take(caps: &'static HoldCaps, tenant: &Arc<AtomicU32>) -> Option<Held> {
        if !take_under(&caps.total, caps.max_total) {
            return None;
        }
        if !take_under(tenant, caps.max_per_tenant) {
            caps.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Held {
            caps,
            tenant: tenant.clone(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.tenant.fetch_sub(1, Ordering::Relaxed);
        self.caps.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Increments `counter` unless it is already at `max`.
fn take_under(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// The shared kept-instance counter of `tenant`: every plugin of a tenant
/// counts against the same cap, across reloads.
pub(crate) fn tenant_counter(tenant: &str) -> Arc<AtomicU32> {
    static COUNTERS: OnceLock<Mutex<HashMap<String, Weak<AtomicU32>>>> = OnceLock::new();
    let mut map = COUNTERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = map.get(tenant).and_then(Weak::upgrade) {
        return c;
    }
    // Tenants whose plugins were all unloaded leave dead entries; drop them.
    map.retain(|_, w| w.strong_count() > 0);
    let c = Arc::new(AtomicU32::new(0));
    map.insert(tenant.to_string(), Arc::downgrade(&c));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max_total: u32, max_per_tenant: u32) -> &'static HoldCaps {
        Box::leak(Box::new(HoldCaps {
            total: AtomicU32::new(0),
            max_total,
            max_per_tenant,
        }))
    }

    #[test]
    fn one_tenant_cannot_take_more_than_its_share() {
        let caps = caps(10, 2);
        let greedy = Arc::new(AtomicU32::new(0));
        let other = Arc::new(AtomicU32::new(0));
        let a = Held::try_take(caps, &greedy).expect("first");
        let _b = Held::try_take(caps, &greedy).expect("second");
        assert!(
            Held::try_take(caps, &greedy).is_none(),
            "over the tenant cap"
        );
        assert_eq!(
            caps.total.load(Ordering::Relaxed),
            2,
            "refusal leaks nothing"
        );
        assert!(
            Held::try_take(caps, &other).is_some(),
            "another tenant still keeps"
        );
        drop(a);
        assert!(
            Held::try_take(caps, &greedy).is_some(),
            "a released place is reusable"
        );
    }

    #[test]
    fn the_total_cap_holds_across_tenants() {
        let caps = caps(3, 2);
        let t: Vec<_> = (0..3).map(|_| Arc::new(AtomicU32::new(0))).collect();
        let held: Vec<_> = t.iter().filter_map(|c| Held::try_take(caps, c)).collect();
        assert_eq!(held.len(), 3);
        let extra = Arc::new(AtomicU32::new(0));
        assert!(Held::try_take(caps, &extra).is_none(), "over the total cap");
        assert_eq!(extra.load(Ordering::Relaxed), 0, "refusal leaks nothing");
        drop(held);
        assert_eq!(caps.total.load(Ordering::Relaxed), 0);
        assert!(t.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn plugins_of_one_tenant_share_a_counter() {
        let a = tenant_counter("hold-test-acme");
        let b = tenant_counter("hold-test-acme");
        let c = tenant_counter("hold-test-beta");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
