//! What a node knows beyond its snapshot: state that outlives reloads and is
//! shared, explicitly, by the request path, the internal listener and the
//! control-plane follower.
//!
//! One [`NodeState`] is made by `run` and handed to each of them; nothing
//! here is process-wide. What stays process-wide, and why, is listed in
//! ARCHITECTURE.md ("State"): Pingora's `'static` cache store and lock, the
//! metrics registry, the plugin engine, and the interning registries that let
//! a reload keep rate-limit buckets and compiled WAF rule sets.

use crate::acme::Challenges;
use crate::bans::Bans;

/// A node's own state, shared by its services.
#[derive(Default)]
pub struct NodeState {
    /// Strike counters and bans, per domain and client.
    pub bans: Bans,
    /// The ACME HTTP-01 challenges the node answers.
    pub challenges: Challenges,
}
