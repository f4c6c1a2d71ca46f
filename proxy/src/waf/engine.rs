//! Compiling the catalog for a policy and scoring a request against it.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use std::borrow::Cow;

#[cfg(test)]
use aho_corasick::AhoCorasick;
use gatehouse_config::waf::{WafExclusionRule, WafFamily, WafMode, WafPolicy, WafVariable};
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::atoms;
use super::decode::{self, View};
use super::input::{self, Parsed, RequestInput, Source, Var};
use super::rules::{self, Kind, RuleDef};
use super::scanner::Scanner;

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

/// What finding an atom makes a candidate (or decides outright).
#[derive(Debug, Clone, Copy)]
enum Hit {
    /// One set of a regex rule's clause (see [`atoms::filter`]): the
    /// clause's number and the set's bit.
    Clause(usize, u8),
    /// A phrase of this rule's list, whole words only when set.
    Phrase(usize, bool),
    /// A reason to run libinjection (SQL injection when set, else XSS).
    Gate(bool, Context),
    /// A literal this rule's matches begin with after leading whitespace
    /// (see [`atoms::anchored_prefixes`]): a candidate when found there.
    Start(usize),
}

/// Where a gate atom counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Anywhere,
    WholeWord,
    /// Not between two letters: `nobody's` is prose, `1'` or `' or` is not.
    OutsideWord,
    /// Not between two letters or digits: `step=2&page=3` is a query
    /// string, `1 = 1`, `'='` or `)=` is not.
    Operator,
    /// Not between two letters, one space on either side allowed: `fish &
    /// chips` and `a&b` are prose or a query string, `1 & 2` or `' &` are not.
    Conjunction,
}

/// Rules compiled for one paranoia level and set of families.
pub(crate) struct RuleSet {
    rules: Vec<&'static RuleDef>,
    /// Every atom of every rule (regex atoms, phrase lists, libinjection
    /// gates), ASCII-case-insensitive, one pass per distinct view text.
    /// Walked byte by byte (see [`Scanner`]): the search iterators'
    /// per-match bookkeeping cost more than the walk itself.
    atoms: Scanner,
    /// The atoms themselves (for tests).
    #[cfg(test)]
    patterns: Vec<Vec<u8>>,
    /// Per atom: what it means.
    hits: Vec<AtomHits>,
    /// Per atom: its views and sources (see [`relevance_lane`]).
    relevance: Vec<u64>,
    /// Per clause: its rule and the bits of all its sets.
    clauses: Vec<(usize, u8)>,
    /// Per view: regex rules without usable atoms, matched in one pass.
    unfiltered: Vec<Option<(RegexSet, Vec<usize>)>>,
    /// Per rule (by index): its own regex.
    regexes: Vec<Option<Regex>>,
    /// Per view: the sources any rule of the view looks at.
    view_targets: [u16; 4],
    sqli: Option<usize>,
    xss: Option<usize>,
    checks: Vec<usize>,
}

/// Atoms that make running libinjection's SQL tokenizer worthwhile (it is
/// the costliest matcher): SQL operators and comments, quotes that are not
/// an apostrophe inside a word, and keywords an unquoted injection needs.
const SQLI_GATES: &[(&str, Context)] = &[
    ("'", Context::OutsideWord),
    ("\"", Context::Anywhere),
    ("`", Context::Anywhere),
    ("=", Context::Operator),
    ("<", Context::Anywhere),
    (">", Context::Anywhere),
    ("|", Context::Anywhere),
    ("&", Context::Conjunction),
    ("#", Context::Operator),
    ("--", Context::Anywhere),
    ("/*", Context::Anywhere),
    ("@@", Context::Anywhere),
    ("::", Context::Anywhere),
    ("\\", Context::Anywhere),
];
#[rustfmt::skip]
const SQLI_GATE_WORDS: &[&str] = &[
    "union", "select", "or", "and", "xor", "div", "having", "order", "group", "where", "rlike",
    "regexp", "between", "sleep", "benchmark", "waitfor", "exec", "execute", "null", "not", "into",
    "from", "insert", "update", "delete", "drop", "case", "procedure", "limit", "declare",
    "shutdown", "truncate", "when",
];
/// Atoms that make running libinjection's HTML tokenizer worthwhile: markup,
/// quotes that can close an attribute, and `=` (an unquoted attribute such as
/// `x style=...` has nothing else).
const XSS_GATES: &[(&str, Context)] = &[
    ("<", Context::Anywhere),
    (">", Context::Anywhere),
    ("\"", Context::Anywhere),
    ("'", Context::OutsideWord),
    ("`", Context::Anywhere),
    ("=", Context::Anywhere),
    ("script:", Context::Anywhere),
    ("data:", Context::Anywhere),
];

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
        let mut atoms = AtomTable::default();
        let mut clauses = Vec::new();
        let mut unfiltered: Vec<Vec<(usize, &'static str)>> = vec![Vec::new(); View::ALL.len()];
        let mut regexes = Vec::with_capacity(rules.len());
        let mut view_targets = [0u16; 4];
        let (mut sqli, mut xss, mut checks) = (None, None, Vec::new());
        for (i, r) in rules.iter().enumerate() {
            let mut own = None;
            match &r.kind {
                Kind::Regex(view, pattern) => {
                    view_targets[view.index()] |= r.targets;
                    match atoms::filter(pattern) {
                        Some(found) => {
                            for sets in found {
                                let clause = clauses.len();
                                clauses.push((i, (1u8 << sets.len()) - 1));
                                for (k, set) in sets.into_iter().enumerate() {
                                    for atom in set {
                                        atoms.add(
                                            atom,
                                            *view,
                                            Hit::Clause(clause, 1 << k),
                                            r.targets,
                                        );
                                    }
                                }
                            }
                        }
                        None => match atoms::anchored_prefixes(pattern) {
                            Some(literals) => {
                                for atom in literals {
                                    atoms.add(atom, *view, Hit::Start(i), r.targets);
                                }
                            }
                            None => unfiltered[view.index()].push((i, pattern)),
                        },
                    }
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
                    view_targets[view.index()] |= r.targets;
                    for w in *words {
                        atoms.add(
                            w.as_bytes().to_ascii_lowercase(),
                            *view,
                            Hit::Phrase(i, *whole_word),
                            r.targets,
                        );
                    }
                }
                Kind::Sqli => {
                    sqli = Some(i);
                    view_targets[View::Decoded.index()] |= r.targets;
                    for (g, context) in SQLI_GATES {
                        atoms.add(
                            g.as_bytes().to_vec(),
                            View::Decoded,
                            Hit::Gate(true, *context),
                            r.targets,
                        );
                    }
                    for g in SQLI_GATE_WORDS {
                        let hit = Hit::Gate(true, Context::WholeWord);
                        atoms.add(g.as_bytes().to_vec(), View::Decoded, hit, r.targets);
                    }
                }
                Kind::Xss => {
                    xss = Some(i);
                    view_targets[View::Decoded.index()] |= r.targets;
                    for (g, context) in XSS_GATES {
                        let hit = Hit::Gate(false, *context);
                        atoms.add(g.as_bytes().to_vec(), View::Decoded, hit, r.targets);
                    }
                }
                Kind::Check(_) => checks.push(i),
            }
            regexes.push(own);
        }
        let unfiltered = unfiltered
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
        let automaton = Scanner::new(&atoms.patterns)?;
        Ok(RuleSet {
            rules,
            #[cfg(test)]
            patterns: atoms.patterns.clone(),
            atoms: automaton,
            hits: atoms.hits,
            relevance: atoms.relevance,
            clauses,
            unfiltered,
            regexes,
            view_targets,
            sqli,
            xss,
            checks,
        })
    }
}

#[cfg(test)]
impl RuleSet {
    pub(crate) fn debug_compile(paranoia: u8) -> String {
        let s = RuleSet::compile(paranoia, &[]).unwrap();
        let mut bytes = [false; 256];
        let mut total = 0;
        for p in &s.patterns {
            total += p.len();
            for &b in p {
                bytes[usize::from(b.to_ascii_lowercase())] = true;
            }
        }
        format!(
            "{} patterns ({} bytes, {} distinct), {} bytes, {} clauses",
            s.patterns.len(),
            total,
            bytes.iter().filter(|b| **b).count(),
            s.atoms.heap_bytes(),
            s.clauses.len()
        )
    }

    /// The atom occurrences the scanner reports in `text`, and those an
    /// overlapping `aho-corasick` search over the same atoms reports, sorted.
    pub(crate) fn debug_scan(paranoia: u8, text: &[u8]) -> [Vec<(u32, u32, u32)>; 2] {
        let s = RuleSet::compile(paranoia, &[]).unwrap();
        let mut found = Vec::new();
        s.atoms.scan(text, &mut found);
        let reference = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&s.patterns)
            .unwrap();
        let mut expected: Vec<(u32, u32, u32)> = reference
            .find_overlapping_iter(text)
            .map(|m| (m.pattern().as_u32(), m.start() as u32, m.end() as u32))
            .collect();
        found.sort_unstable();
        expected.sort_unstable();
        [found, expected]
    }
}

/// What one atom means.
#[derive(Default)]
struct AtomHits {
    /// Regex clause sets it completes: `(view, clause, set bit)`. Finding the
    /// atom once per text is enough for these.
    clauses: Vec<(View, usize, u8)>,
    /// Phrases and gates, which look at every occurrence.
    others: Vec<(View, Hit)>,
}

/// Where an atom can mean anything, as one word: for each view a 16-bit lane
/// of the sources its entries for that view target. An occurrence matters
/// when this overlaps [`relevance_query`] of the text and input. Kept apart
/// from [`AtomHits`] so the check on every occurrence touches 8 bytes.
fn relevance_lane(view: View, sources: u16) -> u64 {
    u64::from(sources) << (16 * view.index())
}

/// The lanes of `views` (a mask), each holding `source`.
fn relevance_query(views: u8, source: u16) -> u64 {
    View::ALL
        .iter()
        .filter(|v| views & (1 << v.index()) != 0)
        .fold(0, |q, &v| q | relevance_lane(v, source))
}

/// Atoms being collected, each pattern once.
#[derive(Default)]
struct AtomTable {
    patterns: Vec<Vec<u8>>,
    hits: Vec<AtomHits>,
    relevance: Vec<u64>,
    index: HashMap<Vec<u8>, usize>,
}

impl AtomTable {
    fn add(&mut self, atom: Vec<u8>, view: View, hit: Hit, targets: u16) {
        let n = match self.index.get(&atom) {
            Some(&n) => n,
            None => {
                let n = self.patterns.len();
                self.index.insert(atom.clone(), n);
                self.patterns.push(atom);
                self.hits.push(AtomHits::default());
                self.relevance.push(0);
                n
            }
        };
        let entry = &mut self.hits[n];
        self.relevance[n] |= relevance_lane(view, targets);
        match hit {
            Hit::Clause(clause, set_bit) => entry.clauses.push((view, clause, set_bit)),
            _ => entry.others.push((view, hit)),
        }
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
    /// Inputs the running rule is excluded from (exclusions with
    /// `variables`): checks see them through [`CheckCtx::vars`] and
    /// [`CheckCtx::header`], which leave them out.
    pub skip: &'a [&'a WafVariable],
}

impl<'a> CheckCtx<'a> {
    /// The request's inputs, without those the running rule is excluded from.
    pub fn vars(&self) -> impl Iterator<Item = &'a Var<'a>> + '_ {
        self.parsed
            .vars
            .iter()
            .filter(|v| !self.skip.iter().any(|w| variable_matches(w, v)))
    }

    /// A header a check inspects, unless the running rule is excluded from
    /// it (`headers` or `headers:<name>`); `None` too when absent or not
    /// visible ASCII.
    pub fn header(&self, name: http::header::HeaderName) -> Option<&'a str> {
        let skipped = self.skip.iter().any(|w| match w {
            WafVariable::Headers => true,
            WafVariable::Header(n) => n.eq_ignore_ascii_case(name.as_str()),
            _ => false,
        });
        if skipped {
            return None;
        }
        self.req.headers.get(name).and_then(|v| v.to_str().ok())
    }
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
        // Names built while parsing live here, freed together at the end.
        let arena = bumpalo::Bump::with_capacity(4096);
        let parsed = input::parse(req, &arena);
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

        for &i in &set.checks {
            let r = set.rules[i];
            if excluded(&exclusions, r, None) {
                continue;
            }
            // Exclusions naming inputs narrow what the check looks at.
            let skip: Vec<&WafVariable> = exclusions
                .iter()
                .filter(|x| x.covers_rule(r.id, r.family()))
                .flat_map(|x| &x.variables)
                .collect();
            let ctx = CheckCtx {
                req,
                parsed: &parsed,
                policy: &self.policy,
                skip: &skip,
            };
            if let Kind::Check(f) = r.kind {
                if let Some(found) = f(&ctx) {
                    record(i, "request".into(), found.as_bytes(), &mut fired);
                }
            }
        }

        // Per-request state lives in a per-thread scratch (no allocation and
        // clearing per request): stamps are numbers never used before, so
        // stale entries of earlier requests cannot look current.
        let mut scratch = SCRATCH.with(RefCell::take);
        scratch.fit(set);
        let Scratch {
            next,
            stamp,
            clause_found,
            clause_stamp,
            atom_pass,
            candidates,
            matches,
        } = &mut scratch;
        // Inputs are numbered from `base`; automaton passes after them.
        let base = *next;
        let mut pass = base + parsed.vars.len() as u64;
        // An input seen before under the same name cannot add anything (the
        // same rules, exclusions and texts apply): arrays of JSON objects
        // repeat every key, forms and cookies repeat values.
        let mut seen: HashSet<SeenInput<'_>, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(parsed.vars.len(), Default::default());
        for (k, var) in parsed.vars.iter().enumerate() {
            let n = base + k as u64;
            if var.value.is_empty() || !seen.insert(SeenInput(var)) {
                continue;
            }
            let bit = var.source.bit();
            let var_excluded = |r: &RuleDef| excluded(&exclusions, r, Some(var));
            let wanted = |view: View| set.view_targets[view.index()] & bit != 0;
            let raw: &[u8] = &var.value;
            // One scan says which views can differ from the value; after a
            // real decoding the transformations judge for themselves.
            let needs = decode::needs(raw);
            let decoded = if needs.decode {
                decode::decode(raw)
            } else {
                Cow::Borrowed(raw)
            };
            let is_raw = matches!(decoded, Cow::Borrowed(_));
            let stripped = if wanted(View::Stripped) && (needs.strip || !is_raw) {
                decode::strip_comments(&decoded)
            } else {
                Cow::Borrowed(&decoded[..])
            };
            let shell = if wanted(View::Shell) && (needs.shell || !is_raw) {
                decode::shell(&decoded)
            } else {
                Cow::Borrowed(&decoded[..])
            };
            let texts: [&[u8]; 4] = [raw, &decoded, &stripped, &shell];
            let text_of = |view: View| texts[view.index()];

            // One automaton pass per distinct text; a hit counts for the
            // views showing that text.
            candidates.clear();
            let mut gates = [false; 2];
            let mut scanned = 0u8;
            for first in View::ALL {
                if scanned & (1 << first.index()) != 0 || !wanted(first) {
                    continue;
                }
                let text = text_of(first);
                let mut views = 0u8;
                for v in View::ALL {
                    if wanted(v) && same(text_of(v), text) {
                        views |= 1 << v.index();
                    }
                }
                scanned |= views;
                pass += 1;
                let query = relevance_query(views, bit);
                matches.clear();
                set.atoms.scan(text, matches);
                // Where leading whitespace ends, found once per text (not at
                // every occurrence of a start literal: `\v` × N then N
                // literals would cost N²).
                let mut lead = None;
                for &(pattern, start, end) in matches.iter() {
                    let (pattern, start, end) = (pattern as usize, start as usize, end as usize);
                    if set.relevance[pattern] & query == 0 {
                        continue;
                    }
                    let entry = &set.hits[pattern];
                    // A clause set is found once per text: later
                    // occurrences (`,` or `(` in prose) add nothing.
                    if atom_pass[pattern] != pass {
                        atom_pass[pattern] = pass;
                        for &(view, c, set_bit) in &entry.clauses {
                            if views & (1 << view.index()) == 0 {
                                continue;
                            }
                            let (i, all) = set.clauses[c];
                            if clause_stamp[c] != n {
                                clause_stamp[c] = n;
                                clause_found[c] = 0;
                            }
                            clause_found[c] |= set_bit;
                            if clause_found[c] == all
                                && stamp[i] != n
                                && !fired[i]
                                && set.rules[i].targets & bit != 0
                            {
                                stamp[i] = n;
                                candidates.push((i, view));
                            }
                        }
                    }
                    for &(view, hit) in &entry.others {
                        if views & (1 << view.index()) == 0 {
                            continue;
                        }
                        let whole = |ww: bool| !ww || whole_word(text, start, end);
                        match hit {
                            Hit::Clause(..) => {}
                            Hit::Phrase(i, ww) => {
                                let r = set.rules[i];
                                if !fired[i]
                                    && r.targets & bit != 0
                                    && whole(ww)
                                    && !var_excluded(r)
                                {
                                    record(i, var_label(var), &text[start..end], &mut fired);
                                }
                            }
                            Hit::Start(i) => {
                                if stamp[i] != n
                                    && !fired[i]
                                    && set.rules[i].targets & bit != 0
                                    && start
                                        == *lead.get_or_insert_with(|| {
                                            text.iter()
                                                .position(|&b| !atoms::is_regex_space(b))
                                                .unwrap_or(text.len())
                                        })
                                {
                                    stamp[i] = n;
                                    candidates.push((i, view));
                                }
                            }
                            Hit::Gate(is_sqli, context) => {
                                let counts = match context {
                                    Context::Anywhere => true,
                                    Context::WholeWord => whole(true),
                                    Context::OutsideWord => !inside_word(text, start, end),
                                    Context::Operator => !between_words(text, start, end),
                                    Context::Conjunction => !between_letters(text, start, end),
                                };
                                gates[usize::from(is_sqli)] |= counts;
                            }
                        }
                    }
                }
            }
            for view in View::ALL {
                let Some((regex_set, index)) = &set.unfiltered[view.index()] else {
                    continue;
                };
                // `is_match` first: `matches` allocates, and most texts match nothing.
                if !wanted(view) || !regex_set.is_match(text_of(view)) {
                    continue;
                }
                for m in regex_set.matches(text_of(view)).iter() {
                    let i = index[m];
                    if stamp[i] != n && !fired[i] && set.rules[i].targets & bit != 0 {
                        stamp[i] = n;
                        candidates.push((i, view));
                    }
                }
            }
            for &(i, view) in candidates.iter() {
                let r = set.rules[i];
                if fired[i] || var_excluded(r) {
                    continue;
                }
                let text = text_of(view);

                if let Some(m) = set.regexes[i].as_ref().and_then(|re| re.find(text)) {
                    record(i, var_label(var), m.as_bytes(), &mut fired);
                }
            }

            for (which, is_sqli) in [(set.sqli, true), (set.xss, false)] {
                let Some(i) = which else { continue };
                let r = set.rules[i];
                if !gates[usize::from(is_sqli)]
                    || fired[i]
                    || r.targets & bit == 0
                    || var_excluded(r)
                {
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
        *next = pass + 1;
        // One huge input must not keep its occurrence list for the thread's
        // lifetime (12 bytes per occurrence).
        if scratch.matches.capacity() > MAX_KEPT_MATCHES {
            scratch.matches = Vec::new();
        }
        SCRATCH.with(|s| s.replace(scratch));
        let score = detections.iter().map(|d| d.score).sum();
        Verdict {
            score,
            blocked: self.blocks() && score >= self.policy.anomaly_threshold,
            detections,
        }
    }
}

/// An input as the key of the set that skips repeats: the same source, the
/// same name (the same text in memory: names are shared, so comparing where
/// they are is enough, and a name that is equal but elsewhere only costs a
/// second inspection) and the same value.
struct SeenInput<'a>(&'a Var<'a>);

impl std::hash::Hash for SeenInput<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let Var {
            source,
            name,
            value,
        } = self.0;
        state.write_usize(name.as_ptr() as usize ^ (*source as usize) << 56);
        state.write(value);
    }
}

impl PartialEq for SeenInput<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0, other.0);
        a.source == b.source && std::ptr::eq(&*a.name, &*b.name) && a.value == b.value
    }
}

impl Eq for SeenInput<'_> {}

/// Occurrence entries the per-thread list keeps between requests (768 KiB).
const MAX_KEPT_MATCHES: usize = 1 << 16;

/// Per-thread working memory of [`Waf::inspect`].
#[derive(Default)]
struct Scratch {
    /// The next unused stamp.
    next: u64,
    /// Per rule: the input it last became a candidate for.
    stamp: Vec<u64>,
    /// Per clause: the sets found so far, valid for the input `clause_stamp` says.
    clause_found: Vec<u8>,
    clause_stamp: Vec<u64>,
    /// Per atom: the last automaton pass (one per distinct text) it was found in.
    atom_pass: Vec<u64>,
    /// Regex rules to confirm for the current input, and the view.
    candidates: Vec<(usize, View)>,
    /// Atom occurrences (atom, start, end) in the text being scanned.
    matches: Vec<(u32, u32, u32)>,
}

impl Scratch {
    /// Grows the tables for `set` (they serve every rule set a thread sees).
    fn fit(&mut self, set: &RuleSet) {
        // Zero is never a stamp.
        self.next = self.next.max(1);
        let grow = |v: &mut Vec<u64>, n: usize| {
            if v.len() < n {
                v.resize(n, 0);
            }
        };
        grow(&mut self.stamp, set.rules.len());
        grow(&mut self.clause_stamp, set.clauses.len());
        grow(&mut self.atom_pass, set.hits.len());
        if self.clause_found.len() < set.clauses.len() {
            self.clause_found.resize(set.clauses.len(), 0);
        }
        self.candidates.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
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

/// Whether `text[start..end]` is a whole word.
fn whole_word(text: &[u8], start: usize, end: usize) -> bool {
    (start == 0 || !text[start - 1].is_ascii_alphanumeric())
        && text.get(end).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// Whether `text[start..end]` sits between two letters.
fn inside_word(text: &[u8], start: usize, end: usize) -> bool {
    start > 0
        && text[start - 1].is_ascii_alphabetic()
        && text.get(end).is_some_and(|c| c.is_ascii_alphabetic())
}

/// Whether `text[start..end]` sits between two letters, allowing one space
/// on either side.
fn between_letters(text: &[u8], start: usize, end: usize) -> bool {
    let before = match text[..start] {
        [.., b, b' '] | [.., b] => b,
        [] => return false,
    };
    let after = match text[end..] {
        [b' ', b, ..] | [b, ..] => b,
        [] => return false,
    };
    before.is_ascii_alphabetic() && after.is_ascii_alphabetic()
}

/// Whether `text[start..end]` sits between two letters or digits.
fn between_words(text: &[u8], start: usize, end: usize) -> bool {
    start > 0
        && text[start - 1].is_ascii_alphanumeric()
        && text.get(end).is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Whether two views show the same bytes (borrowed from one buffer).
fn same(a: &[u8], b: &[u8]) -> bool {
    std::ptr::eq(a, b) || a == b
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
