//! The `gatehouse` command: `run` starts the proxy, `admin` the admin API,
//! `check` validates a config, `plugin build` / `plugin inspect` make and check
//! WebAssembly plugins.
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
        Command::Admin { listen, database } => {
            init_logging();
            let options = gatehouse_admin::ServeOptions {
                listen,
                database,
                preset_token: std::env::var("GATEHOUSE_ADMIN_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
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
        Command::Run { config, upgrade } => {
            init_logging();
            if let Err(e) = gatehouse_proxy::run(gatehouse_proxy::RunOptions { config, upgrade }) {
                eprintln!("gatehouse: {e:#}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
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
