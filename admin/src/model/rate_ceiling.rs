//! A tenant's rate ceiling: the platform's cap on all of a tenant's traffic
//! together, stored as one object per tenant whose spec is the config's
//! `gatehouse_config::file::Quota` (rendered as `tenants[].rate_limit`).
//! Imports nothing of this crate.

/// The one object name of this kind per tenant.
pub const NAME: &str = "tenant";
