//! Helpers shared by the section checks: [`Checker`], which collects every
//! problem with its field path and resolves relative paths, and the checks of
//! values several sections use (addresses, durations, status codes, header
//! names and values, names, CIDR sets). It depends on no section module.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};

use crate::error::ConfigErrors;
use crate::ipset::IpSet;

/// Headers that frame the message or the connection (RFC 9110 §7.6.1,
/// RFC 9112 §6-7): the proxy owns them, so neither config rules nor plugins
/// may set or remove them.
pub const FRAMING_HEADERS: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The error sink of one validation run. Checks record problems here and go
/// on, so that `gatehouse check` can list every problem at once.
pub(crate) struct Checker<'a> {
    errors: ConfigErrors,
    /// Relative paths in the config resolve against this directory.
    base_dir: &'a Path,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(base_dir: &'a Path) -> Self {
        Checker {
            errors: ConfigErrors::default(),
            base_dir,
        }
    }

    /// `value` when no problem was recorded, else every problem found.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }

    pub(crate) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(path, message);
    }

    pub(crate) fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub(crate) fn listen_addr(&mut self, value: &Option<String>, path: &str) -> Option<SocketAddr> {
        let s = value.as_ref()?;
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    format!("invalid listen address {s:?}: expected ip:port, e.g. 0.0.0.0:8080"),
                );
                None
            }
        }
    }

    pub(crate) fn positive(&mut self, v: Option<usize>, default: usize, path: &str) -> usize {
        match v {
            Some(0) => {
                self.err(path, "must be greater than 0");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    pub(crate) fn duration(
        &mut self,
        v: Option<Duration>,
        default: Duration,
        path: &str,
    ) -> Duration {
        match v {
            Some(d) if d.is_zero() => {
                self.err(path, "must be greater than 0");
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    pub(crate) fn status(&mut self, code: u16, path: &str) -> Option<StatusCode> {
        match StatusCode::from_u16(code) {
            Ok(s) if code >= 100 => Some(s),
            _ => {
                self.err(path, format!("invalid status code {code}"));
                None
            }
        }
    }

    pub(crate) fn header_name(&mut self, name: &str, path: &str) -> Option<HeaderName> {
        match parse_header_name(name) {
            Ok(n) => Some(n),
            Err(message) => {
                self.err(path, message);
                None
            }
        }
    }

    /// A header name a rule may set, add, remove or answer with: not one
    /// that frames the message or the connection ([`FRAMING_HEADERS`]) nor
    /// `host`, which the proxy owns (a pool's `host_header` sets it). A
    /// `transfer-encoding` or `content-length` from a rule would desynchronise
    /// the framing the proxy and the peer agree on (request smuggling).
    pub(crate) fn editable_header_name(&mut self, name: &str, path: &str) -> Option<HeaderName> {
        let n = self.header_name(name, path)?;
        if FRAMING_HEADERS.contains(&n.as_str()) || n == http::header::HOST || n == "cdn-loop" {
            self.err(
                path,
                format!("header {:?} is managed by the proxy", n.as_str()),
            );
            return None;
        }
        Some(n)
    }

    pub(crate) fn header_value(&mut self, value: &str, path: &str) -> Option<HeaderValue> {
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.err(path, format!("invalid header value {value:?}"));
                None
            }
        }
    }

    /// Parses CIDRs (or bare addresses) into a set, naming a bad entry.
    pub(crate) fn ip_set(&mut self, cidrs: &[String], path: &str) -> IpSet {
        match IpSet::parse(cidrs) {
            Ok(set) => set,
            Err((i, text)) => {
                self.err(
                    format!("{path}[{i}]"),
                    format!("invalid CIDR {text:?}: expected e.g. 10.0.0.0/8, 2001:db8::/32 or an address"),
                );
                IpSet::default()
            }
        }
    }
}

/// A header name, or the message every section reports for a bad one.
pub(crate) fn parse_header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))
}

/// A method, in any case (`get` is `GET`), or the message for a bad one.
pub(crate) fn parse_method(m: &str) -> Result<Method, String> {
    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {m:?}"))
}

/// Names of tenants, pools and certificates: short, lowercase, URL-safe.
pub(crate) fn valid_simple_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A simple name, or one qualified by its tenant as `tenant/name` (the form the
/// admin API publishes, so that two tenants may both have a pool called `web`).
pub(crate) fn valid_name(name: &str) -> bool {
    match name.split_once('/') {
        Some((tenant, local)) => valid_simple_name(tenant) && valid_simple_name(local),
        None => valid_simple_name(name),
    }
}
