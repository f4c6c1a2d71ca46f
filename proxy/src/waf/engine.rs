//! Scoring a request: a domain's compiled WAF ([`Waf`]) parses the request,
//! runs the request-level checks, then scans each distinct input in its
//! views and confirms the candidates its atoms select.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

use gatehouse_config::waf::{WafExclusionRule, WafMode, WafPolicy, WafVariable};

use super::atoms;
use super::boundary::{between_letters, between_words, inside_word, whole_word};
use super::decode::{self, View};
use super::exclusion::{excluded, variable_matches};
use super::input::{self, Parsed, RequestInput, Var};
use super::rules::{Kind, RuleDef};
use super::ruleset::{relevance_query, Context, Hit, RuleSet};
use super::scratch::{Scratch, MAX_KEPT_MATCHES, SCRATCH};
use super::verdict::{is_secret, printable, var_label, Detection, Verdict};

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

/// Whether two views show the same bytes (borrowed from one buffer).
fn same(a: &[u8], b: &[u8]) -> bool {
    std::ptr::eq(a, b) || a == b
}
