//! Following a control plane: poll the admin API for published versions,
//! apply them, keep the last good one on disk, report ACK or NACK.
//!
//! The loop long-polls `GET /v1/dataplane/snapshot?after=<last seen>&wait=30s`.
//! A new version's plugins are fetched by digest into the state directory
//! (checked against their SHA-256), then the node's file config with the
//! published sections merged in is validated and compiled off the request
//! path and swapped in by the [`Reloader`]. Only then is the version written
//! to `<state dir>/snapshot.json` (temp file, fsync, rename, fsync of the
//! directory) and acknowledged. A version that fails anywhere is reported
//! with its errors and the node keeps serving what it had. A version older
//! than the applied one, or an empty one replacing a non-empty one, is
//! refused unless the node was started with `force`: both are what a
//! restored or wiped admin database looks like.
//!
//! At start, [`boot_sections`] reads the last good snapshot, so a node whose
//! admin is down serves what it served before.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::published::{Purges, RefusedPart, Report, Sections, Snapshot};
use pingora::server::ShutdownWatch;

use crate::metrics::metrics;
use crate::node::NodeState;
use crate::reload::Reloader;

/// How long one poll asks the admin to wait.
const POLL_WAIT: Duration = Duration::from_secs(30);
/// Pause after a failed poll (admin down, network), doubling up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// File holding the last applied snapshot.
const SNAPSHOT_FILE: &str = "snapshot.json";

/// Where and how a proxy follows a control plane.
#[derive(Clone)]
pub struct ControlPlane {
    /// Admin API base URL (`http://127.0.0.1:9900`).
    pub url: String,
    /// Node token (`gh_…`, role `node`).
    pub token: String,
    /// This node's id in the admin's node list.
    pub node_id: String,
    /// Directory for the last good snapshot and plugin components.
    pub state_dir: PathBuf,
    /// Accept an older or empty version (once the operator means it).
    pub force: bool,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("ControlPlane")
            .field("url", &self.url)
            .field("node_id", &self.node_id)
            .field("state_dir", &self.state_dir)
            .field("force", &self.force)
            .finish()
    }
}

/// The version a node runs: number, hash, and the published sections with
/// plugin paths made absolute.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Version number.
    pub version: u64,
    /// Content hash.
    pub hash: String,
    /// Sections as merged into the config.
    pub sections: Sections,
}

/// Reads the last good snapshot of `state_dir`, if there is one.
pub fn boot_sections(state_dir: &Path) -> anyhow::Result<Option<Applied>> {
    let path = state_dir.join(SNAPSHOT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    };
    let snap: Snapshot = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a snapshot: {e}", path.display()))?;
    Ok(Some(Applied {
        version: snap.version,
        hash: snap.hash,
        sections: localize(snap.config, state_dir),
    }))
}

/// Points plugin paths (relative, `plugins/<sha>.wasm`) into `state_dir`.
fn localize(mut sections: Sections, state_dir: &Path) -> Sections {
    for p in &mut sections.plugins {
        p.path = state_dir.join(&p.path).display().to_string();
    }
    sections
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename,
/// fsync of the directory. Private to the proxy's user (it may hold keys).
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a version was not applied.
#[derive(Debug)]
struct Refusal {
    /// What the NACK says.
    message: String,
    /// Retry the same version (a failed download) rather than wait for another.
    temporary: bool,
}

/// The polling loop and what it last saw.
pub struct Follower {
    cp: ControlPlane,
    client: reqwest::Client,
    reloader: Arc<Reloader>,
    applied: Option<Applied>,
    /// Where the ACME challenges it follows are served from.
    node: Arc<NodeState>,
    /// The version last settled (applied, or refused for good) and reported:
    /// the next poll's `after`.
    seen: u64,
    /// Tenant parts the applied version runs without, and why.
    refused_parts: Vec<RefusedPart>,
}

impl Follower {
    /// A follower that applies through `reloader`, starting from `applied`.
    pub fn new(
        cp: ControlPlane,
        reloader: Arc<Reloader>,
        applied: Option<Applied>,
        node: Arc<NodeState>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(POLL_WAIT + Duration::from_secs(30))
            .build()?;
        // The first poll takes the current version even if it is the one
        // applied: its report tells the admin this node's reserved names.
        let seen = 0;
        Ok(Follower {
            cp,
            client,
            reloader,
            applied,
            node,
            seen,
            refused_parts: Vec::new(),
        })
    }

    /// Polls until shutdown (cache purges in a second loop beside it).
    pub async fn run(mut self, mut shutdown: ShutdownWatch) {
        if let Some(a) = &self.applied {
            metrics().published_version.set(a.version as i64);
        }
        tokio::spawn(follow_purges(
            self.cp.clone(),
            self.client.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(follow_challenges(
            self.cp.clone(),
            self.client.clone(),
            self.node.clone(),
            shutdown.clone(),
        ));
        let mut backoff = MIN_BACKOFF;
        loop {
            let step = tokio::select! {
                _ = shutdown.changed() => return,
                r = self.poll_once() => r,
            };
            match step {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(e) => {
                    metrics().control_plane_poll_failures.inc();
                    tracing::warn!(error = %format!("{e:#}"), url = %self.cp.url, "control plane poll failed; serving the current config");
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cp.url.trim_end_matches('/'))
    }

    /// One long poll, and applying what it brings.
    async fn poll_once(&mut self) -> anyhow::Result<()> {
        let resp = self
            .client
            .get(self.url("/v1/dataplane/snapshot"))
            .bearer_auth(&self.cp.token)
            .query(&[
                ("after", self.seen.to_string()),
                ("wait", format!("{}s", POLL_WAIT.as_secs())),
                ("node", self.cp.node_id.clone()),
            ])
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!("admin answered {status}: {body}");
        }
        let snap: Snapshot = resp.json().await?;
        let (version, hash) = (snap.version, snap.hash.clone());
        let outcome = self.apply(snap).await;
        let report = Report {
            node: self.cp.node_id.clone(),
            version,
            hash,
            applied: outcome.is_ok(),
            error: outcome.as_ref().err().map(|r| r.message.clone()),
            refused: if outcome.is_ok() {
                self.refused_parts.clone()
            } else {
                Vec::new()
            },
            reserved: self.reloader.reserved(),
        };
        match &outcome {
            Ok(()) => tracing::info!(version, "applied published configuration"),
            Err(r) => {
                tracing::error!(version, error = %r.message, temporary = r.temporary, "refused published configuration; still serving the previous one")
            }
        }
        self.report(&report).await?;
        match outcome {
            // Settled (and reported): wait for the next version.
            Ok(())
            | Err(Refusal {
                temporary: false, ..
            }) => {
                self.seen = version;
                Ok(())
            }
            // Worth another try: the same version comes back after the backoff.
            Err(Refusal { message, .. }) => Err(anyhow::anyhow!(message)),
        }
    }

    async fn report(&self, report: &Report) -> anyhow::Result<()> {
        let resp = self
            .client
            .post(self.url("/v1/dataplane/report"))
            .bearer_auth(&self.cp.token)
            .json(report)
            .send()
            .await?;
        if !resp.status().is_success() {
            anyhow::bail!("report refused: {}", resp.status());
        }
        Ok(())
    }

    /// Checks, fetches plugins, compiles and swaps, persists. The error is what
    /// the NACK says.
    async fn apply(&mut self, snap: Snapshot) -> Result<(), Refusal> {
        let refused = |reason: &str, message: String| {
            metrics()
                .published_rejected
                .with_label_values(&[reason])
                .inc();
            Refusal {
                message,
                // A download can fail for a moment; the rest are verdicts.
                temporary: reason == "fetch",
            }
        };
        if let Some(current) = &self.applied {
            if snap.version < current.version && !self.cp.force {
                return Err(refused("older", format!(
                    "version {} is older than the applied version {}: refused (start the proxy with --force-snapshot to accept it)",
                    snap.version, current.version
                )));
            }
            if snap.config.is_empty() && !current.sections.is_empty() && !self.cp.force {
                return Err(refused("empty", format!(
                    "version {} is empty and would stop serving every domain: refused (start the proxy with --force-snapshot to accept it)",
                    snap.version
                )));
            }
            if snap.version == current.version && snap.hash == current.hash {
                return Ok(());
            }
        }
        for p in &snap.config.plugins {
            let sha = p.sha256.clone().unwrap_or_default();
            if let Err(e) = self.fetch_plugin(&sha).await {
                return Err(refused(
                    "fetch",
                    format!("plugin {}: cannot fetch component {sha}: {e:#}", p.name),
                ));
            }
        }
        let sections = localize(snap.config.clone(), &self.cp.state_dir);
        let refused_parts = match self.reloader.apply_published(sections.clone()).await {
            Ok((_, refused_parts)) => refused_parts,
            Err(errors) => return Err(refused("invalid", errors.to_string())),
        };
        if !refused_parts.is_empty() {
            metrics()
                .published_rejected
                .with_label_values(&["tenant_part"])
                .inc_by(refused_parts.len() as u64);
        }
        self.refused_parts = refused_parts;
        metrics().published_version.set(snap.version as i64);
        let text = serde_json::to_vec(&snap).map_err(|e| refused("invalid", e.to_string()))?;
        let path = self.cp.state_dir.join(SNAPSHOT_FILE);
        if let Err(e) = tokio::task::spawn_blocking(move || write_durably(&path, &text))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        {
            // Serving the new version already; only the restart fallback is stale.
            tracing::error!(error = %e, "could not save the applied snapshot; a restart without the admin would serve an older one");
        }
        self.applied = Some(Applied {
            version: snap.version,
            hash: snap.hash,
            sections,
        });
        Ok(())
    }

    /// Makes sure `<state dir>/plugins/<sha>.wasm` holds the component.
    async fn fetch_plugin(&self, sha: &str) -> anyhow::Result<()> {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("invalid digest");
        }
        let path = self
            .cp
            .state_dir
            .join("plugins")
            .join(format!("{sha}.wasm"));
        if let Ok(bytes) = tokio::fs::read(&path).await {
            if sha256_hex(&bytes) == sha {
                return Ok(());
            }
        }
        let resp = self
            .client
            .get(self.url(&format!("/v1/dataplane/plugins/{sha}")))
            .bearer_auth(&self.cp.token)
            .send()
            .await?
            .error_for_status()?;
        let bytes = resp.bytes().await?;
        if sha256_hex(&bytes) != sha {
            anyhow::bail!("the admin sent a component with another digest");
        }
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes)).await??;
        Ok(())
    }
}

/// GETs `url` with the node token and `query`: the JSON body, or why not.
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &[(&str, String)],
) -> anyhow::Result<T> {
    let resp = client
        .get(url)
        .bearer_auth(token)
        .query(query)
        .send()
        .await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!("admin answered {status}: {body}");
    }
    Ok(resp.json::<T>().await?)
}

/// After a failed side-channel poll: counts and logs it, waits `backoff`
/// (then doubles it). False when the process is shutting down.
async fn after_failure(
    e: &anyhow::Error,
    what: &str,
    url: &str,
    backoff: &mut Duration,
    shutdown: &mut ShutdownWatch,
) -> bool {
    metrics().control_plane_poll_failures.inc();
    tracing::warn!(error = %format!("{e:#}"), url = %url, "{what} poll failed");
    tokio::select! {
        _ = shutdown.changed() => return false,
        _ = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    true
}

/// Follows the admin's cache purges (`GET /v1/dataplane/purges`) and applies
/// each to this node's cache, in order. The first poll asks for the purges
/// made since the node started (less a minute for clock skew): the cache
/// was empty before, and one made while the admin was unreachable at start
/// must still apply. When purges were missed all the same (rows the admin
/// dropped after a day, or an admin restored from a backup), the whole cache
/// is flushed: too much purged is a refetch, too little is stale content.
async fn follow_purges(cp: ControlPlane, client: reqwest::Client, mut shutdown: ShutdownWatch) {
    let url = format!("{}/v1/dataplane/purges", cp.url.trim_end_matches('/'));
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        - 60_000;
    let mut after: Option<u64> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut query = vec![("wait", format!("{}s", POLL_WAIT.as_secs()))];
        match after {
            Some(a) => query.push(("after", a.to_string())),
            None => query.push(("since_ms", started_ms.to_string())),
        }
        let step = tokio::select! {
            _ = shutdown.changed() => return,
            r = get_json::<Purges>(&client, &url, &cp.token, &query) => r,
        };
        match step {
            Ok(batch) => {
                let gap = match (after, batch.purges.first()) {
                    (Some(a), Some(first)) => first.id > a + 1,
                    (Some(a), None) => batch.latest < a,
                    (None, _) => false,
                };
                if gap {
                    let n = crate::cache::store().purge_everything();
                    tracing::warn!(after = ?after, latest = batch.latest, purged = n, "cache purges were missed (expired at the admin, or the admin was restored): flushed the whole cache");
                }
                for p in &batch.purges {
                    match crate::cache::purge::purge(&p.tenant, &p.target) {
                        Ok(n) => {
                            tracing::info!(id = p.id, tenant = %p.tenant, purged = n, "applied cache purge")
                        }
                        Err(e) => {
                            tracing::warn!(id = p.id, tenant = %p.tenant, field = e.field, error = %e.message, "skipped an invalid cache purge")
                        }
                    }
                }
                after = Some(batch.latest);
                backoff = MIN_BACKOFF;
            }
            Err(e) => {
                if !after_failure(&e, "cache purge", &url, &mut backoff, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Follows the ACME HTTP-01 challenges every node must answer
/// (`GET /v1/dataplane/challenges`) and serves them (`crate::acme`). Each
/// poll names the set this node serves, which is how the admin knows when
/// every node is ready for validation.
async fn follow_challenges(
    cp: ControlPlane,
    client: reqwest::Client,
    node: Arc<NodeState>,
    mut shutdown: ShutdownWatch,
) {
    #[derive(serde::Deserialize)]
    struct Challenge {
        host: String,
        token: String,
        key_authorization: String,
    }
    #[derive(serde::Deserialize)]
    struct Set {
        version: i64,
        challenges: Vec<Challenge>,
    }
    let url = format!("{}/v1/dataplane/challenges", cp.url.trim_end_matches('/'));
    let mut serving: i64 = 0;
    let mut backoff = MIN_BACKOFF;
    loop {
        let query = [
            ("after", serving.to_string()),
            ("wait", format!("{}s", POLL_WAIT.as_secs())),
            ("node", cp.node_id.clone()),
        ];
        let step = tokio::select! {
            _ = shutdown.changed() => return,
            r = get_json::<Set>(&client, &url, &cp.token, &query) => r,
        };
        match step {
            Ok(set) => {
                if set.version != serving {
                    node.challenges.replace(
                        set.challenges
                            .into_iter()
                            .map(|c| (c.host, c.token, c.key_authorization)),
                    );
                    serving = set.version;
                }
                backoff = MIN_BACKOFF;
            }
            Err(e) => {
                if !after_failure(&e, "ACME challenge", &url, &mut backoff, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

/// The follower as a Pingora background service.
pub struct FollowerService(std::sync::Mutex<Option<Follower>>);

impl FollowerService {
    /// Wraps `follower`; it runs when the server starts its services.
    pub fn new(follower: Follower) -> Self {
        FollowerService(std::sync::Mutex::new(Some(follower)))
    }
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for FollowerService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let follower = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = follower {
            f.run(shutdown).await;
        }
    }
}
