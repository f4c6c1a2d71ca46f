//! `server`: process-wide settings (threads, graceful shutdown, pid file,
//! upgrade socket, plugin cache). Holds the file type, the checked settings
//! with their defaults, and [`check`].

use std::path::PathBuf;
use std::time::Duration;

use crate::check::Checker;
use model::Server;

pub mod file {
    //! `server` as operators write it.

    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    /// Process-wide settings. These take effect at start only.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Server))]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        /// Worker threads per listener service; default: number of CPU cores.
        pub threads: Option<usize>,
        /// How long SIGTERM waits for in-flight requests before exiting (default 10s).
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "5s"))]
        pub grace_period: Option<Duration>,
        /// Pid file, used by zero-downtime binary upgrades (default none).
        pub pid_file: Option<String>,
        /// Unix socket on which a new binary receives the listening sockets
        /// during a zero-downtime upgrade (`gatehouse run --upgrade`).
        pub upgrade_sock: Option<String>,
        /// Directory for compiled plugin artifacts, keyed by the plugin's SHA-256
        /// (default: `$XDG_CACHE_HOME/gatehouse/plugins` or `~/.cache/gatehouse/plugins`).
        /// It must be private to the proxy's user: the proxy refuses a group- or
        /// world-writable directory and then compiles without a disk cache.
        pub plugin_cache_dir: Option<String>,
    }
}

pub mod model {
    //! `server` with its defaults applied.

    use std::path::PathBuf;
    use std::time::Duration;

    /// Process-wide settings.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Server {
        /// Worker threads per service.
        pub threads: usize,
        /// Drain time on SIGTERM.
        pub grace_period: Duration,
        /// Pid file.
        pub pid_file: Option<PathBuf>,
        /// Socket for listener hand-off during binary upgrades.
        pub upgrade_sock: PathBuf,
        /// Directory for compiled plugin artifacts (`None`: no disk cache).
        pub plugin_cache_dir: Option<PathBuf>,
    }
}

pub(crate) fn check(s: &file::Server, cx: &mut Checker<'_>) -> Server {
    let threads = match s.threads {
        Some(0) => {
            cx.err("server.threads", "must be at least 1");
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    Server {
        threads,
        grace_period: s.grace_period.unwrap_or(Duration::from_secs(10)),
        pid_file: s.pid_file.as_deref().map(|p| cx.resolve_path(p)),
        upgrade_sock: cx.resolve_path(
            s.upgrade_sock
                .as_deref()
                .unwrap_or("/tmp/gatehouse_upgrade.sock"),
        ),
        plugin_cache_dir: match &s.plugin_cache_dir {
            Some(dir) => Some(cx.resolve_path(dir)),
            None => default_plugin_cache_dir(),
        },
    }
}

/// `$XDG_CACHE_HOME/gatehouse/plugins`, else `$HOME/.cache/gatehouse/plugins`.
fn default_plugin_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("gatehouse").join("plugins"))
}
