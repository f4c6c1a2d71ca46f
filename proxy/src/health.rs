//! Active health checks: one probe loop per target of every pool that asks for it.
//!
//! Probes use the same peer settings as proxied requests (TLS, SNI,
//! verification, h2), through Pingora's own connector, so a probe fails
//! exactly when a real request would. Each new snapshot replaces the probe
//! set; health verdicts survive in the shared [`TargetState`]s.

use std::sync::{Arc, Mutex};

use gatehouse_config::model::{ActiveHealthCheck, ProbeKind};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use tokio::task::JoinHandle;

use crate::snapshot::Snapshot;
use crate::upstream::TargetState;

/// Owns the running probe tasks.
#[derive(Default)]
pub struct HealthChecker {
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl HealthChecker {
    /// Stops the probes of the previous snapshot and starts those of `snapshot`.
    /// Must be called from within a Tokio runtime.
    pub fn restart(&self, snapshot: &Snapshot) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for t in tasks.drain(..) {
            t.abort();
        }
        let connector = Arc::new(Connector::new(None));
        for pool in &snapshot.pools {
            for (i, target) in pool.targets.iter().enumerate() {
                let Some(check) = pool.config.active_health.clone() else {
                    // Probes were removed (or never configured): a verdict left
                    // by earlier probes must not keep the target down forever.
                    target.state.clear_probe_verdict();
                    continue;
                };
                // The address is set before each probe: a name's answer changes.
                let peer = pool.peer_at(i, std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
                let state = target.state.clone();
                let host = pool
                    .config
                    .host_header
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or(&target.config.host)
                    .to_string();
                tasks.push(tokio::spawn(probe_loop(
                    connector.clone(),
                    peer,
                    host,
                    check,
                    state,
                )));
            }
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

async fn probe_loop(
    connector: Arc<Connector>,
    peer: HttpPeer,
    host: String,
    check: ActiveHealthCheck,
    state: Arc<TargetState>,
) {
    let mut peer = peer;
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // A name that has not resolved yet: nothing to probe (the target is
        // down for having no address, not for failing probes).
        let Some(addr) = state.address() else {
            continue;
        };
        peer._address = addr.into();
        let outcome =
            tokio::time::timeout(check.timeout, probe(&connector, &peer, &host, &check)).await;
        let ok = match outcome {
            Ok(Ok(())) => true,
            Ok(Err(reason)) => {
                tracing::debug!(target_addr = %peer._address, %reason, "health probe failed");
                false
            }
            Err(_) => {
                tracing::debug!(target_addr = %peer._address, "health probe timed out");
                false
            }
        };
        state.record_probe(ok, check.rise, check.fall);
    }
}

async fn probe(
    connector: &Connector,
    peer: &HttpPeer,
    host: &str,
    check: &ActiveHealthCheck,
) -> Result<(), String> {
    match check.kind {
        ProbeKind::Tcp => {
            tokio::net::TcpStream::connect(*peer._address.as_inet().ok_or("not an inet address")?)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        ProbeKind::Http => {
            let (mut session, _) = connector
                .get_http_session(peer)
                .await
                .map_err(|e| e.to_string())?;
            let mut req = RequestHeader::build("GET", check.path.as_bytes(), None)
                .map_err(|e| e.to_string())?;
            req.insert_header(http::header::HOST, host)
                .map_err(|e| e.to_string())?;
            req.insert_header(http::header::USER_AGENT, "gatehouse-health-check")
                .map_err(|e| e.to_string())?;
            session
                .write_request_header(Box::new(req))
                .await
                .map_err(|e| e.to_string())?;
            session
                .finish_request_body()
                .await
                .map_err(|e| e.to_string())?;
            session
                .read_response_header()
                .await
                .map_err(|e| e.to_string())?;
            let status = session
                .response_header()
                .map(|r| r.status.as_u16())
                .ok_or("no response header")?;
            let (lo, hi) = check.expect_status;
            if !(lo..=hi).contains(&status) {
                return Err(format!("status {status} outside {lo}..={hi}"));
            }
            // Drain a small body so the connection closes cleanly; probes do not reuse connections.
            while session
                .read_response_body()
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {}
            Ok(())
        }
    }
}
