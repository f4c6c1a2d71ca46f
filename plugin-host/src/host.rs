//! The host side of the `gatehouse:plugin/host` imports, on the per-call store.
//!
//! Every import is bounded: log lines are cut and budgeted per call, counter
//! names are capped per plugin, key-value sizes and TTLs are capped, and the
//! tenant is always the plugin's own (taken from the loaded plugin, never from
//! the guest). Nothing here can trap: misuse gets a WIT-level answer.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits};

use crate::bindings::gatehouse::plugin::host::{self, KvError, Level};
use crate::bindings::gatehouse::plugin::types;
use crate::call::Properties;
use crate::deadline::CallClock;
use crate::kv::{KvRefused, KvStore};
use crate::runtime::CompiledPlugin;

/// Longest log line; longer ones are cut (at a character boundary).
pub const MAX_LOG_LINE: usize = 1024;
/// Longest rate-limit key a plugin may set; longer ones are cut.
pub const MAX_RATE_LIMIT_KEY: usize = 256;
/// Log bytes one hook call may write; later lines are dropped and counted.
pub const LOG_BUDGET_PER_CALL: usize = 8 * 1024;

/// State of one store: one plugin's instance for one request.
pub struct HostState {
    limits: StoreLimits,
    /// The limiter refused a memory growth (classifies a later trap as out of memory).
    pub memory_denied: bool,
    plugin: Arc<CompiledPlugin>,
    config: Arc<str>,
    props: Arc<Properties>,
    log_budget: usize,
    /// The running call's deadline.
    pub(crate) clock: CallClock,
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
            plugin,
            config,
            props,
            log_budget: LOG_BUDGET_PER_CALL,
            clock: CallClock::start(Duration::ZERO),
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

    /// Starts a hook call allowed `timeout` of CPU: per-call budgets, failure
    /// flags and the deadline start afresh.
    pub fn begin_call(&mut self, timeout: Duration) {
        self.memory_denied = false;
        self.log_budget = LOG_BUDGET_PER_CALL;
        self.clock = CallClock::start(timeout);
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_denied = true;
        }
        Ok(allowed)
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
        if line.len() > self.log_budget {
            self.plugin.metrics.log_dropped.inc();
            self.log_budget = 0;
            return;
        }
        self.log_budget -= line.len();
        let p = &self.plugin;
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
