//! `gatehouse run` with an `admin` section: the admin API on a thread of its
//! own in the same process, and how the proxy follows it.

use gatehouse_config::admin_defaults as defaults;

use crate::acme_args::AcmeArgs;

/// The platform-admin token to install on first start, from
/// GATEHOUSE_ADMIN_TOKEN (`gatehouse admin` and `gatehouse run` alike).
pub fn preset_admin_token() -> Option<String> {
    std::env::var("GATEHOUSE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

/// With an `admin` section in the config, starts the admin API on a thread of
/// its own and returns how the proxy follows it (with a fresh node token).
pub fn start(
    config: &std::path::Path,
) -> anyhow::Result<Option<gatehouse_proxy::control::ControlPlane>> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config.display()))?;
    let file = gatehouse_config::parse_yaml(&text)
        .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", config.display()))?;
    let Some(admin) = file.admin else {
        return Ok(None);
    };
    let listen: std::net::SocketAddr = admin
        .listen
        .as_deref()
        .unwrap_or(defaults::LISTEN)
        .parse()
        .map_err(|e| anyhow::anyhow!("admin.listen: {e}"))?;
    let node_token = gatehouse_admin::token::generate().token;
    // The admin refuses the chains this node would refuse.
    let max_plugin_chain = file
        .limits
        .plugins
        .max_chain
        .unwrap_or(gatehouse_config::plugin_defaults::MAX_CHAIN);
    let options = gatehouse_admin::ServeOptions {
        listen,
        database: admin.database.unwrap_or_else(|| defaults::DATABASE.into()),
        preset_token: preset_admin_token(),
        secrets_key_file: admin
            .secrets_key_file
            .unwrap_or_else(|| defaults::SECRETS_KEY_FILE.into())
            .into(),
        dns_resolver: None,
        auth_failures_per_minute: gatehouse_admin::auth::AUTH_FAILURES_PER_MINUTE,
        // One machine, one operator: its services on localhost are fair targets.
        allow_internal_targets: true,
        refused_target_ranges: None,
        pending_domain_ttl: gatehouse_admin::PENDING_DOMAIN_TTL,
        plugin_storage_bytes: gatehouse_admin::PLUGIN_STORAGE_BYTES,
        local_node_token: Some(node_token.clone()),
        max_plugin_chain,
        acme: match admin.acme {
            Some(a) => AcmeArgs::from_config(a)
                .settings()
                .map_err(|e| anyhow::anyhow!("admin.acme: {e:#}"))?,
            None => None,
        },
    };
    // Tenants' pools may reach localhost here, but never the admin itself.
    gatehouse_proxy::target_policy::protect(listen);
    std::thread::Builder::new()
        .name("gatehouse-admin".into())
        .spawn(move || {
            // The proxy owns the process's signals and exit: the admin runs
            // until then. If it cannot run, the data plane goes on serving
            // its last snapshot: exiting would take every site down over a
            // control-plane problem, and a supervisor would restart it into
            // the same problem again and again.
            let served = tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| {
                    runtime.block_on(gatehouse_admin::serve(options, std::future::pending()))
                });
            if let Err(e) = served {
                tracing::error!(
                    error = format!("{e:#}"),
                    "the admin API stopped; the proxy keeps serving its last snapshot"
                );
            }
        })?;
    Ok(Some(gatehouse_proxy::control::ControlPlane {
        url: format!("http://{listen}"),
        token: node_token,
        node_id: "local".into(),
        state_dir: admin
            .state_dir
            .unwrap_or_else(|| defaults::STATE_DIR.into())
            .into(),
        force: false,
    }))
}
