//! What inspecting a request reports: how much a rule's detection adds to
//! the score ([`Severity`]), the detections and the verdict, and how a
//! detection names its input and shows what matched in logs (truncated,
//! secrets redacted).

use super::input::Var;

/// How much a detection adds to the anomaly score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // `Error` is part of the scale, unused by today's rules.
pub(crate) enum Severity {
    Critical,
    Error,
    Warning,
    Notice,
}

impl Severity {
    pub(crate) fn score(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        }
    }
}

/// One rule that fired.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Detection {
    pub rule: u32,
    pub family: &'static str,
    pub severity: &'static str,
    pub score: u32,
    /// Where: `args:q`, `headers:user-agent`, `path`, `request`, ...
    pub variable: String,
    /// What matched, truncated and escaped for logs.
    pub fragment: String,
    pub description: &'static str,
}

/// The outcome of inspecting one request.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub score: u32,
    pub blocked: bool,
    pub detections: Vec<Detection>,
}

/// Longest matched fragment written to logs.
const FRAGMENT_CHARS: usize = 64;

/// Whether a variable's content must not be logged.
pub(super) fn is_secret(variable: &str) -> bool {
    let v = variable.to_ascii_lowercase();
    v.starts_with("cookies")
        || v.starts_with("headers:authorization")
        || v.starts_with("headers:proxy-authorization")
        || v.starts_with("headers:x-api-key")
        || (v.starts_with("args")
            && ["password", "passwd", "token", "secret", "api_key", "apikey"]
                .iter()
                .any(|s| v.contains(s)))
}

/// `args:q`, `headers:user-agent`, `path`, ...
pub(super) fn var_label(var: &Var<'_>) -> String {
    if var.name.is_empty() {
        var.source.label().to_string()
    } else {
        format!("{}:{}", var.source.label(), var.name)
    }
}

/// At most [`FRAGMENT_CHARS`] characters, control and non-UTF-8 bytes escaped.
pub(super) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == FRAGMENT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}
