//! Policy exclusions: whether one switches a rule off for an input (or for
//! the whole request), and which inputs a `variables` entry names.

use gatehouse_config::waf::{WafExclusionRule, WafVariable};

use super::input::{Source, Var};
use super::rules::RuleDef;

/// Whether an exclusion switches `rule` off for `var` (`None`: request-level rules).
pub(super) fn excluded(
    exclusions: &[&WafExclusionRule],
    rule: &RuleDef,
    var: Option<&Var<'_>>,
) -> bool {
    exclusions.iter().any(|x| {
        x.covers_rule(rule.id, rule.family())
            && (x.variables.is_empty()
                || var.is_some_and(|v| x.variables.iter().any(|w| variable_matches(w, v))))
    })
}

pub(super) fn variable_matches(w: &WafVariable, v: &Var<'_>) -> bool {
    use Source::*;
    match (w, v.source) {
        (WafVariable::Args, ArgName | Arg) => true,
        (WafVariable::Arg(n), ArgName | Arg) => *n == v.name,
        (WafVariable::Headers, UserAgent | Referer | Header | HeaderName) => true,
        (WafVariable::Header(n), UserAgent | Referer | Header) => n.eq_ignore_ascii_case(&v.name),
        (WafVariable::Cookies, CookieName | Cookie) => true,
        (WafVariable::Cookie(n), CookieName | Cookie) => *n == v.name,
        (WafVariable::Body, Body) => true,
        (WafVariable::Path, Path | RawUri) => true,
        _ => false,
    }
}
