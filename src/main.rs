//! The `gatehouse` command: `run` starts the proxy (and the admin API when the
//! config has an `admin` section), `admin` the admin API alone, `proxy` a
//! proxy that follows an admin API, `check` validates a config, `plugin build`
//! / `plugin inspect` make and check WebAssembly plugins.
//!
//! Thin by design: arguments, logging setup and one exit path live here;
//! `local_admin` starts the in-process admin of `gatehouse run`, `acme_args`
//! maps ACME flags, `plugin_build` builds plugins; everything else is in the
//! library crates. Defaults shared with the config file come from
//! `gatehouse_config::admin_defaults`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse_config::admin_defaults as defaults;
use tracing_subscriber::EnvFilter;

mod acme_args;
mod local_admin;
mod plugin_build;

use acme_args::AcmeArgs;

// A proxy allocates and frees many small buffers per request on several
// threads; glibc malloc's arena locks showed up as ~15% of CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "Multi-tenant edge reverse proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a config file; the file is watched and hot-reloaded (also on SIGHUP).
    /// With an `admin` section, the admin API runs in the same process and the proxy serves
    /// what is published through it.
    Run {
        /// Path to the YAML config.
        #[arg(long, short)]
        config: PathBuf,
        /// Take over the listening sockets of a running Gatehouse (zero-downtime binary
        /// upgrade): start the new binary with --upgrade, then send SIGQUIT to the old one.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file: prints every error with its field path; exit status 1 if any.
    Check {
        /// Path to the YAML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// List the WAF's rules (id, family, paranoia level, severity, what it detects):
    /// the ids `waf.exclusions[].rules` take.
    WafRules {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Build and inspect WebAssembly policy plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the admin API (the control plane) on its own. On first start it prints a
    /// bootstrap platform-admin token once, or installs the one in GATEHOUSE_ADMIN_TOKEN.
    Admin {
        /// Address to listen on.
        #[arg(long, default_value = defaults::LISTEN)]
        listen: std::net::SocketAddr,
        /// Database: sqlite://path/to/file.db (created if missing) or postgres://user@host/db.
        #[arg(long, default_value = defaults::DATABASE, env = "GATEHOUSE_DATABASE_URL")]
        database: String,
        /// Key file sealing private keys at rest; created (private) when missing. Every admin
        /// sharing a database needs the same file.
        #[arg(
            long,
            default_value = defaults::SECRETS_KEY_FILE,
            env = "GATEHOUSE_SECRETS_KEY_FILE"
        )]
        secrets_key_file: PathBuf,
        /// DNS server (ip:port) for ownership checks by TXT record (default: the system's).
        #[arg(long)]
        dns_resolver: Option<std::net::SocketAddr>,
        /// Failed authentications a client may make (at once, and per minute) before it is
        /// refused (429) for a while.
        #[arg(long, default_value_t = gatehouse_admin::auth::AUTH_FAILURES_PER_MINUTE)]
        auth_failures_per_minute: u32,
        /// Let tenants point pools at internal addresses (loopback, link-local such as
        /// cloud metadata, multicast); refused by default so that no tenant reaches the
        /// edge's own services. Private networks are always allowed.
        #[arg(long)]
        allow_internal_targets: bool,
        /// Address ranges (CIDRs, comma-separated) tenants' pools may not reach, replacing
        /// the default: loopback, 0.0.0.0/8, link-local, multicast, broadcast and reserved,
        /// the cloud metadata services (169.254.169.254, 100.100.100.200, 168.63.129.16,
        /// fd00:ec2::254, fd20:ce::254), ::/96 and 64:ff9b:1::/48. Published to the nodes, which also refuse their own addresses and
        /// check every address a target name resolves to.
        #[arg(long, value_delimiter = ',')]
        refused_target_ranges: Option<Vec<String>>,
        /// Days a domain may stay pending (ownership never proven) and still keep its name
        /// from other tenants; after that another tenant's claim withdraws it.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=3650))]
        pending_domain_days: u64,
        /// MiB of plugin components each tenant may store (the distinct components its
        /// plugins use); an upload over it is refused with 409 and the figures.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
        plugin_storage_mb: u64,
        /// Most plugin bindings one request may run, a domain's and a route's chains
        /// together: set it to the nodes' `limits.plugins.max_chain` (both default to 16),
        /// so that longer chains are refused here rather than by every node.
        #[arg(long, default_value_t = gatehouse_config::plugin_defaults::MAX_CHAIN)]
        max_plugin_chain: usize,
        #[command(flatten)]
        acme: AcmeArgs,
    },
    /// Run a proxy that follows an admin API: the config file gives listeners and limits,
    /// the admin the tenants, domains, pools, certificates and plugins. The node token is
    /// read from GATEHOUSE_NODE_TOKEN or --token-file.
    Proxy {
        /// Path to the node's YAML config (listeners, limits, server settings).
        #[arg(long, short)]
        config: PathBuf,
        /// Base URL of the admin API.
        #[arg(long, env = "GATEHOUSE_ADMIN_URL")]
        admin_url: String,
        /// File holding the node token (instead of GATEHOUSE_NODE_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// This node's id in the admin's node list (default: the host name).
        #[arg(long, env = "GATEHOUSE_NODE_ID")]
        node_id: Option<String>,
        /// Directory for the last applied version and plugin components.
        #[arg(long, default_value = defaults::STATE_DIR)]
        state_dir: PathBuf,
        /// Accept a version older than the applied one, or an empty one (after restoring the
        /// admin's database on purpose). Without it such versions are refused.
        #[arg(long)]
        force_snapshot: bool,
        /// Take over the listening sockets of a running Gatehouse (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Build a plugin crate (using gatehouse-plugin-sdk) into a component.
    Build {
        /// Directory of the plugin crate (with its Cargo.toml).
        crate_dir: PathBuf,
        /// Output file.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Print a component's world, version, imports and exports, validating it as the
    /// proxy would; exit status 1 with the reason if it is not a loadable plugin.
    Inspect {
        /// The .wasm component.
        file: PathBuf,
    },
}

fn init_logging() {
    // JSON lines on stdout; GATEHOUSE_LOG (or RUST_LOG) sets the filter.
    let filter = EnvFilter::try_from_env("GATEHOUSE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .init();
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        // Errors carry their command as context ("gatehouse admin: …").
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::WafRules { json } => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for r in gatehouse_proxy::waf::catalog() {
                let written = if json {
                    writeln!(out, "{}", serde_json::to_string(&r).unwrap_or_default())
                } else {
                    writeln!(
                        out,
                        "{}  {:<16} pl{}  {:<8}  {}",
                        r.id, r.family, r.paranoia, r.severity, r.description
                    )
                };
                // A closed pipe (`| head`) ends the listing quietly.
                if written.is_err() {
                    break;
                }
            }
        }
        Command::Check { config } => {
            let snapshot = match gatehouse_proxy::check(&config) {
                Ok(snapshot) => snapshot,
                Err(errors) => {
                    eprintln!("{}: {} error(s)", config.display(), errors.len());
                    for e in errors.iter() {
                        eprintln!("  {e}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            println!(
                "{}: OK ({} domains, {} pools, {} certificates)",
                config.display(),
                snapshot.config.domains.len(),
                snapshot.config.pools.len(),
                snapshot.config.certificates.len()
            );
        }
        Command::Plugin(PluginCommand::Build { crate_dir, output }) => {
            plugin_build::build(&crate_dir, &output).context("gatehouse plugin build")?;
        }
        Command::Plugin(PluginCommand::Inspect { file }) => {
            let info = gatehouse_plugin_host::inspect(&file)
                .map_err(|e| anyhow::anyhow!("{}: invalid plugin: {e}", file.display()))?;
            println!("file: {}", file.display());
            println!("size: {} bytes", info.size);
            println!("sha256: {}", info.sha256);
            println!(
                "world: gatehouse:plugin/policy (built for gatehouse:plugin@{})",
                info.version
            );
            println!("imports: {}", info.imports.join(", "));
            println!("exports: {}", info.exports.join(", "));
            println!("valid: yes");
        }
        Command::Admin {
            listen,
            database,
            secrets_key_file,
            dns_resolver,
            auth_failures_per_minute,
            allow_internal_targets,
            refused_target_ranges,
            pending_domain_days,
            plugin_storage_mb,
            max_plugin_chain,
            acme,
        } => {
            init_logging();
            let serve = || -> anyhow::Result<()> {
                let options = gatehouse_admin::ServeOptions {
                    listen,
                    database,
                    preset_token: local_admin::preset_admin_token(),
                    secrets_key_file,
                    dns_resolver,
                    auth_failures_per_minute,
                    allow_internal_targets,
                    refused_target_ranges,
                    plugin_storage_bytes: plugin_storage_mb * 1024 * 1024,
                    pending_domain_ttl: std::time::Duration::from_secs(
                        pending_domain_days * 86_400,
                    ),
                    local_node_token: None,
                    acme: acme.settings()?,
                    max_plugin_chain,
                };
                tokio::runtime::Runtime::new()?
                    .block_on(gatehouse_admin::serve(options, shutdown_signal()))
            };
            serve().context("gatehouse admin")?;
        }
        Command::Proxy {
            config,
            admin_url,
            token_file,
            node_id,
            state_dir,
            force_snapshot,
            upgrade,
        } => {
            init_logging();
            let follow = || -> anyhow::Result<()> {
                let control = gatehouse_proxy::control::ControlPlane {
                    url: admin_url,
                    token: node_token(token_file.as_deref())?,
                    node_id: node_id.unwrap_or_else(default_node_id),
                    state_dir,
                    force: force_snapshot,
                };
                gatehouse_proxy::run(gatehouse_proxy::RunOptions {
                    config,
                    upgrade,
                    control: Some(control),
                })
            };
            follow().context("gatehouse proxy")?;
        }
        Command::Run { config, upgrade } => {
            init_logging();
            let serve = || -> anyhow::Result<()> {
                let control = local_admin::start(&config)?;
                gatehouse_proxy::run(gatehouse_proxy::RunOptions {
                    config,
                    upgrade,
                    control,
                })
            };
            serve().context("gatehouse")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The node token: from `--token-file`, else GATEHOUSE_NODE_TOKEN.
fn node_token(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?,
        None => std::env::var("GATEHOUSE_NODE_TOKEN").map_err(|_| {
            anyhow::anyhow!("no node token: set GATEHOUSE_NODE_TOKEN or pass --token-file")
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        anyhow::bail!("the node token is empty");
    }
    Ok(token)
}

fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
