//! Running one hook of one plugin binding: an instance, limits, a typed outcome.
//!
//! Each request gets a fresh instance per binding, created by its first hook
//! from the plugin's `InstancePre`. When the caps in `hold` allow, the
//! instance is kept in the request's [`Instance`] slot for `on-response`, so a
//! request pays for one instantiation; otherwise `on-response` gets a fresh
//! instance of its own. Either way nothing survives the request.
//!
//! A call is a future (wasmtime's async support: the guest runs on a fiber
//! stack of its own). At every epoch tick it either stops (its CPU deadline,
//! the smaller of the binding's and what is left of the request's budget, is
//! used, or its tenant went over its CPU budget) or yields the worker thread
//! back to the runtime, so no call holds a worker thread for more than one
//! tick at a time and other requests run in between (see `host::on_tick`).
//! Before it starts, the tenant's budgets admit it or it is shed
//! ([`Failure::Overloaded`]). The store's limiter caps its memory per binding
//! and per tenant. Whatever happens inside, the caller gets either the guest's
//! decision or a [`Failure`] saying whose fault it was and what status a
//! fail-closed binding answers with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::model::PluginBinding;
use wasmtime::{Store, Trap};

use crate::bindings::gatehouse::plugin::types::{
    Header, RequestDecision, RequestLine, ResponseDecision,
};
use crate::bindings::Policy;
use crate::budget::{Lane, RequestBudget, Shed};
use crate::deadline::{metered, Deadline};
use crate::decision::{check_request, check_response, RequestOutcome, ResponseOutcome};
use crate::hold::Held;
use crate::host::{HostState, Stopped};
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
    /// The tenant is over a plugin budget: the call was not run (or was
    /// stopped) so that other tenants' requests do not wait behind it.
    Overloaded {
        /// Which budget.
        shed: Shed,
        /// When to try again, in whole seconds (for `Retry-After`).
        retry_after: u32,
    },
    /// The request's hooks used all the CPU one request may use.
    RequestCpu,
    /// The call ran past its wall-clock cap without using its CPU time: the
    /// node is too busy to run it (not the plugin's fault).
    Starved,
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
            Failure::Overloaded { .. } => "overloaded",
            Failure::RequestCpu => "request_cpu",
            Failure::Starved => "starved",
        }
    }

    /// Status a fail-closed binding answers with, unless it sets its own:
    /// 503 when the plugin could not answer in time or at all, 500 when it broke.
    pub fn default_status(&self) -> u16 {
        match self {
            Failure::Timeout
            | Failure::CircuitOpen
            | Failure::Unavailable(_)
            | Failure::Overloaded { .. }
            | Failure::RequestCpu
            | Failure::Starved => 503,
            Failure::OutOfMemory | Failure::Trap(_) | Failure::InvalidDecision(_) => 500,
        }
    }
}

impl Failure {
    /// Whether the plugin itself caused this failure (what the breaker counts).
    pub fn is_plugins_fault(&self) -> bool {
        matches!(
            self,
            Failure::Timeout
                | Failure::OutOfMemory
                | Failure::Trap(_)
                | Failure::InvalidDecision(_)
        )
    }

    /// Whether the hook ran at all (calls that did not are not logged one by one).
    pub fn ran(&self) -> bool {
        !matches!(
            self,
            Failure::CircuitOpen | Failure::Overloaded { .. } | Failure::RequestCpu
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Trap(m) | Failure::InvalidDecision(m) | Failure::Unavailable(m) => {
                write!(f, "{}: {m}", self.kind())
            }
            Failure::Overloaded { shed, .. } => {
                write!(
                    f,
                    "{}: tenant over its plugin {} budget",
                    self.kind(),
                    shed.label()
                )
            }
            _ => f.write_str(self.kind()),
        }
    }
}

/// One request as its plugin calls share it: the properties plugins can ask
/// for through `host.property`, and what its calls may still use.
#[derive(Debug, Default)]
pub struct Properties {
    /// CPU, log and counter budgets of all the request's calls together.
    pub budget: RequestBudget,
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

/// Bytes one import call (or a hook's result) may lift from the guest.
const HOSTCALL_FUEL: usize = 2 << 20;
/// Longest failure text kept for logs (trap messages can carry guest-chosen names).
const MAX_FAILURE_TEXT: usize = 256;

/// A hook and its arguments.
enum HookCall<'a> {
    Request(&'a RequestLine),
    Response(&'a RequestLine, u16),
}

/// What a hook returned.
enum HookResult {
    Request(RequestDecision),
    Response(ResponseDecision),
}

impl PluginCall<'_> {
    /// Runs `on-request` and checks its decision; `pool_of_tenant` resolves
    /// a pool hint among the plugin's tenant's pools. The instance is left in
    /// `slot` for `on-response` when it may be kept.
    pub async fn on_request(
        &self,
        slot: &mut Option<Instance>,
        request: &mut RequestView,
        pool_of_tenant: &(dyn Fn(&str) -> Option<usize> + Sync),
    ) -> Result<RequestOutcome, Failure> {
        let RequestView { line, headers } = request;
        let mut key = None;
        let lent = Lent {
            request: headers,
            response: None,
            rate_limit_key: Some(&mut key),
        };
        let result = self
            .run(Hook::Request, slot, lent, HookCall::Request(line))
            .await;
        let mut outcome = self.settle(Hook::Request, result, |r| match r {
            HookResult::Request(d) => check_request(d, pool_of_tenant),
            HookResult::Response(_) => unreachable!("on-request returns a request decision"),
        })?;
        if let RequestOutcome::Continue(edits) = &mut outcome {
            edits.rate_limit_key = key;
        }
        Ok(outcome)
    }

    /// Runs `on-response` (in the instance `on-request` left in `slot`, or a
    /// fresh one) and checks its decision. The instance is released after.
    pub async fn on_response(
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
        let result = self
            .run(Hook::Response, slot, lent, HookCall::Response(line, status))
            .await;
        self.settle(Hook::Response, result, |r| match r {
            HookResult::Response(d) => check_response(d),
            HookResult::Request(_) => unreachable!("on-response returns a response decision"),
        })
    }

    /// Checks a hook's result, then does the metrics and breaker
    /// bookkeeping for whatever the outcome was.
    fn settle<O>(
        &self,
        hook: Hook,
        result: (Result<HookResult, Failure>, Duration),
        check: impl FnOnce(HookResult) -> Result<O, Failure>,
    ) -> Result<O, Failure> {
        let plugin = self.plugin;
        let (result, elapsed) = result;
        let result = result.and_then(check);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        plugin.metrics.record(hook as usize, outcome, elapsed);
        match &result {
            Ok(_) => plugin.breaker.success(plugin),
            // Calls that did not run, or were stopped for reasons that are
            // not the plugin's (its tenant's budgets, its request's budget,
            // a busy node), say nothing about the plugin.
            Err(e) if !e.is_plugins_fault() => {}
            Err(e) => plugin.breaker.failure(plugin, &e.to_string()),
        }
        result
    }

    /// One call: breaker, the tenant's and the request's budgets, then the
    /// hook in the instance from `slot` or a fresh one. Returns the result
    /// and the call's wall time.
    async fn run(
        &self,
        hook: Hook,
        slot: &mut Option<Instance>,
        lent: Lent<'_>,
        args: HookCall<'_>,
    ) -> (Result<HookResult, Failure>, Duration) {
        let started = Instant::now();
        let plugin = self.plugin;
        if !plugin.breaker.allow() {
            *slot = None;
            return (Err(Failure::CircuitOpen), started.elapsed());
        }
        let running = match plugin.budget.admit(started) {
            Ok(r) => r,
            Err((shed, wait)) => {
                *slot = None;
                return (Err(self.shed(shed, wait)), started.elapsed());
            }
        };
        let left = self.props.budget.cpu_left();
        if left.is_zero() {
            *slot = None;
            return (Err(Failure::RequestCpu), started.elapsed());
        }
        let deadline = Deadline::start(self.binding.timeout.min(left), left < self.binding.timeout);
        // A plugin whose calls outlive a tick takes one of its tenant's lanes
        // before it starts (others take one at their first tick, see
        // `host`): waiting costs no CPU, and the wall cap bounds the wait.
        let lane = if plugin.is_long() {
            match plugin.budget.lane(deadline.wall_cap).await {
                Some(lane) => Some(lane),
                None => {
                    *slot = None;
                    let shed = self.shed(Shed::Concurrency, Duration::ZERO);
                    return (Err(shed), started.elapsed());
                }
            }
        } else {
            None
        };
        let result = self
            .call(slot, hook == Hook::Request, lent, deadline, lane, args)
            .await;
        drop(running);
        (result, started.elapsed())
    }

    /// Counts a shed call; the failure it ends with (not logged: a flood
    /// would log a line per request).
    fn shed(&self, shed: Shed, wait: Duration) -> Failure {
        self.plugin.budget.count_shed(shed);
        let retry_after = u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX);
        Failure::Overloaded { shed, retry_after }
    }

    /// Calls the hook in the instance from `slot` or a fresh one, until
    /// `deadline`. With `keep`, the instance goes back into `slot`
    /// afterwards if the caps allow; an instance whose call failed is always
    /// dropped (a trap can leave it inconsistent).
    async fn call(
        &self,
        slot: &mut Option<Instance>,
        keep: bool,
        mut lent: Lent<'_>,
        deadline: Deadline,
        lane: Option<Lane>,
        args: HookCall<'_>,
    ) -> Result<HookResult, Failure> {
        let (mut store, policy, held) = match slot.take() {
            Some(Instance {
                mut store,
                policy,
                held,
            }) => {
                store.data_mut().begin_call(deadline);
                (store, Some(policy), Some(held))
            }
            None => (self.new_store(deadline)?, None, None),
        };
        if let Some(lane) = lane {
            store.data_mut().hold_lane(lane);
        }
        let meter = store.data().meter.clone();
        lent.swap(store.data_mut());
        let result = metered(&meter, async {
            let policy = match policy {
                Some(p) => p,
                None => self.plugin.pre.instantiate_async(&mut store).await?,
            };
            let handler = policy.gatehouse_plugin_handler();
            let result = match args {
                HookCall::Request(line) => handler
                    .call_on_request(&mut store, line)
                    .await
                    .map(HookResult::Request),
                HookCall::Response(line, status) => handler
                    .call_on_response(&mut store, line, status)
                    .await
                    .map(HookResult::Response),
            };
            result.map(|r| (r, policy))
        })
        .await;
        lent.swap(store.data_mut());
        store.data_mut().end_call();
        let outcome = match result {
            Ok((r, policy)) => {
                let held = if keep {
                    held.or_else(|| self.hold(&store))
                } else {
                    None
                };
                if let Some(held) = held {
                    *slot = Some(Instance {
                        store,
                        policy,
                        held,
                    });
                    return Ok(r);
                }
                Ok(r)
            }
            Err(e) => Err(self.classify(&e, store.data())),
        };
        self.release(store);
        outcome
    }

    /// Drops a store the request is done with, charging the tenant for it:
    /// resetting an instance's slot (zeroing what it dirtied, decommitting
    /// the rest) is work the instance caused.
    fn release(&self, store: Store<HostState>) {
        let started = Instant::now();
        drop(store);
        let spent = started.elapsed().as_nanos() as u64;
        self.plugin
            .budget
            .cpu
            .charge(spent, crate::budget::now_ns(Instant::now()));
    }

    /// A place under the keep caps for a fresh instance, if they allow.
    fn hold(&self, store: &Store<HostState>) -> Option<Held> {
        let bytes = store.data().memory_charged();
        let held = Held::try_take(&HOLD_CAPS, &self.plugin.budget, bytes);
        if held.is_none() {
            self.plugin.metrics.not_kept.inc();
        }
        held
    }

    /// A store for a fresh instance, its floor charged to the tenant's memory
    /// budget and its first call armed (instantiation counts against the
    /// first call: it runs guest start code).
    fn new_store(&self, deadline: Deadline) -> Result<Store<HostState>, Failure> {
        let rt = runtime().map_err(Failure::Unavailable)?;
        let mut state = HostState::new(
            self.plugin.clone(),
            self.binding.config.clone(),
            self.props.clone(),
            self.binding.memory_limit,
        );
        if !state.reserve_instance() {
            return Err(self.shed(Shed::Memory, Duration::ZERO));
        }
        state.begin_call(deadline);
        let mut store = Store::new(&rt.engine, state);
        // What one import may lift from the guest (an argument, a decision):
        // the largest legitimate one is a 1 MiB local response body.
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        store.epoch_deadline_callback(|mut cx| Ok(cx.data_mut().on_tick()));
        store.set_epoch_deadline(1);
        Ok(store)
    }

    /// Decides what a fail-closed binding answers with for `failure`.
    pub fn failure_status(&self, failure: &Failure) -> u16 {
        if let Failure::Overloaded { .. } = failure {
            // An overload signal, whatever the binding's own status.
            return 503;
        }
        self.binding
            .failure_status
            .map(|s| s.as_u16())
            .unwrap_or_else(|| failure.default_status())
    }

    /// What went wrong in a call that returned an error.
    fn classify(&self, e: &wasmtime::Error, state: &HostState) -> Failure {
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return Failure::Unavailable(e.to_string());
        }
        match state.stopped {
            Some(Stopped::TenantCpu) => {
                let now = crate::budget::now_ns(Instant::now());
                let wait = self.plugin.budget.cpu.over(now).unwrap_or_default();
                return self.shed(Shed::Cpu, wait);
            }
            Some(Stopped::RequestCpu) => return Failure::RequestCpu,
            Some(Stopped::WallCap) => return Failure::Starved,
            // Its tenant's lanes stayed busy with its other long calls.
            Some(Stopped::NoLane) => return self.shed(Shed::Concurrency, Duration::ZERO),
            Some(Stopped::Deadline) | None => {}
        }
        if state.budget_denied {
            // Its tenant's (or the node's) memory is in use by other
            // instances: shed like CPU, not a failure of this plugin.
            return self.shed(Shed::Memory, Duration::ZERO);
        }
        classify(e, state.memory_denied)
    }
}

fn classify(e: &wasmtime::Error, memory_denied: bool) -> Failure {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout,
        _ if memory_denied => Failure::OutOfMemory,
        Some(Trap::StackOverflow) => Failure::Trap("stack overflow".into()),
        Some(t) => Failure::Trap(t.to_string()),
        None => Failure::Trap(bounded(&format!("{e}"))),
    }
}

/// `text` cut to [`MAX_FAILURE_TEXT`] bytes, control characters replaced:
/// it reaches the log and the access log.
fn bounded(text: &str) -> String {
    crate::host::cut(text, MAX_FAILURE_TEXT)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_text_is_bounded_and_single_line() {
        let long = format!("bad\n{}", "é".repeat(1000));
        let t = bounded(&long);
        assert!(t.len() <= MAX_FAILURE_TEXT);
        assert!(!t.contains('\n'));
        assert!(t.starts_with("bad "));
    }

    #[test]
    fn only_the_plugins_own_failures_count_against_it() {
        assert!(Failure::Timeout.is_plugins_fault());
        assert!(Failure::Trap("x".into()).is_plugins_fault());
        for f in [
            Failure::CircuitOpen,
            Failure::RequestCpu,
            Failure::Starved,
            Failure::Unavailable("pool".into()),
            Failure::Overloaded {
                shed: Shed::Memory,
                retry_after: 1,
            },
        ] {
            assert!(!f.is_plugins_fault(), "{f}");
        }
    }
}
