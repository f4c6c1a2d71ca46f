//! The admin's database: SQLite by default, PostgreSQL by URL, one code path
//! (sqlx's `Any` driver, SQL both accept, per-database migrations applied at
//! start). Imports nothing else of this crate.

// Queries go through sqlx's `Any` driver and are written in the SQL both
// databases accept (`$1` placeholders, BIGINT millisecond times, TEXT for
// JSON), so the same handlers and the same test suite run on either. The
// schema lives in per-database migrations embedded in the binary and applied
// at start.
//
// SQLite is opened in WAL mode with a busy timeout, foreign keys on and
// `synchronous=FULL` (an acknowledged write survives a crash of the process
// or the machine), and every write transaction starts with `BEGIN IMMEDIATE`:
// a deferred transaction that reads and then writes fails with `SQLITE_BUSY`
// without waiting when another writer got there first.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file, or memory in tests).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The store: a connection pool and what it is connected to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// How long a SQLite connection waits for the write lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

impl Store {
    /// Connects to `url` (`sqlite://path/to/file.db`, `sqlite::memory:`,
    /// `postgres://…`) and applies pending migrations. A SQLite file and its
    /// directory are created when missing.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL {url:?}: use sqlite://… or postgres://…");
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let url = match backend {
            Backend::Sqlite => {
                if let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(|d| d.to_owned())) {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(&dir)?;
                    }
                }
                // An in-memory database exists once per connection: keep one.
                if url.contains(":memory:") {
                    options = options
                        .max_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                options = options.after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            format!(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                                 PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
                            )
                            .as_str(),
                        )
                        .await?;
                        Ok(())
                    })
                });
                if url.contains('?') || url.contains(":memory:") {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Backend::Postgres => url.to_string(),
        };
        let connect = AnyConnectOptions::from_str(&url)?;
        let pool = options.connect_with(connect).await?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction (on SQLite, holding the write lock from the start).
    pub async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// The file of a `sqlite://` URL, if it names one.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/gatehouse.db"),
            Some("data/gatehouse.db".into())
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/g.db?mode=rwc"),
            Some("/var/lib/g.db".into())
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[tokio::test]
    async fn a_file_database_is_created_with_its_directory_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/g.db", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        // Reopening applies nothing twice.
        drop(store);
        Store::connect(&url).await.unwrap();
    }
}
