//! `tenants`: the owners of domains, pools and plugins. Holds the file type
//! and the checks of the section itself ([`names`], [`rate_limits`],
//! [`cache_bytes`], [`plugin_budgets`]); references to tenants are checked by `validate`.

use std::collections::HashSet;

use crate::check::{valid_simple_name, Checker};
use crate::limits::MIN_CACHE_TENANT_BYTES;
use crate::rate_limits::model::RateQuota;

pub mod file {
    //! `tenants[]` as operators write them.

    use serde::{Deserialize, Serialize};

    use crate::rate_limits::file::Quota;

    /// A tenant: the unit of ownership and isolation.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Tenant))]
    #[serde(deny_unknown_fields)]
    pub struct Tenant {
        /// Unique name, `[a-z0-9_-]`, at most 63 characters.
        pub name: String,
        /// A ceiling on all of the tenant's requests together (every domain, every client).
        #[serde(default)]
        pub rate_limit: Option<Quota>,
        /// Bytes of edge cache the tenant's objects may use on each node
        /// (default `limits.cache_tenant_bytes`; at least 65536).
        pub cache_bytes: Option<u64>,
        /// Plugin CPU time the tenant may use per second on each node (default
        /// `limits.plugins.tenant_cpu`; 1ms to 64s).
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "500ms"))]
        pub plugin_cpu: Option<std::time::Duration>,
        /// MiB of linear memory the tenant's plugin instances may use on each node
        /// (default `limits.plugins.tenant_memory_mb`; at least 64).
        pub plugin_memory_mb: Option<u32>,
    }
}

/// Checks each tenant name and that it is defined once; the names.
pub(crate) fn names(tenants: &[file::Tenant], cx: &mut Checker<'_>) -> HashSet<String> {
    let mut out = HashSet::new();
    for (i, t) in tenants.iter().enumerate() {
        let path = format!("tenants[{i}].name");
        if !valid_simple_name(&t.name) {
            cx.err(
                &path,
                format!(
                    "invalid tenant name {:?}: use 1-63 characters of a-z, 0-9, '-' and '_'",
                    t.name
                ),
            );
        }
        if !out.insert(t.name.clone()) {
            cx.err(&path, format!("duplicate tenant {:?}", t.name));
        }
    }
    out
}

/// Tenants' aggregate request ceilings.
pub(crate) fn rate_limits(
    tenants: &[file::Tenant],
    cx: &mut Checker<'_>,
) -> Vec<(String, RateQuota)> {
    tenants
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let q = t.rate_limit.as_ref()?;
            let path = format!("tenants[{i}].rate_limit");
            crate::rate_limits::quota(q.requests, q.per, q.burst, &path, cx)
                .map(|quota| (t.name.clone(), quota))
        })
        .collect()
}

/// Tenants with their own plugin budgets.
pub(crate) fn plugin_budgets(
    tenants: &[file::Tenant],
    cx: &mut Checker<'_>,
) -> Vec<(String, TenantPluginBudget)> {
    tenants
        .iter()
        .enumerate()
        .filter(|(_, t)| t.plugin_cpu.is_some() || t.plugin_memory_mb.is_some())
        .map(|(i, t)| {
            let budget = TenantPluginBudget {
                cpu: crate::limits::tenant_cpu(
                    t.plugin_cpu,
                    &format!("tenants[{i}].plugin_cpu"),
                    cx,
                ),
                memory: crate::limits::memory_mb(
                    t.plugin_memory_mb,
                    &format!("tenants[{i}].plugin_memory_mb"),
                    cx,
                ),
            };
            (t.name.clone(), budget)
        })
        .collect()
}

/// A tenant's own plugin budgets; `None` takes `limits.plugins`'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantPluginBudget {
    /// Plugin CPU per second.
    pub cpu: Option<std::time::Duration>,
    /// Linear memory bytes.
    pub memory: Option<usize>,
}

/// Tenants with their own edge cache quota, in bytes.
pub(crate) fn cache_bytes(tenants: &[file::Tenant], cx: &mut Checker<'_>) -> Vec<(String, u64)> {
    tenants
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let bytes = t.cache_bytes?;
            if bytes < MIN_CACHE_TENANT_BYTES {
                cx.err(
                    format!("tenants[{i}].cache_bytes"),
                    format!("must be at least {MIN_CACHE_TENANT_BYTES}"),
                );
            }
            Some((t.name.clone(), bytes))
        })
        .collect()
}
