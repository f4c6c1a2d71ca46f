//! The plugin runtime: one engine, one epoch ticker, loading and caching plugins.
//!
//! The engine uses wasmtime's pooling allocator with copy-on-write memory
//! initialisation, so a fresh instance per request costs microseconds. It is
//! created on first use (a config without plugins never reserves the pool's
//! address space). Loading a plugin reads the file, checks its SHA-256 and its
//! world and version, compiles it (or loads the compiled artifact from the
//! private disk cache, keyed by SHA-256 and engine), and links it into an
//! `InstancePre`. Plugins whose bytes did not change are carried over from the
//! previous snapshot, so a reload does not recompile them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gatehouse_config::model::{Config, MAX_PLUGIN_MEMORY};
use gatehouse_config::ConfigErrors;
use prometheus::IntCounter;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{Policy, PolicyPre};
use crate::breaker::Breaker;
use crate::budget::{apply_limits, tenant_budget, TenantBudget};
use crate::hold::HoldCaps;
use crate::host::HostState;
use crate::metrics::{families, PluginMetrics};

/// Version of the `gatehouse:plugin` WIT package this proxy implements.
pub const WIT_VERSION: &str = "0.1.0";
/// Epoch tick: the granularity of plugin deadlines, and the longest a hook
/// call holds a worker thread before it yields. Short, because a request
/// queued behind other tenants' long calls on a worker waits a tick for each
/// (measured: with 1 ms, a tenant flooding a spinning chain doubled another
/// tenant's p99; the ticker costs one wake-up per tick).
pub const EPOCH_TICK: Duration = Duration::from_micros(250);
/// Largest plugin file accepted.
pub const MAX_PLUGIN_BYTES: u64 = 32 * 1024 * 1024;
/// Instances that can be alive at once: those kept between a request's two
/// hooks (see `hold`) plus those of hooks running now. Slots cost address
/// space, not memory, until used.
const POOL_INSTANCES: u32 = 4096;
/// Slots never given to kept instances, so a running hook always finds one
/// (hooks run synchronously on worker threads: far fewer run at once).
const POOL_RESERVED_FOR_RUNNING: u32 = 512;
/// Most instances one tenant may keep between hooks at once.
const HELD_PER_TENANT: u32 = 1024;

/// Instances kept between a request's hooks right now.
pub fn kept_instances() -> u32 {
    HOLD_CAPS.total.load(Ordering::Relaxed)
}

/// The caps on instances kept between a request's hooks.
pub(crate) static HOLD_CAPS: HoldCaps = HoldCaps {
    total: AtomicU32::new(0),
    max_total: POOL_INSTANCES - POOL_RESERVED_FOR_RUNNING,
    max_per_tenant: HELD_PER_TENANT,
};
/// Bytes of a memory slot reset in place (not decommitted) between instances.
pub(crate) const KEEP_RESIDENT: usize = 2 << 20;
/// Reset slots kept warm beyond those in use (wasmtime's default): the slots
/// ever used are at most the peak of live instances plus this many.
const MAX_UNUSED_WARM_SLOTS: u32 = 100;
/// Stack of a running call: the guest's (`max_wasm_stack`) plus room for the
/// host functions it calls.
const WASM_STACK: usize = 512 * 1024;
pub(crate) const CALL_STACK: usize = 1024 * 1024;
/// Core instances and tables one plugin instance may have (a component built
/// by `gatehouse plugin build` has at most 4 of each).
pub(crate) const MAX_CORE_INSTANCES: u32 = 16;
pub(crate) const MAX_TABLES: u32 = 8;

pub(crate) struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

/// The process-wide runtime, created on first use.
pub(crate) fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| build_runtime().map_err(|e| format!("plugin runtime: {e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn build_runtime() -> wasmtime::Result<Runtime> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES * 4)
        .max_memories_per_component(1)
        // What one component may instantiate inside itself: a Gatehouse
        // plugin is a few core modules; more only takes slots from others.
        .max_core_instances_per_component(MAX_CORE_INSTANCES)
        .max_tables_per_component(MAX_TABLES)
        .max_memory_size(MAX_PLUGIN_MEMORY)
        // Reset a used slot by zeroing the pages the instance dirtied
        // (found with PAGEMAP_SCAN where the kernel has it) instead of
        // `madvise`: no page faults and TLB shootdowns on the next instance.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 * 1024)
        .max_unused_warm_slots(MAX_UNUSED_WARM_SLOTS)
        // Every running call has a fiber stack of its own (calls are
        // futures, see `call`), at most one per instance. Free stacks are
        // reused most recent first, so the stacks ever touched are at most
        // the peak of concurrent calls.
        .total_stacks(POOL_INSTANCES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(WASM_STACK)
        .async_stack_size(CALL_STACK)
        // Stacks are not zeroed between calls (wasmtime's default: compiled
        // code never reads a stack slot before writing it). Zeroing them
        // (memset of a kept part, decommit of the rest) measured +1.5 us per
        // request with two hooks.
        .async_stack_zeroing(false)
        // Failures are classified by trap code; a backtrace would only carry
        // guest-chosen names into the logs, and costs time to capture.
        .wasm_backtrace_max_frames(None)
        .memory_init_cow(true)
        // Slots are as large as the largest memory a binding may ask for;
        // the per-store limiter enforces each binding's own cap.
        .memory_reservation(MAX_PLUGIN_MEMORY as u64)
        // Memories are far below 4 GiB, so compiled code bounds-checks every
        // access anyway. Without guard pages and signal-based traps, wasmtime
        // can leave a recycled slot's pages read/write instead of `mprotect`ing
        // them on every instantiation (each call a TLB shootdown across cores).
        .memory_guard_size(0)
        .signals_based_traps(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    let mut linker = Linker::new(&engine);
    Policy::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    // One ticker for the whole process: deadlines are counted in its ticks.
    let ticking = engine.weak();
    std::thread::Builder::new()
        .name("gatehouse-plugin-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match ticking.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })?;
    Ok(Runtime { engine, linker })
}

/// Distinct counter names one plugin may use.
const MAX_COUNTER_NAMES: usize = 32;

/// A loaded, linked plugin, shared by every snapshot that still uses its bytes.
pub struct CompiledPlugin {
    /// Plugin name from the config.
    pub name: String,
    /// Owning tenant.
    pub tenant: Arc<str>,
    /// SHA-256 of the component file.
    pub sha256: [u8; 32],
    /// `gatehouse:plugin` version the plugin was built for.
    pub version: String,
    pub(crate) pre: PolicyPre<HostState>,
    pub(crate) breaker: Breaker,
    pub(crate) metrics: PluginMetrics,
    /// The plugin's tenant's budgets (shared by its plugins).
    pub(crate) budget: Arc<TenantBudget>,
    /// Until when (`breaker::now_ms`) its calls take a lane before they
    /// start: set when one of its calls outlived a tick.
    long_until: std::sync::atomic::AtomicU64,
    counters: Mutex<HashMap<String, IntCounter>>,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("sha256", &hex(&self.sha256))
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// How long a plugin whose call outlived a tick keeps taking lanes up front.
const LONG_FOR_MS: u64 = 10_000;

impl CompiledPlugin {
    /// Whether its calls have lately outlived a tick (they then take a lane
    /// before they start, so their first turn waits like the rest).
    pub(crate) fn is_long(&self) -> bool {
        crate::breaker::now_ms() < self.long_until.load(Ordering::Relaxed)
    }

    /// One of its calls outlived a tick.
    pub(crate) fn mark_long(&self) {
        self.long_until
            .store(crate::breaker::now_ms() + LONG_FOR_MS, Ordering::Relaxed);
    }

    /// Whether the proxy may write a log line of about `bytes` about this
    /// plugin (its failures): such lines count against the tenant's log
    /// budget like the plugin's own, or a failing plugin would be a way to
    /// flood the log.
    pub fn may_log(&self, bytes: usize) -> bool {
        let now = crate::budget::now_ns(std::time::Instant::now());
        self.budget.log.try_spend(bytes as u64, now)
    }

    /// The counter `name` of this plugin, if under the per-plugin name cap.
    pub(crate) fn counter(&self, name: &str) -> Option<IntCounter> {
        if name.is_empty() || name.len() > 64 {
            return None;
        }
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(name) {
            return Some(c.clone());
        }
        if map.len() >= MAX_COUNTER_NAMES || !self.budget.counter_name_allowed(&self.name, name) {
            return None;
        }
        let c =
            families()
                .plugin_counter
                .with_label_values(&[&*self.tenant, self.name.as_str(), name]);
        map.insert(name.to_string(), c.clone());
        Some(c)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// What `gatehouse plugin inspect` reports about a component.
#[derive(Debug)]
pub struct Inspection {
    /// SHA-256 of the file.
    pub sha256: String,
    /// File size.
    pub size: usize,
    /// `gatehouse:plugin` version targeted.
    pub version: String,
    /// Component imports.
    pub imports: Vec<String>,
    /// Component exports.
    pub exports: Vec<String>,
}

/// Validates a component exactly as the proxy does when loading it.
pub fn inspect(path: &Path) -> Result<Inspection, String> {
    inspect_bytes(&read_plugin(path)?)
}

/// Validates a component held in memory exactly as the proxy does when
/// loading it (the admin API checks uploads with this).
pub fn inspect_bytes(bytes: &[u8]) -> Result<Inspection, String> {
    if bytes.len() as u64 > MAX_PLUGIN_BYTES {
        return Err(format!(
            "the component is {} bytes; plugins are limited to {MAX_PLUGIN_BYTES}",
            bytes.len()
        ));
    }
    let rt = runtime()?;
    let component = compile(&rt.engine, bytes, None)?;
    let version = check_world(&rt.engine, &component)?;
    link(rt, &component)?;
    let ty = component.component_type();
    Ok(Inspection {
        sha256: hex(&sha256(bytes)),
        size: bytes.len(),
        version,
        imports: ty.imports(&rt.engine).map(|(n, _)| n.to_string()).collect(),
        exports: ty.exports(&rt.engine).map(|(n, _)| n.to_string()).collect(),
    })
}

/// Loads every plugin of `config`, reusing those of `previous` whose name,
/// tenant and bytes are unchanged. Errors carry the plugin's field path.
pub fn load_plugins(
    config: &Config,
    previous: &[Arc<CompiledPlugin>],
) -> Result<Vec<Arc<CompiledPlugin>>, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut out = Vec::with_capacity(config.plugins.len());
    if config.plugins.is_empty() {
        return Ok(out);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            errors.push("plugins", e);
            return Err(errors);
        }
    };
    let cache_dir = config
        .server
        .plugin_cache_dir
        .as_deref()
        .and_then(|d| match private_dir(d) {
            Ok(()) => Some(d),
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "plugin cache directory not used; compiling in memory");
                None
            }
        });
    for (i, p) in config.plugins.iter().enumerate() {
        let bytes = match read_plugin(&p.path) {
            Ok(b) => b,
            Err(e) => {
                errors.push(format!("plugins[{i}].path"), e);
                continue;
            }
        };
        let digest = sha256(&bytes);
        if let Some(expected) = p.sha256 {
            if expected != digest {
                errors.push(
                    format!("plugins[{i}].sha256"),
                    format!(
                        "{} has SHA-256 {}, the config expects {}",
                        p.path.display(),
                        hex(&digest),
                        hex(&expected)
                    ),
                );
                continue;
            }
        }
        if let Some(prev) = previous
            .iter()
            .find(|c| c.sha256 == digest && c.name == p.name && *c.tenant == *p.tenant)
        {
            out.push(prev.clone());
            continue;
        }
        let loaded = compile(&rt.engine, &bytes, cache_dir).and_then(|component| {
            let version = check_world(&rt.engine, &component)?;
            let pre = link(rt, &component)?;
            Ok((version, pre))
        });
        match loaded {
            Ok((version, pre)) => out.push(Arc::new(CompiledPlugin {
                metrics: PluginMetrics::new(&p.tenant, &p.name),
                name: p.name.clone(),
                tenant: Arc::from(p.tenant.as_str()),
                sha256: digest,
                version,
                pre,
                breaker: Breaker::default(),
                budget: tenant_budget(&p.tenant),
                long_until: Default::default(),
                counters: Mutex::new(HashMap::new()),
            })),
            Err(e) => errors.push(
                format!("plugins[{i}].path"),
                format!("{}: {e}", p.path.display()),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    apply_limits(config, out.iter().map(|p| &*p.budget));
    Ok(out)
}

fn read_plugin(path: &Path) -> Result<Vec<u8>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_PLUGIN_BYTES {
        return Err(format!(
            "{} is {} bytes; plugins are limited to {MAX_PLUGIN_BYTES}",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn compile(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component, String> {
    if !wasmparser::Parser::is_component(bytes) {
        return Err(if wasmparser::Parser::is_core_wasm(bytes) {
            "is a core WebAssembly module, not a component: build it with `gatehouse plugin build`"
                .to_string()
        } else {
            "is not a WebAssembly component".to_string()
        });
    }
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes).map_err(|e| format!("does not compile: {e:#}"));
    };
    let file = dir.join(format!(
        "{}-{}.cwasm",
        hex(&sha256(bytes)),
        engine_key(engine)
    ));
    if file.exists() {
        match deserialize(engine, &file) {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "discarding unusable compiled plugin");
                let _ = std::fs::remove_file(&file);
            }
        }
    }
    let component =
        Component::new(engine, bytes).map_err(|e| format!("does not compile: {e:#}"))?;
    if let Err(e) = component
        .serialize()
        .map_err(|e| e.to_string())
        .and_then(|artifact| write_atomic(&file, &artifact).map_err(|e| e.to_string()))
    {
        tracing::warn!(file = %file.display(), error = %e, "could not cache compiled plugin");
    }
    Ok(component)
}

/// Loads a compiled artifact from the private cache.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, file: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output.
    // It is: the cache directory is checked to be private to this user
    // (`private_dir`), files are written only by `compile` (temp file +
    // rename), and the name carries the source's SHA-256 and the engine's
    // compatibility hash; wasmtime also checks the artifact's header against
    // this engine before using it.
    unsafe { Component::deserialize_file(engine, file) }
}

fn engine_key(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Creates `dir` (mode 0700) and checks that it belongs to this user and
/// nobody else can write to it: its files are loaded as native code.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create: {e}"))?;
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    let me = std::fs::metadata("/proc/self")
        .map_err(|e| e.to_string())?
        .uid();
    if meta.uid() != me {
        return Err(format!("owned by uid {}, not this user ({me})", meta.uid()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp: PathBuf = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Checks the component is a Gatehouse plugin of a compatible version and
/// imports nothing else; returns the version it targets.
fn check_world(engine: &Engine, component: &Component) -> Result<String, String> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(n, _)| n).collect();
    let Some(version) = exports
        .iter()
        .find_map(|n| n.strip_prefix("gatehouse:plugin/handler@"))
    else {
        return Err(format!(
            "does not export gatehouse:plugin/handler, so it is not a Gatehouse plugin (exports: {})",
            if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
        ));
    };
    compatible(version)?;
    for (name, _) in ty.imports(engine) {
        match name.split_once('@') {
            Some((iface, v)) if iface.starts_with("gatehouse:plugin/") => compatible(v)?,
            _ => {
                return Err(format!(
                    "imports {name}, which Gatehouse does not provide (a plugin may import only gatehouse:plugin/host)"
                ))
            }
        }
    }
    Ok(version.to_string())
}

/// Semver compatibility with [`WIT_VERSION`]: same major, and for 0.x the same minor.
fn compatible(version: &str) -> Result<(), String> {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    let ours = parse(WIT_VERSION).unwrap_or((0, 0));
    let ok = match parse(version) {
        Some((0, minor)) => ours.0 == 0 && ours.1 == minor,
        Some((major, _)) => major == ours.0,
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "built for gatehouse:plugin@{version}, but this proxy implements gatehouse:plugin@{WIT_VERSION} \
             (compatible: {}.{}.x); rebuild the plugin against a matching SDK",
            ours.0, ours.1
        ))
    }
}

fn link(rt: &Runtime, component: &Component) -> Result<PolicyPre<HostState>, String> {
    let pre = rt
        .linker
        .instantiate_pre(component)
        .map_err(|e| format!("cannot be linked: {e:#}"))?;
    PolicyPre::new(pre).map_err(|e| format!("does not implement the policy world: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_compatibility_follows_semver() {
        assert!(compatible("0.1.0").is_ok());
        assert!(compatible("0.1.7").is_ok());
        let err = compatible("0.2.0").unwrap_err();
        assert!(err.contains("gatehouse:plugin@0.2.0"), "{err}");
        assert!(compatible("1.0.0").is_err());
        assert!(compatible("garbage").is_err());
    }

    #[test]
    fn non_components_are_rejected_with_a_reason() {
        let rt = runtime().unwrap();
        let err = compile(&rt.engine, b"\0asm\x01\0\0\0", None).unwrap_err();
        assert!(err.contains("core WebAssembly module"), "{err}");
        let err = compile(&rt.engine, b"not wasm at all", None).unwrap_err();
        assert!(err.contains("not a WebAssembly component"), "{err}");
    }
}
