//! Hot reload: watch the config file (and SIGHUP), rebuild, swap.
//!
//! The new config is read, validated and compiled (routes, pools,
//! certificates) on a blocking thread, off the request path; only then is the
//! snapshot swapped. A bad file leaves the running snapshot untouched, logs
//! every error and bumps `gatehouse_config_reload_failures_total`. Listener
//! addresses and thread counts cannot change in-process: such changes are
//! reported and ignored until a restart (or a binary upgrade).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use gatehouse_config::published::{RefusedPart, Reserved, Sections};
use gatehouse_config::ConfigErrors;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::health::HealthChecker;
use crate::metrics::metrics;
use crate::resolve::TargetResolver;
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::tls::CertGeneration;

/// How often the config file's metadata is checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Identity of a config file version, cheap to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    content_hash: u64,
}

fn content_hash(content: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut h);
    h.finish()
}

impl FileStamp {
    /// Reads the file's current stamp; `None` if it cannot be read.
    pub fn take(path: &std::path::Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        let content = std::fs::read(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            content_hash: content_hash(&content),
        })
    }
}

/// A config loaded with what a control plane published.
#[derive(Debug)]
pub struct Loaded {
    /// The validated config.
    pub config: gatehouse_config::Config,
    /// Published tenant parts left out, and why (the rest is served).
    pub refused: Vec<RefusedPart>,
    /// The config file as parsed.
    pub file: gatehouse_config::file::FileConfig,
    /// The published sections merged in (those left out removed).
    pub kept: Option<Sections>,
}

/// Reads the config file and validates it with `published` (the sections a
/// control plane published) merged in. `Some` means the proxy follows a
/// control plane, even before anything was published (`Some` of empty
/// sections). A published tenant part that does not validate with this
/// file (a host or tenant name the file already has, a chain longer than
/// this node allows, ...) is left out alone (see
/// [`gatehouse_config::published::validate_isolating`]).
pub fn load_merged(
    path: &std::path::Path,
    published: Option<&Sections>,
) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single("", format!("cannot read {}: {e}", path.display())))?;
    let file = gatehouse_config::parse_yaml(&text)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let (config, refused) = match published {
        Some(p) => gatehouse_config::published::validate_isolating(&file, p, base)?,
        None => (
            gatehouse_config::validate::validate(&file, base)?,
            Vec::new(),
        ),
    };
    let kept = published.map(|p| {
        let out: Vec<&str> = refused.iter().map(|r| r.tenant.as_str()).collect();
        p.without_tenants(&out)
    });
    for r in &refused {
        tracing::error!(
            tenant = %r.tenant,
            problems = %r.problems.join("; "),
            "a published tenant part does not validate with this node's config: left out, the rest is served"
        );
    }
    Ok(Loaded {
        config,
        refused,
        file,
        kept,
    })
}

/// Which published tenant parts a rebuild takes from where: the new
/// version's, the running one's (a new part this node could not take), or
/// none (neither could be taken). Each problem moves a tenant one step on,
/// so a rebuild ends.
#[derive(Default)]
struct PartChoice {
    /// Tenants running their previous part.
    previous: Vec<String>,
    /// Tenants left out.
    dropped: Vec<String>,
    /// Why, as reported (the new part's problems first).
    problems: Vec<RefusedPart>,
}

impl PartChoice {
    /// `new` with the chosen tenants' parts swapped for `running`'s or removed.
    fn compose(&self, new: &Sections, running: Option<&Sections>) -> Sections {
        let out: Vec<&str> = self
            .previous
            .iter()
            .chain(&self.dropped)
            .map(String::as_str)
            .collect();
        let mut sections = new.without_tenants(&out);
        if let Some(running) = running {
            let previous: Vec<&str> = self.previous.iter().map(String::as_str).collect();
            let old = running.only_tenants(&previous);
            sections.tenants.extend(old.tenants);
            sections.domains.extend(old.domains);
            sections.pools.extend(old.pools);
            sections.certificates.extend(old.certificates);
            sections.plugins.extend(old.plugins);
        }
        sections
    }

    /// Moves each refused tenant on: to its running part when it has one
    /// not tried yet, else out. False when no tenant moved (then another
    /// round would meet the same problems).
    fn escalate(&mut self, refused: Vec<RefusedPart>, running: Option<&Sections>) -> bool {
        let mut moved = false;
        for r in refused {
            let has_previous =
                running.is_some_and(|s| s.tenants.iter().any(|t| t.name == r.tenant));
            if self.previous.contains(&r.tenant) {
                self.previous.retain(|t| t != &r.tenant);
                self.dropped.push(r.tenant.clone());
                moved = true;
            } else if !self.dropped.contains(&r.tenant) {
                moved = true;
                if has_previous {
                    self.previous.push(r.tenant.clone());
                } else {
                    self.dropped.push(r.tenant.clone());
                }
                tracing::error!(
                    tenant = %r.tenant,
                    problems = %r.problems.join("; "),
                    keeps_previous = has_previous,
                    "a published tenant part cannot be taken by this node: its previous part runs (or none), the rest is applied"
                );
                self.problems.push(r);
            }
        }
        moved
    }
}

/// Rebuilds and publishes snapshots from the config file (and the sections
/// a control plane published, when the proxy follows one).
pub struct Reloader {
    path: PathBuf,
    store: Arc<SnapshotStore>,
    health: HealthChecker,
    resolver: TargetResolver,
    /// Serialises reloads (SIGHUP, file changes and published versions may coincide).
    lock: tokio::sync::Mutex<()>,
    last_stamp: Mutex<Option<FileStamp>>,
    /// The published sections now applied, merged into every rebuild.
    published: Mutex<Option<Sections>>,
}

impl Reloader {
    /// A reloader for `path` publishing into `store`. `loaded` is the file's
    /// stamp taken *before* the serving config was read (see [`FileStamp::take`]),
    /// so an edit made while the first load was running is still picked up.
    pub fn new(
        path: PathBuf,
        store: Arc<SnapshotStore>,
        loaded: Option<FileStamp>,
        published: Option<Sections>,
    ) -> Self {
        let last = loaded;
        Reloader {
            path,
            store,
            health: HealthChecker::default(),
            resolver: TargetResolver::default(),
            lock: tokio::sync::Mutex::new(()),
            last_stamp: Mutex::new(last),
            published: Mutex::new(published),
        }
    }

    /// The names the config file defines (`None` if it cannot be read now).
    pub fn reserved(&self) -> Option<Reserved> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        gatehouse_config::parse_yaml(&text)
            .ok()
            .map(|f| Reserved::of(&f))
    }

    /// The snapshots this reloader publishes into.
    pub fn store(&self) -> &Arc<SnapshotStore> {
        &self.store
    }

    /// True when the file's content differs from the last one seen. Only
    /// reads the file when its modification time or size moved.
    fn file_changed(&self) -> bool {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return false;
        };
        let mut last = self.last_stamp.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = &*last {
            if l.modified == meta.modified().ok() && l.len == meta.len() {
                return false;
            }
        }
        let Some(now) = FileStamp::take(&self.path) else {
            return false;
        };
        let changed = last
            .as_ref()
            .is_none_or(|l| l.content_hash != now.content_hash);
        *last = Some(now);
        changed
    }

    /// Loads the file and, if valid, swaps it in. Returns the new version.
    pub async fn reload(&self) -> Result<u64, ConfigErrors> {
        self.rebuild(None).await.map(|(version, _)| version)
    }

    /// Applies newly published sections: the file with them merged in is
    /// validated and compiled, and swapped in if the file's part is valid;
    /// published tenant parts that are not are left out (and returned).
    pub async fn apply_published(
        &self,
        sections: Sections,
    ) -> Result<(u64, Vec<RefusedPart>), ConfigErrors> {
        self.rebuild(Some(sections)).await
    }

    async fn rebuild(
        &self,
        candidate: Option<Sections>,
    ) -> Result<(u64, Vec<RefusedPart>), ConfigErrors> {
        let _guard = self.lock.lock().await;
        let started = std::time::Instant::now();
        let current = self.store.load();
        let path = self.path.clone();
        let prev = current.clone();
        let running = self
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let published = candidate.clone().or_else(|| running.clone());
        // A new tenant part this node cannot take falls back to the part it
        // runs now (when there is one), else is left out.
        let fallback = candidate.is_some().then_some(running).flatten();
        let compiled = tokio::task::spawn_blocking(move || {
            let mut parts = PartChoice::default();
            loop {
                let sections = published
                    .as_ref()
                    .map(|p| parts.compose(p, fallback.as_ref()));
                let loaded = load_merged(&path, sections.as_ref())?;
                // Parts validation left out: try their previous state. When
                // nothing moves, the config without them is the one to build.
                if !loaded.refused.is_empty() && parts.escalate(loaded.refused, fallback.as_ref()) {
                    continue;
                }
                let mut cfg = loaded.config;
                // Sockets and runtimes are fixed at start: keep describing what is
                // actually bound (force_https builds its redirect from it).
                if cfg.listeners != prev.config.listeners || cfg.server != prev.config.server {
                    tracing::warn!(
                        "listener and server settings changed: they apply after a restart or binary upgrade; \
                         the rest of the config is applied now"
                    );
                    cfg.listeners = prev.config.listeners.clone();
                    cfg.server = prev.config.server.clone();
                }
                match Snapshot::compile(cfg, prev.version + 1, Some(&prev), CertGeneration::Generate) {
                    Ok(snap) => return Ok((snap, parts.problems, sections)),
                    Err(errors) => {
                        // Problems found while compiling (a plugin this node
                        // cannot load, a certificate it cannot parse) are
                        // isolated like validation's.
                        let at_fault = loaded.kept.as_ref().and_then(|kept| {
                            gatehouse_config::published::parts_at_fault(&loaded.file, kept, &errors)
                        });
                        let moved = at_fault
                            .is_some_and(|faulty| parts.escalate(faulty, fallback.as_ref()));
                        if !moved {
                            return Err(errors);
                        }
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|e| Err(ConfigErrors::single("", format!("reload task failed: {e}"))));
        let (next, refused, applied) = match compiled {
            Ok(next) => next,
            Err(errors) => {
                metrics().config_reload_failures.inc();
                tracing::error!(
                    path = %self.path.display(),
                    errors = %errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "),
                    "config reload rejected; still serving version {}",
                    current.version
                );
                return Err(errors);
            }
        };
        if candidate.is_some() {
            // What runs: the new parts, with those this node could not take
            // at their previous state (or left out).
            *self.published.lock().unwrap_or_else(|p| p.into_inner()) = applied;
        }
        let version = next.version;
        self.resolver.prime(&next).await;
        self.resolver.restart(&next);
        self.health.restart(&next);
        forget_removed_targets(&current, &next);
        self.store.store(next);
        let m = metrics();
        m.config_reloads.inc();
        m.config_version.set(version as i64);
        m.config_last_success.set(unix_now());
        let took = started.elapsed();
        m.config_last_reload_duration.set(took.as_secs_f64());
        tracing::info!(
            version,
            path = %self.path.display(),
            duration_ms = took.as_secs_f64() * 1000.0,
            "config reloaded"
        );
        Ok((version, refused))
    }
}

/// Drops the health gauges of targets that no longer exist.
fn forget_removed_targets(old: &Snapshot, new: &Snapshot) {
    let keep: HashSet<(&str, &str)> = new
        .pools
        .iter()
        .flat_map(|p| {
            p.targets
                .iter()
                .map(move |t| (p.config.name.as_str(), t.config.name.as_str()))
        })
        .collect();
    for p in &old.pools {
        for t in &p.targets {
            if !keep.contains(&(p.config.name.as_str(), t.config.name.as_str())) {
                let _ = metrics()
                    .upstream_healthy
                    .remove_label_values(&[&p.config.name, &t.config.name]);
            }
        }
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Background service: reloads the config when its file changes or on SIGHUP;
/// at start, begins health checks and sets the config gauges.
pub struct ConfigWatch {
    reloader: Arc<Reloader>,
    /// Set once SIGHUP is handled: readiness waits for it, or a reload
    /// signal sent as soon as the node reports ready would be lost.
    started: watch::Sender<bool>,
}

impl ConfigWatch {
    /// Watches `reloader`'s file; `started` turns true once it does.
    pub fn new(reloader: Arc<Reloader>, started: watch::Sender<bool>) -> Self {
        ConfigWatch { reloader, started }
    }
}

#[async_trait]
impl BackgroundService for ConfigWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let snap = self.reloader.store.load();
        self.reloader.resolver.restart(&snap);
        self.reloader.health.restart(&snap);
        let m = metrics();
        m.config_version.set(snap.version as i64);
        m.config_last_success.set(unix_now());

        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP reload unavailable");
                None
            }
        };
        self.started.send_replace(true);
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading config");
                    // Record the current file so the watcher does not reload it again.
                    self.reloader.file_changed();
                    let _ = self.reloader.reload().await;
                }
                _ = tick.tick() => {
                    let reloader = self.reloader.clone();
                    let changed = tokio::task::spawn_blocking(move || reloader.file_changed()).await.unwrap_or(false);
                    if changed {
                        let _ = self.reloader.reload().await;
                    }
                }
            }
        }
    }
}
