//! `gatehouse-config`: the Gatehouse configuration model.
//!
//! Two layers: serde types mirroring the YAML an operator writes (unknown
//! fields rejected), and the validated config the data plane compiles. Each
//! config section has one module holding both and its checks: `listeners`,
//! `server`, `limits`, `tls`, `certificates`, `client_ip`, `admin`, `tenants`,
//! `rate_limits`, `pools`, `plugins`, `domains` (with `routes`, `headers`,
//! `security_headers`, `ip_rules`, `bans` below it), [`cache`] and [`waf`].
//! The file and checked types of a section often share names, so a section
//! module keeps them in inner `file` and `model` modules, its `check`
//! functions beside them ([`cache`] and [`waf`], whose names differ, are flat).
//! Sections share the helpers of `check` (error sink, addresses, names, ...).
//!
//! [`file`](mod@file) and [`model`] gather the two layers' types (the roots
//! `FileConfig` and `Config`, every section type re-exported), and
//! [`validate`](mod@validate) runs the section checks in order, adds the checks
//! that span sections and reports every problem with its field path.
//!
//! This crate does no I/O beyond reading the files a config names
//! (certificates, static roots) and never panics on input. Start reading at
//! [`load_file`], then [`validate::validate_with`].

#![forbid(unsafe_code)]

pub mod cache;
pub mod error;
pub mod file;
pub mod ipset;
pub mod model;
pub mod published;
pub mod validate;
pub mod waf;

// The sections, reached through `file`, `model` and `validate`. Lower
// modules never use higher ones: `check` and `hosts` use no section;
// `tenants` uses `rate_limits` and `limits`; `domains` uses `pools`,
// `plugins`, `rate_limits`, `cache` and `waf`; `validate` uses them all.
mod admin;
mod certificates;
mod check;
mod client_ip;
mod domains;
mod hosts;
mod internal_api;
mod limits;
mod listeners;
mod plugins;
mod pools;
mod rate_limits;
mod server;
mod target_policy;
mod tenants;
mod tls;
mod upstream_dns;

use std::path::Path;

pub use admin::defaults as admin_defaults;
pub use certificates::certified_key_from_pem;
pub use check::FRAMING_HEADERS;
pub use error::{ConfigError, ConfigErrors};
pub use limits::plugin_defaults;
pub use model::Config;
pub use target_policy::DEFAULT_REFUSED as DEFAULT_REFUSED_TARGETS;
pub use upstream_dns::defaults as upstream_dns_defaults;

/// Parses YAML (JSON is valid YAML) into file types. On a syntax or type error,
/// the error names the field path and the line/column.
pub fn parse_yaml(text: &str) -> Result<file::FileConfig, ConfigErrors> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigErrors::single(path, e.into_inner().to_string())
    })
}

/// Parses and validates a config held in memory; relative paths resolve
/// against `base_dir`.
pub fn load_str(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let file = parse_yaml(text)?;
    validate::validate(&file, base_dir)
}

/// Reads, parses and validates a config file; relative paths in it resolve
/// against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single("", format!("cannot read {}: {e}", path.display())))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    load_str(&text, base)
}

#[cfg(test)]
mod tests;
