//! `gatehouse admin` as a process: bootstrap, serving, durability across SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

pub struct Admin {
    child: Child,
    pub base: String,
    /// Standard error (the bootstrap token is printed there).
    stderr: Arc<Mutex<Vec<String>>>,
    /// Standard output (the JSON log).
    stdout: Arc<Mutex<Vec<String>>>,
}

fn collect_lines(pipe: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Admin {
    /// Starts `gatehouse admin` on `db`; the key file goes next to a SQLite
    /// database (else into a fresh temp dir), never into the working directory.
    pub async fn start(db: &str, env: &[(&str, &str)]) -> Admin {
        // The test upstreams listen on loopback.
        Self::start_with(db, env, &["--allow-internal-targets"]).await
    }

    /// [`Admin::start`] with these options instead of `--allow-internal-targets`.
    pub async fn start_with(db: &str, env: &[(&str, &str)], options: &[&str]) -> Admin {
        Self::start_at(free_port(), db, env, options).await
    }

    /// [`Admin::start_with`] on `port` (a restart where nodes expect it).
    pub async fn start_at(port: u16, db: &str, env: &[(&str, &str)], options: &[&str]) -> Admin {
        let key_file = match db.strip_prefix("sqlite://") {
            Some(path) => std::path::Path::new(path).with_file_name("secrets.key"),
            None => tempfile::tempdir().unwrap().keep().join("secrets.key"),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args([
            "admin",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database",
            db,
        ])
        .arg("--secrets-key-file")
        .arg(&key_file)
        .args(options)
        .env_remove("GATEHOUSE_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        collect_lines(child.stderr.take().unwrap(), stderr.clone());
        collect_lines(child.stdout.take().unwrap(), stdout.clone());
        let admin = Admin {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr,
            stdout,
        };
        let url = format!("{}/v1/openapi.json", admin.base);
        eventually(Duration::from_secs(20), "the admin API to answer", || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                (r.status() == 200).then_some(())
            }
        })
        .await;
        admin
    }

    /// The bootstrap token printed on standard error, if one was.
    fn printed_token(&self) -> Option<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.split("store it now): ").nth(1).map(str::to_string))
    }

    /// Whether a line of its log (standard output) contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.stdout.lock().unwrap().iter().any(|l| l.contains(text))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn create_tenant(
    base: &str,
    token: &str,
    name: &str,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await?;
    Ok(r.status())
}

async fn get_json(base: &str, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_admin_bootstraps_once_and_serves_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/gatehouse.db", dir.path().display());
    let mut admin = Admin::start(&db, &[]).await;
    let token = eventually(
        Duration::from_secs(5),
        "the bootstrap token on stderr",
        || {
            let t = admin.printed_token();
            async move { t }
        },
    )
    .await;
    assert_eq!(
        create_tenant(&admin.base, &token, "acme").await.unwrap(),
        201
    );
    let r = reqwest::Client::new()
        .get(format!("{}/v1/tenants", admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    admin.kill();

    // A restart keeps the token and prints none.
    let admin = Admin::start(&db, &[]).await;
    let r = reqwest::Client::new()
        .get(format!("{}/v1/tenants/acme", admin.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(admin.printed_token(), None);
}

#[tokio::test]
async fn a_preset_admin_token_is_installed_and_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/g.db", dir.path().display());
    let preset = "gh_abcdefgh_0123456789abcdef0123456789abcdef01234567";
    let admin = Admin::start(&db, &[("GATEHOUSE_ADMIN_TOKEN", preset)]).await;
    assert_eq!(
        create_tenant(&admin.base, preset, "acme").await.unwrap(),
        201
    );
    assert_eq!(admin.printed_token(), None);
    // The log records the requests, never the token.
    let log = eventually(Duration::from_secs(5), "the access log line", || {
        let log = admin.stdout.lock().unwrap().join("\n");
        async move { log.contains("/v1/tenants").then_some(log) }
    })
    .await;
    let all = format!("{log}\n{}", admin.stderr.lock().unwrap().join("\n"));
    assert!(!all.contains(preset), "the token reached the output: {all}");
    assert!(
        !all.contains(&preset[12..]),
        "the secret reached the output: {all}"
    );
}

#[tokio::test]
async fn sigkill_during_a_burst_of_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/g.db", dir.path().display());
    let token = "gh_abcdefgh_0123456789abcdef0123456789abcdef01234567";
    let mut admin = Admin::start(&db, &[("GATEHOUSE_ADMIN_TOKEN", token)]).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let base = admin.base.clone();
        let acked = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("t{w}-{i}");
                match create_tenant(&base, token, &name).await {
                    Ok(s) if s == 201 => acked.lock().unwrap().push(name),
                    Ok(s) => panic!("unexpected status {s} for {name}"),
                    Err(_) => return, // the admin is gone
                }
            }
        }));
    }
    // Kill it mid-burst, once a good number of writes went through.
    let start = Instant::now();
    while acknowledged.lock().unwrap().len() < 50 {
        assert!(start.elapsed() < Duration::from_secs(30), "writes too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    admin.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acknowledged.lock().unwrap().clone();
    let admin = Admin::start(&db, &[]).await;
    let r = get_json(&admin.base, token, "/v1/tenants").await;
    let stored: std::collections::HashSet<String> = r["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // And each has its audit event.
    let audit = get_json(
        &admin.base,
        token,
        "/v1/audit?action=tenant.create&limit=500",
    )
    .await;
    let audited = audit["events"].as_array().unwrap().len();
    assert_eq!(
        audited,
        stored.len().min(500),
        "one audit event per stored tenant"
    );
}
