//! The WAF policy of a domain: the file types operators write (`domains[].waf`)
//! and the checked policy the proxy compiles.
//!
//! The rules themselves live in the proxy (`gatehouse_proxy::waf`); this module
//! only knows their families and id ranges, so that a policy can be checked
//! with field paths without the rule engine.

use serde::{Deserialize, Serialize};

/// What the WAF does with a request whose anomaly score reaches the threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::WafMode))]
#[serde(rename_all = "snake_case")]
pub enum WafMode {
    /// Not inspected.
    Off,
    /// Inspected, logged and counted; never blocked.
    Detect,
    /// Inspected and answered with 403 at the threshold.
    #[default]
    Block,
}

/// A family of rules (named after the attack class; the number is the id prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::WafFamily))]
#[serde(rename_all = "snake_case")]
pub enum WafFamily {
    /// 911: methods outside the allow-list.
    Method,
    /// 913: security scanners and exploit tools.
    Scanner,
    /// 920: protocol enforcement (sizes, encodings, content types, headers).
    Protocol,
    /// 921: protocol attacks (smuggling, response splitting, header injection).
    ProtocolAttack,
    /// 922: multipart attacks.
    Multipart,
    /// 930: path traversal and local file inclusion.
    Lfi,
    /// 931: remote file inclusion.
    Rfi,
    /// 932: OS command injection.
    Rce,
    /// 933: PHP injection.
    Php,
    /// 934: Node.js, template, SSRF and other generic injection.
    Generic,
    /// 941: cross-site scripting.
    Xss,
    /// 942: SQL injection.
    Sqli,
    /// 943: session fixation.
    SessionFixation,
    /// 944: Java injection (deserialisation, OGNL, JNDI lookups).
    Java,
}

impl WafFamily {
    /// Every family, in id order.
    pub const ALL: [WafFamily; 14] = [
        WafFamily::Method,
        WafFamily::Scanner,
        WafFamily::Protocol,
        WafFamily::ProtocolAttack,
        WafFamily::Multipart,
        WafFamily::Lfi,
        WafFamily::Rfi,
        WafFamily::Rce,
        WafFamily::Php,
        WafFamily::Generic,
        WafFamily::Xss,
        WafFamily::Sqli,
        WafFamily::SessionFixation,
        WafFamily::Java,
    ];

    /// The family's number: rule ids are `number * 1000 + n`.
    pub fn number(self) -> u32 {
        match self {
            WafFamily::Method => 911,
            WafFamily::Scanner => 913,
            WafFamily::Protocol => 920,
            WafFamily::ProtocolAttack => 921,
            WafFamily::Multipart => 922,
            WafFamily::Lfi => 930,
            WafFamily::Rfi => 931,
            WafFamily::Rce => 932,
            WafFamily::Php => 933,
            WafFamily::Generic => 934,
            WafFamily::Xss => 941,
            WafFamily::Sqli => 942,
            WafFamily::SessionFixation => 943,
            WafFamily::Java => 944,
        }
    }

    /// The family a rule id belongs to.
    pub fn of_rule(id: u32) -> Option<WafFamily> {
        WafFamily::ALL.into_iter().find(|f| f.number() == id / 1000)
    }

    /// The name used in config, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            WafFamily::Method => "method",
            WafFamily::Scanner => "scanner",
            WafFamily::Protocol => "protocol",
            WafFamily::ProtocolAttack => "protocol_attack",
            WafFamily::Multipart => "multipart",
            WafFamily::Lfi => "lfi",
            WafFamily::Rfi => "rfi",
            WafFamily::Rce => "rce",
            WafFamily::Php => "php",
            WafFamily::Generic => "generic",
            WafFamily::Xss => "xss",
            WafFamily::Sqli => "sqli",
            WafFamily::SessionFixation => "session_fixation",
            WafFamily::Java => "java",
        }
    }
}

/// A domain's WAF settings as written in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::Waf))]
#[serde(deny_unknown_fields)]
pub struct Waf {
    /// `off`, `detect` (log only) or `block` (default).
    #[serde(default)]
    pub mode: WafMode,
    /// 1 (default: few false positives) to 4 (strictest): rules up to this level run.
    pub paranoia: Option<u8>,
    /// Anomaly score at which a request is blocked (default 5: one critical
    /// detection; severities score critical 5, error 4, warning 3, notice 2).
    pub anomaly_threshold: Option<u32>,
    /// Request body bytes inspected (default 131072, at most 1048576). Longer
    /// bodies are inspected up to this size and forwarded whole.
    pub inspect_body_bytes: Option<u64>,
    /// Families not run at all, e.g. `[java, php]` for a site with neither.
    #[serde(default)]
    pub disabled_families: Vec<WafFamily>,
    /// Methods allowed (default GET, HEAD, POST, OPTIONS, PUT, PATCH, DELETE).
    pub allowed_methods: Option<Vec<String>>,
    /// Request body media types allowed (default: forms, multipart, JSON and
    /// its patch/problem variants, NDJSON, XML, GraphQL). Bodies of other
    /// types cannot be inspected, so add them (e.g. `application/octet-stream`
    /// for uploads) only where needed.
    pub allowed_content_types: Option<Vec<String>>,
    /// Exceptions for false positives, most specific first is not required:
    /// every matching exclusion applies.
    #[serde(default)]
    pub exclusions: Vec<WafExclusion>,
}

/// One exception. Its conditions combine: `path` limits it to a path prefix;
/// `rules`/`families` name what is switched off (all rules when both are
/// empty); `variables` limits that to some inputs (all inputs when empty),
/// for request-level rules too: they leave the named inputs out.
/// Example: `{path: /search, rules: [942100], variables: ["args:q"]}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", schema(as = config::WafExclusion))]
#[serde(deny_unknown_fields)]
pub struct WafExclusion {
    /// Path prefix (segment-aware, like routes) the exception applies to.
    pub path: Option<String>,
    /// Rule ids switched off.
    #[serde(default)]
    pub rules: Vec<u32>,
    /// Families switched off.
    #[serde(default)]
    pub families: Vec<WafFamily>,
    /// Inputs not inspected: `args`, `args:<name>`, `headers`, `headers:<name>`,
    /// `cookies`, `cookies:<name>`, `body`, `path`.
    #[serde(default)]
    pub variables: Vec<String>,
}

/// An input of a request, as exclusions name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WafVariable {
    /// Every query and body argument (names and values).
    Args,
    /// One argument by name (exact, case-sensitive).
    Arg(String),
    /// Every header.
    Headers,
    /// One header (lowercase name).
    Header(String),
    /// Every cookie.
    Cookies,
    /// One cookie by name.
    Cookie(String),
    /// The raw request body.
    Body,
    /// The request path.
    Path,
}

impl WafVariable {
    /// Parses the `variables` syntax of an exclusion.
    pub fn parse(text: &str) -> Option<WafVariable> {
        let (kind, name) = match text.split_once(':') {
            Some((k, n)) if !n.is_empty() => (k, Some(n)),
            Some(_) => return None,
            None => (text, None),
        };
        Some(match (kind, name) {
            ("args", None) => WafVariable::Args,
            ("args", Some(n)) => WafVariable::Arg(n.to_string()),
            ("headers", None) => WafVariable::Headers,
            ("headers", Some(n)) => WafVariable::Header(n.to_ascii_lowercase()),
            ("cookies", None) => WafVariable::Cookies,
            ("cookies", Some(n)) => WafVariable::Cookie(n.to_string()),
            ("body", None) => WafVariable::Body,
            ("path", None) => WafVariable::Path,
            _ => return None,
        })
    }
}

/// Default [`Waf::allowed_methods`].
pub const DEFAULT_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"];

/// Default [`Waf::allowed_content_types`].
pub const DEFAULT_CONTENT_TYPES: [&str; 12] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/related",
    "text/xml",
    "application/xml",
    "application/soap+xml",
    "application/json",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/problem+json",
    "application/graphql",
    "application/x-ndjson",
];

/// Default [`Waf::inspect_body_bytes`].
pub const DEFAULT_INSPECT_BODY_BYTES: usize = 128 * 1024;
/// Largest [`Waf::inspect_body_bytes`].
pub const MAX_INSPECT_BODY_BYTES: u64 = 1024 * 1024;

/// A checked WAF policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafPolicy {
    /// Off, detect or block.
    pub mode: WafMode,
    /// 1-4.
    pub paranoia: u8,
    /// Score at which a request is blocked (at least 1).
    pub anomaly_threshold: u32,
    /// Body bytes inspected.
    pub inspect_body_bytes: usize,
    /// Families not run.
    pub disabled_families: Vec<WafFamily>,
    /// Uppercase method names.
    pub allowed_methods: Vec<String>,
    /// Lowercase media types (no parameters).
    pub allowed_content_types: Vec<String>,
    /// Exceptions.
    pub exclusions: Vec<WafExclusionRule>,
}

/// A checked exception (see [`WafExclusion`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafExclusionRule {
    /// Path prefix, if limited to one.
    pub path: Option<String>,
    /// Rule ids switched off.
    pub rules: Vec<u32>,
    /// Families switched off.
    pub families: Vec<WafFamily>,
    /// Inputs concerned (empty: all).
    pub variables: Vec<WafVariable>,
}

impl WafExclusionRule {
    /// Whether the exception covers `rule` of `family`.
    pub fn covers_rule(&self, rule: u32, family: WafFamily) -> bool {
        (self.rules.is_empty() && self.families.is_empty())
            || self.rules.contains(&rule)
            || self.families.contains(&family)
    }

    /// Whether the exception applies to requests for `path` (segment-aware prefix).
    pub fn applies_to_path(&self, path: &str) -> bool {
        match &self.path {
            None => true,
            Some(p) if p == "/" => true,
            Some(p) => {
                let p = p.trim_end_matches('/');
                path == p
                    || path
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// Checks a domain's `waf` section; each problem goes to `err(field_path, message)`.
pub fn check(w: &Waf, path: &str, err: &mut dyn FnMut(String, String)) -> WafPolicy {
    let paranoia = w.paranoia.unwrap_or(1);
    if !(1..=4).contains(&paranoia) {
        err(format!("{path}.paranoia"), "must be 1, 2, 3 or 4".into());
    }
    let anomaly_threshold = w.anomaly_threshold.unwrap_or(5);
    if anomaly_threshold == 0 {
        err(
            format!("{path}.anomaly_threshold"),
            "must be at least 1".into(),
        );
    }
    let inspect_body_bytes = match w.inspect_body_bytes {
        None => DEFAULT_INSPECT_BODY_BYTES,
        Some(n) if (1..=MAX_INSPECT_BODY_BYTES).contains(&n) => n as usize,
        Some(_) => {
            err(
                format!("{path}.inspect_body_bytes"),
                format!("must be between 1 and {MAX_INSPECT_BODY_BYTES}"),
            );
            DEFAULT_INSPECT_BODY_BYTES
        }
    };
    let allowed_methods = match &w.allowed_methods {
        None => DEFAULT_METHODS.iter().map(|m| m.to_string()).collect(),
        Some(list) => {
            for (i, m) in list.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
                    err(
                        format!("{path}.allowed_methods[{i}]"),
                        format!("{m:?} is not a method name"),
                    );
                }
            }
            list.iter().map(|m| m.to_ascii_uppercase()).collect()
        }
    };
    let allowed_content_types = match &w.allowed_content_types {
        None => DEFAULT_CONTENT_TYPES
            .iter()
            .map(|m| m.to_string())
            .collect(),
        Some(list) => {
            for (i, t) in list.iter().enumerate() {
                let ok = t.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && t.bytes().all(|c| c.is_ascii_graphic() && c != b';')
                });
                if !ok {
                    err(
                        format!("{path}.allowed_content_types[{i}]"),
                        format!("{t:?} is not a media type like application/json"),
                    );
                }
            }
            list.iter().map(|t| t.to_ascii_lowercase()).collect()
        }
    };
    let mut exclusions = Vec::with_capacity(w.exclusions.len());
    for (i, x) in w.exclusions.iter().enumerate() {
        let xpath = format!("{path}.exclusions[{i}]");
        if let Some(p) = &x.path {
            if !p.starts_with('/') {
                err(format!("{xpath}.path"), "must start with /".into());
            }
        }
        for (j, id) in x.rules.iter().enumerate() {
            if WafFamily::of_rule(*id).is_none() {
                err(
                    format!("{xpath}.rules[{j}]"),
                    format!("{id} is not a WAF rule id (see `gatehouse waf-rules`)"),
                );
            }
        }
        let mut variables = Vec::with_capacity(x.variables.len());
        for (j, v) in x.variables.iter().enumerate() {
            match WafVariable::parse(v) {
                Some(v) => variables.push(v),
                None => err(
                    format!("{xpath}.variables[{j}]"),
                    format!(
                        "{v:?}: expected args, args:<name>, headers, headers:<name>, cookies, cookies:<name>, body or path"
                    ),
                ),
            }
        }
        if x.path.is_none() && x.rules.is_empty() && x.families.is_empty() && variables.is_empty() {
            err(
                xpath,
                "an exclusion needs a path, rules, families or variables (use mode: off to turn the WAF off)".into(),
            );
            continue;
        }
        exclusions.push(WafExclusionRule {
            path: x.path.clone(),
            rules: x.rules.clone(),
            families: x.families.clone(),
            variables,
        });
    }
    let mut disabled_families = w.disabled_families.clone();
    disabled_families.sort();
    disabled_families.dedup();
    WafPolicy {
        mode: w.mode,
        paranoia: paranoia.clamp(1, 4),
        anomaly_threshold: anomaly_threshold.max(1),
        inspect_body_bytes,
        disabled_families,
        allowed_methods,
        allowed_content_types,
        exclusions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<String> {
        let w: Waf = serde_yaml_ng::from_str(yaml).expect("parses");
        let mut errs = Vec::new();
        check(&w, "domains[0].waf", &mut |p, m| {
            errs.push(format!("{p}: {m}"))
        });
        errs
    }

    #[test]
    fn defaults_are_block_at_paranoia_one() {
        let w: Waf = serde_yaml_ng::from_str("{}").unwrap();
        let p = check(&w, "waf", &mut |p, m| panic!("{p}: {m}"));
        assert_eq!(p.mode, WafMode::Block);
        assert_eq!(p.paranoia, 1);
        assert_eq!(p.anomaly_threshold, 5);
        assert!(p.allowed_methods.contains(&"DELETE".to_string()));
        assert_eq!(p.inspect_body_bytes, 128 * 1024);
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let errs = errors_of(
            "{paranoia: 5, anomaly_threshold: 0, inspect_body_bytes: 99999999,
              allowed_methods: ['G ET'], allowed_content_types: [json],
              exclusions: [{rules: [123]}, {variables: ['args:']}, {}, {path: search}]}",
        );
        for expected in [
            "domains[0].waf.paranoia:",
            "domains[0].waf.anomaly_threshold:",
            "domains[0].waf.inspect_body_bytes:",
            "domains[0].waf.allowed_methods[0]:",
            "domains[0].waf.allowed_content_types[0]:",
            "domains[0].waf.exclusions[0].rules[0]:",
            "domains[0].waf.exclusions[1].variables[0]:",
            "domains[0].waf.exclusions[2]:",
            "domains[0].waf.exclusions[3].path:",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(expected)),
                "missing {expected} in {errs:#?}"
            );
        }
    }

    #[test]
    fn exclusions_match_paths_by_segment_and_rules_by_family() {
        let x = WafExclusionRule {
            path: Some("/api".into()),
            rules: vec![942100],
            families: vec![WafFamily::Xss],
            variables: vec![],
        };
        assert!(x.applies_to_path("/api"));
        assert!(x.applies_to_path("/api/v1"));
        assert!(!x.applies_to_path("/apix"));
        assert!(x.covers_rule(942100, WafFamily::Sqli));
        assert!(x.covers_rule(941001, WafFamily::Xss));
        assert!(!x.covers_rule(942101, WafFamily::Sqli));
        assert_eq!(WafFamily::of_rule(942100), Some(WafFamily::Sqli));
        assert_eq!(WafFamily::of_rule(950000), None);
    }
}
