//! Debian's Pebble ACME test server (`scripts/setup.sh --pebble` installs it),
//! on loopback ports, with a TLS certificate made at test time (Debian ships
//! none) and `pebble-challtestsrv` as its DNS server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Pebble: its addresses and TLS certificate are fixed by [`Pebble::new`],
/// so clients can be configured before it runs ([`Pebble::run`]).
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// PEM of the certificate Pebble's own HTTPS listeners present (its own
    /// issuer): the CA bundle ACME clients need to reach it.
    pub tls_ca: PathBuf,
    listen: SocketAddr,
    management: SocketAddr,
    key: PathBuf,
    /// External account binding required: key id → HMAC key (base64url).
    pub eab: Option<(String, String)>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

use super::dns::unused_port;

impl Pebble {
    /// Starts Pebble resolving names through `dns`, validating HTTP-01 on
    /// `http_port`, rejecting `nonce_reject` percent of nonces.
    pub async fn start(dns: SocketAddr, http_port: u16, nonce_reject: u8) -> Pebble {
        let mut pebble = Pebble::new();
        pebble.run(dns, http_port, nonce_reject).await;
        pebble
    }

    /// Picks Pebble's ports and makes its TLS certificate; nothing runs yet.
    pub fn new() -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let cert_path = dir.path().join("pebble.crt");
        let key_path = dir.path().join("pebble.key");
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        let listen = SocketAddr::from(([127, 0, 0, 1], unused_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], unused_port()));
        Pebble {
            directory: format!("https://{listen}/dir"),
            tls_ca: cert_path,
            listen,
            management,
            key: key_path,
            eab: None,
            child: None,
            dir,
        }
    }

    /// Runs it (see [`Pebble::start`]), once its directory answers.
    pub async fn run(&mut self, dns: SocketAddr, http_port: u16, nonce_reject: u8) {
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": self.listen.to_string(),
                "managementListenAddress": self.management.to_string(),
                "certificate": self.tls_ca,
                "privateKey": self.key,
                "httpPort": http_port,
                "tlsPort": unused_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": self.eab.is_some(),
                "externalAccountMACKeys": self
                    .eab
                    .iter()
                    .map(|(kid, key)| (kid.clone(), serde_json::Value::from(key.clone())))
                    .collect::<serde_json::Map<_, _>>(),
            }
        });
        let config_path = self.dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns.to_string())
            // No random wait before validating; reject some nonces (clients must retry).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", nonce_reject.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("pebble.log")).unwrap())
            .spawn()
            .expect("pebble is not installed: run scripts/setup.sh --pebble");
        self.child = Some(child);
        let client = self.client();
        let started = Instant::now();
        loop {
            let up = client
                .get(&self.directory)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.path().join("pebble.log"));
                panic!("pebble exited with {status}: {}", log.unwrap_or_default());
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "pebble did not start"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// An HTTPS client trusting Pebble's listeners.
    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.tls_ca).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    }

    /// The root this run of Pebble issues under (it changes every run).
    pub async fn issuing_root_pem(&self) -> String {
        self.client()
            .get(format!("https://{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
