//! Running one hook of one plugin binding: an instance, limits, a typed outcome.
//!
//! Each request gets a fresh instance per binding, created by its first hook
//! from the plugin's `InstancePre`. When the caps in `hold` allow, the
//! instance is kept in the request's [`Instance`] slot for `on-response`, so a
//! request pays for one instantiation; otherwise `on-response` gets a fresh
//! instance of its own. Either way nothing survives the request.
//!
//! The call is synchronous on the worker thread: epoch interruption stops it
//! once it has used its deadline in CPU time (see `deadline`), the store's
//! limiter caps its memory, and the pooling allocator makes the fresh instance
//! cheap. Whatever happens inside, the caller gets either the guest's decision
//! or a [`Failure`] saying whose fault it was and what status a fail-closed
//! binding answers with.

use std::sync::Arc;
use std::time::Instant;

use gatehouse_config::model::PluginBinding;
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::bindings::gatehouse::plugin::types::{
    Header, RequestDecision, RequestLine, ResponseDecision,
};
use crate::bindings::Policy;
use crate::deadline::{thread_cpu_time, CallClock};
use crate::decision::{check_request, check_response, RequestOutcome, ResponseOutcome};
use crate::hold::Held;
use crate::host::HostState;
use crate::runtime::{runtime, CompiledPlugin, HOLD_CAPS};

/// Which hook ran (the discriminant indexes the per-plugin metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `on-request`.
    Request = 0,
    /// `on-response`.
    Response = 1,
}

/// Why a plugin call produced no usable decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The call ran past its deadline and was interrupted.
    Timeout,
    /// The plugin tried to grow its memory past the binding's cap.
    OutOfMemory,
    /// The plugin trapped (panic, unreachable, stack overflow, ...).
    Trap(String),
    /// The plugin returned a decision the proxy cannot apply.
    InvalidDecision(String),
    /// The plugin failed repeatedly and is skipped for a cooldown.
    CircuitOpen,
    /// No instance could be created (e.g. the instance pool is exhausted).
    Unavailable(String),
}

impl Failure {
    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::OutOfMemory => "out_of_memory",
            Failure::Trap(_) => "trap",
            Failure::InvalidDecision(_) => "invalid_decision",
            Failure::CircuitOpen => "circuit_open",
            Failure::Unavailable(_) => "unavailable",
        }
    }

    /// Status a fail-closed binding answers with, unless it sets its own:
    /// 503 when the plugin could not answer in time or at all, 500 when it broke.
    pub fn default_status(&self) -> u16 {
        match self {
            Failure::Timeout | Failure::CircuitOpen | Failure::Unavailable(_) => 503,
            Failure::OutOfMemory | Failure::Trap(_) | Failure::InvalidDecision(_) => 500,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Trap(m) | Failure::InvalidDecision(m) | Failure::Unavailable(m) => {
                write!(f, "{}: {m}", self.kind())
            }
            _ => f.write_str(self.kind()),
        }
    }
}

/// Request properties plugins can ask for through `host.property`.
#[derive(Debug, Default)]
pub struct Properties {
    /// Request id.
    pub request_id: String,
    /// Client IP.
    pub client_ip: String,
    /// TLS server name.
    pub tls_sni: Option<String>,
    /// Negotiated TLS version.
    pub tls_version: Option<String>,
    /// `HTTP/1.1` or `HTTP/2`.
    pub http_version: &'static str,
    /// Matched domain (configured host pattern).
    pub domain: Arc<str>,
    /// Matched route path.
    pub route: String,
    /// Route's pool.
    pub pool: Option<String>,
    /// Tenant.
    pub tenant: Arc<str>,
}

impl Properties {
    pub(crate) fn get(&self, name: &str, plugin: &str) -> Option<String> {
        match name {
            "request-id" => Some(self.request_id.clone()),
            "client-ip" => Some(self.client_ip.clone()),
            "tls-sni" => self.tls_sni.clone(),
            "tls-version" => self.tls_version.clone(),
            "http-version" => Some(self.http_version.to_string()),
            "domain" => Some(self.domain.to_string()),
            "route" => Some(self.route.clone()),
            "pool" => self.pool.clone(),
            "tenant" => Some(self.tenant.to_string()),
            "plugin" => Some(plugin.to_string()),
            // No clock import: plugins that check expiries read the proxy's.
            "unix-time-ms" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis().to_string()),
            _ => None,
        }
    }
}

/// A request as a plugin chain sees it: the line every hook receives, and
/// the headers plugins fetch when they ask, as edited by the chain so far.
#[derive(Debug, Clone)]
pub struct RequestView {
    /// Method, scheme, authority, path.
    pub line: RequestLine,
    /// Header fields, in order.
    pub headers: Vec<Header>,
}

/// A response head as `on-response` plugins see it.
#[derive(Debug, Clone)]
pub struct ResponseView {
    /// Status code.
    pub status: u16,
    /// Header fields, in order, as edited by the plugins so far.
    pub headers: Vec<Header>,
}

/// Header lists a call lends its store, taken back when the call ends.
/// The call's rate-limit key (`on-request` only) comes back the same way.
struct Lent<'a> {
    request: &'a mut Vec<Header>,
    response: Option<&'a mut Vec<Header>>,
    rate_limit_key: Option<&'a mut Option<String>>,
}

impl Lent<'_> {
    /// Swaps the lists with the store's: the first swap lends, the second returns.
    fn swap(&mut self, state: &mut HostState) {
        std::mem::swap(self.request, &mut state.request_headers);
        if let Some(r) = self.response.as_deref_mut() {
            std::mem::swap(r, &mut state.response_headers);
        }
        if let Some(k) = self.rate_limit_key.as_deref_mut() {
            std::mem::swap(k, &mut state.rate_limit_key);
        }
    }
}

/// One binding's instance, kept between the hooks of one request.
pub struct Instance {
    store: Store<HostState>,
    policy: Policy,
    /// The instance's place under the keep caps, released with it.
    held: Held,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.store.data().plugin_name())
            .finish_non_exhaustive()
    }
}

/// One binding, ready to run its hooks for one request.
pub struct PluginCall<'a> {
    /// The loaded plugin.
    pub plugin: &'a Arc<CompiledPlugin>,
    /// The binding's settings.
    pub binding: &'a PluginBinding,
    /// The request's properties.
    pub props: &'a Arc<Properties>,
}

impl PluginCall<'_> {
    /// Runs `on-request` and checks its decision; `pool_of_tenant` resolves
    /// a pool hint among the plugin's tenant's pools. The instance is left in
    /// `slot` for `on-response` when it may be kept.
    pub fn on_request(
        &self,
        slot: &mut Option<Instance>,
        request: &mut RequestView,
        pool_of_tenant: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<RequestOutcome, Failure> {
        let RequestView { line, headers } = request;
        let mut key = None;
        let lent = Lent {
            request: headers,
            response: None,
            rate_limit_key: Some(&mut key),
        };
        let mut outcome = self.run(
            Hook::Request,
            slot,
            lent,
            |store, policy| {
                policy
                    .gatehouse_plugin_handler()
                    .call_on_request(store, line)
            },
            |d: RequestDecision| check_request(d, pool_of_tenant),
        )?;
        if let RequestOutcome::Continue(edits) = &mut outcome {
            edits.rate_limit_key = key;
        }
        Ok(outcome)
    }

    /// Runs `on-response` (in the instance `on-request` left in `slot`, or a
    /// fresh one) and checks its decision. The instance is released after.
    pub fn on_response(
        &self,
        slot: &mut Option<Instance>,
        request: &mut RequestView,
        response: &mut ResponseView,
    ) -> Result<ResponseOutcome, Failure> {
        let RequestView { line, headers } = request;
        let status = response.status;
        let lent = Lent {
            request: headers,
            response: Some(&mut response.headers),
            rate_limit_key: None,
        };
        self.run(
            Hook::Response,
            slot,
            lent,
            |store, policy| {
                policy
                    .gatehouse_plugin_handler()
                    .call_on_response(store, line, status)
            },
            |d: ResponseDecision| check_response(d),
        )
    }

    /// One call: breaker, instance, the hook, the decision check, then
    /// metrics and breaker bookkeeping for whatever the outcome was.
    fn run<R, O>(
        &self,
        hook: Hook,
        slot: &mut Option<Instance>,
        lent: Lent<'_>,
        f: impl FnOnce(&mut Store<HostState>, &Policy) -> wasmtime::Result<R>,
        check: impl FnOnce(R) -> Result<O, Failure>,
    ) -> Result<O, Failure> {
        let plugin = self.plugin;
        let started = Instant::now();
        let result = if !plugin.breaker.allow() {
            *slot = None;
            Err(Failure::CircuitOpen)
        } else {
            self.call(slot, hook == Hook::Request, lent, f)
                .and_then(check)
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        plugin
            .metrics
            .record(hook as usize, outcome, started.elapsed());
        match &result {
            Ok(_) => plugin.breaker.success(plugin),
            Err(Failure::CircuitOpen) => {}
            Err(e) => plugin.breaker.failure(plugin, &e.to_string()),
        }
        result
    }

    /// Calls `f` in the instance from `slot` or a fresh one. With `keep`,
    /// a fresh instance goes back into `slot` afterwards if the caps allow;
    /// an instance whose call failed is always dropped (a trap can leave it
    /// inconsistent).
    fn call<R>(
        &self,
        slot: &mut Option<Instance>,
        keep: bool,
        mut lent: Lent<'_>,
        f: impl FnOnce(&mut Store<HostState>, &Policy) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let (mut store, policy, held) = match slot.take() {
            Some(Instance {
                mut store,
                policy,
                held,
            }) => {
                self.arm(&mut store);
                (store, policy, Some(held))
            }
            None => {
                let (store, policy) = self.instantiate()?;
                let held = if keep {
                    let held = Held::try_take(&HOLD_CAPS, &self.plugin.tenant_held);
                    if held.is_none() {
                        self.plugin.metrics.not_kept.inc();
                    }
                    held
                } else {
                    None
                };
                (store, policy, held)
            }
        };
        lent.swap(store.data_mut());
        let result = f(&mut store, &policy);
        lent.swap(store.data_mut());
        match result {
            Ok(v) => {
                if let (true, Some(held)) = (keep, held) {
                    *slot = Some(Instance {
                        store,
                        policy,
                        held,
                    });
                }
                Ok(v)
            }
            Err(e) => Err(classify(&e, store.data().memory_denied)),
        }
    }

    /// A fresh instance with its deadline armed (instantiation counts
    /// against the first call's deadline: it runs guest start code).
    fn instantiate(&self) -> Result<(Store<HostState>, Policy), Failure> {
        let rt = runtime().map_err(Failure::Unavailable)?;
        let state = HostState::new(
            self.plugin.clone(),
            self.binding.config.clone(),
            self.props.clone(),
            self.binding.memory_limit,
        );
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        store.epoch_deadline_callback(|mut cx| {
            Ok(
                match cx.data_mut().clock.on_tick(Instant::now(), thread_cpu_time) {
                    Some(ticks) => UpdateDeadline::Continue(ticks),
                    None => UpdateDeadline::Interrupt,
                },
            )
        });
        self.arm(&mut store);
        match self.plugin.pre.instantiate(&mut store) {
            Ok(policy) => Ok((store, policy)),
            Err(e)
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                Err(Failure::Unavailable(e.to_string()))
            }
            Err(e) => Err(classify(&e, store.data().memory_denied)),
        }
    }

    /// Starts a call's budgets and deadline.
    fn arm(&self, store: &mut Store<HostState>) {
        store.data_mut().begin_call(self.binding.timeout);
        store.set_epoch_deadline(CallClock::FIRST_CHECK);
    }

    /// Decides what a fail-closed binding answers with for `failure`.
    pub fn failure_status(&self, failure: &Failure) -> u16 {
        self.binding
            .failure_status
            .map(|s| s.as_u16())
            .unwrap_or_else(|| failure.default_status())
    }
}

fn classify(e: &wasmtime::Error, memory_denied: bool) -> Failure {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout,
        _ if memory_denied => Failure::OutOfMemory,
        Some(Trap::StackOverflow) => Failure::Trap("stack overflow".into()),
        Some(t) => Failure::Trap(t.to_string()),
        None => Failure::Trap(format!("{e:#}")),
    }
}
