//! `gatehouse-proxy`: the Gatehouse data plane, a Pingora reverse proxy.
//!
//! It terminates TLS with rustls (per-SNI certificates), routes by host and
//! path to upstream pools (load balancing, health checks, retries) or local
//! actions, hot-reloads its config with an atomic snapshot swap, and exports
//! Prometheus metrics and a JSON access log. It does not own configuration
//! storage (that is the admin plane's job) nor the WebAssembly sandbox (that
//! is `gatehouse-plugin-host`). Start reading at [`run`], then [`service`]
//! for the request path and [`snapshot`] for what a request reads.

#![forbid(unsafe_code)]

pub mod acme;
pub mod bans;
pub mod cache;
pub mod client_ip;
pub mod control;
pub mod headers;
pub mod health;
pub mod housekeeping;
pub mod internal;
pub mod listeners;
pub mod local;
pub mod metrics;
pub mod node;
pub mod plugin;
pub mod proxy_protocol;
pub mod ratelimit;
pub mod reload;
pub mod resolve;
pub mod route;
pub mod service;
pub mod snapshot;
pub mod target_policy;
pub mod tls;
pub mod upstream;
pub mod waf;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use gatehouse_config::ConfigErrors;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::housekeeping::Housekeeping;
use crate::internal::InternalApi;
use crate::reload::{ConfigWatch, Reloader};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::tls::CertGeneration;

/// How `gatehouse run` starts the data plane.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Config file, watched for changes.
    pub config: PathBuf,
    /// Take over the listening sockets of a running instance (zero-downtime upgrade).
    pub upgrade: bool,
    /// Follow a control plane (the admin API) for the tenant sections.
    pub control: Option<control::ControlPlane>,
}

/// Loads, validates and compiles a config file exactly as `run` would,
/// including reading and matching certificates, but writes nothing: a
/// self-signed certificate that does not exist yet is not generated.
pub fn check(path: &std::path::Path) -> Result<Snapshot, ConfigErrors> {
    let cfg = gatehouse_config::load_file(path)?;
    Snapshot::compile(cfg, 0, None, CertGeneration::Skip)
}

/// Runs the data plane until SIGTERM (graceful drain) or SIGINT. Never returns on success.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    // Stamp first: an edit made while this first load runs must still be seen.
    let loaded_stamp = reload::FileStamp::take(&opts.config);
    // A node following a control plane starts from its last good snapshot,
    // so it serves even while the admin is down.
    let mut applied = match &opts.control {
        Some(cp) => control::boot_sections(&cp.state_dir).unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "last snapshot unreadable; starting from the config file alone");
            None
        }),
        None => None,
    };
    let empty = opts.control.as_ref().map(|_| Default::default());
    let cfg = match reload::load_merged(
        &opts.config,
        applied.as_ref().map(|a| &a.sections).or(empty.as_ref()),
    ) {
        Ok(loaded) => loaded.config,
        Err(e) if applied.is_some() => {
            tracing::error!(errors = %e, "the last snapshot does not validate with this config file; starting without it");
            applied = None;
            reload::load_merged(&opts.config, empty.as_ref())
                .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", opts.config.display()))?
                .config
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "invalid config {}:\n{e}",
                opts.config.display()
            ))
        }
    };
    if let Some(a) = &applied {
        tracing::info!(
            version = a.version,
            "serving the last applied snapshot until the control plane answers"
        );
    }
    // A follower merges published sections (none yet: empty ones) into every rebuild.
    let published = opts.control.as_ref().map(|_| {
        applied
            .as_ref()
            .map(|a| a.sections.clone())
            .unwrap_or_default()
    });
    if let Some(control) = &opts.control {
        protect_admin(&control.url);
    }
    let snapshot = Snapshot::compile(cfg, 1, None, CertGeneration::Generate)
        .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", opts.config.display()))?;
    let config = snapshot.config.clone();
    let store = Arc::new(SnapshotStore::new(snapshot));

    // Install the SIGHUP handler now: its default action would kill the
    // process if a reload signal arrived before the control loop starts.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map(|_| ())
        })
        .context("installing the SIGHUP handler")?;

    let mut conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.grace_period.as_secs().max(1)),
        upgrade_sock: config.server.upgrade_sock.display().to_string(),
        ..ServerConf::default()
    };
    if let Some(pid) = &config.server.pid_file {
        conf.pid_file = pid.display().to_string();
    }
    let opt = Opt {
        upgrade: opts.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let node = Arc::new(node::NodeState::default());
    let proxy = listeners::proxy_service(
        &server.configuration,
        &store,
        &node,
        &config.listeners,
        &config.limits,
    )?;
    server.add_service(proxy);

    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = config.listeners.internal {
        let mut internal = Service::new(
            "gatehouse-internal".to_string(),
            InternalApi::new(store.clone(), ready.clone(), node.clone()),
        );
        internal.add_tcp(&addr.to_string());
        server.add_service(internal);
    }
    let (config_watch_started, config_watch) = tokio::sync::watch::channel(false);
    server.add_service(background_service(
        "gatehouse-readiness",
        listeners::Readiness::new(ready, &config.listeners, config_watch),
    ));
    server.add_service(background_service(
        "gatehouse-housekeeping",
        Housekeeping::new(store.clone()),
    ));
    let reloader = Arc::new(Reloader::new(
        opts.config.clone(),
        store,
        loaded_stamp,
        published,
    ));
    if let Some(cp) = opts.control.clone() {
        let follower = control::Follower::new(cp, reloader.clone(), applied, node)?;
        server.add_service(background_service(
            "gatehouse-follower",
            control::FollowerService::new(follower),
        ));
    }
    server.add_service(background_service(
        "gatehouse-config-watch",
        ConfigWatch::new(reloader, config_watch_started),
    ));
    tracing::info!(
        http = ?config.listeners.http,
        https = ?config.listeners.https,
        internal = ?config.listeners.internal,
        "gatehouse starting"
    );
    server.run_forever();
}

/// Keeps tenants' pools away from the admin API this node follows (its
/// addresses as they resolve at start).
fn protect_admin(url: &str) {
    use std::net::ToSocketAddrs;
    let Ok(uri) = url.parse::<http::Uri>() else {
        return;
    };
    let Some(host) = uri.host() else {
        return;
    };
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(addrs) = (host, port).to_socket_addrs() {
        addrs.for_each(target_policy::protect);
    }
}
