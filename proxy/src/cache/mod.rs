//! HTTP caching at the edge (RFC 9111), per tenant.
//!
//! [`storage`] is the object store Pingora's cache machinery reads and
//! writes: in memory, bounded in bytes per tenant, purgeable by key, URL
//! prefix, tag, host and tenant. The request path (cacheability, keys,
//! `Cache-Status`) builds on it.

pub mod storage;

pub use storage::{EdgeStorage, ShardUsage, StoreLimits};
