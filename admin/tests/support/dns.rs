//! A DNS server for ownership checks: Debian's `pebble-challtestsrv`, whose
//! management API sets TXT records (`scripts/setup.sh --pebble` installs it).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `pebble-challtestsrv` serving DNS only.
pub struct ChallTestSrv {
    /// The DNS server (UDP and TCP).
    pub dns: SocketAddr,
    management: SocketAddr,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ChallTestSrv {
    /// Starts one on free loopback ports, once its management API answers.
    pub async fn start() -> ChallTestSrv {
        let dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns.to_string(),
                "-management",
                &management.to_string(),
            ])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            // Names resolve to IPv4 loopback only, where test servers listen.
            .args(["-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv is not installed: run scripts/setup.sh --pebble");
        let mut srv = ChallTestSrv {
            dns,
            management,
            child,
        };
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            let up = client
                .post(format!("http://{}/clear-txt", srv.management))
                .body(r#"{"host":"ready.invalid."}"#)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return srv;
            }
            if let Ok(Some(status)) = srv.child.try_wait() {
                panic!("pebble-challtestsrv exited with {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pebble-challtestsrv did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Serves `value` as the TXT record of `name` (a trailing dot is added).
    pub async fn set_txt(&self, name: &str, value: &str) {
        let body = serde_json::json!({ "host": format!("{}.", name.trim_end_matches('.')), "value": value });
        let r = reqwest::Client::new()
            .post(format!("http://{}/set-txt", self.management))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "set-txt: {}", r.status());
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChallTestSrv {
    /// Resolves `name` (A record) to `addr` (the ACME tests; the API suite
    /// compiles this file too).
    #[allow(dead_code)]
    pub async fn set_a(&self, name: &str, addr: std::net::Ipv4Addr) {
        let body = serde_json::json!({
            "host": format!("{}.", name.trim_end_matches('.')),
            "addresses": [addr.to_string()],
        });
        let r = reqwest::Client::new()
            .post(format!("http://{}/add-a", self.management))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "add-a: {}", r.status());
    }
}
