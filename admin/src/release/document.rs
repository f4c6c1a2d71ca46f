//! Snapshot documents: what a published version holds, and how it becomes the
//! config file the proxies validate and run.
//!
//! A [`Document`] is every tenant's objects as they were published (specs as
//! stored, private keys still sealed), in a canonical order, so that equal
//! configurations have equal hashes and a rollback can restore the draft.
//! [`render`] turns it into a `gatehouse_config::file::FileConfig` with names
//! qualified by tenant (`acme/web`), private keys opened, plugins as
//! `plugins/<sha256>.wasm`, and pending domains reduced to their ownership
//! challenge. Validation errors of the rendered config are mapped back to the
//! objects they came from ([`ObjectPaths`]).

use std::collections::BTreeMap;

use gatehouse_config::file;
use serde::{Deserialize, Serialize};

use crate::certificates::{self, StoredCertificate};
use crate::domains::{self, StoredDomain};
use crate::error::{ApiError, FieldProblem};
use crate::names;
use crate::objects::{Kind, Stored};
use crate::plugins::PluginInfo;
use crate::pools::PoolSpec;
use crate::routes::RouteSpec;
use crate::secrets::Keys;

/// One object in a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The spec as stored.
    pub spec: serde_json::Value,
    /// Lifecycle state (domains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One tenant's objects: kind → name → entry.
pub type TenantPart = BTreeMap<String, BTreeMap<String, Entry>>;

/// A published configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Tenant → its objects.
    pub tenants: BTreeMap<String, TenantPart>,
}

impl Document {
    /// Canonical JSON text (maps are ordered).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a document always serializes")
    }

    /// SHA-256 of the canonical text, hex.
    pub fn hash(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, self.to_text().as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses a stored document.
    pub fn parse(text: &str) -> Result<Document, ApiError> {
        serde_json::from_str(text)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored snapshot does not parse: {e}")))
    }

    /// The document with only `tenant`'s part (what a tenant token may see).
    pub fn only(&self, tenant: &str) -> Document {
        Document {
            tenants: self
                .tenants
                .iter()
                .filter(|(t, _)| t.as_str() == tenant)
                .map(|(t, p)| (t.clone(), p.clone()))
                .collect(),
        }
    }

    /// The document without sealed keys (for API responses).
    pub fn redacted(&self) -> Document {
        let mut out = self.clone();
        for part in out.tenants.values_mut() {
            if let Some(certs) = part.get_mut(Kind::Certificate.as_str()) {
                for e in certs.values_mut() {
                    if let Some(m) = e.spec.as_object_mut() {
                        m.remove("key_sealed");
                    }
                }
            }
        }
        out
    }
}

/// A tenant's draft objects as a document part.
pub fn part_of(objects: Vec<(String, Stored)>) -> TenantPart {
    let mut part = TenantPart::new();
    for (kind, o) in objects {
        part.entry(kind).or_default().insert(
            o.name,
            Entry {
                spec: o.spec,
                status: o.status,
            },
        );
    }
    part
}

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

fn parse<T: serde::de::DeserializeOwned>(e: &Entry, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(e.spec.clone())
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("stored {what} does not parse: {err}")))
}

/// Renders `doc` as a config file's tenant sections (listeners and server
/// settings are the node's own), opening private keys with `keys`.
pub fn render(doc: &Document, keys: &Keys) -> Result<(file::FileConfig, ObjectPaths), ApiError> {
    let mut cfg = file::FileConfig::default();
    let mut paths = ObjectPaths::default();
    let empty = BTreeMap::new();
    for (tenant, part) in &doc.tenants {
        let kind = |k: Kind| part.get(k.as_str()).unwrap_or(&empty);
        let rate_limit = match kind(Kind::RateLimit).get(crate::limits::NAME) {
            Some(e) => {
                paths.add(
                    format!("tenants[{}].rate_limit", cfg.tenants.len()),
                    format!("tenants/{tenant}/rate-limit"),
                );
                Some(parse(e, "rate limit")?)
            }
            None => None,
        };
        cfg.tenants.push(file::Tenant {
            name: tenant.clone(),
            rate_limit,
            cache_bytes: None,
        });
        for (name, e) in kind(Kind::Pool) {
            let spec: PoolSpec = parse(e, "pool")?;
            paths.add(
                format!("pools[{}]", cfg.pools.len()),
                format!("tenants/{tenant}/pools/{name}"),
            );
            cfg.pools.push(spec.render(tenant, name));
        }
        for (name, e) in kind(Kind::Certificate) {
            let stored: StoredCertificate = parse(e, "certificate")?;
            let key = keys
                .open(
                    &stored.key_sealed,
                    &certificates::seal_context(tenant, name),
                )
                .map_err(|err| {
                    ApiError::Internal(anyhow::anyhow!("certificate {tenant}/{name}: {err}"))
                })?;
            paths.add(
                format!("certificates[{}]", cfg.certificates.len()),
                format!("tenants/{tenant}/certificates/{name}"),
            );
            cfg.certificates.push(file::Certificate {
                name: names::qualified(tenant, name),
                cert_path: None,
                key_path: None,
                cert_pem: Some(stored.info.cert_pem),
                key_pem: Some(String::from_utf8_lossy(&key).into_owned()),
                self_signed: false,
            });
        }
        for (name, e) in kind(Kind::Plugin) {
            let info: PluginInfo = parse(e, "plugin")?;
            paths.add(
                format!("plugins[{}]", cfg.plugins.len()),
                format!("tenants/{tenant}/plugins/{name}"),
            );
            cfg.plugins.push(file::Plugin {
                name: names::qualified(tenant, name),
                tenant: tenant.clone(),
                path: plugin_path(&info.sha256),
                sha256: Some(info.sha256),
            });
        }
        let routes = kind(Kind::Route);
        for (host, e) in kind(Kind::Domain) {
            let stored: StoredDomain = parse(e, "domain")?;
            let di = cfg.domains.len();
            paths.add(
                format!("domains[{di}]"),
                format!("tenants/{tenant}/domains/{host}"),
            );
            if e.status.as_deref() != Some("active") {
                cfg.domains.push(domains::render_pending(
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
                let spec: RouteSpec = parse(r, "route")?;
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
                .push(domains::render(tenant, host, &stored.spec, rendered));
        }
    }
    Ok((cfg, paths))
}

/// Where a node keeps plugin `sha256`, relative to its state directory.
pub fn plugin_path(sha256: &str) -> String {
    format!("plugins/{sha256}.wasm")
}

/// Validates a rendered config with the proxy's validation, as a node with
/// HTTP and HTTPS listeners would (a node's own listeners are its business:
/// a node without HTTPS refuses `force_https` domains with a NACK). Runs off
/// the async runtime (it resolves target hostnames); problems come back by object.
pub async fn validate(
    mut cfg: file::FileConfig,
    paths: ObjectPaths,
) -> Result<(), Vec<FieldProblem>> {
    use gatehouse_config::validate::{validate_with, Mode};
    cfg.listeners.http = Some("127.0.0.1:0".into());
    cfg.listeners.https = Some("127.0.0.1:0".into());
    let result = tokio::task::spawn_blocking(move || {
        validate_with(&cfg, std::path::Path::new("/nonexistent"), Mode::Node).map(|_| ())
    })
    .await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(errors)) => Err(errors
            .iter()
            .filter(|e| !e.path.starts_with("listeners"))
            .map(|e| FieldProblem {
                field: paths.map(&e.path),
                message: e.message.clone(),
            })
            .collect()),
        Err(e) => Err(vec![FieldProblem {
            field: String::new(),
            message: format!("validation did not complete: {e}"),
        }]),
    }
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

    #[test]
    fn equal_documents_hash_equal_and_redaction_drops_sealed_keys() {
        let mut a = Document::default();
        let entry = |v: serde_json::Value| Entry {
            spec: v,
            status: None,
        };
        a.tenants
            .entry("acme".into())
            .or_default()
            .entry("certificate".into())
            .or_default()
            .insert(
                "main".into(),
                entry(serde_json::json!({ "names": ["a.example"], "key_sealed": "gh1.x.y" })),
            );
        let b = Document::parse(&a.to_text()).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
        let shown = a.redacted().to_text();
        assert!(
            !shown.contains("key_sealed") && shown.contains("a.example"),
            "{shown}"
        );
        assert!(a.only("beta").tenants.is_empty());
    }
}
