//! `gatehouse plugin build`: a Rust plugin crate to a WebAssembly component.
//!
//! Builds the crate for `wasm32-unknown-unknown` with the first toolchain that
//! can: rustup's, when its wasm32 target is installed (a developer laptop), or
//! Debian's `rustc-web` with `-Zbuild-std` and `wasm-ld` (installed with apt
//! when missing: machines without access to the Rust distribution servers).
//! The core module is then wrapped into a component with `wit-component`, and
//! the result is validated exactly as the proxy will load it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_PACKAGES: [&str; 4] = ["rustc-web", "cargo-web", "rust-web-src", "lld-19"];
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_LINKER: &str = "wasm-ld-19";

/// Size of a plugin's shadow stack in its linear memory.
pub const GUEST_STACK_BYTES: u32 = 128 * 1024;

/// How to run cargo for the wasm target.
enum Toolchain {
    /// rustup with the wasm32 target installed.
    Rustup,
    /// Debian's Rust with std built from source.
    Debian,
}

impl Toolchain {
    fn cargo(&self) -> Command {
        let mut cmd = match self {
            Toolchain::Rustup => Command::new("cargo"),
            Toolchain::Debian => {
                let mut c = Command::new(DEBIAN_CARGO);
                // Or /usr/bin/cargo picks rustup's rustc from PATH.
                c.env("RUSTC", DEBIAN_RUSTC)
                    .env("RUSTC_BOOTSTRAP", "1")
                    .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", DEBIAN_LINKER);
                c
            }
        };
        // Settings for the host build must not leak into the guest build.
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "RUSTC_WRAPPER",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }
}

fn rustup_has_wasm_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false)
}

fn debian_toolchain_present() -> bool {
    Path::new(DEBIAN_CARGO).exists()
        && Path::new(DEBIAN_RUSTC).exists()
        && Path::new("/usr/lib/rustlib/src/rust/library").exists()
        && which(DEBIAN_LINKER)
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(cmd).is_file()))
        .unwrap_or(false)
}

fn install_debian_toolchain() -> Result<()> {
    eprintln!(
        "gatehouse plugin build: no rustup wasm32 target; installing Debian's toolchain ({})",
        DEBIAN_PACKAGES.join(" ")
    );
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let run = |args: &[&str]| -> Result<()> {
        let mut cmd = if root {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg(args[0]);
            c
        };
        cmd.args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        let status = cmd
            .status()
            .with_context(|| format!("running {}", args.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    run(&["apt-get", "update", "-qq"])?;
    let mut install = vec!["apt-get", "install", "-y", "-qq"];
    install.extend(DEBIAN_PACKAGES);
    run(&install)
}

fn toolchain() -> Result<Toolchain> {
    if rustup_has_wasm_target() {
        return Ok(Toolchain::Rustup);
    }
    if !debian_toolchain_present() {
        install_debian_toolchain()?;
        if !debian_toolchain_present() {
            bail!(
                "Debian's wasm toolchain is still incomplete after installing {}",
                DEBIAN_PACKAGES.join(" ")
            );
        }
    }
    Ok(Toolchain::Debian)
}

/// The crate's cdylib artifact name and the target directory, from `cargo metadata`.
fn locate(tc: &Toolchain, manifest: &Path) -> Result<(String, PathBuf)> {
    let out = tc
        .cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let target_dir = meta["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow!("cargo metadata has no target_directory"))?;
    let manifest = manifest.canonicalize()?;
    let package = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .ok_or_else(|| anyhow!("{} is not a package manifest", manifest.display()))?;
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .ok_or_else(|| {
            anyhow!(
                "package {} has no cdylib target: add `[lib] crate-type = [\"cdylib\"]`",
                package["name"]
            )
        })?;
    let name = lib["name"].as_str().unwrap_or_default().replace('-', "_");
    Ok((name, PathBuf::from(target_dir)))
}

/// Builds the plugin crate in `crate_dir` into the component `output`.
pub fn build(crate_dir: &Path, output: &Path) -> Result<()> {
    let manifest = crate_dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{} has no Cargo.toml", crate_dir.display());
    }
    let tc = toolchain()?;
    let (artifact, target_dir) = locate(&tc, &manifest)?;
    let mut cmd = tc.cargo();
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest);
    if let Toolchain::Debian = tc {
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    // A smaller shadow stack than Rust's 1 MiB default: the stack comes first
    // in linear memory, so this shrinks the memory the proxy resets after
    // every request. Overflowing it traps (it would run below address 0).
    // `--config` adds to, rather than replaces, the crate's own rustflags.
    cmd.arg("--config").arg(format!(
        "target.{TARGET}.rustflags=[\"-C\", \"link-arg=-zstack-size={GUEST_STACK_BYTES}\"]"
    ));
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of {} failed ({status})", crate_dir.display());
    }
    let module_path = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{artifact}.wasm"));
    let module = std::fs::read(&module_path)
        .with_context(|| format!("reading {}", module_path.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .context("the module carries no component type information: does the crate use gatehouse-plugin-sdk (or wit-bindgen)?")?
        .validate(true)
        .encode()
        .context("encoding the component")?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = output.with_extension(format!("wasm.tmp{}", std::process::id()));
    std::fs::write(&tmp, &component)?;
    std::fs::rename(&tmp, output)?;
    let info = gatehouse_plugin_host::inspect(output)
        .map_err(|e| anyhow!("{} is not a valid plugin: {e}", output.display()))?;
    println!(
        "built {} ({} bytes, sha256 {}, gatehouse:plugin@{})",
        output.display(),
        info.size,
        info.sha256,
        info.version
    );
    Ok(())
}
