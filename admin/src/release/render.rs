//! How a [`Document`] becomes the config the proxies validate and run: names
//! qualified by tenant (`acme/web`), private keys opened, pending domains
//! reduced to their ownership challenge, and every config path mapped back to
//! the object it came from ([`ObjectPaths`]). Imports `release`, `draft`, `model`, `infra`.

use std::collections::BTreeMap;

use gatehouse_config::file;

use crate::draft::objects::Kind;
use crate::infra::error::ApiError;
use crate::infra::secrets::Keys;
use crate::model::certificate::{self, StoredCertificate};
use crate::model::domain::{self, StoredDomain};
use crate::model::plugin::PluginInfo;
use crate::model::pool::PoolSpec;
use crate::model::rate_ceiling;
use crate::model::route::RouteSpec;
use crate::release::document::Document;

/// Where each rendered config section came from, to report errors by object.
#[derive(Debug, Default)]
pub struct ObjectPaths {
    /// (config path prefix, object path), longest prefixes first when matched.
    prefixes: Vec<(String, String)>,
}

impl ObjectPaths {
    fn add(&mut self, prefix: String, object: String) {
        self.prefixes.push((prefix, object));
    }

    /// `domains[2].routes[0].pool` → `tenants/acme/domains/a.example/routes/api.pool`.
    pub fn map(&self, path: &str) -> String {
        let best = self
            .prefixes
            .iter()
            .filter(|(p, _)| {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(p, _)| p.len());
        match best {
            Some((p, object)) => format!("{object}{}", &path[p.len()..]),
            None => path.to_string(),
        }
    }

    /// The tenant an object path belongs to.
    pub fn tenant_of(path: &str) -> Option<&str> {
        path.strip_prefix("tenants/")?.split('/').next()
    }
}

/// Renders `doc` as a config file's tenant sections (listeners and server
/// settings are the node's own), opening private keys with `keys`.
pub fn render(doc: &Document, keys: &Keys) -> Result<(file::FileConfig, ObjectPaths), ApiError> {
    let mut cfg = file::FileConfig::default();
    let mut paths = ObjectPaths::default();
    let empty = BTreeMap::new();
    for (tenant, part) in &doc.tenants {
        let kind = |k: Kind| part.get(k.as_str()).unwrap_or(&empty);
        let rate_limit = match kind(Kind::RateCeiling).get(rate_ceiling::NAME) {
            Some(e) => {
                paths.add(
                    format!("tenants[{}].rate_limit", cfg.tenants.len()),
                    format!("tenants/{tenant}/rate-limit"),
                );
                Some(e.spec_as("rate limit")?)
            }
            None => None,
        };
        cfg.tenants.push(file::Tenant {
            name: tenant.clone(),
            rate_limit,
            cache_bytes: None,
            plugin_cpu: None,
            plugin_memory_mb: None,
        });
        for (name, e) in kind(Kind::Pool) {
            let spec: PoolSpec = e.spec_as("pool")?;
            paths.add(
                format!("pools[{}]", cfg.pools.len()),
                format!("tenants/{tenant}/pools/{name}"),
            );
            cfg.pools.push(spec.render(tenant, name));
        }
        for (name, e) in kind(Kind::Certificate) {
            let stored: StoredCertificate = e.spec_as("certificate")?;
            let key = keys
                .open(&stored.key_sealed, &certificate::seal_context(tenant, name))
                .map_err(|err| {
                    ApiError::Internal(anyhow::anyhow!("certificate {tenant}/{name}: {err}"))
                })?;
            paths.add(
                format!("certificates[{}]", cfg.certificates.len()),
                format!("tenants/{tenant}/certificates/{name}"),
            );
            cfg.certificates.push(stored.render(tenant, name, &key));
        }
        for (name, e) in kind(Kind::Plugin) {
            let info: PluginInfo = e.spec_as("plugin")?;
            paths.add(
                format!("plugins[{}]", cfg.plugins.len()),
                format!("tenants/{tenant}/plugins/{name}"),
            );
            cfg.plugins.push(info.render(tenant, name));
        }
        let routes = kind(Kind::Route);
        for (host, e) in kind(Kind::Domain) {
            let stored: StoredDomain = e.spec_as("domain")?;
            let di = cfg.domains.len();
            paths.add(
                format!("domains[{di}]"),
                format!("tenants/{tenant}/domains/{host}"),
            );
            if e.status.as_deref() != Some("active") {
                cfg.domains.push(domain::render_pending(
                    tenant,
                    host,
                    &stored.verification_token,
                ));
                continue;
            }
            let prefix = format!("{host}/");
            let mut rendered = Vec::new();
            for (name, r) in routes
                .range(prefix.clone()..)
                .take_while(|(n, _)| n.starts_with(&prefix))
            {
                let spec: RouteSpec = r.spec_as("route")?;
                paths.add(
                    format!("domains[{di}].routes[{}]", rendered.len()),
                    format!(
                        "tenants/{tenant}/domains/{host}/routes/{}",
                        &name[prefix.len()..]
                    ),
                );
                rendered.push(spec.render(tenant));
            }
            cfg.domains
                .push(domain::render(tenant, host, &stored.spec, rendered));
        }
    }
    Ok((cfg, paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_map_back_to_the_object_they_came_from() {
        let mut paths = ObjectPaths::default();
        paths.add("domains[1]".into(), "tenants/acme/domains/a.example".into());
        paths.add(
            "domains[1].routes[0]".into(),
            "tenants/acme/domains/a.example/routes/api".into(),
        );
        paths.add(
            "domains[10]".into(),
            "tenants/beta/domains/b.example".into(),
        );
        assert_eq!(
            paths.map("domains[1].routes[0].pool"),
            "tenants/acme/domains/a.example/routes/api.pool"
        );
        assert_eq!(
            paths.map("domains[1].certificate"),
            "tenants/acme/domains/a.example.certificate"
        );
        // `domains[1]` is not a prefix of `domains[10]`.
        assert_eq!(
            paths.map("domains[10].hosts[0]"),
            "tenants/beta/domains/b.example.hosts[0]"
        );
        assert_eq!(paths.map("listeners.http"), "listeners.http");
        assert_eq!(
            ObjectPaths::tenant_of("tenants/acme/pools/web.targets[0]"),
            Some("acme")
        );
    }
}
