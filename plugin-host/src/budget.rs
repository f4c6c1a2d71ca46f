//! What a tenant's plugins may use on this node, and what one request's may.
//!
//! Every tenant has one [`TenantBudget`], shared by all its plugins and kept
//! across reloads (looked up by name, like the key-value store), holding:
//! - **CPU**: a GCRA bucket of CPU time ([`Gcra`]), charged as calls run (at
//!   every epoch tick and when a call ends). A tenant over its rate has its
//!   calls refused before they start and stopped at their next tick; its
//!   requests are shed (answered at once) instead of waiting for a worker.
//! - **Memory**: bytes of linear memory of its live instances (running, and
//!   kept for `on-response`), each charged at least [`INSTANCE_FLOOR`]; the
//!   store's limiter refuses growth past the tenant's budget or the node's.
//! - **Running calls**: at most [`RUNNING_PER_TENANT`] at once (each holds an
//!   instance and a fiber stack until it ends).
//! - **Lanes**: how many of its *long* calls may run at once on the node:
//!   one per core's worth of its CPU budget (one for the default 250 ms/s). A
//!   call that outlives its first tick waits for a lane at that tick (without
//!   using CPU), so a tenant flooding long calls has at most that many of them
//!   taking turns on the workers, and other tenants' requests wait behind at
//!   most one of its turns; calls shorter than a tick never wait.
//! - **Logs**: a GCRA bucket of log bytes per second.
//!
//! One request's calls share a [`RequestBudget`]: the CPU all its hooks may
//! use together and its log bytes, so a long chain cannot multiply either.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gatehouse_config::model::PluginLimits;
use prometheus::IntCounter;

use crate::metrics::families;

/// The least memory an instance is charged: what its slot keeps resident
/// after it is reset (`runtime::KEEP_RESIDENT`, 2 MiB), its call stack
/// (1 MiB) and its tables and instance state (under 1 MiB with the pool's
/// caps). Charging it bounds the slots a tenant can warm, not only the
/// bytes it touches.
pub const INSTANCE_FLOOR: usize = 4 << 20;
/// Calls of one tenant that may run at once on this node.
pub const RUNNING_PER_TENANT: u32 = 256;
/// Distinct counter names all of a tenant's plugins may create.
pub const COUNTER_NAMES_PER_TENANT: usize = 256;
/// `counter-add` calls one request's hooks may make together.
pub const COUNTER_OPS_PER_REQUEST: u32 = 1024;
/// How far ahead of its rate a tenant may run: bursts of one second's worth.
const BURST: Duration = Duration::from_secs(1);

/// Nanoseconds since the process's first use of a budget (0 is never "now").
pub(crate) fn now_ns(now: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    // Offset by a second so that no time is 0.
    now.saturating_duration_since(base).as_nanos() as u64 + 1_000_000_000
}

/// A generic cell rate algorithm bucket: spending `cost` units pushes the
/// theoretical arrival time (`tat`) forward by `cost` at the configured rate;
/// the bucket is over while `tat` is more than [`BURST`] ahead of now.
/// Lock-free: one atomic for the state, one for the rate.
#[derive(Debug, Default)]
pub(crate) struct Gcra {
    tat_ns: AtomicU64,
    /// Units per second; 0 means unlimited.
    rate: AtomicU64,
}

impl Gcra {
    fn set_rate(&self, per_second: u64) {
        self.rate.store(per_second, Ordering::Relaxed);
    }

    /// Wall nanoseconds `cost` units take at the rate.
    fn interval(&self, cost: u64) -> Option<u64> {
        let rate = self.rate.load(Ordering::Relaxed);
        (rate != 0).then(|| {
            u64::try_from(u128::from(cost) * 1_000_000_000 / u128::from(rate)).unwrap_or(u64::MAX)
        })
    }

    /// Whether the bucket is over its rate; `Some(wait)` until it is not.
    pub fn over(&self, now: u64) -> Option<Duration> {
        let limit = now.saturating_add(BURST.as_nanos() as u64);
        let tat = self.tat_ns.load(Ordering::Relaxed);
        (tat > limit && self.rate.load(Ordering::Relaxed) != 0)
            .then(|| Duration::from_nanos(tat - limit))
    }

    /// Spends `cost` whatever the state (it was already used).
    pub fn charge(&self, cost: u64, now: u64) {
        let Some(step) = self.interval(cost) else {
            return;
        };
        let _ = self
            .tat_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.max(now).saturating_add(step))
            });
    }

    /// Spends `cost` if that keeps the bucket within its burst.
    pub fn try_spend(&self, cost: u64, now: u64) -> bool {
        let Some(step) = self.interval(cost) else {
            return true;
        };
        let limit = now.saturating_add(BURST.as_nanos() as u64);
        self.tat_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                let next = tat.max(now).saturating_add(step);
                (next <= limit).then_some(next)
            })
            .is_ok()
    }
}

/// Why a call was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The tenant used its plugin CPU for now.
    Cpu,
    /// The tenant's instances (or all instances on the node) use their memory budget.
    Memory,
    /// The tenant has [`RUNNING_PER_TENANT`] calls running, or its lanes
    /// stayed busy until the call's wall-clock cap.
    Concurrency,
}

impl Shed {
    /// Label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Shed::Cpu => "cpu",
            Shed::Memory => "memory",
            Shed::Concurrency => "concurrency",
        }
    }
}

/// One tenant's plugin budgets on this node.
pub(crate) struct TenantBudget {
    pub name: Arc<str>,
    pub cpu: Gcra,
    pub log: Gcra,
    memory: AtomicUsize,
    memory_max: AtomicUsize,
    kept_bytes: AtomicUsize,
    /// Instances kept between hooks (count; see `hold`).
    pub held: AtomicU32,
    running: AtomicU32,
    /// Calls that may run at once (see the module docs), and how many the
    /// semaphore was given.
    lanes: Arc<tokio::sync::Semaphore>,
    lane_count: AtomicUsize,
    /// Permits to forget as they come back (lanes were reduced while in use).
    lanes_to_forget: AtomicUsize,
    counter_names: Mutex<HashSet<String>>,
    shed: [IntCounter; 3],
}

impl std::fmt::Debug for TenantBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantBudget")
            .field("name", &self.name)
            .field("memory", &self.memory.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Linear memory of every instance on the node, and its cap.
static NODE_MEMORY: AtomicUsize = AtomicUsize::new(0);
static NODE_MEMORY_MAX: AtomicUsize = AtomicUsize::new(usize::MAX);

impl TenantBudget {
    fn new(name: &str) -> Self {
        let defaults = PluginLimits::default();
        let shed = [Shed::Cpu, Shed::Memory, Shed::Concurrency]
            .map(|s| families().plugin_shed.with_label_values(&[name, s.label()]));
        let b = TenantBudget {
            name: Arc::from(name),
            cpu: Gcra::default(),
            log: Gcra::default(),
            memory: AtomicUsize::new(0),
            memory_max: AtomicUsize::new(defaults.tenant_memory),
            kept_bytes: AtomicUsize::new(0),
            held: AtomicU32::new(0),
            running: AtomicU32::new(0),
            lanes: Arc::new(tokio::sync::Semaphore::new(0)),
            lane_count: AtomicUsize::new(0),
            lanes_to_forget: AtomicUsize::new(0),
            counter_names: Mutex::new(HashSet::new()),
            shed,
        };
        b.set_limits(&defaults, None, None);
        b
    }

    /// Applies the node's limits, with the tenant's own CPU and memory when set.
    pub fn set_limits(&self, limits: &PluginLimits, cpu: Option<Duration>, memory: Option<usize>) {
        let cpu = cpu.unwrap_or(limits.tenant_cpu);
        self.cpu.set_rate(cpu.as_nanos() as u64);
        self.set_lanes(lanes_for(cpu));
        self.log.set_rate(limits.tenant_log_bytes as u64);
        self.memory_max
            .store(memory.unwrap_or(limits.tenant_memory), Ordering::Relaxed);
    }

    /// Gives the semaphore `n` permits in all.
    fn set_lanes(&self, n: usize) {
        let old = self.lane_count.swap(n, Ordering::Relaxed);
        if n > old {
            self.lanes.add_permits(n - old);
        } else if n < old {
            // Permits in use are forgotten as they come back (see `Lane`).
            let left = (old - n) - self.lanes.forget_permits(old - n);
            self.lanes_to_forget.fetch_add(left, Ordering::Relaxed);
        }
    }

    /// Waits for a lane until `until`; `None` when none came in time.
    pub async fn lane(self: &Arc<Self>, until: Instant) -> Option<Lane> {
        let permit = match self.lanes.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let wait = self.lanes.clone().acquire_owned();
                tokio::time::timeout_at(until.into(), wait)
                    .await
                    .ok()?
                    .ok()?
            }
        };
        Some(Lane {
            permit: Some(permit),
            tenant: self.clone(),
        })
    }

    /// Counts a shed call.
    pub fn count_shed(&self, why: Shed) {
        self.shed[why as usize].inc();
    }

    /// Linear memory bytes the tenant's instances use now.
    #[cfg(test)]
    pub fn memory_used(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Takes `bytes` more of the tenant's and the node's memory budgets, or
    /// nothing when either would go over.
    pub fn reserve_memory(&self, bytes: usize) -> bool {
        let max = self.memory_max.load(Ordering::Relaxed);
        if !add_under(&self.memory, bytes, max) {
            return false;
        }
        if !add_under(&NODE_MEMORY, bytes, NODE_MEMORY_MAX.load(Ordering::Relaxed)) {
            self.memory.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back `bytes` taken with [`reserve_memory`](Self::reserve_memory).
    pub fn release_memory(&self, bytes: usize) {
        self.memory.fetch_sub(bytes, Ordering::Relaxed);
        NODE_MEMORY.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Whether an instance of `bytes` may be kept for `on-response`: kept
    /// instances may use at most half the tenant's memory budget, so the
    /// requests waiting on a slow upstream cannot take it all from the
    /// calls that run now.
    pub fn try_keep(&self, bytes: usize) -> bool {
        let max = self.memory_max.load(Ordering::Relaxed) / 2;
        add_under(&self.kept_bytes, bytes, max)
    }

    /// Releases a place taken with [`try_keep`](Self::try_keep).
    pub fn unkeep(&self, bytes: usize) {
        self.kept_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Admits a call: the tenant is within its CPU rate and below its cap
    /// on running calls. The returned guard counts the call until dropped.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<Running, (Shed, Duration)> {
        if let Some(wait) = self.cpu.over(now_ns(now)) {
            return Err((Shed::Cpu, wait));
        }
        if !add_under_u32(&self.running, RUNNING_PER_TENANT) {
            return Err((Shed::Concurrency, Duration::from_secs(1)));
        }
        Ok(Running {
            tenant: self.clone(),
        })
    }

    /// Whether a plugin of this tenant may create the counter `plugin`/`name`.
    pub fn counter_name_allowed(&self, plugin: &str, name: &str) -> bool {
        let key = format!("{plugin}\0{name}");
        let mut names = self.counter_names.lock().unwrap_or_else(|p| p.into_inner());
        if names.contains(&key) {
            return true;
        }
        if names.len() >= COUNTER_NAMES_PER_TENANT {
            return false;
        }
        names.insert(key);
        true
    }
}

/// One of a tenant's lanes, held by a running call.
#[derive(Debug)]
pub(crate) struct Lane {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    tenant: Arc<TenantBudget>,
}

impl Drop for Lane {
    fn drop(&mut self) {
        let forget = self
            .tenant
            .lanes_to_forget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if let (true, Some(p)) = (forget, self.permit.take()) {
            p.forget();
        }
    }
}

/// A running call of a tenant; its place is released when dropped.
#[derive(Debug)]
pub(crate) struct Running {
    tenant: Arc<TenantBudget>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tenant.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lanes for a CPU budget: one per core's worth of it, at least one.
fn lanes_for(cpu_per_second: Duration) -> usize {
    let cores = cpu_per_second.as_nanos().div_ceil(1_000_000_000);
    usize::try_from(cores).unwrap_or(64).clamp(1, 64)
}

fn add_under(counter: &AtomicUsize, n: usize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            v.checked_add(n).filter(|next| *next <= max)
        })
        .is_ok()
}

fn add_under_u32(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v < max).then_some(v + 1)
        })
        .is_ok()
}

/// The budget of `tenant`: every plugin of a tenant shares it, across
/// reloads. Budgets live as long as the process (a few hundred bytes per
/// tenant ever seen): a tenant that unloads its plugins and loads them again
/// must not start with a clean slate of CPU debt or counter names.
pub(crate) fn tenant_budget(tenant: &str) -> Arc<TenantBudget> {
    static BUDGETS: OnceLock<Mutex<HashMap<String, Arc<TenantBudget>>>> = OnceLock::new();
    let mut map = BUDGETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(tenant.to_string())
        .or_insert_with(|| Arc::new(TenantBudget::new(tenant)))
        .clone()
}

/// Applies a loaded config's plugin limits: the node's memory total, and
/// each of `tenants`' budgets with its own overrides from `config`.
pub(crate) fn apply_limits<'t>(
    config: &gatehouse_config::Config,
    tenants: impl Iterator<Item = &'t TenantBudget>,
) {
    let limits = &config.limits.plugins;
    NODE_MEMORY_MAX.store(limits.memory, Ordering::Relaxed);
    for tenant in tenants {
        let own = config
            .tenant_plugin_budgets
            .iter()
            .find(|(t, _)| **t == *tenant.name)
            .map(|(_, b)| b);
        tenant.set_limits(limits, own.and_then(|o| o.cpu), own.and_then(|o| o.memory));
    }
}

/// Linear memory of every plugin instance on this node.
pub fn node_memory_used() -> usize {
    NODE_MEMORY.load(Ordering::Relaxed)
}

/// What one request's hook calls may still use, all of them together.
#[derive(Debug)]
pub struct RequestBudget {
    cpu_left_ns: AtomicU64,
    log_left: AtomicUsize,
    counter_ops_left: AtomicU32,
}

impl RequestBudget {
    /// A request's budget under `limits`.
    pub fn new(limits: &PluginLimits) -> Self {
        RequestBudget {
            cpu_left_ns: AtomicU64::new(limits.request_cpu.as_nanos() as u64),
            log_left: AtomicUsize::new(limits.request_log_bytes),
            counter_ops_left: AtomicU32::new(COUNTER_OPS_PER_REQUEST),
        }
    }

    /// CPU time the request's next call may use.
    pub fn cpu_left(&self) -> Duration {
        Duration::from_nanos(self.cpu_left_ns.load(Ordering::Relaxed))
    }

    /// Records CPU a call used.
    pub fn spend_cpu(&self, used: Duration) {
        let used = used.as_nanos() as u64;
        let _ = self
            .cpu_left_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(used))
            });
    }

    /// Log bytes the request may still write.
    pub fn log_left(&self) -> usize {
        self.log_left.load(Ordering::Relaxed)
    }

    /// Takes `bytes` of the request's log budget, or nothing when it has fewer left.
    pub fn take_log(&self, bytes: usize) -> bool {
        self.log_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    /// Takes one `counter-add`, or refuses once the request made its share.
    pub fn take_counter_op(&self) -> bool {
        self.counter_ops_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

impl Default for RequestBudget {
    fn default() -> Self {
        RequestBudget::new(&PluginLimits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    #[test]
    fn a_cpu_bucket_allows_its_rate_and_one_second_of_burst() {
        let g = Gcra::default();
        g.set_rate(250 * MS); // 250 ms of CPU per second
        let t0 = 10 * S;
        // 250 ms of CPU in one go fits the burst (1 s of the rate)...
        g.charge(250 * MS, t0);
        assert_eq!(g.over(t0), None);
        // ...a second 250 ms puts the tenant 1 s ahead: over, for 1 s.
        g.charge(250 * MS, t0);
        assert_eq!(g.over(t0), Some(Duration::from_secs(1)));
        assert_eq!(g.over(t0 + S / 2), Some(Duration::from_millis(500)));
        assert_eq!(g.over(t0 + S), None);
    }

    #[test]
    fn try_spend_refuses_what_would_go_over_and_takes_nothing() {
        let g = Gcra::default();
        g.set_rate(1000); // bytes per second
        let t0 = 5 * S;
        assert!(g.try_spend(1000, t0), "one second's worth: the burst");
        assert!(!g.try_spend(1, t0), "nothing more now");
        assert!(
            g.try_spend(500, t0 + S / 2),
            "half a second later, half of it"
        );
        assert!(!g.try_spend(1, t0 + S / 2));
        assert!(!g.try_spend(2000, t0 + 10 * S), "more than a burst, ever");
        assert!(g.try_spend(1000, t0 + 10 * S), "a refusal took nothing");
    }

    #[test]
    fn rate_zero_is_unlimited() {
        let g = Gcra::default();
        g.charge(u64::MAX, S);
        assert_eq!(g.over(S), None);
        assert!(g.try_spend(u64::MAX, S));
    }

    #[test]
    fn a_tenant_gets_one_lane_per_core_of_its_cpu_budget() {
        assert_eq!(lanes_for(Duration::from_millis(250)), 1);
        assert_eq!(lanes_for(Duration::from_secs(1)), 1);
        assert_eq!(lanes_for(Duration::from_millis(1500)), 2);
        assert_eq!(lanes_for(Duration::from_secs(64)), 64);
    }

    #[tokio::test]
    async fn lanes_bound_the_calls_that_run_at_once() {
        let a = Arc::new(TenantBudget::new("budget-test-lanes"));
        let soon = Instant::now() + Duration::from_millis(20);
        let first = a.lane(soon).await.expect("the default budget has one lane");
        assert!(
            a.lane(soon).await.is_none(),
            "the second waits, then gives up"
        );
        drop(first);
        assert!(a.lane(soon).await.is_some());
        // Two cores' worth: two lanes.
        let limits = PluginLimits {
            tenant_cpu: Duration::from_secs(2),
            ..PluginLimits::default()
        };
        a.set_limits(&limits, None, None);
        let later = Instant::now() + Duration::from_millis(20);
        let (x, y) = (a.lane(later).await, a.lane(later).await);
        assert!(x.is_some() && y.is_some());
        // Back to one while both are in use: one is forgotten on its return.
        a.set_limits(&PluginLimits::default(), None, None);
        drop((x, y));
        let later = Instant::now() + Duration::from_millis(20);
        let (x, y) = (a.lane(later).await, a.lane(later).await);
        assert!(x.is_some() && y.is_none());
    }

    #[test]
    fn memory_is_bounded_per_tenant_and_per_node() {
        let a = TenantBudget::new("budget-test-a");
        let limits = PluginLimits {
            tenant_memory: 64 << 20,
            ..PluginLimits::default()
        };
        a.set_limits(&limits, None, None);
        assert!(a.reserve_memory(40 << 20));
        assert!(!a.reserve_memory(30 << 20), "over the tenant's 64 MiB");
        assert_eq!(a.memory_used(), 40 << 20, "a refusal takes nothing");
        assert!(a.reserve_memory(24 << 20));
        a.release_memory(64 << 20);
        assert_eq!(a.memory_used(), 0);
    }

    #[test]
    fn kept_instances_take_at_most_half_the_memory_budget() {
        let a = TenantBudget::new("budget-test-keep");
        let limits = PluginLimits {
            tenant_memory: 64 << 20,
            ..PluginLimits::default()
        };
        a.set_limits(&limits, None, None);
        assert!(a.try_keep(30 << 20));
        assert!(!a.try_keep(4 << 20));
        a.unkeep(30 << 20);
        assert!(a.try_keep(4 << 20));
    }

    #[test]
    fn running_calls_are_capped_per_tenant() {
        let a = Arc::new(TenantBudget::new("budget-test-running"));
        let now = Instant::now();
        let held: Vec<_> = (0..RUNNING_PER_TENANT)
            .map(|_| a.admit(now).expect("under the cap"))
            .collect();
        assert_eq!(a.admit(now).unwrap_err().0, Shed::Concurrency);
        drop(held);
        assert!(a.admit(now).is_ok());
    }

    #[test]
    fn a_tenant_over_its_cpu_is_refused_with_the_wait() {
        let a = Arc::new(TenantBudget::new("budget-test-cpu"));
        let now = Instant::now();
        a.cpu.charge(2 * S, now_ns(now));
        let (why, wait) = a.admit(now).unwrap_err();
        assert_eq!(why, Shed::Cpu);
        assert!(wait > Duration::from_secs(5), "{wait:?}");
    }

    #[test]
    fn a_request_budget_is_shared_by_its_calls() {
        let limits = PluginLimits {
            request_cpu: Duration::from_millis(10),
            request_log_bytes: 100,
            ..PluginLimits::default()
        };
        let r = RequestBudget::new(&limits);
        r.spend_cpu(Duration::from_millis(4));
        r.spend_cpu(Duration::from_millis(4));
        assert_eq!(r.cpu_left(), Duration::from_millis(2));
        r.spend_cpu(Duration::from_millis(4));
        assert_eq!(r.cpu_left(), Duration::ZERO);
        assert!(r.take_log(60));
        assert!(!r.take_log(60));
        assert!(r.take_log(40));
    }

    #[test]
    fn counter_names_are_capped_per_tenant_across_plugins() {
        let a = TenantBudget::new("budget-test-counters");
        for i in 0..COUNTER_NAMES_PER_TENANT {
            assert!(a.counter_name_allowed(&format!("p{}", i % 3), &format!("n{i}")));
        }
        assert!(!a.counter_name_allowed("p9", "new"));
        assert!(
            a.counter_name_allowed("p0", "n0"),
            "existing names stay usable"
        );
    }
}
