//! Prometheus metrics of the data plane, exposed on the internal listener.
//!
//! Label sets are bounded by the config (tenant, configured host pattern,
//! pool, target), never by client input, so a flood of random Host headers
//! cannot grow the registry.
//!
//! A leaf: it defines and renders metrics and calls nothing of the proxy.
//! Counters are incremented by the code that counts; gauges of state owned
//! elsewhere (cache usage, certificate expiry) are set by their owners when
//! `/metrics` is served (see `internal`). The registry is process-wide, as
//! Prometheus registries are: every owner counts into the same exposition.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric Gatehouse exports, registered in one [`Registry`].
pub struct Metrics {
    registry: Registry,
    /// Requests by tenant, domain (configured host pattern) and status class.
    pub requests: IntCounterVec,
    /// Request duration by tenant.
    pub request_duration: HistogramVec,
    /// Upstream target health (1 up, 0 down or ejected) by pool and target.
    pub upstream_healthy: IntGaugeVec,
    /// Upstream failures by pool and kind (connect, timeout, error).
    pub upstream_failures: IntCounterVec,
    /// Failed resolutions of targets given by name, by pool and reason
    /// (`dns`: no answer; `refused`: only addresses the policy refuses).
    pub upstream_resolution_failures: IntCounterVec,
    /// Version (sequence number) of the config currently serving.
    pub config_version: IntGauge,
    /// Successful config reloads.
    pub config_reloads: IntCounter,
    /// Rejected config reloads (the previous config kept serving).
    pub config_reload_failures: IntCounter,
    /// Requests refused by a rate limit.
    pub rate_limited: IntCounterVec,
    /// Clients banned automatically.
    pub bans: IntCounterVec,
    /// WAF rule detections, by family and what was done (`blocked`, `logged`).
    pub waf_detections: IntCounterVec,
    /// Requests the WAF blocked.
    pub waf_blocked: IntCounterVec,
    /// Requests refused because the WAF's held-body budget was full.
    pub waf_busy: IntCounter,
    /// Body bytes the WAF holds for inspection right now.
    pub waf_held_body_bytes: IntGauge,
    /// Connections from PROXY-protocol balancers closed for a missing or bad header.
    pub proxy_protocol_rejected: IntCounter,
    /// Version published by the control plane that this node applied (0: none).
    pub published_version: IntGauge,
    /// Published versions refused (NACKed), by reason.
    pub published_rejected: IntCounterVec,
    /// Failed polls of the control plane (unreachable, refused).
    pub control_plane_poll_failures: IntCounter,
    /// Unix time of the last successful config load.
    pub config_last_success: IntGauge,
    /// Wall time of the last successful reload: read, validate, compile, swap.
    pub config_last_reload_duration: prometheus::Gauge,
    /// Cacheable requests by tenant and result (hit, miss, stale, expired,
    /// revalidated, bypass, uncacheable).
    pub cache_requests: IntCounterVec,
    /// Edge cache usage per tenant (set at scrape): bytes, objects, quota.
    pub cache_bytes: IntGaugeVec,
    pub cache_objects: IntGaugeVec,
    pub cache_quota_bytes: IntGaugeVec,
    /// Objects evicted to stay within the tenant's quota.
    pub cache_evictions: IntCounterVec,
    /// Responses not stored for being larger than `limits.cache_object_bytes`.
    pub cache_too_large: IntCounterVec,
    /// Objects removed by purge requests, by tenant and kind.
    pub cache_purged: IntCounterVec,
    /// Seconds until the certificate a domain's host serves expires (set at scrape).
    pub certificate_expiry: IntGaugeVec,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("gatehouse_requests_total", "HTTP requests served"),
            &["tenant", "domain", "status_class"],
        )
        .expect("static metric definition");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_request_duration_seconds",
                "Time from request head received to response finished",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["tenant"],
        )
        .expect("static metric definition");
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "gatehouse_upstream_healthy",
                "1 when the upstream target is eligible for traffic, 0 when down or ejected",
            ),
            &["pool", "target"],
        )
        .expect("static metric definition");
        let upstream_resolution_failures = IntCounterVec::new(
            Opts::new(
                "gatehouse_upstream_resolution_failures_total",
                "Failed resolutions of upstream targets given by name (the last good answer is kept)",
            ),
            &["pool", "reason"],
        )
        .expect("static metric definition");
        let upstream_failures = IntCounterVec::new(
            Opts::new(
                "gatehouse_upstream_failures_total",
                "Failed upstream attempts by kind",
            ),
            &["pool", "kind"],
        )
        .expect("static metric definition");
        let config_version = IntGauge::new(
            "gatehouse_config_version",
            "Sequence number of the config currently serving",
        )
        .expect("static metric definition");
        let config_reloads =
            IntCounter::new("gatehouse_config_reloads_total", "Config reloads applied")
                .expect("static metric definition");
        let config_reload_failures = IntCounter::new(
            "gatehouse_config_reload_failures_total",
            "Config reloads rejected; the previous config kept serving",
        )
        .expect("static metric definition");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "gatehouse_rate_limited_total",
                "Requests refused (429) by a rate limit",
            ),
            &["tenant", "domain", "limit"],
        )
        .expect("static metric definition");
        let waf_detections = IntCounterVec::new(
            Opts::new(
                "gatehouse_waf_detections_total",
                "WAF rule detections (one per rule per request)",
            ),
            &["tenant", "domain", "family", "action"],
        )
        .expect("static metric definition");
        let waf_blocked = IntCounterVec::new(
            Opts::new(
                "gatehouse_waf_blocked_total",
                "Requests the WAF answered with 403",
            ),
            &["tenant", "domain"],
        )
        .expect("static metric definition");
        let waf_busy = IntCounter::new(
            "gatehouse_waf_busy_total",
            "Requests refused with 503 because limits.waf_held_body_bytes of bodies were already held for inspection",
        )
        .expect("static metric definition");
        let waf_held_body_bytes = IntGauge::new(
            "gatehouse_waf_held_body_bytes",
            "Request body bytes held for WAF inspection right now, over all requests",
        )
        .expect("static metric definition");
        let proxy_protocol_rejected = IntCounter::new(
            "gatehouse_proxy_protocol_rejected_total",
            "Connections from client_ip.proxy_protocol peers closed for a missing or malformed PROXY header",
        )
        .expect("static metric definition");
        let bans = IntCounterVec::new(
            Opts::new(
                "gatehouse_bans_total",
                "Clients banned automatically (bans.after reached)",
            ),
            &["tenant", "domain"],
        )
        .expect("static metric definition");
        let published_version = IntGauge::new(
            "gatehouse_published_version",
            "Version published by the control plane that this node runs (0: none)",
        )
        .expect("static metric definition");
        let published_rejected = IntCounterVec::new(
            Opts::new(
                "gatehouse_published_rejected_total",
                "Published versions this node refused (NACK): invalid, older, empty, fetch",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        let control_plane_poll_failures = IntCounter::new(
            "gatehouse_control_plane_poll_failures_total",
            "Polls of the control plane that failed (the node keeps serving what it has)",
        )
        .expect("static metric definition");
        let config_last_reload_duration = prometheus::Gauge::new(
            "gatehouse_config_last_reload_duration_seconds",
            "Time the last successful reload took from reading the file to the swap",
        )
        .expect("static metric definition");
        let config_last_success = IntGauge::new(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
        )
        .expect("static metric definition");
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "gatehouse_cache_requests_total",
                "Requests on cached routes by result: hit, miss, stale (served stale), expired, revalidated, bypass, uncacheable; refresh counts background refreshes",
            ),
            &["tenant", "result"],
        )
        .expect("static metric definition");
        let cache_gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["tenant"]).expect("static metric definition")
        };
        let cache_bytes = cache_gauge(
            "gatehouse_cache_bytes",
            "Bytes the tenant's cached objects use on this node (bodies, headers, bookkeeping)",
        );
        let cache_objects = cache_gauge(
            "gatehouse_cache_objects",
            "Objects the tenant has cached on this node",
        );
        let cache_quota_bytes = cache_gauge(
            "gatehouse_cache_quota_bytes",
            "The tenant's edge cache quota on this node",
        );
        let cache_counter = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["tenant"])
                .expect("static metric definition")
        };
        let cache_evictions = cache_counter(
            "gatehouse_cache_evictions_total",
            "Objects evicted to keep the tenant within its quota",
        );
        let cache_too_large = cache_counter(
            "gatehouse_cache_too_large_total",
            "Responses not stored for being larger than limits.cache_object_bytes",
        );
        let cache_purged = IntCounterVec::new(
            Opts::new(
                "gatehouse_cache_purged_total",
                "Objects removed by purge requests, by kind (url, prefix, tag, host, tenant)",
            ),
            &["tenant", "kind"],
        )
        .expect("static metric definition");
        let certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "gatehouse_certificate_expiry_seconds",
                "Seconds until the certificate served for a domain's host expires (negative: expired)",
            ),
            &["tenant", "domain"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(certificate_expiry.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cache_requests.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(cache_objects.clone()),
            Box::new(cache_quota_bytes.clone()),
            Box::new(cache_evictions.clone()),
            Box::new(cache_too_large.clone()),
            Box::new(cache_purged.clone()),
            Box::new(requests.clone()),
            Box::new(request_duration.clone()),
            Box::new(upstream_healthy.clone()),
            Box::new(upstream_failures.clone()),
            Box::new(upstream_resolution_failures.clone()),
            Box::new(config_version.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_reload_failures.clone()),
            Box::new(config_last_success.clone()),
            Box::new(config_last_reload_duration.clone()),
            Box::new(rate_limited.clone()),
            Box::new(bans.clone()),
            Box::new(waf_detections.clone()),
            Box::new(waf_blocked.clone()),
            Box::new(proxy_protocol_rejected.clone()),
            Box::new(waf_busy.clone()),
            Box::new(waf_held_body_bytes.clone()),
            Box::new(published_version.clone()),
            Box::new(published_rejected.clone()),
            Box::new(control_plane_poll_failures.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        // The plugin host owns its metric families; they are served here.
        for c in gatehouse_plugin_host::metrics::collectors() {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_healthy,
            upstream_failures,
            upstream_resolution_failures,
            config_version,
            config_reloads,
            config_reload_failures,
            rate_limited,
            bans,
            waf_detections,
            waf_blocked,
            proxy_protocol_rejected,
            waf_busy,
            waf_held_body_bytes,
            published_version,
            published_rejected,
            control_plane_poll_failures,
            config_last_success,
            config_last_reload_duration,
            cache_requests,
            cache_bytes,
            cache_objects,
            cache_quota_bytes,
            cache_evictions,
            cache_too_large,
            cache_purged,
            certificate_expiry,
        }
    }

    /// Renders the registry in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        buf
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// `2xx`-style class of a status code; `0xx` when no response was sent.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "0xx",
    }
}
