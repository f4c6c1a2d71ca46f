//! What the admin API publishes to proxies, and what they report back.
//!
//! A node's own config file keeps its listeners, limits and server settings;
//! the admin publishes the tenant-owned sections ([`Sections`]) as numbered
//! [`Snapshot`]s. The node merges them into its file config
//! ([`FileConfig::merge_published`]), validates and compiles the result like
//! any config, and answers with a [`Report`].

use serde::{Deserialize, Serialize};

use crate::file::{self, FileConfig};

/// The tenant-owned sections of a config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Sections))]
#[serde(deny_unknown_fields)]
pub struct Sections {
    /// Tenants.
    #[serde(default)]
    pub tenants: Vec<file::Tenant>,
    /// Domains (names qualified by tenant).
    #[serde(default)]
    pub domains: Vec<file::Domain>,
    /// Upstream pools.
    #[serde(default)]
    pub pools: Vec<file::Pool>,
    /// Certificates with inline PEM.
    #[serde(default)]
    pub certificates: Vec<file::Certificate>,
    /// Plugins, as `plugins/<sha256>.wasm` relative to the node's state directory.
    #[serde(default)]
    pub plugins: Vec<file::Plugin>,
    /// The platform's policy for the addresses these pools may reach (the
    /// default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_policy: Option<file::TargetPolicy>,
}

impl Sections {
    /// Only the parts of `tenants` (see [`Sections::without_tenants`]).
    pub fn only_tenants(&self, tenants: &[&str]) -> Sections {
        let others: Vec<&str> = self
            .tenants
            .iter()
            .map(|t| t.name.as_str())
            .chain(self.domains.iter().map(|d| d.tenant.as_str()))
            .chain(self.pools.iter().map(|p| p.tenant.as_str()))
            .chain(self.plugins.iter().map(|p| p.tenant.as_str()))
            .chain(
                self.certificates
                    .iter()
                    .filter_map(|c| c.name.split_once('/').map(|(t, _)| t)),
            )
            .filter(|t| !tenants.contains(t))
            .collect();
        self.without_tenants(&others)
    }

    /// These sections without the parts of `tenants`.
    pub fn without_tenants(&self, tenants: &[&str]) -> Sections {
        if tenants.is_empty() {
            return self.clone();
        }
        let keep = |t: &str| !tenants.contains(&t);
        let domains: Vec<file::Domain> = self
            .domains
            .iter()
            .filter(|d| keep(&d.tenant))
            .cloned()
            .collect();
        Sections {
            tenants: self
                .tenants
                .iter()
                .filter(|t| keep(&t.name))
                .cloned()
                .collect(),
            pools: self
                .pools
                .iter()
                .filter(|p| keep(&p.tenant))
                .cloned()
                .collect(),
            plugins: self
                .plugins
                .iter()
                .filter(|p| keep(&p.tenant))
                .cloned()
                .collect(),
            // A certificate goes with the domains that use it.
            certificates: self
                .certificates
                .iter()
                .filter(|c| {
                    let users: Vec<&file::Domain> = self
                        .domains
                        .iter()
                        .filter(|d| d.certificate.as_deref() == Some(c.name.as_str()))
                        .collect();
                    match users.is_empty() {
                        true => c.name.split_once('/').is_none_or(|(t, _)| keep(t)),
                        false => users.iter().any(|d| keep(&d.tenant)),
                    }
                })
                .cloned()
                .collect(),
            domains,
            target_policy: self.target_policy.clone(),
        }
    }

    /// True when nothing is published (no tenant, no domain).
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty() && self.domains.is_empty()
    }
}

/// One published version as a node receives it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Snapshot))]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Version number (1 and up).
    pub version: u64,
    /// SHA-256 of the published document (identifies the content).
    pub hash: String,
    /// When it was published (Unix milliseconds).
    pub created_ms: i64,
    /// The configuration.
    pub config: Sections,
}

/// A node's answer to a snapshot.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Report))]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The node's id (as in its polls): 1-128 of `A-Z a-z 0-9 . _ -`.
    #[cfg_attr(feature = "schema", schema(pattern = "^[A-Za-z0-9._-]{1,128}$"))]
    pub node: String,
    /// The version the report is about.
    #[serde(deserialize_with = "integral_u64")]
    pub version: u64,
    /// Its hash.
    pub hash: String,
    /// True: applied (ACK). False: rejected (NACK), see `error`.
    pub applied: bool,
    /// Why it was rejected (every problem, one per line).
    pub error: Option<String>,
    /// Tenant parts left out of an applied version, and why (the rest of the
    /// version is served).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedPart>,
    /// The names the node's own config file defines: the admin keeps them
    /// from tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<Reserved>,
}

/// A tenant's part a node left out of a version it applied.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::RefusedPart))]
#[serde(deny_unknown_fields)]
pub struct RefusedPart {
    /// The tenant.
    pub tenant: String,
    /// What was wrong in it (`path: message`).
    pub problems: Vec<String>,
}

/// Tenant names and host patterns a node's own config file defines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Reserved))]
#[serde(deny_unknown_fields)]
pub struct Reserved {
    /// Tenant names.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Host patterns (`example.com`, `*.example.com`), lowercase.
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl Reserved {
    /// The names `file` (a node's own config) defines.
    pub fn of(file: &FileConfig) -> Reserved {
        let mut hosts: Vec<String> = file
            .domains
            .iter()
            .flat_map(|d| d.hosts.iter())
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        hosts.sort();
        hosts.dedup();
        let mut tenants: Vec<String> = file.tenants.iter().map(|t| t.name.clone()).collect();
        tenants.sort();
        tenants.dedup();
        Reserved { tenants, hosts }
    }
}

/// Validates `file` (a node's own config) with `published` merged in, like
/// [`crate::validate::validate_with`] in `Node` mode, but a problem in one
/// tenant's published part leaves out that part only: the rest of the
/// version is served, and the parts left out are returned with their
/// problems. Problems in the file itself (or not attributable to one
/// published tenant) refuse the whole.
pub fn validate_isolating(
    file: &FileConfig,
    published: &Sections,
    base_dir: &std::path::Path,
) -> Result<(crate::Config, Vec<RefusedPart>), crate::ConfigErrors> {
    use crate::validate::{validate_with, Mode};
    let mut refused: Vec<RefusedPart> = Vec::new();
    // Each round leaves out at least one more tenant, so this ends.
    loop {
        let left_out: Vec<&str> = refused.iter().map(|r| r.tenant.as_str()).collect();
        let kept = published.without_tenants(&left_out);
        let mut merged = file.clone();
        merged.merge_published(kept.clone());
        let errors = match validate_with(&merged, base_dir, Mode::Node) {
            Ok(cfg) => return Ok((cfg, refused)),
            Err(errors) => errors,
        };
        match parts_at_fault(file, &kept, &errors) {
            Some(faulty) => refused.extend(faulty),
            None => return Err(errors),
        }
    }
}

/// The published tenant parts `errors` (of `file` merged with `published`)
/// are all in, with their problems; `None` when any error is not in a
/// published tenant's part (or there are none).
pub fn parts_at_fault(
    file: &FileConfig,
    published: &Sections,
    errors: &crate::ConfigErrors,
) -> Option<Vec<RefusedPart>> {
    let mut faulty: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in errors.iter() {
        let tenant = published_tenant_at(file, published, &e.path)?;
        faulty.entry(tenant).or_default().push(e.to_string());
    }
    (!faulty.is_empty()).then(|| {
        faulty
            .into_iter()
            .map(|(tenant, problems)| RefusedPart { tenant, problems })
            .collect()
    })
}

/// The published tenant that the entry at `path` (`domains[7].hosts[0]`)
/// belongs to, when it is a published entry (published entries follow the
/// file's in every section).
fn published_tenant_at(file: &FileConfig, published: &Sections, path: &str) -> Option<String> {
    let (section, rest) = path.split_once('[')?;
    let index: usize = rest.split_once(']')?.0.parse().ok()?;
    let own = match section {
        "tenants" => file.tenants.len(),
        "domains" => file.domains.len(),
        "pools" => file.pools.len(),
        "certificates" => file.certificates.len(),
        "plugins" => file.plugins.len(),
        _ => return None,
    };
    let i = index.checked_sub(own)?;
    match section {
        "tenants" => published.tenants.get(i).map(|t| t.name.clone()),
        "domains" => published.domains.get(i).map(|d| d.tenant.clone()),
        "pools" => published.pools.get(i).map(|p| p.tenant.clone()),
        "plugins" => published.plugins.get(i).map(|p| p.tenant.clone()),
        _ => {
            let name = &published.certificates.get(i)?.name;
            published
                .domains
                .iter()
                .find(|d| d.certificate.as_deref() == Some(name.as_str()))
                .map(|d| d.tenant.clone())
                .or_else(|| name.split_once('/').map(|(t, _)| t.to_string()))
        }
    }
}

impl FileConfig {
    /// Appends published sections to this (node) config.
    pub fn merge_published(&mut self, published: Sections) {
        self.tenants.extend(published.tenants);
        self.domains.extend(published.domains);
        self.pools.extend(published.pools.into_iter().map(|mut p| {
            p.published = true;
            p
        }));
        self.target_policy = Some(published.target_policy.unwrap_or_default());
        self.certificates.extend(published.certificates);
        self.plugins.extend(published.plugins);
    }
}

/// A `u64` that may also be written as an integral float (`7.0`), as some
/// JSON encoders do.
fn integral_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a non-negative integer, got {n}"
        ))),
    }
}

/// What a cache purge removes: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::PurgeTarget))]
#[serde(deny_unknown_fields)]
pub struct PurgeTarget {
    /// One URL (`https://shop.example.com/p/1?x=2`; scheme optional), every variant of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(max_length = 8192))]
    pub url: Option<String>,
    /// Every URL starting with this (`shop.example.com/img/`; scheme optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(max_length = 8192))]
    pub prefix: Option<String>,
    /// Every object the origin tagged so (`Cache-Tag`, `Surrogate-Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(max_length = 128))]
    pub tag: Option<String>,
    /// Every object of one host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(max_length = 253))]
    pub host: Option<String>,
    /// Everything the tenant has cached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

impl PurgeTarget {
    /// Checks the target: exactly one field set, each well-formed. The error
    /// names the field at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let set = [
            self.url.is_some(),
            self.prefix.is_some(),
            self.tag.is_some(),
            self.host.is_some(),
            self.all,
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err((
                "url",
                "set exactly one of `url`, `prefix`, `tag`, `host` or `all: true`".into(),
            ));
        }
        let host_of = |u: &str| {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))
                .unwrap_or(u);
            rest.split(['/', '?']).next().unwrap_or("").to_string()
        };
        let valid_host = |h: &str| {
            let h = h.rsplit_once(':').map_or(h, |(name, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    name
                } else {
                    h
                }
            });
            !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
        for (field, value) in [("url", &self.url), ("prefix", &self.prefix)] {
            if let Some(v) = value {
                if v.len() > 8192 || !valid_host(&host_of(v)) {
                    return Err((field, format!("expected a URL with a host, got {v:?}")));
                }
            }
        }
        if let Some(t) = &self.tag {
            if t.is_empty() || t.len() > 128 || t.contains([',', ' ']) {
                return Err(("tag", "1-128 characters without commas or spaces".into()));
            }
        }
        if let Some(h) = &self.host {
            if !valid_host(h) {
                return Err(("host", format!("invalid host {h:?}")));
            }
        }
        Ok(())
    }
}

/// One purge as nodes receive it, numbered in the order to apply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Purge))]
pub struct Purge {
    pub id: u64,
    pub tenant: String,
    pub target: PurgeTarget,
}

/// Purges after a node's last one, and the latest number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Purges))]
pub struct Purges {
    /// The latest purge's number (0: none); poll with `after=` this.
    pub latest: u64,
    pub purges: Vec<Purge>,
}
