//! The plugin host's Prometheus metrics, by tenant and plugin.
//!
//! The host owns its metric families; the data plane registers
//! [`collectors`] in its registry and serves them. Each loaded plugin resolves
//! its handles once ([`PluginMetrics`]), so a call never looks up labels.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

/// The metric families of every plugin of the process.
pub(crate) struct Families {
    /// Hook calls by tenant, plugin, hook and outcome.
    pub plugin_calls: IntCounterVec,
    /// Hook call duration (instantiation included).
    pub plugin_call_duration: HistogramVec,
    /// Counters plugins maintain through `host.counter-add`.
    pub plugin_counter: IntCounterVec,
    /// Log lines dropped over the per-call budget.
    pub plugin_log_dropped: IntCounterVec,
    /// 1 while a plugin's circuit is open (its bindings answer per failure mode).
    pub plugin_circuit_open: IntGaugeVec,
    /// `on-request` instances not kept for `on-response` because a cap was reached.
    pub plugin_not_kept: IntCounterVec,
    /// Calls not run, or stopped, because the tenant was over a plugin budget.
    pub plugin_shed: IntCounterVec,
}

/// The process-wide families, created on first use.
pub(crate) fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(Families::new)
}

impl Families {
    fn new() -> Self {
        let plugin_calls = IntCounterVec::new(
        Opts::new(
            "gatehouse_plugin_calls_total",
            "Plugin hook calls by outcome (ok, timeout, out_of_memory, trap, invalid_decision, circuit_open, unavailable, overloaded, request_cpu, starved)",
        ),
        &["tenant", "plugin", "hook", "outcome"],
    )
    .expect("static metric definition");
        let plugin_call_duration = HistogramVec::new(
        HistogramOpts::new(
            "gatehouse_plugin_call_duration_seconds",
            "Plugin hook call time, including instantiation when the hook created the request's instance",
        )
        .buckets(vec![
            0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
            0.005, 0.01, 0.025, 0.1,
        ]),
        &["tenant", "plugin", "hook"],
    )
    .expect("static metric definition");
        let plugin_counter = IntCounterVec::new(
            Opts::new(
                "gatehouse_plugin_counter_total",
                "Counters maintained by plugins (host.counter-add)",
            ),
            &["tenant", "plugin", "name"],
        )
        .expect("static metric definition");
        let plugin_log_dropped = IntCounterVec::new(
            Opts::new(
                "gatehouse_plugin_log_dropped_total",
                "Plugin log lines dropped over the request's or the tenant's byte budget",
            ),
            &["tenant", "plugin"],
        )
        .expect("static metric definition");
        let plugin_circuit_open = IntGaugeVec::new(
            Opts::new(
                "gatehouse_plugin_circuit_open",
                "1 while a plugin is skipped after repeated failures",
            ),
            &["tenant", "plugin"],
        )
        .expect("static metric definition");
        let plugin_not_kept = IntCounterVec::new(
        Opts::new(
            "gatehouse_plugin_instances_not_kept_total",
            "Requests whose on-request instance was not kept for on-response because the tenant's or the process's cap on kept instances was reached (on-response then ran in a fresh instance)",
        ),
        &["tenant", "plugin"],
    )
    .expect("static metric definition");
        let plugin_shed = IntCounterVec::new(
        Opts::new(
            "gatehouse_plugin_shed_total",
            "Plugin calls shed (not run, or stopped at a tick) because the tenant was over a plugin budget: cpu, memory or concurrency",
        ),
        &["tenant", "budget"],
    )
    .expect("static metric definition");
        Families {
            plugin_shed,
            plugin_calls,
            plugin_call_duration,
            plugin_counter,
            plugin_log_dropped,
            plugin_circuit_open,
            plugin_not_kept,
        }
    }
}

/// Every collector of the plugin host, for the data plane's registry.
pub fn collectors() -> Vec<Box<dyn Collector>> {
    let f = families();
    vec![
        Box::new(f.plugin_calls.clone()),
        Box::new(f.plugin_call_duration.clone()),
        Box::new(f.plugin_counter.clone()),
        Box::new(f.plugin_log_dropped.clone()),
        Box::new(f.plugin_circuit_open.clone()),
        Box::new(f.plugin_not_kept.clone()),
        Box::new(f.plugin_shed.clone()),
        Box::new(ReadOnScrape::kept_instances()),
        Box::new(ReadOnScrape::instance_memory()),
    ]
}

/// A gauge read from the plugin host's own counters when scraped. The values
/// change on every request; a gauge updated there would cost every request
/// an atomic store nobody reads between scrapes.
struct ReadOnScrape {
    gauge: IntGauge,
    read: fn() -> i64,
}

impl ReadOnScrape {
    fn new(name: &str, help: &str, read: fn() -> i64) -> Self {
        let gauge = IntGauge::new(name, help).expect("static metric definition");
        ReadOnScrape { gauge, read }
    }

    /// `gatehouse_plugin_instances_kept`, from the hold caps.
    fn kept_instances() -> Self {
        ReadOnScrape::new(
            "gatehouse_plugin_instances_kept",
            "Plugin instances kept between a request's on-request and on-response",
            || i64::from(crate::runtime::kept_instances()),
        )
    }

    /// `gatehouse_plugin_memory_bytes`, from the budgets.
    fn instance_memory() -> Self {
        ReadOnScrape::new(
            "gatehouse_plugin_memory_bytes",
            "Linear memory of every plugin instance on the node (running and kept; each charged at least 4 MiB), bounded by limits.plugins.memory_mb",
            || i64::try_from(crate::budget::node_memory_used()).unwrap_or(i64::MAX),
        )
    }
}

impl Collector for ReadOnScrape {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set((self.read)());
        self.gauge.collect()
    }
}

/// Per-plugin metric handles, resolved once at load.
pub(crate) struct PluginMetrics {
    /// Indexed by hook (see `HOOKS`), then outcome (see `OUTCOMES`).
    calls: Vec<[IntCounter; OUTCOMES.len()]>,
    durations: Vec<Histogram>,
    pub log_dropped: IntCounter,
    /// `on-request` instances not kept for `on-response` (a keep cap was reached).
    pub not_kept: IntCounter,
    pub circuit_open: IntGauge,
}

/// Hook labels, indexed by `Hook as usize`.
pub(crate) const HOOKS: [&str; 2] = ["on_request", "on_response"];

/// Outcome labels; `Failure::kind` returns one of these.
pub(crate) const OUTCOMES: [&str; 10] = [
    "ok",
    "timeout",
    "out_of_memory",
    "trap",
    "invalid_decision",
    "circuit_open",
    "unavailable",
    "overloaded",
    "request_cpu",
    "starved",
];

impl PluginMetrics {
    pub(crate) fn new(tenant: &str, plugin: &str) -> Self {
        let m = families();
        PluginMetrics {
            calls: HOOKS
                .iter()
                .map(|hook| {
                    OUTCOMES.map(|outcome| {
                        m.plugin_calls
                            .with_label_values(&[tenant, plugin, hook, outcome])
                    })
                })
                .collect(),
            durations: HOOKS
                .iter()
                .map(|hook| {
                    m.plugin_call_duration
                        .with_label_values(&[tenant, plugin, hook])
                })
                .collect(),
            log_dropped: m.plugin_log_dropped.with_label_values(&[tenant, plugin]),
            not_kept: m.plugin_not_kept.with_label_values(&[tenant, plugin]),
            circuit_open: m.plugin_circuit_open.with_label_values(&[tenant, plugin]),
        }
    }

    pub(crate) fn record(&self, hook: usize, outcome: &str, elapsed: Duration) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.calls[hook][i].inc();
        }
        self.durations[hook].observe(elapsed.as_secs_f64());
    }
}
