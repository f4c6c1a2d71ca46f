//! Per-request state, one part per concern, shared by the phases.
//!
//! [`RequestCtx`] holds what every stage reads (the snapshot, the template
//! variables, the client, the matched domain, the refusal) and one state per
//! concern that a stage owns: [`WafState`] (the guard's WAF), [`PluginState`]
//! (the guard's plugins), [`CacheState`] (the edge cache) and
//! [`UpstreamState`] (the attempts at the pool).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::cache::CachePolicy;

use super::inspect::WafHold;
use super::refusal::Refusal;
use crate::headers::RequestVars;
use crate::local::LocalResponse;
use crate::plugin::{BoundPlugin, Instance, Properties, RequestEdits, RequestView};
use crate::ratelimit::Advertised;
use crate::route::DomainPolicy;
use crate::snapshot::Snapshot;
use crate::upstream::{Selection, UpstreamPool};

/// Per-request state shared by all phases.
pub struct RequestCtx {
    pub(super) started: Instant,
    /// The one snapshot every phase of this request reads.
    pub(super) snapshot: Option<Arc<Snapshot>>,
    /// Values header templates can reference.
    pub(super) vars: RequestVars,
    /// A background refresh of a stale object (stale-while-revalidate), made
    /// by the cache on behalf of a request that was already admitted: not
    /// admitted, limited or inspected again.
    pub(super) background: bool,
    /// Who sent the request and how.
    pub(super) client: ClientState,
    /// Matched domain (index into the router) and its metrics label.
    pub(super) domain: Option<usize>,
    pub(super) domain_label: Option<Arc<str>>,
    /// Why the request was refused or failed, once it was.
    pub(super) refusal: Option<Refusal>,
    /// Status of a locally generated response.
    pub(super) local_status: Option<u16>,
    /// `RateLimit-Policy` and `RateLimit` values for the response.
    pub(super) rate_limit_headers: Option<Advertised>,
    pub(super) waf: WafState,
    pub(super) plugins: PluginState,
    pub(super) cache: CacheState,
    pub(super) upstream: UpstreamState,
}

/// The client and what it sent before routing.
#[derive(Default)]
pub(super) struct ClientState {
    /// Host (with port) as the client sent it.
    pub raw_host: String,
    /// The connection's peer (the client, or the proxy in front of us).
    pub peer_ip: Option<IpAddr>,
    /// The client, from a trusted proxy's forwarding header or the peer.
    pub addr: Option<IpAddr>,
    /// The request target as received, when path normalisation rewrote it
    /// (the WAF inspects what the client sent).
    pub original_uri: Option<Vec<u8>>,
}

/// The WAF's part of the request.
#[derive(Default)]
pub(super) struct WafState {
    /// A body still to be inspected as it streams in (too big to replay).
    pub hold: Option<WafHold>,
    /// The score and the rules that fired, for the access log.
    pub outcome: Option<(u32, String)>,
    /// The WAF blocked the request: a strike toward bans (`bans.waf_blocks`)
    /// whatever the refusal finally recorded (a fail-closed `on-response`
    /// may replace it).
    pub blocked: bool,
}

/// The plugins' part of the request.
#[derive(Default)]
pub(super) struct PluginState {
    /// The route's plugin chain, once its `on-request` ran.
    pub chain: Option<Arc<[BoundPlugin]>>,
    /// The request as the plugins saw it, and its properties, for `on-response`.
    pub head: Option<(RequestView, Arc<Properties>)>,
    /// Checked `on-request` edits, applied to the upstream request.
    pub edits: RequestEdits,
    /// `on-response` still has to run on the response about to be sent.
    pub response_pending: bool,
    /// Instances kept from `on-request` for `on-response`, one per binding.
    pub instances: Vec<Option<Instance>>,
    /// A response that replaces the upstream's (chosen by `on-response`, or
    /// its fail-closed error), written by `fail_to_proxy` (see `decorate`).
    pub replacement: Option<LocalResponse>,
    /// A plugin replaced the upstream's response (policy, not an error to log).
    pub replaced: bool,
}

/// The edge cache's part of the request.
#[derive(Default)]
pub(super) struct CacheState {
    /// The route's cache policy (routes to a pool only).
    pub policy: Option<Arc<CachePolicy>>,
    /// The bypass rule that kept this request away from the cache.
    pub bypass: Option<&'static str>,
    /// The response was found storable.
    pub stored: bool,
    /// How the cache served the request (metrics and access log).
    pub result: Option<&'static str>,
    /// The query the cache key kept, which is also what the origin gets.
    pub query: Option<String>,
}

/// The attempts at the route's pool.
#[derive(Default)]
pub(super) struct UpstreamState {
    /// Pool of the matched route (or of a plugin's pool hint).
    pub pool: Option<usize>,
    /// Targets already tried for this request (indices into the pool).
    pub tried: Vec<usize>,
    /// This request's position in the pool's rotation, kept across retries.
    pub rotation: Option<usize>,
    /// The current attempt's target, holding its in-flight count.
    pub attempt: Option<Selection>,
    /// Request body bytes received so far (for `limits.max_body_bytes`).
    pub body_bytes: u64,
    /// When the first attempt started, and how long until the response head arrived.
    pub started: Option<Instant>,
    pub response_time: Option<Duration>,
}

impl RequestCtx {
    pub(super) fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            snapshot: None,
            vars: RequestVars::default(),
            background: false,
            client: ClientState::default(),
            domain: None,
            domain_label: None,
            refusal: None,
            local_status: None,
            rate_limit_headers: None,
            waf: WafState::default(),
            plugins: PluginState::default(),
            cache: CacheState::default(),
            upstream: UpstreamState::default(),
        }
    }

    pub(super) fn pool<'s>(&self, snap: &'s Snapshot) -> Option<&'s UpstreamPool> {
        self.upstream.pool.map(|i| &snap.pools[i])
    }

    pub(super) fn domain_policy<'s>(&self, snap: &'s Snapshot) -> Option<&'s DomainPolicy> {
        self.domain.and_then(|i| snap.router.domain(i))
    }

    /// Records why the request is refused (a later stage's reason replaces
    /// an earlier one: the response sent is the later stage's).
    pub(super) fn refuse(&mut self, refusal: Refusal) -> &Refusal {
        self.refusal.insert(refusal)
    }
}
