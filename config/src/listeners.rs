//! `listeners`: the addresses the proxy binds. Holds the file type, the
//! checked addresses and their checks: [`check`], and [`check_any`], which
//! `validate` runs after every other section (its error has always come last).

use crate::check::Checker;
use model::Listeners;

pub mod file {
    //! `listeners` as operators write it.

    use serde::{Deserialize, Serialize};

    /// Listening addresses (`host:port`). Each is optional; at least one of
    /// `http`/`https` must be set.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Listeners))]
    #[serde(deny_unknown_fields)]
    pub struct Listeners {
        /// Plain HTTP/1.1 listener, e.g. `0.0.0.0:80`.
        pub http: Option<String>,
        /// TLS listener (HTTP/1.1 and HTTP/2 via ALPN), e.g. `0.0.0.0:443`.
        pub https: Option<String>,
        /// Internal listener serving `/metrics`, `/healthz` and `/readyz`.
        /// Bind it to loopback or a private network.
        pub internal: Option<String>,
    }
}

pub mod model {
    //! `listeners`, parsed.

    use std::net::SocketAddr;

    /// Bound addresses.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Listeners {
        /// Plain HTTP listener.
        pub http: Option<SocketAddr>,
        /// TLS listener.
        pub https: Option<SocketAddr>,
        /// Internal listener (metrics, health).
        pub internal: Option<SocketAddr>,
    }
}

pub(crate) fn check(l: &file::Listeners, cx: &mut Checker<'_>) -> Listeners {
    let out = Listeners {
        http: cx.listen_addr(&l.http, "listeners.http"),
        https: cx.listen_addr(&l.https, "listeners.https"),
        internal: cx.listen_addr(&l.internal, "listeners.internal"),
    };
    let all = [
        ("listeners.http", out.http),
        ("listeners.https", out.https),
        ("listeners.internal", out.internal),
    ];
    for (i, (path, a)) in all.iter().enumerate() {
        for (other, b) in &all[..i] {
            if let (Some(a), Some(b)) = (a, b) {
                if a == b && a.port() != 0 {
                    cx.err(*path, format!("address {a} is also used by {other}"));
                }
            }
        }
    }
    out
}

/// A proxy that binds neither `http` nor `https` serves nothing.
pub(crate) fn check_any(listeners: &Listeners, cx: &mut Checker<'_>) {
    if listeners.http.is_none() && listeners.https.is_none() {
        cx.err("listeners", "at least one of `http` or `https` must be set");
    }
}
