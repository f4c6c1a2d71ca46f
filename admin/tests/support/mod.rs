//! Test support: a throwaway PostgreSQL server for the suites that run on both databases.
//!
//! One server per test binary, started on first use from Debian's PostgreSQL
//! binaries (`scripts/setup.sh` installs them) on a loopback port and a private
//! socket directory, with trust authentication. Every test gets a database of
//! its own. The server runs as the `postgres` user when the tests run as root
//! (PostgreSQL refuses to run as root), and a watchdog stops it when the test
//! process exits.

pub mod dns;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// A running server.
pub struct Postgres {
    port: u16,
    _dir: tempfile::TempDir,
    /// Runs until this process exits, then stops the server (never waited on).
    _watchdog: std::process::Child,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL is not installed: run scripts/setup.sh (it installs Debian's postgresql)",
        )
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when running as root.
fn as_db_user(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    async fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the PostgreSQL test directory failed");
        }
        let out = as_db_user(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let postgres = format!(
            "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            bin.join("postgres").display(),
            data.display(),
            dir.path().display()
        );
        let as_user = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        // The watchdog: once this test process is gone, stop the server and
        // remove its files (the static holding the directory is never dropped).
        let watchdog = format!(
            "{as_user}{postgres} > {log} 2>&1 & \
             while kill -0 {me} 2>/dev/null; do sleep 1; done; \
             {as_user}{pg_ctl} -D {data} stop -m immediate > /dev/null 2>&1; rm -rf {dir}",
            log = dir.path().join("server.log").display(),
            me = std::process::id(),
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.path().display(),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Postgres {
            port,
            _dir: dir,
            _watchdog: watchdog,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&pg.url("postgres")).await?;
                sqlx::query("SELECT 1").execute(&mut c).await?;
                Ok::<_, sqlx::Error>(())
            };
            match ready.await {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => panic!("PostgreSQL did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        pg
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A fresh, empty database; its URL.
    pub async fn database(&self) -> String {
        use sqlx::Connection;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        self.url(&name)
    }
}

/// The test binary's server, started on first use.
pub async fn postgres() -> &'static Postgres {
    static PG: OnceCell<Postgres> = OnceCell::const_new();
    PG.get_or_init(Postgres::start).await
}
