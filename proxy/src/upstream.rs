//! Upstream pools: target selection (load balancing) and per-target health state.
//!
//! A [`UpstreamPool`] is rebuilt with every config snapshot, but each target's
//! [`TargetState`] (health verdict, ejection, in-flight count) is carried over
//! from the previous snapshot when the pool and target keep their names, so a
//! reload neither forgets an ejection nor resets least-connections counts.
//! Active probing lives in [`crate::health`]; passive ejection is recorded
//! here from request outcomes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use gatehouse_config::model::{Algorithm, HashKey, Pool, Target};
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};

use crate::metrics::metrics;
use crate::target_policy::AddressGuard;

/// Milliseconds on a process-local monotonic clock.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Health and load of one upstream target, shared across snapshots.
#[derive(Debug)]
pub struct TargetState {
    pool: String,
    target: String,
    /// Verdict of active probes (true until probes say otherwise).
    probe_up: AtomicBool,
    probe_successes: AtomicU32,
    probe_failures: AtomicU32,
    /// Consecutive failed requests (passive check).
    request_failures: AtomicU32,
    /// Passive ejection end, in [`now_ms`] milliseconds; 0 = not ejected.
    ejected_until: AtomicU64,
    /// Requests currently using this target.
    in_flight: AtomicUsize,
    /// Where to connect: the literal address, or the last good answer for a
    /// name (see [`crate::resolve`]). Empty until a name first resolves: the
    /// target is down until then.
    addresses: ArcSwap<Vec<SocketAddr>>,
    /// Rotation over `addresses`.
    next_address: AtomicUsize,
}

impl TargetState {
    fn new(pool: &str, target: &str, literal: Option<SocketAddr>) -> Self {
        let state = TargetState {
            pool: pool.to_string(),
            target: target.to_string(),
            probe_up: AtomicBool::new(true),
            probe_successes: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            request_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            addresses: ArcSwap::from_pointee(literal.into_iter().collect()),
            next_address: AtomicUsize::new(0),
        };
        state.publish();
        state
    }

    /// Whether the target may receive new requests now.
    pub fn is_available(&self) -> bool {
        self.probe_up.load(Ordering::Relaxed)
            && self.ejected_until.load(Ordering::Relaxed) <= now_ms()
            && self.has_address()
    }

    /// Whether there is an address to connect to (a name resolved at least
    /// once to an address the target may use).
    pub fn has_address(&self) -> bool {
        !self.addresses.load().is_empty()
    }

    /// The address for the next connection: the answers of a name in turn.
    pub fn address(&self) -> Option<SocketAddr> {
        let all = self.addresses.load();
        let n = self.next_address.fetch_add(1, Ordering::Relaxed);
        all.get(n % all.len().max(1)).copied()
    }

    /// Replaces the addresses with a name's new answer (never empty: a
    /// failed resolution keeps the last good answer).
    pub fn set_addresses(&self, mut addresses: Vec<SocketAddr>) {
        addresses.sort();
        addresses.dedup();
        if addresses.is_empty() || **self.addresses.load() == addresses {
            return;
        }
        tracing::info!(pool = %self.pool, target = %self.target, ?addresses, "upstream target resolved");
        self.addresses.store(Arc::new(addresses));
        self.publish();
    }

    /// Sets an IP literal target's address (`None`: refused by the policy).
    fn set_literal(&self, literal: Option<SocketAddr>) {
        let now: Vec<SocketAddr> = literal.into_iter().collect();
        if **self.addresses.load() != now {
            self.addresses.store(Arc::new(now));
            self.publish();
        }
    }

    /// Drops the addresses `keep` refuses (the target may end up with none).
    fn retain_addresses(&self, keep: impl Fn(SocketAddr) -> bool) {
        let now = self.addresses.load();
        let kept: Vec<SocketAddr> = now.iter().copied().filter(|a| keep(*a)).collect();
        if kept.len() != now.len() {
            self.addresses.store(Arc::new(kept));
            self.publish();
        }
    }

    /// The pool and target names (for logs and metrics).
    pub fn names(&self) -> (&str, &str) {
        (&self.pool, &self.target)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn publish(&self) {
        metrics()
            .upstream_healthy
            .with_label_values(&[&self.pool, &self.target])
            .set(i64::from(self.is_available()));
    }

    /// Records an active probe result; flips the verdict after `rise`
    /// consecutive successes or `fall` consecutive failures.
    pub fn record_probe(&self, ok: bool, rise: u32, fall: u32) {
        if ok {
            self.probe_failures.store(0, Ordering::Relaxed);
            let n = self.probe_successes.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= rise && !self.probe_up.swap(true, Ordering::Relaxed) {
                tracing::info!(pool = %self.pool, target = %self.target, "upstream target is healthy again");
            }
        } else {
            self.probe_successes.store(0, Ordering::Relaxed);
            let n = self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= fall && self.probe_up.swap(false, Ordering::Relaxed) {
                tracing::warn!(pool = %self.pool, target = %self.target, "upstream target failed health checks: marked down");
            }
        }
        self.publish();
    }

    /// Forgets active-probe results (the pool no longer probes this target).
    pub fn clear_probe_verdict(&self) {
        self.probe_successes.store(0, Ordering::Relaxed);
        self.probe_failures.store(0, Ordering::Relaxed);
        self.probe_up.store(true, Ordering::Relaxed);
        self.publish();
    }

    /// A request to this target completed without a transport failure.
    pub fn record_success(&self) {
        if self.request_failures.load(Ordering::Relaxed) != 0 {
            self.request_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request to this target failed (connect error, timeout, reset).
    /// Ejects the target after `threshold` consecutive failures.
    pub fn record_failure(&self, threshold: u32, ejection: Duration) {
        if threshold == 0 {
            return;
        }
        let n = self.request_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= threshold {
            self.request_failures.store(0, Ordering::Relaxed);
            self.ejected_until
                .store(now_ms() + ejection.as_millis() as u64, Ordering::Relaxed);
            tracing::warn!(pool = %self.pool, target = %self.target, failures = n, ejection_ms = ejection.as_millis() as u64, "upstream target ejected after consecutive failures");
            self.publish();
        }
    }

    /// Refreshes the exported gauge (ejections expire without an event).
    pub fn refresh_metric(&self) {
        self.publish();
    }
}

/// Counts a request against a target's in-flight load until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<TargetState>);

impl InFlight {
    fn new(state: Arc<TargetState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A target of a compiled pool.
#[derive(Debug)]
pub struct UpstreamTarget {
    /// Validated settings.
    pub config: Target,
    /// Shared health and load.
    pub state: Arc<TargetState>,
}

/// Parses a pool's CA bundle into Pingora's per-peer trust store type.
/// Each certificate is checked first: Pingora's own parser panics on bad DER.
pub fn ca_store(ders: &[Vec<u8>]) -> Result<Arc<CaType>, String> {
    let mut certs = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(der) {
            return Err(format!("CA certificate #{} is not valid X.509: {e}", i + 1));
        }
        certs.push(WrappedX509::new(der.clone(), parse_x509));
    }
    Ok(Arc::from(certs))
}

/// A compiled upstream pool.
#[derive(Debug)]
pub struct UpstreamPool {
    /// Validated settings.
    pub config: Pool,
    /// Trust anchors replacing the system roots, when the pool names a CA bundle.
    ca: Option<Arc<CaType>>,
    /// Keeps this pool's pooled upstream connections apart from every other
    /// pool's. Pingora's connection-reuse key covers address, SNI and the
    /// verify flags but not the CA bundle nor ALPN, so without it a connection
    /// verified against one tenant's CA could be reused for another's pool.
    connection_group: u64,
    /// Targets in config order.
    pub targets: Vec<UpstreamTarget>,
    /// The addresses this pool may use, when it is a published (tenant's)
    /// pool; `None` for the operator's own.
    pub guard: Option<Arc<AddressGuard>>,
    /// Weighted round-robin schedule: target indices, interleaved by weight.
    schedule: Vec<usize>,
    cursor: AtomicUsize,
}

/// Per-request inputs for consistent hashing.
pub struct HashInput<'a> {
    /// Client IP as text.
    pub client_ip: &'a str,
    /// Path and query.
    pub request_uri: &'a str,
    /// Host without port.
    pub host: &'a str,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
}

/// A chosen target for one attempt.
pub struct Selection {
    /// Index in [`UpstreamPool::targets`].
    pub index: usize,
    /// In-flight guard for the attempt.
    pub in_flight: InFlight,
}

impl UpstreamPool {
    /// Compiles `config`, reusing target states from `previous` by (pool,
    /// target) name. An IP literal `guard` refuses leaves its target without
    /// an address (down).
    pub fn new(
        config: &Pool,
        ca: Option<Arc<CaType>>,
        previous: &HashMap<(String, String), Arc<TargetState>>,
        guard: Option<Arc<AddressGuard>>,
    ) -> Self {
        let targets: Vec<UpstreamTarget> = config
            .targets
            .iter()
            .map(|t| {
                let key = (config.name.clone(), t.name.clone());
                let literal = t.addr.filter(|a| match &guard {
                    Some(g) if !g.allows(*a) => {
                        refused_literal(&config.name, &t.name);
                        false
                    }
                    _ => true,
                });
                let state = previous
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(TargetState::new(&config.name, &t.name, literal)));
                // The policy may have changed since the state was made: a
                // literal is judged again, and a name keeps only the
                // addresses of its last answer the policy still allows.
                match (&guard, t.addr) {
                    (_, Some(_)) => state.set_literal(literal),
                    (Some(g), None) => state.retain_addresses(|a| g.allows(a)),
                    (None, None) => {}
                }
                UpstreamTarget {
                    config: t.clone(),
                    state,
                }
            })
            .collect();
        let weights: Vec<u32> = targets.iter().map(|t| t.config.weight).collect();
        let mut group = Vec::new();
        group.extend_from_slice(config.tenant.as_bytes());
        group.push(0);
        group.extend_from_slice(config.name.as_bytes());
        group.push(u8::from(config.http2));
        if let Some(ders) = config.tls.as_ref().and_then(|t| t.ca.as_ref()) {
            for der in ders {
                group.extend_from_slice(der);
            }
        }
        UpstreamPool {
            config: config.clone(),
            guard,
            ca,
            connection_group: fnv1a(&group),
            schedule: smooth_weighted_schedule(&weights),
            cursor: AtomicUsize::new(0),
            targets,
        }
    }

    /// Picks a target for an attempt, skipping `tried` ones. Unavailable
    /// targets are skipped while any other is available; when none is, every
    /// untried target is eligible again (as nginx does) so a wrong health
    /// verdict cannot black-hole a pool.
    ///
    /// `rotation` is the request's position in the round-robin schedule: drawn
    /// on its first attempt and reused by its retries, so one request advances
    /// the schedule once and a dead target does not take every other turn.
    pub fn select(
        &self,
        tried: &[usize],
        rotation: &mut Option<usize>,
        input: &HashInput<'_>,
    ) -> Option<Selection> {
        let start = *rotation.get_or_insert_with(|| self.cursor.fetch_add(1, Ordering::Relaxed));
        let index = self
            .pick(tried, start, input, true)
            .or_else(|| self.pick(tried, start, input, false))?;
        Some(Selection {
            index,
            in_flight: InFlight::new(self.targets[index].state.clone()),
        })
    }

    /// A target without an address (a name that never resolved) is never
    /// eligible, not even when every target is down.
    fn eligible(&self, i: usize, tried: &[usize], healthy_only: bool) -> bool {
        let state = &self.targets[i].state;
        !tried.contains(&i) && state.has_address() && (!healthy_only || state.is_available())
    }

    fn pick(
        &self,
        tried: &[usize],
        start: usize,
        input: &HashInput<'_>,
        healthy_only: bool,
    ) -> Option<usize> {
        match self.config.algorithm {
            Algorithm::RoundRobin => {
                let len = self.schedule.len();
                (0..len)
                    .map(|k| self.schedule[(start + k) % len])
                    .find(|&i| self.eligible(i, tried, healthy_only))
            }
            Algorithm::LeastConnections => {
                // Rotate the starting point so ties spread evenly.
                let n = self.targets.len();
                let mut best: Option<(usize, usize, u32)> = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    if !self.eligible(i, tried, healthy_only) {
                        continue;
                    }
                    let load = self.targets[i].state.in_flight();
                    let weight = self.targets[i].config.weight;
                    // Compare load/weight without division: a/wa < b/wb ⇔ a·wb < b·wa.
                    let better = match best {
                        None => true,
                        Some((_, bl, bw)) => {
                            (load as u64) * u64::from(bw) < (bl as u64) * u64::from(weight)
                        }
                    };
                    if better {
                        best = Some((i, load, weight));
                    }
                }
                best.map(|(i, _, _)| i)
            }
            Algorithm::ConsistentHash => {
                let key = match &self.config.hash_key {
                    Some(HashKey::ClientIp) => input.client_ip.as_bytes(),
                    Some(HashKey::RequestUri) => input.request_uri.as_bytes(),
                    Some(HashKey::Host) => input.host.as_bytes(),
                    Some(HashKey::Header(h)) => input
                        .headers
                        .get(h)
                        .map(|v| v.as_bytes())
                        .unwrap_or_default(),
                    None => b"",
                };
                let key_hash = fnv1a(key);
                self.targets
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| self.eligible(*i, tried, healthy_only))
                    .map(|(i, t)| {
                        (
                            i,
                            rendezvous_score(key_hash, &t.config.name, t.config.weight),
                        )
                    })
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(i, _)| i)
            }
        }
    }

    /// Counts a failed attempt: against target `index`'s passive health (when
    /// known) and in `gatehouse_upstream_failures_total{kind}`.
    pub fn record_failure(&self, index: Option<usize>, kind: &str) {
        if let Some(i) = index {
            let passive = &self.config.passive_health;
            self.targets[i]
                .state
                .record_failure(passive.consecutive_failures, passive.ejection_time);
        }
        metrics()
            .upstream_failures
            .with_label_values(&[&self.config.name, kind])
            .inc();
    }

    /// Builds the Pingora peer for target `index` with the pool's TLS,
    /// protocol and timeout settings, to the target's next address (`None`
    /// while it has none).
    pub fn peer(&self, index: usize) -> Option<HttpPeer> {
        let addr = self.targets[index].state.address()?;
        Some(self.peer_at(index, addr))
    }

    /// [`UpstreamPool::peer`] to a given address of the target.
    pub fn peer_at(&self, index: usize, addr: SocketAddr) -> HttpPeer {
        let target = &self.targets[index].config;
        let cfg = &self.config;
        let (tls, sni) = match &cfg.tls {
            Some(t) => (true, t.sni.clone().unwrap_or_else(|| target.host.clone())),
            None => (false, String::new()),
        };
        let mut peer = HttpPeer::new(addr, tls, sni);
        peer.group_key = self.connection_group;
        let o = &mut peer.options;
        o.connection_timeout = Some(cfg.timeouts.connect);
        o.total_connection_timeout = Some(cfg.timeouts.connect);
        o.read_timeout = Some(cfg.timeouts.read);
        o.write_timeout = Some(cfg.timeouts.write);
        o.idle_timeout = Some(cfg.timeouts.idle);
        if let Some(t) = &cfg.tls {
            o.verify_cert = t.verify;
            o.verify_hostname = t.verify;
            o.ca = self.ca.clone();
        }
        // With TLS, ALPN negotiates h2; without TLS, H2-only means h2c prior knowledge.
        o.alpn = if cfg.http2 { ALPN::H2 } else { ALPN::H1 };
        peer
    }
}

/// Logs and counts a published target whose literal address the policy refuses.
fn refused_literal(pool: &str, target: &str) {
    tracing::warn!(
        pool,
        target,
        "upstream target refused: its address is not one tenants' pools may reach"
    );
    metrics()
        .upstream_resolution_failures
        .with_label_values(&[pool, "refused"])
        .inc();
}

/// Smooth weighted round robin (as in nginx), precomputed into a schedule so
/// selection is one atomic increment. Weights are at most 1000 each.
fn smooth_weighted_schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    if total == 0 {
        return (0..weights.len()).collect();
    }
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += i64::from(*w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best);
    }
    out
}

/// FNV-1a: a small, stable hash so every proxy node maps a key the same way.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Weighted rendezvous (highest random weight) score: `-w / ln(u)` with `u`
/// uniform in (0, 1) from the combined hash. Removing a target only remaps
/// the keys that were on it.
fn rendezvous_score(key_hash: u64, target: &str, weight: u32) -> f64 {
    let mut h = key_hash ^ fnv1a(target.as_bytes());
    // splitmix64 finaliser to spread the combined bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name's last answer is judged again by each snapshot's policy: an
    /// address the policy now refuses is no longer used.
    #[test]
    fn a_names_kept_addresses_follow_the_current_policy() {
        let cfg = gatehouse_config::load_str(
            "listeners: { http: \"127.0.0.1:0\" }\ntenants: [{ name: t }]\n\
             pools: [{ name: p, tenant: t, targets: [{ addr: \"app.example.net:80\" }] }]\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let pool = &cfg.pools[0];
        let state = Arc::new(TargetState::new("p", "app.example.net:80", None));
        state.set_addresses(vec![
            "127.0.0.1:80".parse().unwrap(),
            "10.0.0.1:80".parse().unwrap(),
        ]);
        let mut previous = HashMap::new();
        previous.insert(
            ("p".to_string(), "app.example.net:80".to_string()),
            state.clone(),
        );
        let policy = gatehouse_config::model::TargetPolicy::default_policy();
        let guard = Arc::new(AddressGuard::new(&policy, None));
        let _pool = UpstreamPool::new(pool, None, &previous, Some(guard));
        assert_eq!(
            **state.addresses.load(),
            vec!["10.0.0.1:80".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn schedule_respects_weights_and_interleaves() {
        let s = smooth_weighted_schedule(&[5, 1, 1]);
        assert_eq!(s.len(), 7);
        assert_eq!(s.iter().filter(|&&i| i == 0).count(), 5);
        // Smooth: the heavy target never takes more than 3 slots in a row here.
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn rendezvous_is_stable_when_another_target_leaves() {
        let names = ["a:1", "b:1", "c:1"];
        fn pick(names: &[&'static str], key: u64) -> &'static str {
            names
                .iter()
                .map(|n| (*n, rendezvous_score(key, n, 1)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(n, _)| n)
                .unwrap()
        }
        let mut moved = 0;
        for k in 0..1000u64 {
            let key = fnv1a(&k.to_le_bytes());
            let before = pick(&names, key);
            let after = pick(&["a:1", "b:1"], key);
            if before != "c:1" {
                assert_eq!(before, after, "a key not on the removed target moved");
            } else {
                moved += 1;
            }
        }
        assert!((200..500).contains(&moved), "c:1 held {moved} of 1000 keys");
    }
}
