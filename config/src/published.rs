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
