//! A pool's spec ([`PoolSpec`]): the config file's pool without `name` and
//! `tenant` (they come from the path) and without file paths (a CA bundle
//! would have to exist on every node), and how it renders into the config.
//! Imports only `infra`.

use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::infra::names;

/// TLS towards a pool's targets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolTls {
    /// SNI and verified name (default: the target's host part).
    pub sni: Option<String>,
    /// Verify the upstream certificate chain and name against the system roots (default true).
    pub verify: Option<bool>,
}

/// An upstream pool.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Upstream servers (`ip:port` or `hostname:port`), at least one.
    pub targets: Vec<file::Target>,
    /// Load-balancing algorithm (default `round_robin`).
    #[serde(default)]
    pub algorithm: file::Algorithm,
    /// Key for `consistent_hash`: `$client_ip`, `$request_uri`, `$host`, or `header:<name>`.
    pub hash_key: Option<String>,
    /// TLS to the targets (default off).
    pub tls: Option<PoolTls>,
    /// Speak HTTP/2 to the targets.
    #[serde(default)]
    pub http2: bool,
    /// Host header sent upstream (default: the client's).
    pub host_header: Option<String>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: file::Timeouts,
    /// Extra attempts on another target after a connect failure (default 1).
    pub retries: Option<u32>,
    /// Active and passive health checking.
    #[serde(default)]
    pub health_check: file::HealthCheck,
}

impl PoolSpec {
    /// The config file's pool for `tenant`'s pool `name`.
    pub fn render(&self, tenant: &str, name: &str) -> file::Pool {
        file::Pool {
            name: names::qualified(tenant, name),
            tenant: tenant.to_string(),
            targets: self.targets.clone(),
            algorithm: self.algorithm,
            hash_key: self.hash_key.clone(),
            tls: self.tls.as_ref().map(|t| file::UpstreamTls {
                sni: t.sni.clone(),
                verify: t.verify,
                ca_path: None,
            }),
            http2: self.http2,
            host_header: self.host_header.clone(),
            timeouts: self.timeouts.clone(),
            retries: self.retries,
            health_check: self.health_check.clone(),
            published: false,
        }
    }
}
