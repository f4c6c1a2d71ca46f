//! File types → validated model: the order sections are checked in, and the
//! checks that span sections (names referred to elsewhere, duplicate names,
//! tenant ownership, listener/certificate/domain consistency). Each section's
//! own checks live in its module; start reading at [`validate_with`].
//!
//! Validation never stops at the first problem: each section is checked and
//! every error recorded, so `gatehouse check` can list them all at once.
//! Nothing here panics on any input.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::check::{valid_name, Checker};
use crate::domains::refs::Refs;
use crate::error::ConfigErrors;
use crate::file;
use crate::model::*;
use crate::{
    admin, certificates, client_ip, domains, internal_api, limits, listeners, plugins, pools,
    target_policy, upstream_dns,
};
use crate::{server, tenants, tls};

pub use crate::domains::headers::parse_template;
pub use crate::hosts::parse_host_pattern;
pub use crate::limits::PARSER_MAX_HEADERS;

/// Validates `cfg`; relative paths are resolved against `base_dir`
/// (the directory of the config file).
pub fn validate(cfg: &file::FileConfig, base_dir: &Path) -> Result<Config, ConfigErrors> {
    validate_with(cfg, base_dir, Mode::File)
}

/// What the config is for, where that changes the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A complete config file.
    File,
    /// A node following a control plane: domains and certificates arrive
    /// with published versions, so an https listener without a certificate
    /// yet is fine (handshakes are refused until one is published).
    Node,
}

/// [`validate`] for a given [`Mode`].
pub fn validate_with(
    cfg: &file::FileConfig,
    base_dir: &Path,
    mode: Mode,
) -> Result<Config, ConfigErrors> {
    let mut cx = Checker::new(base_dir);
    let listeners = listeners::check(&cfg.listeners, &mut cx);
    let server = server::check(&cfg.server, &mut cx);
    let limits = limits::check(&cfg.limits, &mut cx);
    let tenants = tenants::names(&cfg.tenants, &mut cx);
    let tenant_rate_limits = tenants::rate_limits(&cfg.tenants, &mut cx);
    let tenant_cache_bytes = tenants::cache_bytes(&cfg.tenants, &mut cx);
    let tenant_plugin_budgets = tenants::plugin_budgets(&cfg.tenants, &mut cx);
    let cert_index = name_index(
        cfg.certificates.iter().map(|c| c.name.as_str()),
        "certificates",
        &mut cx,
    );
    let pool_index = name_index(cfg.pools.iter().map(|p| p.name.as_str()), "pools", &mut cx);
    let pools: Vec<Pool> = cfg
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = format!("pools[{i}]");
            tenant_ref(&p.tenant, &tenants, &format!("{path}.tenant"), &mut cx);
            qualifier(&p.name, &p.tenant, &format!("{path}.name"), &mut cx);
            pools::check(p, &path, &mut cx)
        })
        .collect();
    let plugin_index: HashMap<String, (usize, String)> = name_index(
        cfg.plugins.iter().map(|p| p.name.as_str()),
        "plugins",
        &mut cx,
    )
    .into_iter()
    .map(|(name, i)| (name, (i, cfg.plugins[i].tenant.clone())))
    .collect();
    let plugins: Vec<Plugin> = cfg
        .plugins
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = format!("plugins[{i}]");
            tenant_ref(&p.tenant, &tenants, &format!("{path}.tenant"), &mut cx);
            qualifier(&p.name, &p.tenant, &format!("{path}.name"), &mut cx);
            plugins::check(p, &path, &mut cx)
        })
        .collect();
    let refs = Refs {
        certificates: &cert_index,
        pools: &pool_index,
        pool_files: &cfg.pools,
        plugins: &plugin_index,
        max_chain: limits.plugins.max_chain,
    };
    // One host is served by one domain: the first to name it.
    let mut seen_hosts: HashMap<HostPattern, String> = HashMap::new();
    let domains: Vec<Domain> = cfg
        .domains
        .iter()
        .enumerate()
        .map(|(di, d)| {
            let dpath = format!("domains[{di}]");
            tenant_ref(&d.tenant, &tenants, &format!("{dpath}.tenant"), &mut cx);
            domains::check(d, &dpath, &refs, &mut seen_hosts, &mut cx)
        })
        .collect();
    let mut certificates: Vec<Certificate> = cfg
        .certificates
        .iter()
        .enumerate()
        .map(|(i, c)| certificates::check(c, &format!("certificates[{i}]"), &mut cx))
        .collect();
    for d in &domains {
        if let Some(ci) = d.certificate {
            certificates[ci].hosts.extend(d.hosts.iter().cloned());
        }
    }
    let tls = tls::check(&cfg.tls, &cert_index, &mut cx);
    let client_ip = client_ip::check(&cfg.client_ip, &mut cx);
    let upstream_dns = upstream_dns::check(&cfg.upstream_dns, &mut cx);
    let internal_api = internal_api::check(&cfg.internal_api, &mut cx);
    let tenant_targets = match (mode, &cfg.target_policy) {
        (Mode::File, _) => None,
        (Mode::Node, Some(p)) => Some(target_policy::check(p, "target_policy", &mut cx)),
        (Mode::Node, None) => Some(crate::model::TargetPolicy::default_policy()),
    };
    if let Some(admin) = &cfg.admin {
        admin::check(admin, &mut cx);
    }

    listeners::check_any(&listeners, &mut cx);
    let serves_default =
        tls.unknown_sni == UnknownSni::DefaultCertificate && tls.default_certificate.is_some();
    if mode == Mode::File
        && listeners.https.is_some()
        && !domains.iter().any(|d| d.certificate.is_some())
        && !serves_default
    {
        cx.err(
            "listeners.https",
            "an https listener needs at least one domain with a `certificate`, or `tls.unknown_sni: default_certificate`",
        );
    }
    if listeners.https.is_none() {
        for (i, d) in cfg.domains.iter().enumerate() {
            if d.force_https {
                cx.err(
                    format!("domains[{i}].force_https"),
                    "needs an https listener (`listeners.https`) to redirect to",
                );
            }
        }
    }

    cx.finish(Config {
        listeners,
        server,
        limits,
        tls,
        client_ip,
        upstream_dns,
        internal_api,
        tenant_targets,
        tenants: tenants.into_iter().collect(),
        tenant_rate_limits,
        tenant_cache_bytes,
        tenant_plugin_budgets,
        domains,
        pools,
        certificates,
        plugins,
    })
}

/// Indexes a section's names, reporting invalid and duplicate ones.
fn name_index<'n>(
    names: impl Iterator<Item = &'n str>,
    section: &str,
    cx: &mut Checker<'_>,
) -> HashMap<String, usize> {
    let mut index = HashMap::new();
    for (i, name) in names.enumerate() {
        let path = format!("{section}[{i}].name");
        if !valid_name(name) {
            cx.err(
                &path,
                format!(
                    "invalid name {name:?}: use 1-63 characters of a-z, 0-9, '-' and '_', \
                     optionally qualified by the tenant as tenant/name"
                ),
            );
        }
        // The first definition wins; later ones are the errors.
        if index.contains_key(name) {
            cx.err(&path, format!("duplicate name {name:?}"));
        } else {
            index.insert(name.to_string(), i);
        }
    }
    index
}

/// A qualified name (`tenant/name`) must be qualified by its owner.
fn qualifier(name: &str, tenant: &str, path: &str, cx: &mut Checker<'_>) {
    if let Some((qualifier, _)) = name.split_once('/') {
        if qualifier != tenant && valid_name(name) {
            cx.err(
                path,
                format!("{name:?} is qualified by tenant {qualifier:?} but belongs to {tenant:?}"),
            );
        }
    }
}

/// `tenant` must be a tenant the config defines.
fn tenant_ref(tenant: &str, tenants: &HashSet<String>, path: &str, cx: &mut Checker<'_>) {
    if !tenants.contains(tenant) {
        cx.err(path, format!("unknown tenant {tenant:?}"));
    }
}
