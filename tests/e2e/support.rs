//! Test harness: a real `gatehouse` process, real upstream HTTP servers,
//! certificates made at test time, and helpers that poll instead of sleeping.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Polls `f` until it returns `Some`, panicking with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A loopback port that was free a moment ago (the OS picks it: port 0).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Loopback ports that were free a moment ago, all different: each is held
/// until all are chosen (ports chosen one after another may repeat).
pub fn distinct_free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<StdListener> = (0..N)
        .map(|_| StdListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// A loopback address that refuses connections: the port is bound (so no
/// other test can take it) but never listened on.
pub struct DeadPort {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        DeadPort {
            _socket: socket,
            addr,
        }
    }
}

/// An upstream that answers the first request on each connection and then
/// closes it when the next request arrives, without answering: what a
/// server with a short keep-alive timeout does in the unlucky moment.
pub async fn closes_reused_connections() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                // Wait for the next request on this connection, then drop it unanswered.
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

/// A real upstream HTTP server on its own runtime, so `kill` drops every
/// connection at once like a crashed process.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub in_hold: Arc<AtomicUsize>,
    pub release: Arc<tokio::sync::Notify>,
    runtime: Option<tokio::runtime::Runtime>,
}

#[derive(Clone)]
struct UpState {
    name: String,
    hits: Arc<AtomicUsize>,
    in_hold: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
}

async fn echo(
    State(s): State<UpState>,
    version: axum::http::Version,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let h: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    axum::Json(serde_json::json!({
        "server": s.name,
        "path": uri.to_string(),
        "version": format!("{version:?}"),
        "headers": h,
        "body_len": body.len(),
        "body_sha256": hex_sha256(&body),
    }))
}

fn hex_sha256(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn slow(
    State(s): State<UpState>,
    Query(q): Query<HashMap<String, u64>>,
) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(2000))).await;
    s.name.clone()
}

/// A response as many application servers send it: product headers, and a
/// framing policy of its own.
async fn branded(State(s): State<UpState>) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::SeqCst);
    (
        [
            ("server", "Apache/2.4.1 (Unix)"),
            ("x-powered-by", "PHP/5.6.40"),
            ("x-frame-options", "SAMEORIGIN"),
        ],
        s.name.clone(),
    )
}

async fn hold(State(s): State<UpState>) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::SeqCst);
    s.in_hold.fetch_add(1, Ordering::SeqCst);
    s.release.notified().await;
    s.in_hold.fetch_sub(1, Ordering::SeqCst);
    s.name.clone()
}

async fn ws(ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(t) => Message::Text(format!("echo: {t}").into()),
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

impl Upstream {
    /// Starts a server named `name` on a port chosen by the OS.
    pub fn start(name: &str) -> Upstream {
        Self::start_on(name, 0)
    }

    /// Starts a server on `port` (0: any).
    pub fn start_on(name: &str, port: u16) -> Upstream {
        Self::start_with(name, port, None)
    }

    /// Starts an HTTPS server (HTTP/1.1 and h2 via ALPN) presenting `cert`.
    pub fn start_tls(name: &str, cert: &TestCert) -> Upstream {
        Self::start_with(name, 0, Some(cert))
    }

    fn start_with(name: &str, port: u16, tls: Option<&TestCert>) -> Upstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = UpState {
            name: name.to_string(),
            hits: Arc::new(AtomicUsize::new(0)),
            in_hold: Arc::new(AtomicUsize::new(0)),
            release: Arc::new(tokio::sync::Notify::new()),
        };
        let std_listener = StdListener::bind(("127.0.0.1", port)).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let listener = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).unwrap()
        };
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/slow", get(slow).post(slow))
            .route("/hold", get(hold))
            .route("/ws", get(ws))
            .route("/branded", get(branded))
            .fallback(echo)
            .with_state(state.clone());
        match tls {
            // axum::serve speaks HTTP/1.1 and h2c (prior knowledge).
            None => {
                runtime.spawn(async move {
                    axum::serve(listener, app).await.ok();
                });
            }
            Some(cert) => {
                let acceptor = tls_acceptor(cert);
                runtime.spawn(async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        let acceptor = acceptor.clone();
                        let app = app.clone();
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let service = hyper_util::service::TowerToHyperService::new(app);
                            let _ = hyper_util::server::conn::auto::Builder::new(
                                hyper_util::rt::TokioExecutor::new(),
                            )
                            .serve_connection_with_upgrades(
                                hyper_util::rt::TokioIo::new(tls),
                                service,
                            )
                            .await;
                        });
                    }
                });
            }
        }
        Upstream {
            addr,
            hits: state.hits,
            in_hold: state.in_hold,
            release: state.release,
            runtime: Some(runtime),
        }
    }

    /// Kills the server: the listener and every open connection close.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `gatehouse run` process with its config in a temp dir.
pub struct Proxy {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub internal: SocketAddr,
    child: Child,
    pub log_path: PathBuf,
}

/// `{http}`, `{https}`, `{internal}` and `{dir}` in a config template are
/// replaced by the proxy's ports and temp dir.
pub struct Ports {
    pub http: u16,
    pub https: u16,
    pub internal: u16,
}

impl Proxy {
    /// Writes `yaml` (after placeholder substitution) and starts the proxy,
    /// returning once `/readyz` answers 200.
    pub async fn start(yaml: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, yaml).await
    }

    /// Starts `gatehouse run` on `yaml` with [`INTERNAL_TOKEN`] as the
    /// internal listener's credential.
    pub async fn start_with_internal_token(yaml: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("internal.token"), INTERNAL_TOKEN).unwrap();
        let yaml = format!("{yaml}\ninternal_api: {{ token_file: \"{{dir}}/internal.token\" }}\n");
        Self::start_in(dir, &yaml).await
    }

    pub async fn start_in(dir: tempfile::TempDir, yaml: &str) -> Proxy {
        Self::start_command(dir, yaml, &["run"], &[]).await
    }

    /// Starts `gatehouse <command…> --config <file>` with `env` added, e.g.
    /// `["proxy", "--admin-url", …]` for a node following an admin.
    pub async fn start_command(
        dir: tempfile::TempDir,
        yaml: &str,
        command: &[&str],
        env: &[(&str, &str)],
    ) -> Proxy {
        // free_port() hands the port back to the OS before gatehouse binds it,
        // so a parallel test can take it first: retry with fresh ports then.
        let mut dir = Some(dir);
        for _ in 0..5 {
            match Self::try_start(dir.take().unwrap(), yaml, command, env).await {
                Ok(proxy) => return proxy,
                Err(returned) => dir = Some(returned),
            }
        }
        panic!("gatehouse could not bind its ports after 5 attempts");
    }

    async fn try_start(
        dir: tempfile::TempDir,
        yaml: &str,
        command: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Proxy, tempfile::TempDir> {
        let [http, https, internal] = distinct_free_ports();
        let ports = Ports {
            http,
            https,
            internal,
        };
        let config_path = dir.path().join("gatehouse.yaml");
        let rendered = render(yaml, &ports, dir.path());
        std::fs::write(&config_path, rendered).unwrap();
        let log_path = dir.path().join("gatehouse.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(command)
            .arg("--config")
            .arg(&config_path)
            .env("GATEHOUSE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut child = child;
        let internal = SocketAddr::from(([127, 0, 0, 1], ports.internal));
        let url = format!("http://{internal}/readyz");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return Ok(Proxy {
                        http: SocketAddr::from(([127, 0, 0, 1], ports.http)),
                        https: SocketAddr::from(([127, 0, 0, 1], ports.https)),
                        internal,
                        dir,
                        config_path,
                        child,
                        log_path,
                    });
                }
            }
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                if log().contains("Address already in use") {
                    return Err(dir);
                }
                panic!("gatehouse exited with {status} during start:\n{}", log());
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("gatehouse not ready after 20s:\n{}", log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn ports(&self) -> Ports {
        Ports {
            http: self.http.port(),
            https: self.https.port(),
            internal: self.internal.port(),
        }
    }

    /// Replaces the config file atomically (write + rename, as editors and
    /// config management do).
    pub fn write_config(&self, yaml: &str) {
        let rendered = render(yaml, &self.ports(), self.dir.path());
        let tmp = self.dir.path().join(".gatehouse.yaml.tmp");
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(rendered.as_bytes()).unwrap();
        f.sync_all().unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// Fetches `/metrics` and parses it as Prometheus text.
    pub async fn metrics(&self) -> prometheus_parse::Scrape {
        let body = reqwest::get(format!("http://{}/metrics", self.internal))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
            .expect("metrics parse as Prometheus text")
    }

    /// Value of the first sample named `name` whose labels include `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let scrape = self.metrics().await;
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    }

    /// Waits until the proxy serves config version `v`.
    pub async fn wait_version(&self, v: u64) {
        eventually(
            Duration::from_secs(10),
            &format!("config version {v}"),
            || async move {
                (self.metric("gatehouse_config_version", &[]).await == Some(v as f64)).then_some(())
            },
        )
        .await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A plain-HTTP client that sends every hostname to the proxy's http port.
    pub fn client(&self, hosts: &[&str]) -> reqwest::Client {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        for h in hosts {
            b = b.resolve(h, self.http);
        }
        b.build().unwrap()
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.http.port())
    }

    /// Starts a second process with `--upgrade` on the same config: it waits
    /// on the upgrade socket for this one's listeners (sent on SIGQUIT).
    pub fn spawn_upgrade(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["run", "--upgrade", "--config"])
            .arg(&self.config_path)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "gatehouse did not exit within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn render(yaml: &str, ports: &Ports, dir: &std::path::Path) -> String {
    yaml.replace("{http}", &ports.http.to_string())
        .replace("{https}", &ports.https.to_string())
        .replace("{internal}", &ports.internal.to_string())
        .replace("{dir}", &dir.display().to_string())
}

/// The standard listener block for test configs.
/// The internal listener's token of [`Proxy::start_with_internal_token`].
pub const INTERNAL_TOKEN: &str = "internal-token-0123456789abcdef0123456789";

pub const LISTENERS: &str = r#"
listeners:
  http: "127.0.0.1:{http}"
  internal: "127.0.0.1:{internal}"
server:
  threads: 1
  grace_period: 1s
  upgrade_sock: "{dir}/upgrade.sock"
"#;

/// Listeners plus a plugin cache in the test's directory, two worker threads.
pub const PLUGIN_LISTENERS: &str = r#"
listeners:
  http: "127.0.0.1:{http}"
  internal: "127.0.0.1:{internal}"
server:
  threads: 2
  grace_period: 1s
  upgrade_sock: "{dir}/upgrade.sock"
  plugin_cache_dir: "{dir}/plugin-cache"
"#;

/// Builds the plugin crate `plugins/<crate_path>` (e.g. `examples/add-headers`)
/// with `gatehouse plugin build`, once per test process; returns the component.
pub fn plugin(crate_path: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = built.iter().find(|(name, _)| name == crate_path) {
        return path.clone();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root
        .join("target")
        .join("test-plugins")
        .join(format!("{}.wasm", crate_path.replace('/', "-")));
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["plugin", "build"])
        .arg(root.join("plugins").join(crate_path))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "building plugin {crate_path} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    built.push((crate_path.to_string(), out.clone()));
    out
}

/// A self-signed certificate for `names`, written as PEM into `dir`.
pub struct TestCert {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

pub fn make_cert(dir: &std::path::Path, file_stem: &str, names: &[&str]) -> TestCert {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert_path = dir.join(format!("{file_stem}.crt"));
    let key_path = dir.join(format!("{file_stem}.key"));
    std::fs::write(&cert_path, c.cert.pem()).unwrap();
    std::fs::write(&key_path, c.key_pair.serialize_pem()).unwrap();
    TestCert {
        cert_pem: c.cert.pem(),
        cert_der: c.cert.der().to_vec(),
        cert_path,
        key_path,
    }
}

fn tls_acceptor(cert: &TestCert) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    let chain = vec![rustls::pki_types::CertificateDer::from(
        cert.cert_der.clone(),
    )];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&cert.key_path).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Sends raw bytes on a new connection and returns everything read until close or timeout.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `gatehouse check` on `yaml` (written to a temporary file); returns
/// whether it passed and what it printed on stderr.
pub fn check_config(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TLS client handshake on `tcp` for `sni`, accepting any certificate.
pub async fn tls_handshake(
    tcp: tokio::net::TcpStream,
    sni: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    #[derive(Debug)]
    struct AcceptAny;
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAny))
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector
        .connect(
            rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap(),
            tcp,
        )
        .await
        .map_err(|e| e.to_string())
}
