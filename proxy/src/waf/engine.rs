//! Compiling the catalog for a policy and scoring a request against it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use aho_corasick::AhoCorasick;
use gatehouse_config::waf::{WafExclusionRule, WafFamily, WafMode, WafPolicy, WafVariable};
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::decode::{self, View};
use super::input::{self, Parsed, RequestInput, Source, Var};
use super::rules::{self, Kind, RuleDef};

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

    fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        }
    }
}

/// A rule of the catalog, as listed by `gatehouse waf-rules`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleInfo {
    pub id: u32,
    pub family: &'static str,
    pub paranoia: u8,
    pub severity: &'static str,
    pub description: &'static str,
}

/// Every rule the WAF knows.
pub fn catalog() -> Vec<RuleInfo> {
    rules::all()
        .iter()
        .map(|r| RuleInfo {
            id: r.id,
            family: r.family().name(),
            paranoia: r.paranoia,
            severity: r.severity.name(),
            description: r.msg,
        })
        .collect()
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

/// Rules compiled for one paranoia level and set of families.
pub(crate) struct RuleSet {
    rules: Vec<&'static RuleDef>,
    /// Per view: the regex rules using it, matched in one pass.
    sets: Vec<Option<(RegexSet, Vec<usize>)>>,
    /// Per rule (by index): its own regex, for the fragment.
    regexes: Vec<Option<Regex>>,
    /// Phrase-list rules: automaton, view, rule index, whole-word matching.
    phrases: Vec<(AhoCorasick, View, usize, bool)>,
    /// Per view: the sources any rule of the view looks at.
    view_targets: [u16; 4],
    sqli: Option<usize>,
    xss: Option<usize>,
    checks: Vec<usize>,
}

type SetKey = (u8, Vec<WafFamily>);

fn registry() -> &'static Mutex<HashMap<SetKey, Weak<RuleSet>>> {
    static REG: OnceLock<Mutex<HashMap<SetKey, Weak<RuleSet>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

impl RuleSet {
    /// The shared rule set for `paranoia` without `disabled` families.
    fn shared(paranoia: u8, disabled: &[WafFamily]) -> anyhow::Result<Arc<RuleSet>> {
        let key = (paranoia, disabled.to_vec());
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = reg.get(&key).and_then(Weak::upgrade) {
            return Ok(set);
        }
        let set = Arc::new(RuleSet::compile(paranoia, disabled)?);
        reg.retain(|_, w| w.strong_count() > 0);
        reg.insert(key, Arc::downgrade(&set));
        Ok(set)
    }

    fn compile(paranoia: u8, disabled: &[WafFamily]) -> anyhow::Result<RuleSet> {
        let rules: Vec<&'static RuleDef> = rules::all()
            .iter()
            .filter(|r| r.paranoia <= paranoia && !disabled.contains(&r.family()))
            .collect();
        let mut per_view: Vec<Vec<(usize, &'static str)>> = vec![Vec::new(); View::ALL.len()];
        let mut regexes = Vec::with_capacity(rules.len());
        let mut phrases = Vec::new();
        let mut view_targets = [0u16; 4];
        let (mut sqli, mut xss, mut checks) = (None, None, Vec::new());
        for (i, r) in rules.iter().enumerate() {
            let mut own = None;
            match &r.kind {
                Kind::Regex(view, pattern) => {
                    per_view[view.index()].push((i, pattern));
                    view_targets[view.index()] |= r.targets;
                    own = Some(
                        regex::bytes::RegexBuilder::new(pattern)
                            .case_insensitive(true)
                            .unicode(false)
                            .size_limit(1 << 24)
                            .build()
                            .map_err(|e| anyhow::anyhow!("WAF rule {}: {e}", r.id))?,
                    );
                }
                Kind::Phrases(view, words, whole_word) => {
                    let ac = AhoCorasick::builder()
                        .ascii_case_insensitive(true)
                        .build(words.iter())
                        .map_err(|e| anyhow::anyhow!("WAF rule {}: {e}", r.id))?;
                    view_targets[view.index()] |= r.targets;
                    phrases.push((ac, *view, i, *whole_word));
                }
                Kind::Sqli => {
                    sqli = Some(i);
                    view_targets[View::Decoded.index()] |= r.targets;
                }
                Kind::Xss => {
                    xss = Some(i);
                    view_targets[View::Decoded.index()] |= r.targets;
                }
                Kind::Check(_) => checks.push(i),
            }
            regexes.push(own);
        }
        let sets = per_view
            .into_iter()
            .map(|list| {
                if list.is_empty() {
                    return Ok(None);
                }
                let set = RegexSetBuilder::new(list.iter().map(|(_, p)| *p))
                    .case_insensitive(true)
                    .unicode(false)
                    .size_limit(1 << 26)
                    .dfa_size_limit(4 << 20)
                    .build()
                    .map_err(|e| anyhow::anyhow!("WAF rule set: {e}"))?;
                Ok(Some((set, list.into_iter().map(|(i, _)| i).collect())))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(RuleSet {
            rules,
            sets,
            regexes,
            phrases,
            view_targets,
            sqli,
            xss,
            checks,
        })
    }
}

/// A domain's compiled WAF.
pub struct Waf {
    policy: WafPolicy,
    rules: Arc<RuleSet>,
}

impl std::fmt::Debug for Waf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waf")
            .field("policy", &self.policy)
            .field("rules", &self.rules.rules.len())
            .finish()
    }
}

/// Facts request-level rules look at.
pub(crate) struct CheckCtx<'a> {
    pub req: &'a RequestInput<'a>,
    pub parsed: &'a Parsed<'a>,
    pub policy: &'a WafPolicy,
}

impl Waf {
    /// Compiles `policy` (sharing rule sets between domains).
    pub fn new(policy: WafPolicy) -> anyhow::Result<Waf> {
        let rules = RuleSet::shared(policy.paranoia, &policy.disabled_families)?;
        Ok(Waf { policy, rules })
    }

    /// The policy this was compiled from.
    pub fn policy(&self) -> &WafPolicy {
        &self.policy
    }

    /// Whether it blocks (rather than only logging).
    pub fn blocks(&self) -> bool {
        self.policy.mode == WafMode::Block
    }

    /// Body bytes to buffer for inspection.
    pub fn inspect_body_bytes(&self) -> usize {
        self.policy.inspect_body_bytes
    }

    /// Inspects a request; `path` is the normalised path exclusions match.
    pub fn inspect(&self, req: &RequestInput<'_>, path: &str) -> Verdict {
        let exclusions: Vec<&WafExclusionRule> = self
            .policy
            .exclusions
            .iter()
            .filter(|x| x.applies_to_path(path))
            .collect();
        if exclusions
            .iter()
            .any(|x| x.rules.is_empty() && x.families.is_empty() && x.variables.is_empty())
        {
            return Verdict::default();
        }
        let parsed = input::parse(req);
        let set = &*self.rules;
        let mut fired = vec![false; set.rules.len()];
        let mut detections = Vec::new();
        let mut record = |i: usize, variable: String, fragment: &[u8], fired: &mut Vec<bool>| {
            fired[i] = true;
            let r = set.rules[i];
            // Cookies and credentials never reach the logs, even in part.
            let fragment = if is_secret(&variable) {
                format!("<redacted {} bytes>", fragment.len())
            } else {
                printable(fragment)
            };
            detections.push(Detection {
                rule: r.id,
                family: r.family().name(),
                severity: r.severity.name(),
                score: r.severity.score(),
                variable,
                fragment,
                description: r.msg,
            });
        };

        let ctx = CheckCtx {
            req,
            parsed: &parsed,
            policy: &self.policy,
        };
        for &i in &set.checks {
            let r = set.rules[i];
            if excluded(&exclusions, r, None) {
                continue;
            }
            if let Kind::Check(f) = r.kind {
                if let Some(found) = f(&ctx) {
                    record(i, "request".into(), found.as_bytes(), &mut fired);
                }
            }
        }

        for var in &parsed.vars {
            if var.value.is_empty() {
                continue;
            }
            let bit = var.source.bit();
            let var_excluded = |r: &RuleDef| excluded(&exclusions, r, Some(var));
            let mut decoded: Option<Vec<u8>> = None;
            for view in View::ALL {
                if set.view_targets[view.index()] & bit == 0 {
                    continue;
                }
                let text: std::borrow::Cow<[u8]> = match view {
                    View::Raw => std::borrow::Cow::Borrowed(&var.value[..]),
                    View::Decoded => std::borrow::Cow::Borrowed(
                        decoded
                            .get_or_insert_with(|| decode::decode(&var.value))
                            .as_slice(),
                    ),
                    View::Stripped => std::borrow::Cow::Owned(decode::strip_comments(
                        decoded.get_or_insert_with(|| decode::decode(&var.value)),
                    )),
                    View::Shell => std::borrow::Cow::Owned(decode::shell(
                        decoded.get_or_insert_with(|| decode::decode(&var.value)),
                    )),
                };
                if let Some((regex_set, index)) = &set.sets[view.index()] {
                    for m in regex_set.matches(&text).iter() {
                        let i = index[m];
                        let r = set.rules[i];
                        if fired[i] || r.targets & bit == 0 || var_excluded(r) {
                            continue;
                        }
                        let fragment = set.regexes[i]
                            .as_ref()
                            .and_then(|re| re.find(&text))
                            .map(|m| m.as_bytes().to_vec())
                            .unwrap_or_default();
                        record(i, var_label(var), &fragment, &mut fired);
                    }
                }
                for (ac, pview, i, whole_word) in &set.phrases {
                    let r = set.rules[*i];
                    if *pview != view || fired[*i] || r.targets & bit == 0 {
                        continue;
                    }
                    let found = ac.find_iter(&*text).find(|m| {
                        !*whole_word
                            || (m.start() == 0 || !text[m.start() - 1].is_ascii_alphanumeric())
                                && text.get(m.end()).is_none_or(|c| !c.is_ascii_alphanumeric())
                    });
                    if let Some(m) = found {
                        if !var_excluded(r) {
                            record(*i, var_label(var), &text[m.start()..m.end()], &mut fired);
                        }
                    }
                }
            }
            let decoded = decoded.unwrap_or_else(|| decode::decode(&var.value));
            for (which, is_sqli) in [(set.sqli, true), (set.xss, false)] {
                let Some(i) = which else { continue };
                let r = set.rules[i];
                if fired[i] || r.targets & bit == 0 || var_excluded(r) {
                    continue;
                }
                if !worth_libinjection(&decoded, is_sqli) {
                    continue;
                }
                let hit = if is_sqli {
                    libinjectionrs::detect_sqli(&decoded).is_injection()
                } else {
                    libinjectionrs::detect_xss(&decoded).is_injection()
                };
                if hit {
                    record(i, var_label(var), &decoded, &mut fired);
                }
            }
        }
        let score = detections.iter().map(|d| d.score).sum();
        Verdict {
            score,
            blocked: self.blocks() && score >= self.policy.anomaly_threshold,
            detections,
        }
    }
}

/// Whether a variable's content must not be logged.
fn is_secret(variable: &str) -> bool {
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

/// libinjection can only find something in a value with SQL or HTML
/// punctuation or spaces in it; most values are plain words and numbers,
/// which this skips cheaply.
fn worth_libinjection(value: &[u8], sqli: bool) -> bool {
    if sqli {
        value.iter().any(|b| b"'\"`;()=#-/*|&@<>!^%+~".contains(b))
            || (value.len() > 5 && value.contains(&b' '))
    } else {
        value.iter().any(|b| b"<>\"'`=:(".contains(b))
    }
}

/// `args:q`, `headers:user-agent`, `path`, ...
fn var_label(var: &Var<'_>) -> String {
    if var.name.is_empty() {
        var.source.label().to_string()
    } else {
        format!("{}:{}", var.source.label(), var.name)
    }
}

/// Whether an exclusion switches `rule` off for `var` (`None`: request-level rules).
fn excluded(exclusions: &[&WafExclusionRule], rule: &RuleDef, var: Option<&Var<'_>>) -> bool {
    exclusions.iter().any(|x| {
        x.covers_rule(rule.id, rule.family())
            && (x.variables.is_empty()
                || var.is_some_and(|v| x.variables.iter().any(|w| variable_matches(w, v))))
    })
}

fn variable_matches(w: &WafVariable, v: &Var<'_>) -> bool {
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

/// At most [`FRAGMENT_CHARS`] characters, control and non-UTF-8 bytes escaped.
fn printable(bytes: &[u8]) -> String {
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
