//! Host names and patterns (`example.com`, `*.example.com`): the parsed
//! [`HostPattern`] and [`parse_host_pattern`]. Shared by domains (their
//! hosts), certificates (the hosts they cover) and pools (upstream SNI).

/// A hostname pattern, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `example.com`
    Exact(String),
    /// `*.example.com`, stored as the suffix `example.com`; matches exactly one extra label.
    Wildcard(String),
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => write!(f, "{h}"),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// Whether `h` is a DNS name (labels of letters, digits, `-` and `_`, up to
/// 63 bytes each and 253 in all; an optional final dot), e.g. an upstream
/// target's host.
pub fn is_dns_name(h: &str) -> bool {
    matches!(parse_host_pattern(h), Ok(HostPattern::Exact(_))) && h.trim() == h
}

/// Parses `example.com` or `*.example.com` into a lowercased pattern.
pub fn parse_host_pattern(h: &str) -> Result<HostPattern, String> {
    let lower = h.trim().to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "invalid hostname {h:?}: expected e.g. example.com or *.example.com"
        ));
    }
    Ok(if wild {
        HostPattern::Wildcard(name.to_string())
    } else {
        HostPattern::Exact(name.to_string())
    })
}
