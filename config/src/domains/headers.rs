//! `domains[].headers`: request and response header edits, whose values are
//! templates with `$variables`. Holds the file types, the parsed edits and
//! templates, [`check`] and [`parse_template`].

use http::HeaderValue;

use crate::check::Checker;
use model::{HeaderEdits, Template, TemplatePart, Variable};

pub mod file {
    //! Header edits as operators write them.

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    /// Request and response header edits.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::HeaderRules))]
    #[serde(deny_unknown_fields)]
    pub struct HeaderRules {
        /// Edits applied to the request before it is forwarded upstream.
        #[serde(default)]
        pub request: HeaderEdits,
        /// Edits applied to the response before it is sent to the client.
        #[serde(default)]
        pub response: HeaderEdits,
    }

    /// One set of header edits, applied in the order remove, set, add.
    /// Values may use variables: `$client_ip`, `$request_id`, `$host`, `$scheme`,
    /// `$request_uri`, `$tenant`; write `$$` for a literal `$`.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::HeaderEdits))]
    #[serde(deny_unknown_fields)]
    pub struct HeaderEdits {
        /// Header names to remove.
        #[serde(default)]
        pub remove: Vec<String>,
        /// Headers to set, replacing any existing values.
        #[serde(default)]
        pub set: BTreeMap<String, String>,
        /// Headers to append, keeping existing values.
        #[serde(default)]
        pub add: BTreeMap<String, String>,
    }
}

pub mod model {
    //! Header edits with names and templates parsed.

    use http::HeaderName;

    /// Header edits, applied in the order remove, set, add.
    #[derive(Debug, Clone, Default)]
    pub struct HeaderEdits {
        /// Names removed.
        pub remove: Vec<HeaderName>,
        /// Names set (replacing).
        pub set: Vec<(HeaderName, Template)>,
        /// Names appended.
        pub add: Vec<(HeaderName, Template)>,
    }

    /// A header value with variables, parsed once at load.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Template {
        /// Literal text and variables in order.
        pub parts: Vec<TemplatePart>,
    }

    /// One piece of a [`Template`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum TemplatePart {
        /// Copied as is.
        Literal(String),
        /// Replaced per request.
        Var(Variable),
    }

    /// Per-request values usable in header templates.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Variable {
        /// The client's IP address.
        ClientIp,
        /// The request id (`X-Request-Id`).
        RequestId,
        /// The request host, without port.
        Host,
        /// `http` or `https`.
        Scheme,
        /// Path and query as received.
        RequestUri,
        /// The domain's tenant.
        Tenant,
    }

    impl Variable {
        /// Variable names as written in templates (without `$`).
        pub const ALL: [(&'static str, Variable); 6] = [
            ("client_ip", Variable::ClientIp),
            ("request_id", Variable::RequestId),
            ("host", Variable::Host),
            ("scheme", Variable::Scheme),
            ("request_uri", Variable::RequestUri),
            ("tenant", Variable::Tenant),
        ];
    }
}

pub(crate) fn check(e: &file::HeaderEdits, path: &str, cx: &mut Checker<'_>) -> HeaderEdits {
    let mut out = HeaderEdits::default();
    for (i, name) in e.remove.iter().enumerate() {
        if let Some(n) = cx.editable_header_name(name, &format!("{path}.remove[{i}]")) {
            out.remove.push(n);
        }
    }
    for (kind, map, dest) in [("set", &e.set, &mut out.set), ("add", &e.add, &mut out.add)] {
        for (name, value) in map {
            let fpath = format!("{path}.{kind}.{name}");
            let n = cx.editable_header_name(name, &fpath);
            let t = match parse_template(value) {
                Ok(t) => Some(t),
                Err(msg) => {
                    cx.err(&fpath, msg);
                    None
                }
            };
            if let (Some(n), Some(t)) = (n, t) {
                dest.push((n, t));
            }
        }
    }
    out
}

/// Parses a header value template with `$variables` (`$$` is a literal `$`).
pub fn parse_template(s: &str) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        lit.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            lit.push('$');
            rest = r;
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        let Some((_, var)) = Variable::ALL.iter().find(|(n, _)| *n == name) else {
            let known: Vec<String> = Variable::ALL.iter().map(|(n, _)| format!("${n}")).collect();
            return Err(format!(
                "unknown variable ${name} (known: {}; write $$ for a literal $)",
                known.join(", ")
            ));
        };
        if !lit.is_empty() {
            parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
        }
        parts.push(TemplatePart::Var(*var));
        rest = &rest[end..];
    }
    lit.push_str(rest);
    if HeaderValue::from_str(&lit).is_err() {
        return Err(format!("invalid header value {s:?}"));
    }
    if !lit.is_empty() {
        parts.push(TemplatePart::Literal(lit));
    }
    Ok(Template { parts })
}
