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

use wasmtime::{ResourceLimiter, StoreLimits, UpdateDeadline};

use crate::bindings::gatehouse::plugin::host::{self, KvError, Level};
use crate::bindings::gatehouse::plugin::types;
use crate::budget::{now_ns, INSTANCE_FLOOR};
use crate::call::Properties;
use crate::deadline::{thread_cpu_time, Deadline, Meter};
use crate::kv::{KvRefused, KvStore};
use crate::runtime::CompiledPlugin;

/// Longest log line; longer ones are cut (at a character boundary).
pub const MAX_LOG_LINE: usize = 1024;
/// Longest rate-limit key a plugin may set; longer ones are cut.
pub const MAX_RATE_LIMIT_KEY: usize = 256;

/// Why the running call was stopped at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// It used its CPU deadline (or its wall cap).
    Deadline,
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
                .instances(64)
                .tables(64)
                .memories(4)
                .table_elements(100_000)
                .build(),
            memory_denied: false,
            budget_denied: false,
            plugin,
            config,
            props,
            memory_charged: 0,
            meter: Arc::new(Meter::default()),
            deadline: Deadline::start(Duration::ZERO),
            charged: Duration::ZERO,
            stopped: None,
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

    /// Starts a hook call allowed `cpu` of CPU time: failure flags, the meter
    /// and the deadline start afresh.
    pub(crate) fn begin_call(&mut self, cpu: Duration) {
        self.memory_denied = false;
        self.budget_denied = false;
        self.stopped = None;
        self.meter.reset();
        self.charged = Duration::ZERO;
        self.deadline = Deadline::start(cpu);
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
        let used = self.meter.total();
        self.charge_tenant(used);
        self.props.budget.spend_cpu(used);
        used
    }

    /// An epoch tick reached the running call: stop it if it used its
    /// deadline or its tenant is over budget, else yield the worker thread
    /// to the runtime until the next tick. A call therefore never holds a
    /// worker thread for more than one tick at a time.
    pub(crate) fn on_tick(&mut self) -> UpdateDeadline {
        let now = Instant::now();
        let used = self.meter.used(now, thread_cpu_time);
        self.charge_tenant(used);
        if used >= self.deadline.cpu || now >= self.deadline.wall_cap {
            self.stopped = Some(Stopped::Deadline);
            return UpdateDeadline::Interrupt;
        }
        if self.plugin.budget.cpu.over(now_ns(now)).is_some() {
            self.stopped = Some(Stopped::TenantCpu);
            return UpdateDeadline::Interrupt;
        }
        UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
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

fn cut(s: &str, max: usize) -> &str {
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

impl host::Host for HostState {
    fn request_headers(&mut self) -> Vec<types::Header> {
        self.request_headers.clone()
    }

    fn response_headers(&mut self) -> Vec<types::Header> {
        self.response_headers.clone()
    }

    fn log(&mut self, level: Level, message: String) {
        let line = cut(&message, MAX_LOG_LINE);
        let p = &self.plugin;
        // The request's share first: a refused line takes nothing from the tenant's.
        let fits = self.props.budget.take_log(line.len())
            && p.budget
                .log
                .try_spend(line.len() as u64, now_ns(Instant::now()));
        if !fits {
            p.metrics.log_dropped.inc();
            return;
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
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }

    fn property(&mut self, name: String) -> Option<String> {
        self.props.get(&name, &self.plugin.name)
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        if !self.props.budget.take_counter_op() {
            return;
        }
        if let Some(c) = self.plugin.counter(&name) {
            c.inc_by(delta);
        }
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        KvStore::global()
            .get(&self.plugin.tenant, &key)
            .map(|v| v.to_vec())
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_ms: u32) -> Result<(), KvError> {
        KvStore::global()
            .set(
                &self.plugin.tenant,
                &key,
                &value,
                Duration::from_millis(u64::from(ttl_ms)),
            )
            .map_err(|KvRefused::TooLarge| KvError::TooLarge)
    }

    fn kv_delete(&mut self, key: String) {
        KvStore::global().delete(&self.plugin.tenant, &key)
    }

    fn rate_limit_key(&mut self, key: String) {
        self.rate_limit_key = Some(cut(&key, MAX_RATE_LIMIT_KEY).to_string());
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
