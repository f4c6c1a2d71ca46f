//! Purging by URL, prefix, tag, host, tenant or everything. Each bumps the
//! shard's generation first, so fills under way do not put back what it
//! removes; all but the tenant-wide ones walk the tenant's shard (an
//! operator action, not a request-path one).

use std::sync::atomic::Ordering;

use pingora::cache::key::HashBinary;

use super::object::Object;
use super::EdgeStorage;

impl EdgeStorage {
    /// Removes the tenant's objects `matches` selects; returns how many.
    fn purge_where(&self, tenant: &str, matches: impl Fn(&Object) -> bool) -> usize {
        let Some(shard) = self.shard(tenant) else {
            return 0;
        };
        shard.generation.fetch_add(1, Ordering::AcqRel);
        let doomed: Vec<HashBinary> = shard
            .objects
            .iter()
            .filter(|(_, o)| matches(o))
            .map(|(k, _)| *k)
            .collect();
        for k in &doomed {
            shard.objects.invalidate(k);
        }
        doomed.len()
    }

    /// Purges the tenant's objects of one URL (`host/path?query`): every
    /// variant (`Vary`, key headers and cookies) of it.
    pub fn purge_url(&self, tenant: &str, url: &str) -> usize {
        self.purge_where(tenant, |o| &*o.url == url)
    }

    /// Purges the tenant's objects whose URL (`host/path?query`) starts with `prefix`.
    pub fn purge_prefix(&self, tenant: &str, prefix: &str) -> usize {
        self.purge_where(tenant, |o| o.url.starts_with(prefix))
    }

    /// Purges the tenant's objects tagged `tag` by their origin.
    pub fn purge_tag(&self, tenant: &str, tag: &str) -> usize {
        self.purge_where(tenant, |o| o.tags.iter().any(|t| &**t == tag))
    }

    /// Purges the tenant's objects of one host.
    pub fn purge_host(&self, tenant: &str, host: &str) -> usize {
        self.purge_where(tenant, |o| o.host().eq_ignore_ascii_case(host))
    }

    /// Purges every tenant's objects (a node that may have missed purges).
    pub fn purge_everything(&self) -> usize {
        let tenants: Vec<Box<str>> = self
            .shards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        tenants.iter().map(|t| self.purge_tenant(t)).sum()
    }

    /// Purges everything the tenant has stored.
    pub fn purge_tenant(&self, tenant: &str) -> usize {
        let Some(shard) = self.shard(tenant) else {
            return 0;
        };
        shard.generation.fetch_add(1, Ordering::AcqRel);
        shard.objects.run_pending_tasks();
        let n = shard.objects.entry_count() as usize;
        shard.objects.invalidate_all();
        n
    }
}
