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

/// A loopback port free for both TCP and UDP, for a server started later by
/// another program (Pebble, `pebble-challtestsrv`) that cannot be handed a
/// bound socket.
///
/// It is drawn from below Linux's ephemeral range (32768 and up): ports the
/// kernel hands out for `bind(0)` and outgoing connections never come from
/// there, so the many test servers and clients running in parallel cannot
/// take it between the choice and the server's bind. (A port from `bind(0)`
/// could, and did: Pebble then exits with "address already in use".)
pub fn unused_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    for attempt in 0u64..1000 {
        let draw = RandomState::new().hash_one((std::process::id(), attempt));
        let port = 10_000 + (draw % 22_000) as u16;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range");
}

impl ChallTestSrv {
    /// Starts one on free loopback ports, once its management API answers.
    pub async fn start() -> ChallTestSrv {
        let dns = SocketAddr::from(([127, 0, 0, 1], unused_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], unused_port()));
        let child = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns.to_string(),
                "-management",
                &management.to_string(),
            ])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            // Only names given records resolve (nothing by default), and to
            // IPv4 only, where test servers listen.
            .args(["-defaultIPv4", "", "-defaultIPv6", ""])
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

    /// Removes the A records of `name`: it no longer resolves.
    #[allow(dead_code)]
    pub async fn clear_a(&self, name: &str) {
        let body = serde_json::json!({ "host": format!("{}.", name.trim_end_matches('.')) });
        let r = reqwest::Client::new()
            .post(format!("http://{}/clear-a", self.management))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "clear-a: {}", r.status());
    }
}
