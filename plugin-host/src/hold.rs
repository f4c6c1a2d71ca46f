//! Instances kept between a request's two hooks, and the caps on keeping them.
//!
//! A request's instance is created for its `on-request` and, when possible,
//! kept for its `on-response`, so a request pays for one instantiation and one
//! slot reset instead of two. Kept instances occupy pool slots and memory while
//! the upstream answers, which can take as long as the upstream likes (long
//! polls), so keeping is capped: by count per tenant and in total (slots always
//! remain for the instances of hooks that are running), and by bytes per
//! tenant (kept instances may hold at most half its plugin memory budget, see
//! `budget`). When a cap is reached the instance is simply not kept:
//! `on-response` then gets a fresh one. Requests never fail because of these
//! caps; they only lose the saving.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::budget::TenantBudget;

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
    tenant: Arc<TenantBudget>,
    bytes: usize,
}

impl Held {
    /// Takes a place for an instance of `bytes` of `tenant` if every cap allows.
    pub fn try_take(
        caps: &'static HoldCaps,
        tenant: &Arc<TenantBudget>,
        bytes: usize,
    ) -> Option<Held> {
        if !take_under(&caps.total, caps.max_total) {
            return None;
        }
        if !take_under(&tenant.held, caps.max_per_tenant) {
            caps.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        if !tenant.try_keep(bytes) {
            tenant.held.fetch_sub(1, Ordering::Relaxed);
            caps.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Held {
            caps,
            tenant: tenant.clone(),
            bytes,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.tenant.unkeep(self.bytes);
        self.tenant.held.fetch_sub(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::tenant_budget;

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
        let greedy = tenant_budget("hold-test-greedy");
        let other = tenant_budget("hold-test-other");
        let a = Held::try_take(caps, &greedy, 1).expect("first");
        let _b = Held::try_take(caps, &greedy, 1).expect("second");
        assert!(
            Held::try_take(caps, &greedy, 1).is_none(),
            "over the tenant cap"
        );
        assert_eq!(
            caps.total.load(Ordering::Relaxed),
            2,
            "refusal leaks nothing"
        );
        assert!(
            Held::try_take(caps, &other, 1).is_some(),
            "another tenant still keeps"
        );
        drop(a);
        assert!(
            Held::try_take(caps, &greedy, 1).is_some(),
            "a released place is reusable"
        );
    }

    #[test]
    fn the_total_cap_holds_across_tenants() {
        let caps = caps(3, 2);
        let t: Vec<_> = (0..3)
            .map(|i| tenant_budget(&format!("hold-test-t{i}")))
            .collect();
        let held: Vec<_> = t
            .iter()
            .filter_map(|c| Held::try_take(caps, c, 1))
            .collect();
        assert_eq!(held.len(), 3);
        let extra = tenant_budget("hold-test-extra");
        assert!(
            Held::try_take(caps, &extra, 1).is_none(),
            "over the total cap"
        );
        assert_eq!(
            extra.held.load(Ordering::Relaxed),
            0,
            "refusal leaks nothing"
        );
        drop(held);
        assert_eq!(caps.total.load(Ordering::Relaxed), 0);
        assert!(t.iter().all(|c| c.held.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn kept_bytes_are_capped_per_tenant() {
        let caps = caps(100, 100);
        let t = tenant_budget("hold-test-bytes");
        // Half the default 256 MiB budget may be kept.
        let big = Held::try_take(caps, &t, 100 << 20).expect("100 MiB");
        assert!(
            Held::try_take(caps, &t, 64 << 20).is_none(),
            "164 MiB > 128"
        );
        assert_eq!(t.held.load(Ordering::Relaxed), 1, "refusal leaks nothing");
        drop(big);
        assert!(Held::try_take(caps, &t, 64 << 20).is_some());
    }
}
