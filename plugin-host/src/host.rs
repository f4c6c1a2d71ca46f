//! The host side of the `gatehouse:plugin/host` imports, on the per-call store.
//!
//! Every import is bounded: log lines are cut and budgeted per request and
//! per tenant, counter names are capped per plugin and per tenant and
//! `counter-add` calls per request, key-value sizes and TTLs are capped, and
//! the tenant is always the plugin's own (taken from the loaded plugin, never
//! from the guest). Nothing here can trap: misuse gets a WIT-level answer.
//!
//! The store state also carries the running call's limits: its [`Meter`] and
//! [`Deadline`], checked by [`HostState::on_tick`] at every epoch tick, and
//! the memory it holds against its tenant's budget (the store's limiter).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, StoreLimits, Trap, UpdateDeadline};

use crate::bindings::gatehouse::plugin::host::{self, KvError, Level};
use crate::bindings::gatehouse::plugin::types;
use crate::budget::{now_ns, Lane, TenantBudget, INSTANCE_FLOOR};
use crate::call::Properties;
use crate::deadline::{thread_cpu_time, Deadline, Meter};
use crate::kv::{KvRefused, KvStore};
use crate::runtime::{CompiledPlugin, EPOCH_TICK};

/// Longest log line; longer ones are cut (at a character boundary).
pub const MAX_LOG_LINE: usize = 1024;
/// Longest rate-limit key a plugin may set; longer ones are cut.
pub const MAX_RATE_LIMIT_KEY: usize = 256;

/// Why the running call was stopped at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// It used its CPU deadline (the binding's `timeout`).
    Deadline,
    /// It used what was left of its request's CPU budget.
    RequestCpu,
    /// It ran past its wall-clock cap: starved of CPU (the node is busy).
    WallCap,
    /// It outlived a tick and none of its tenant's lanes came free in time.
    NoLane,
    /// Its tenant went over its CPU budget.
    TenantCpu,
}

/// State of one store: one plugin's instance for one request.
pub struct HostState {
    limits: StoreLimits,
    /// The limiter refused a memory growth (classifies a later trap as out of memory).
    pub memory_denied: bool,
    /// The growth was refused by the tenant's or node's budget, not the binding's cap.
    pub budget_denied: bool,
    plugin: Arc<CompiledPlugin>,
    config: Arc<str>,
    props: Arc<Properties>,
    /// Memory charged to the tenant's budget for this instance.
    memory_charged: usize,
    /// The running call's CPU, measured per poll.
    pub(crate) meter: Arc<Meter>,
    /// The running call's deadline.
    pub(crate) deadline: Deadline,
    /// CPU of the running call already charged to the tenant.
    charged: Duration,
    /// Why a tick stopped the running call, if one did.
    pub(crate) stopped: Option<Stopped>,
    /// The tenant's lane the running call holds once it outlived a tick
    /// (filled by the yield that waited for it), and whether it asked.
    lane: Arc<std::sync::Mutex<Option<Lane>>>,
    lane_asked: bool,
    /// The request's headers, lent to the store for the duration of a call.
    pub(crate) request_headers: Vec<types::Header>,
    /// The response's headers, lent for `on-response` calls.
    pub(crate) response_headers: Vec<types::Header>,
    /// What the running call set with `rate-limit-key`.
    pub(crate) rate_limit_key: Option<String>,
}

impl HostState {
    pub fn new(
        plugin: Arc<CompiledPlugin>,
        config: Arc<str>,
        props: Arc<Properties>,
        memory_limit: usize,
    ) -> Self {
        HostState {
            limits: wasmtime::StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .instances(crate::runtime::MAX_CORE_INSTANCES as usize)
                .tables(crate::runtime::MAX_TABLES as usize)
                .memories(1)
                .table_elements(20_000)
                .build(),
            memory_denied: false,
            budget_denied: false,
            plugin,
            config,
            props,
            memory_charged: 0,
            meter: Arc::new(Meter::default()),
            deadline: Deadline::start(Duration::ZERO, false),
            charged: Duration::ZERO,
            stopped: None,
            lane: Arc::default(),
            lane_asked: false,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            rate_limit_key: None,
        }
    }
}

impl HostState {
    /// Name of the plugin this store runs.
    pub fn plugin_name(&self) -> &str {
        &self.plugin.name
    }

    /// Starts a hook call with its deadline: failure flags and the meter
    /// start afresh.
    pub(crate) fn begin_call(&mut self, deadline: Deadline) {
        self.memory_denied = false;
        self.budget_denied = false;
        self.stopped = None;
        self.meter.reset();
        self.charged = Duration::ZERO;
        self.deadline = deadline;
        self.release_lane();
    }

    /// Charges the tenant for the CPU the call used since the last charge.
    fn charge_tenant(&mut self, used: Duration) {
        let new = used.saturating_sub(self.charged);
        if !new.is_zero() {
            self.charged = used;
            let now = now_ns(Instant::now());
            self.plugin.budget.cpu.charge(new.as_nanos() as u64, now);
        }
    }

    /// Ends a call: charges the rest of its CPU to the tenant and the
    /// request; returns the CPU it used.
    pub(crate) fn end_call(&mut self) -> Duration {
        self.release_lane();
        let used = self.meter.total();
        self.charge_tenant(used);
        self.props.budget.spend_cpu(used);
        used
    }

    /// What a call must do now: `Some(why)` to stop, `None` to go on.
    /// Charges the tenant for the CPU used so far.
    fn check(&mut self, now: Instant) -> Option<Stopped> {
        let used = self.meter.used(thread_cpu_time);
        self.charge_tenant(used);
        if used >= self.deadline.cpu {
            return Some(if self.deadline.from_request {
                Stopped::RequestCpu
            } else {
                Stopped::Deadline
            });
        }
        if now >= self.deadline.wall_cap {
            return Some(Stopped::WallCap);
        }
        if self.plugin.budget.cpu.over(now_ns(now)).is_some() {
            return Some(Stopped::TenantCpu);
        }
        None
    }

    /// Gives the call a lane taken before it started.
    pub(crate) fn hold_lane(&mut self, lane: Lane) {
        self.lane_asked = true;
        *self.lane.lock().unwrap_or_else(|p| p.into_inner()) = Some(lane);
    }

    fn release_lane(&mut self) {
        self.lane_asked = false;
        self.lane.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// What a call does at a tick: stop, or yield (its first yield waits
    /// for one of its tenant's lanes: only calls that outlive a tick take
    /// one, so short calls never wait).
    fn at_tick(&mut self, now: Instant) -> Result<Option<(Arc<TenantBudget>, Instant)>, Stopped> {
        if let Some(why) = self.check(now) {
            return Err(why);
        }
        if self
            .lane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return Ok(None);
        }
        if self.lane_asked {
            return Err(Stopped::NoLane);
        }
        self.lane_asked = true;
        // Its next calls take a lane before they start.
        self.plugin.mark_long();
        Ok(Some((self.plugin.budget.clone(), self.deadline.wall_cap)))
    }

    /// An epoch tick reached the running call: stop it if it used its
    /// deadline or its tenant is over budget, else yield the worker thread
    /// to the runtime until the next tick. A call therefore never holds a
    /// worker thread for more than one tick at a time.
    pub(crate) fn on_tick(&mut self) -> UpdateDeadline {
        match self.at_tick(Instant::now()) {
            Err(why) => {
                self.stopped = Some(why);
                UpdateDeadline::Interrupt
            }
            Ok(None) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())),
            Ok(Some((tenant, until))) => {
                let slot = self.lane.clone();
                UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(async move {
                        let lane = tenant.lane(until).await;
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = lane;
                    }),
                )
            }
        }
    }

    /// The same at the start of every import (ticks are only noticed in
    /// guest code): once the current turn has lasted a tick, stop or yield.
    async fn checkpoint(&mut self) -> wasmtime::Result<()> {
        let now = Instant::now();
        if !self.meter.turn_longer_than(now, EPOCH_TICK) {
            return Ok(());
        }
        match self.at_tick(now) {
            Err(why) => {
                self.stopped = Some(why);
                Err(Trap::Interrupt.into())
            }
            Ok(None) => {
                tokio::task::yield_now().await;
                Ok(())
            }
            Ok(Some((tenant, until))) => {
                let lane = tenant.lane(until).await;
                *self.lane.lock().unwrap_or_else(|p| p.into_inner()) = lane;
                Ok(())
            }
        }
    }

    /// Takes `bytes` more memory for this instance from the tenant's budget,
    /// charging at least [`INSTANCE_FLOOR`] for the instance.
    fn charge_memory(&mut self, total: usize) -> bool {
        let wanted = total.max(INSTANCE_FLOOR);
        if wanted <= self.memory_charged {
            return true;
        }
        let more = wanted - self.memory_charged;
        if !self.plugin.budget.reserve_memory(more) {
            return false;
        }
        self.memory_charged = wanted;
        true
    }

    /// Memory this instance holds against its tenant's budget.
    pub(crate) fn memory_charged(&self) -> usize {
        self.memory_charged
    }

    /// Charges the instance's floor before it is created; `false` when the
    /// tenant's (or the node's) budget has no room for another instance.
    pub(crate) fn reserve_instance(&mut self) -> bool {
        self.charge_memory(0)
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        self.plugin.budget.release_memory(self.memory_charged);
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if !self.limits.memory_growing(current, desired, maximum)? {
            self.memory_denied = true;
            return Ok(false);
        }
        if !self.charge_memory(desired) {
            self.memory_denied = true;
            self.budget_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl types::Host for HostState {}

/// Log bytes a line costs: what reaches the log, where control characters
/// are written as six-byte escapes (`\u0000`).
fn log_cost(line: &str) -> usize {
    line.len() + 5 * line.bytes().filter(|b| b.is_ascii_control()).count()
}

// Every import starts at a checkpoint: epoch ticks are only seen in guest
// code, so a guest calling imports back to back would otherwise hold the
// worker thread for as long as it liked.
impl host::Host for HostState {
    async fn request_headers(&mut self) -> wasmtime::Result<Vec<types::Header>> {
        self.checkpoint().await?;
        Ok(self.request_headers.clone())
    }

    async fn response_headers(&mut self) -> wasmtime::Result<Vec<types::Header>> {
        self.checkpoint().await?;
        Ok(self.response_headers.clone())
    }

    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.checkpoint().await?;
        let line = cut(&message, MAX_LOG_LINE);
        let p = &self.plugin;
        // A flood goes on long after the budget is spent: refuse it before
        // looking at the line.
        if self.props.budget.log_left() < line.len() {
            p.metrics.log_dropped.inc();
            return Ok(());
        }
        let cost = log_cost(line);
        // The request's share first: a refused line takes nothing from the tenant's.
        let fits = self.props.budget.take_log(cost)
            && p.budget.log.try_spend(cost as u64, now_ns(Instant::now()));
        if !fits {
            p.metrics.log_dropped.inc();
            return Ok(());
        }
        let request_id = self.props.request_id.as_str();
        match level {
            Level::Debug => {
                tracing::debug!(target: "gatehouse::plugin", tenant = %p.tenant, plugin = %p.name, request_id, "{line}")
            }
            Level::Info => {
                tracing::info!(target: "gatehouse::plugin", tenant = %p.tenant, plugin = %p.name, request_id, "{line}")
            }
            Level::Warn => {
                tracing::warn!(target: "gatehouse::plugin", tenant = %p.tenant, plugin = %p.name, request_id, "{line}")
            }
            Level::Error => {
                tracing::error!(target: "gatehouse::plugin", tenant = %p.tenant, plugin = %p.name, request_id, "{line}")
            }
        }
        Ok(())
    }

    async fn config(&mut self) -> wasmtime::Result<String> {
        self.checkpoint().await?;
        Ok(self.config.to_string())
    }

    async fn property(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        self.checkpoint().await?;
        Ok(self.props.get(&name, &self.plugin.name))
    }

    async fn counter_add(&mut self, name: String, delta: u64) -> wasmtime::Result<()> {
        self.checkpoint().await?;
        if self.props.budget.take_counter_op() {
            if let Some(c) = self.plugin.counter(&name) {
                c.inc_by(delta);
            }
        }
        Ok(())
    }

    async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.checkpoint().await?;
        Ok(KvStore::global()
            .get(&self.plugin.tenant, &key)
            .map(|v| v.to_vec()))
    }

    async fn kv_set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: u32,
    ) -> wasmtime::Result<Result<(), KvError>> {
        self.checkpoint().await?;
        Ok(KvStore::global()
            .set(
                &self.plugin.tenant,
                &key,
                &value,
                Duration::from_millis(u64::from(ttl_ms)),
            )
            .map_err(|KvRefused::TooLarge| KvError::TooLarge))
    }

    async fn kv_delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.checkpoint().await?;
        KvStore::global().delete(&self.plugin.tenant, &key);
        Ok(())
    }

    async fn rate_limit_key(&mut self, key: String) -> wasmtime::Result<()> {
        self.checkpoint().await?;
        self.rate_limit_key = Some(cut(&key, MAX_RATE_LIMIT_KEY).to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("abc", 2), "ab");
        assert_eq!(cut("aé", 2), "a");
    }
}
