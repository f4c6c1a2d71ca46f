//! The traffic listeners: plain HTTP and TLS endpoints of the proxy service,
//! the TLS certificate resolver and the SNI each connection carries.
//!
//! [`proxy_service`] builds the Pingora service: PROXY-protocol headers are
//! read first (`proxy_protocol`), then TLS (rustls, certificates chosen per
//! SNI by [`SniResolver`] from the current snapshot's `tls::CertMap`), then
//! HTTP, handled by `service::Gatehouse`. [`SniCapture`] records the
//! handshake's SNI as a `tls::TlsSni`, with which the request path refuses
//! requests for names the connection's certificate does not cover.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gatehouse_config::model::{Limits, Listeners};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::listening::Service;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::node::NodeState;
use crate::proxy_protocol::{PreTlsHeader, ProxyProtocolApp};
use crate::service::Gatehouse;
use crate::snapshot::SnapshotStore;
use crate::tls::TlsSni;

/// The proxy service listening on the configured HTTP and HTTPS addresses.
pub fn proxy_service(
    conf: &Arc<ServerConf>,
    store: &Arc<SnapshotStore>,
    node: &Arc<NodeState>,
    listeners: &Listeners,
    limits: &Limits,
) -> anyhow::Result<Service<ProxyProtocolApp<HttpProxy<Gatehouse>>>> {
    let mut app = pingora::proxy::http_proxy(conf, Gatehouse::new(store.clone(), node.clone()));
    app.server_options = Some(server_options(limits));
    // PROXY protocol headers are read before HTTP (plain) or TLS.
    let mut proxy = Service::new(
        "gatehouse-proxy".to_string(),
        ProxyProtocolApp::new(app, store.clone()),
    );
    proxy
        .endpoints()
        .set_pre_tls_callback(Arc::new(PreTlsHeader::new(store.clone())));
    if let Some(addr) = listeners.http {
        proxy.add_tcp(&addr.to_string());
    }
    if let Some(addr) = listeners.https {
        // Certificates come from the resolver; the callbacks record the SNI.
        let mut tls = TlsSettings::with_callbacks(Box::new(SniCapture)).context("TLS settings")?;
        tls.set_cert_resolver(Arc::new(SniResolver::new(store.clone())));
        tls.enable_h2();
        proxy.add_tls_with_settings(&addr.to_string(), None, tls);
    }
    Ok(proxy)
}

/// Background service: `/readyz` turns ready once the proxy listener accepts
/// connections (Pingora binds it when the proxy service starts, which may be
/// after this service starts) and the config watch handles SIGHUP, and
/// unready at shutdown.
pub struct Readiness {
    ready: Arc<AtomicBool>,
    /// True once `reload::ConfigWatch` runs.
    config_watch: tokio::sync::watch::Receiver<bool>,
    /// An address of the proxy service: Pingora binds all endpoints of a
    /// service together, so one accepting address proves the service listens.
    probe: Option<SocketAddr>,
}

impl Readiness {
    /// Flips `ready`, probing plain HTTP when there is such a listener (a
    /// bare TCP probe of the TLS port would be logged as a failed handshake).
    pub fn new(
        ready: Arc<AtomicBool>,
        listeners: &Listeners,
        config_watch: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Readiness {
            ready,
            config_watch,
            probe: listeners.http.or(listeners.https),
        }
    }
}

#[async_trait::async_trait]
impl BackgroundService for Readiness {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut config_watch = self.config_watch.clone();
        let up = async {
            wait_until_listening(self.probe).await;
            // A closed channel (the watch never ran) must not hold readiness forever.
            let _ = config_watch.wait_for(|started| *started).await;
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = up => {}
        }
        self.ready.store(true, Ordering::Release);
        tracing::info!("ready: listeners accept connections");
        let _ = shutdown.changed().await;
        self.ready.store(false, Ordering::Release);
    }
}

/// Connects to the proxy listener until it accepts.
async fn wait_until_listening(addr: Option<SocketAddr>) {
    if let Some(addr) = addr {
        let mut probe = addr;
        if probe.ip().is_unspecified() {
            probe.set_ip(if probe.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        while tokio::net::TcpStream::connect(probe).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Downstream HTTP options: no cleartext h2 (h2 is negotiated by ALPN on TLS);
/// idle HTTP/2 connections close after the keep-alive timeout, like HTTP/1.1 ones.
/// These are fixed at start: Pingora reads them when the service is built.
fn server_options(limits: &Limits) -> HttpServerOptions {
    let mut o = HttpServerOptions::default();
    o.h2c = false;
    o.h2_idle_timeout = Some(limits.keepalive_timeout);
    o
}

/// The listener's certificate resolver: looks the SNI up in the current snapshot.
#[derive(Debug)]
pub struct SniResolver {
    store: Arc<SnapshotStore>,
}

impl SniResolver {
    /// A resolver reading certificates from `store`.
    pub fn new(store: Arc<SnapshotStore>) -> Self {
        SniResolver { store }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.store.load();
        let cert = snapshot.certs.lookup(hello.server_name());
        if cert.is_none() {
            tracing::debug!(sni = ?hello.server_name(), "no certificate for SNI: handshake rejected");
        }
        cert
    }
}

/// Post-handshake hook that records the SNI in the connection's TLS digest.
pub struct SniCapture;

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for SniCapture {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        Some(Arc::new(TlsSni(
            tls.server_name().map(|s| s.to_ascii_lowercase()),
        )))
    }
}
