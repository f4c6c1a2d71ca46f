//! Config snapshots: the compiled, immutable state every request reads.
//!
//! A [`Snapshot`] bundles the routing table, upstream pools and certificate
//! map built from one validated [`Config`]. It is compiled off the hot path
//! and published with one atomic pointer swap in [`SnapshotStore`]; a request
//! takes an `Arc` to the current snapshot when it starts and keeps using it
//! until it ends, so a reload never changes the config under a request.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_config::{Config, ConfigErrors};

use crate::plugin::{load_plugins, CompiledPlugin};
use crate::route::Router;
use crate::target_policy::AddressGuard;
use crate::tls::{CertGeneration, CertMap};
use crate::upstream::{ca_store, TargetState, UpstreamPool};

/// Everything compiled from one config.
#[derive(Debug)]
pub struct Snapshot {
    /// Sequence number: 1 for the config loaded at start, +1 per applied reload.
    pub version: u64,
    /// The validated config this was compiled from.
    pub config: Arc<Config>,
    /// Host and path routing.
    pub router: Router,
    /// Pools, indexed like `config.pools`.
    pub pools: Vec<UpstreamPool>,
    /// SNI → certificate.
    pub certs: CertMap,
    /// Loaded plugins, indexed like `config.plugins`.
    pub plugins: Vec<Arc<CompiledPlugin>>,
}

impl Snapshot {
    /// Compiles `config`. Target health state is inherited from `previous`
    /// for targets that keep their pool and address. Certificate problems
    /// (unreadable, mismatched key) are returned with their field paths.
    pub fn compile(
        config: Config,
        version: u64,
        previous: Option<&Snapshot>,
        generation: CertGeneration,
    ) -> Result<Self, ConfigErrors> {
        let certs = CertMap::build(&config, generation, previous.map(|p| &p.certs))?;
        let plugins = load_plugins(&config, previous.map_or(&[][..], |p| &p.plugins))?;
        let mut states: HashMap<(String, String), Arc<TargetState>> = HashMap::new();
        if let Some(prev) = previous {
            for p in &prev.pools {
                for t in &p.targets {
                    states.insert(
                        (p.config.name.clone(), t.config.name.clone()),
                        t.state.clone(),
                    );
                }
            }
        }
        let mut errors = ConfigErrors::default();
        let guard = config
            .tenant_targets
            .as_ref()
            .map(|policy| Arc::new(AddressGuard::new(policy, config.listeners.internal)));
        let mut pools = Vec::with_capacity(config.pools.len());
        for (i, p) in config.pools.iter().enumerate() {
            let ca = match p.tls.as_ref().and_then(|t| t.ca.as_deref()) {
                Some(ders) => match ca_store(ders) {
                    Ok(ca) => Some(ca),
                    Err(msg) => {
                        errors.push(format!("pools[{i}].tls.ca_path"), msg);
                        None
                    }
                },
                None => None,
            };
            let pool_guard = guard.clone().filter(|_| p.published);
            pools.push(UpstreamPool::new(p, ca, &states, pool_guard));
        }
        // WAF rule sets are shared between domains (and kept across reloads).
        let wafs: Vec<Option<Arc<crate::waf::Waf>>> = config
            .domains
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let policy = d.waf.clone()?;
                match crate::waf::Waf::new(policy) {
                    Ok(w) => Some(Arc::new(w)),
                    Err(e) => {
                        errors.push(format!("domains[{i}].waf"), e.to_string());
                        None
                    }
                }
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            version,
            router: Router::new(&config, &plugins, &wafs),
            pools,
            certs,
            plugins,
            config: Arc::new(config),
        })
    }
}

/// The current snapshot, swapped atomically on reload.
#[derive(Debug)]
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
}

impl SnapshotStore {
    /// A store serving `initial`.
    pub fn new(initial: Snapshot) -> Self {
        crate::cache::apply_limits(&initial.config);
        SnapshotStore {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The snapshot new requests should use.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Publishes `next`; requests already running keep their snapshot.
    pub fn store(&self, next: Snapshot) {
        crate::cache::apply_limits(&next.config);
        self.current.store(Arc::new(next));
    }
}
