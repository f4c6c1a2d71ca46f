//! Compiling the catalog for a policy: the rules of one paranoia level and
//! set of families, their atoms in one scanner (what each atom means, where
//! it counts), the libinjection gates, and the registry that shares a
//! compiled set between domains and across reloads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

#[cfg(test)]
use aho_corasick::AhoCorasick;
use gatehouse_config::waf::WafFamily;
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::atoms;
use super::decode::View;
use super::rules::{self, Kind, RuleDef};
use super::scanner::Scanner;

/// What finding an atom makes a candidate (or decides outright).
#[derive(Debug, Clone, Copy)]
pub(super) enum Hit {
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
pub(super) enum Context {
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
    pub(super) rules: Vec<&'static RuleDef>,
    /// Every atom of every rule (regex atoms, phrase lists, libinjection
    /// gates), ASCII-case-insensitive, one pass per distinct view text.
    /// Walked byte by byte (see [`Scanner`]): the search iterators'
    /// per-match bookkeeping cost more than the walk itself.
    pub(super) atoms: Scanner,
    /// The atoms themselves (for tests).
    #[cfg(test)]
    patterns: Vec<Vec<u8>>,
    /// Per atom: what it means.
    pub(super) hits: Vec<AtomHits>,
    /// Per atom: its views and sources (see [`relevance_lane`]).
    pub(super) relevance: Vec<u64>,
    /// Per clause: its rule and the bits of all its sets.
    pub(super) clauses: Vec<(usize, u8)>,
    /// Per view: regex rules without usable atoms, matched in one pass.
    pub(super) unfiltered: Vec<Option<(RegexSet, Vec<usize>)>>,
    /// Per rule (by index): its own regex.
    pub(super) regexes: Vec<Option<Regex>>,
    /// Per view: the sources any rule of the view looks at.
    pub(super) view_targets: [u16; 4],
    pub(super) sqli: Option<usize>,
    pub(super) xss: Option<usize>,
    pub(super) checks: Vec<usize>,
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
    pub(super) fn shared(paranoia: u8, disabled: &[WafFamily]) -> anyhow::Result<Arc<RuleSet>> {
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
pub(super) struct AtomHits {
    /// Regex clause sets it completes: `(view, clause, set bit)`. Finding the
    /// atom once per text is enough for these.
    pub(super) clauses: Vec<(View, usize, u8)>,
    /// Phrases and gates, which look at every occurrence.
    pub(super) others: Vec<(View, Hit)>,
}

/// Where an atom can mean anything, as one word: for each view a 16-bit lane
/// of the sources its entries for that view target. An occurrence matters
/// when this overlaps [`relevance_query`] of the text and input. Kept apart
/// from [`AtomHits`] so the check on every occurrence touches 8 bytes.
fn relevance_lane(view: View, sources: u16) -> u64 {
    u64::from(sources) << (16 * view.index())
}

/// The lanes of `views` (a mask), each holding `source`.
pub(super) fn relevance_query(views: u8, source: u16) -> u64 {
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
