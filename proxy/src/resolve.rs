//! Pool targets given by name, resolved at run time (as Envoy's STRICT_DNS
//! clusters are): each name is resolved before the snapshot that brings it is
//! swapped in, then again whenever its answer expires (its TTL, bounded by
//! `upstream_dns.min_ttl` and `max_ttl`). A failed resolution keeps the last
//! good answer and retries after `min_ttl`; a name that never resolved leaves
//! its target without an address, which is simply down (never selected,
//! `gatehouse_upstream_healthy` 0). A name that does not resolve is never a
//! config error, so it cannot stop anyone's config from loading.
//!
//! Every answer passes the target's [`AddressGuard`] first, when it has one
//! (pools a control plane published): addresses it refuses are dropped, so a
//! name cannot rebind to the node's own services after it was accepted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_config::model::UpstreamDns;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolveHosts, ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use tokio::task::JoinHandle;

use crate::metrics::metrics;
use crate::snapshot::Snapshot;
use crate::upstream::TargetState;

use crate::target_policy::AddressGuard;

/// How long a new snapshot waits for its new names before it is swapped in
/// anyway (their targets are down until they resolve).
const PRIME_DEADLINE: Duration = Duration::from_secs(2);

/// Owns the resolver and the refresh task of every target given by name.
#[derive(Default)]
pub struct TargetResolver {
    tasks: Mutex<Vec<JoinHandle<()>>>,
    resolver: Mutex<Option<(UpstreamDns, Arc<TokioResolver>)>>,
}

/// One target to resolve.
#[derive(Clone)]
struct Name {
    host: String,
    port: u16,
    state: Arc<TargetState>,
    guard: Option<Arc<AddressGuard>>,
}

impl TargetResolver {
    /// The resolver for `settings`, made again when they changed.
    fn resolver(&self, settings: &UpstreamDns) -> Result<Arc<TokioResolver>, String> {
        let mut cached = self.resolver.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, r)) = &*cached {
            if s == settings {
                return Ok(r.clone());
            }
        }
        let mut builder = if settings.nameservers.is_empty() {
            let mut b = TokioResolver::builder_tokio()
                .map_err(|e| format!("no system DNS configuration: {e}"))?;
            b.options_mut().use_hosts_file = ResolveHosts::Always;
            b
        } else {
            let mut servers = NameServerConfigGroup::new();
            for a in &settings.nameservers {
                servers.merge(NameServerConfigGroup::from_ips_clear(
                    &[a.ip()],
                    a.port(),
                    true,
                ));
            }
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioConnectionProvider::default(),
            );
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts = builder.options_mut();
        // One family: a dual-stack name must not alternate between an IPv4
        // origin and an IPv6 address nothing listens on.
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        opts.positive_min_ttl = Some(settings.min_ttl);
        opts.positive_max_ttl = Some(settings.max_ttl);
        opts.negative_min_ttl = Some(settings.min_ttl);
        opts.negative_max_ttl = Some(settings.min_ttl);
        opts.timeout = Duration::from_secs(2);
        let resolver = Arc::new(builder.build());
        *cached = Some((settings.clone(), resolver.clone()));
        Ok(resolver)
    }

    /// The targets of `snapshot` given by name.
    fn names(snapshot: &Snapshot) -> Vec<Name> {
        let mut out = Vec::new();
        for pool in &snapshot.pools {
            for t in &pool.targets {
                if t.config.addr.is_none() {
                    out.push(Name {
                        host: t.config.host.clone(),
                        port: t.config.port,
                        state: t.state.clone(),
                        guard: pool.guard.clone(),
                    });
                }
            }
        }
        out
    }

    /// Resolves the names of `snapshot` that have no address yet, together,
    /// for at most [`PRIME_DEADLINE`]: called before the snapshot is swapped
    /// in, so a newly published pool serves from its first request.
    pub async fn prime(&self, snapshot: &Snapshot) {
        let pending: Vec<Name> = Self::names(snapshot)
            .into_iter()
            .filter(|n| !n.state.has_address())
            .collect();
        if pending.is_empty() {
            return;
        }
        let Ok(resolver) = self.resolver(&snapshot.config.upstream_dns) else {
            return;
        };
        let all = futures_util::future::join_all(pending.iter().map(|n| resolve(&resolver, n)));
        let _ = tokio::time::timeout(PRIME_DEADLINE, all).await;
    }

    /// Stops the refresh tasks of the previous snapshot and starts those of
    /// `snapshot`. Must be called from within a Tokio runtime.
    pub fn restart(&self, snapshot: &Snapshot) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for t in tasks.drain(..) {
            t.abort();
        }
        let names = Self::names(snapshot);
        if names.is_empty() {
            return;
        }
        let settings = snapshot.config.upstream_dns.clone();
        let resolver = match self.resolver(&settings) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "upstream targets given by name cannot be resolved");
                return;
            }
        };
        for name in names {
            tasks.push(tokio::spawn(refresh_loop(
                resolver.clone(),
                name,
                settings.clone(),
            )));
        }
    }
}

impl Drop for TargetResolver {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

/// Why a resolution gave no usable address.
enum Failure {
    /// No answer (NXDOMAIN, no records, timeout, server failure).
    Dns(String),
    /// Only addresses the target's guard refuses.
    Refused(Vec<std::net::IpAddr>),
}

/// Resolves `name` once; on success stores the usable addresses in its
/// state and returns how long the answer is valid.
async fn resolve(resolver: &TokioResolver, name: &Name) -> Result<Duration, Failure> {
    let answer = resolver
        .lookup_ip(name.host.as_str())
        .await
        .map_err(|e| Failure::Dns(e.to_string()))?;
    let valid_for = answer
        .valid_until()
        .saturating_duration_since(std::time::Instant::now());
    let mut usable = Vec::new();
    let mut refused = Vec::new();
    for ip in answer.iter() {
        let addr = std::net::SocketAddr::new(ip, name.port);
        match &name.guard {
            Some(g) if !g.allows(addr) => refused.push(ip),
            _ => usable.push(addr),
        }
    }
    if usable.is_empty() {
        return Err(if refused.is_empty() {
            Failure::Dns("no address".into())
        } else {
            Failure::Refused(refused)
        });
    }
    name.state.set_addresses(usable);
    Ok(valid_for)
}

async fn refresh_loop(resolver: Arc<TokioResolver>, name: Name, settings: UpstreamDns) {
    let mut failing = false;
    loop {
        let wait = match resolve(&resolver, &name).await {
            Ok(valid_for) => {
                if failing {
                    let (pool, target) = name.state.names();
                    tracing::info!(pool, target, "upstream target resolves again");
                }
                failing = false;
                valid_for.clamp(settings.min_ttl, settings.max_ttl)
            }
            Err(failure) => {
                let (pool, target) = name.state.names();
                let (reason, detail) = match &failure {
                    Failure::Dns(e) => ("dns", e.clone()),
                    Failure::Refused(ips) => (
                        "refused",
                        format!("every address is refused for tenant targets: {ips:?}"),
                    ),
                };
                metrics()
                    .upstream_resolution_failures
                    .with_label_values(&[pool, reason])
                    .inc();
                // Once per failing streak: a dead name must not flood the log.
                if !failing {
                    tracing::warn!(
                        pool,
                        target,
                        error = %detail,
                        kept = name.state.has_address(),
                        "upstream target does not resolve; the last good answer is kept"
                    );
                }
                failing = true;
                settings.min_ttl
            }
        };
        tokio::time::sleep(wait).await;
    }
}
