//! The `gatehouse` command: `run` starts the proxy (and the admin API when the
//! config has an `admin` section), `admin` the admin API alone, `proxy` a
//! proxy that follows an admin API, `check` validates a config, `plugin build`
//! / `plugin inspect` make and check WebAssembly plugins.
//!
//! Thin by design: parsing arguments and logging setup live here, everything
//! else in `gatehouse-proxy` and `gatehouse-config`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod plugin_build;

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
        #[arg(long, default_value = "127.0.0.1:9900")]
        listen: std::net::SocketAddr,
        /// Database: sqlite://path/to/file.db (created if missing) or postgres://user@host/db.
        #[arg(
            long,
            default_value = "sqlite://data/gatehouse.db",
            env = "GATEHOUSE_DATABASE_URL"
        )]
        database: String,
        /// Key file sealing private keys at rest; created (private) when missing. Every admin
        /// sharing a database needs the same file.
        #[arg(
            long,
            default_value = "data/secrets.key",
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
        #[arg(long, default_value = "data/node")]
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
    let cli = Cli::parse();
    match cli.command {
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
            ExitCode::SUCCESS
        }
        Command::Check { config } => match gatehouse_proxy::check(&config) {
            Ok(snapshot) => {
                println!(
                    "{}: OK ({} domains, {} pools, {} certificates)",
                    config.display(),
                    snapshot.config.domains.len(),
                    snapshot.config.pools.len(),
                    snapshot.config.certificates.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{}: {} error(s)", config.display(), errors.len());
                for e in errors.iter() {
                    eprintln!("  {e}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Plugin(PluginCommand::Build { crate_dir, output }) => {
            match plugin_build::build(&crate_dir, &output) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gatehouse plugin build: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Plugin(PluginCommand::Inspect { file }) => {
            match gatehouse_proxy::plugin::inspect(&file) {
                Ok(info) => {
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
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: invalid plugin: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin {
            listen,
            database,
            secrets_key_file,
            dns_resolver,
            auth_failures_per_minute,
            allow_internal_targets,
            acme,
        } => {
            init_logging();
            let acme = match acme.settings() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("gatehouse admin: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let options = gatehouse_admin::ServeOptions {
                listen,
                database,
                preset_token: preset_admin_token(),
                secrets_key_file,
                dns_resolver,
                auth_failures_per_minute,
                allow_internal_targets,
                local_node_token: None,
                acme,
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("gatehouse admin: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = runtime.block_on(gatehouse_admin::serve(options, shutdown_signal())) {
                eprintln!("gatehouse admin: {e:#}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
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
            let token = match node_token(token_file.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("gatehouse proxy: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let control = gatehouse_proxy::control::ControlPlane {
                url: admin_url,
                token,
                node_id: node_id.unwrap_or_else(default_node_id),
                state_dir,
                force: force_snapshot,
            };
            let options = gatehouse_proxy::RunOptions {
                config,
                upgrade,
                control: Some(control),
            };
            if let Err(e) = gatehouse_proxy::run(options) {
                eprintln!("gatehouse proxy: {e:#}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Command::Run { config, upgrade } => {
            init_logging();
            let control = match start_local_admin(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("gatehouse: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let options = gatehouse_proxy::RunOptions {
                config,
                upgrade,
                control,
            };
            if let Err(e) = gatehouse_proxy::run(options) {
                eprintln!("gatehouse: {e:#}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}

fn preset_admin_token() -> Option<String> {
    std::env::var("GATEHOUSE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
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

/// With an `admin` section in the config, starts the admin API on a thread of
/// its own and returns how the proxy follows it (with a fresh node token).
fn start_local_admin(
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
        .unwrap_or("127.0.0.1:9900")
        .parse()
        .map_err(|e| anyhow::anyhow!("admin.listen: {e}"))?;
    let node_token = gatehouse_admin::token::generate().token;
    let options = gatehouse_admin::ServeOptions {
        listen,
        database: admin
            .database
            .unwrap_or_else(|| "sqlite://data/gatehouse.db".into()),
        preset_token: preset_admin_token(),
        secrets_key_file: admin
            .secrets_key_file
            .unwrap_or_else(|| "data/secrets.key".into())
            .into(),
        dns_resolver: None,
        auth_failures_per_minute: gatehouse_admin::auth::AUTH_FAILURES_PER_MINUTE,
        // One machine, one operator: its services on localhost are fair targets.
        allow_internal_targets: true,
        local_node_token: Some(node_token.clone()),
        acme: match admin.acme {
            Some(a) => AcmeArgs {
                acme_directory: Some(a.directory_url),
                acme_contact: a.contact,
                acme_ca_bundle: a.ca_bundle.map(PathBuf::from),
                acme_eab_kid: a.eab_kid,
                acme_eab_hmac_key_file: a.eab_hmac_key_file.map(PathBuf::from),
                acme_timeout_seconds: a.timeout_seconds.unwrap_or(60),
                acme_renew_check_seconds: a.renew_check_seconds.unwrap_or(300),
            }
            .settings()
            .map_err(|e| anyhow::anyhow!("admin.acme: {e:#}"))?,
            None => None,
        },
    };
    std::thread::Builder::new()
        .name("gatehouse-admin".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("gatehouse admin: {e}");
                    std::process::exit(1);
                }
            };
            // The proxy owns the process's signals and exit: the admin runs until then.
            if let Err(e) =
                runtime.block_on(gatehouse_admin::serve(options, std::future::pending()))
            {
                eprintln!("gatehouse admin: {e:#}");
                std::process::exit(1);
            }
        })?;
    Ok(Some(gatehouse_proxy::control::ControlPlane {
        url: format!("http://{listen}"),
        token: node_token,
        node_id: "local".into(),
        state_dir: admin.state_dir.unwrap_or_else(|| "data/node".into()).into(),
        force: false,
    }))
}

/// Where the admin orders certificates (`gatehouse admin --acme-directory …`).
#[derive(clap::Args, Debug)]
struct AcmeArgs {
    /// ACME directory URL of the CA to order certificates from (e.g. Let's Encrypt's
    /// https://acme-v02.api.letsencrypt.org/directory); without it ordering is refused.
    #[arg(long, env = "GATEHOUSE_ACME_DIRECTORY")]
    acme_directory: Option<String>,
    /// Contact for the ACME account (mailto:ops@example.com); repeatable.
    #[arg(long)]
    acme_contact: Vec<String>,
    /// PEM file of CA certificates trusted for the ACME server itself (private CAs).
    #[arg(long, env = "GATEHOUSE_ACME_CA_BUNDLE")]
    acme_ca_bundle: Option<PathBuf>,
    /// External account binding key id, for CAs that require one.
    #[arg(long, requires = "acme_eab_hmac_key_file")]
    acme_eab_kid: Option<String>,
    /// File holding the EAB HMAC key (base64url, as CAs hand it out).
    #[arg(long, requires = "acme_eab_kid")]
    acme_eab_hmac_key_file: Option<PathBuf>,
    /// How long validation and issuance may take per order, in seconds.
    #[arg(long, default_value_t = 60)]
    acme_timeout_seconds: u64,
    /// How often to look for certificates due for renewal (two thirds into their
    /// lifetime) and failed orders due for a retry, in seconds.
    #[arg(
        long,
        default_value_t = 300,
        env = "GATEHOUSE_ACME_RENEW_CHECK_SECONDS"
    )]
    acme_renew_check_seconds: u64,
}

impl AcmeArgs {
    fn settings(self) -> anyhow::Result<Option<gatehouse_admin::acme::Settings>> {
        let Some(directory_url) = self.acme_directory else {
            return Ok(None);
        };
        let eab = match (self.acme_eab_kid, self.acme_eab_hmac_key_file) {
            (Some(kid), Some(file)) => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let hmac_key = gatehouse_admin::acme::decode_eab_key(text.trim())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                Some(gatehouse_admin::acme::Eab { kid, hmac_key })
            }
            _ => None,
        };
        Ok(Some(gatehouse_admin::acme::Settings {
            directory_url,
            contact: self.acme_contact,
            eab,
            ca_bundle: self.acme_ca_bundle,
            timeout: std::time::Duration::from_secs(self.acme_timeout_seconds),
            renew_check: std::time::Duration::from_secs(self.acme_renew_check_seconds.max(1)),
        }))
    }
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
