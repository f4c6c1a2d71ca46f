//! Required literals ("atoms") of a rule's regex, for the shared prefilter.
//!
//! Matching ~120 regexes against every input is what made inspection slow:
//! most inputs are ordinary words and numbers that no rule can match. For
//! each regex this finds a small set of literals such that every match
//! contains at least one of them (compared ASCII-case-insensitively). All
//! rules' atoms go into one Aho-Corasick automaton, so one pass over an input
//! tells which few regexes can match at all; only those run.
//!
//! The atoms come from `regex-syntax`'s literal extractor applied to every
//! suffix of a concatenation (each part of a concatenation is in every
//! match, so any part's prefixes are required), choosing the set expected to
//! hit least often in ordinary text (estimated from per-byte frequencies:
//! letters are common, `<`, `$` or a backtick rare). A regex without a
//! selective set gets `None` and runs on every input it targets.

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind};

/// At most this many atoms per rule; larger sets are less selective than
/// simply running the regex.
const MAX_ATOMS: usize = 1000;

/// Literals, lowercased; a set is found when any of them is.
pub(crate) type AtomSet = Vec<Vec<u8>>;

/// Most clauses per rule; a longer top-level alternation becomes one clause.
const MAX_CLAUSES: usize = 64;

/// Most sets per clause, and the most expected hits an additional set may
/// have to be worth requiring.
const MAX_SETS: usize = 3;
const EXTRA_SET_COST: f64 = 0.05;

/// Largest set that may overlap a chosen one (punctuation such as `(`).
const FEW_OVERLAPPING: usize = 4;

/// `pattern` as the rules' regexes are compiled: bytes, no Unicode classes.
fn parse(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

/// The prefilter of `pattern`: clauses (one per top-level alternative),
/// each a conjunction of atom sets. Every match satisfies at least one
/// clause: all of that clause's sets have an atom in the matched text.
/// `None` when some alternative has no selective set.
pub(crate) fn filter(pattern: &str) -> Option<Vec<Vec<AtomSet>>> {
    let hir = parse(pattern)?;
    let hir = unwrap_captures(&hir);
    if let Some(alts) = alternatives(hir) {
        if alts.len() <= MAX_CLAUSES {
            return alts.iter().map(clause).collect();
        }
    }
    Some(vec![clause(hir)?])
}

/// For a regex whose every alternative is anchored at the start (`^\s*ls\s`),
/// the literals a match must begin with once leading whitespace (`\s`) is
/// skipped, lowercased. They join the shared atom automaton; one found
/// exactly where a text's leading whitespace ends makes the regex a
/// candidate, however many literals there are.
/// `None` when some alternative is not of that shape or its prefixes are
/// not a finite set of literals.
pub(crate) fn anchored_prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = parse(pattern)?;
    let hir = unwrap_captures(&hir);
    let alts = alternatives(hir).unwrap_or_else(|| vec![hir.clone()]);
    let mut all = Vec::new();
    for alt in &alts {
        let HirKind::Concat(parts) = unwrap_captures(alt).kind() else {
            return None;
        };
        let [first, rest @ ..] = parts.as_slice() else {
            return None;
        };
        if !matches!(first.kind(), HirKind::Look(regex_syntax::hir::Look::Start)) {
            return None;
        }
        let rest = match rest {
            [ws, rest @ ..] if is_optional_space(ws) => rest,
            _ => rest,
        };
        let seq = Extractor::new()
            .kind(ExtractKind::Prefix)
            .limit_class(32)
            .limit_total(ANCHORED_LITERALS)
            .extract(&Hir::concat(rest.to_vec()));
        for lit in seq.literals()? {
            let mut lit = lit.as_bytes().to_ascii_lowercase();
            // After the skipped whitespace the match must start with a
            // literal that cannot itself be whitespace.
            match lit.iter().position(|&b| is_regex_space(b)) {
                Some(0) => return None,
                Some(cut) => lit.truncate(cut),
                None if lit.is_empty() => return None,
                None => {}
            }
            all.push(lit);
        }
    }
    all.sort();
    all.dedup();
    (!all.is_empty()).then_some(all)
}

/// Most literals an anchored prefilter may have.
const ANCHORED_LITERALS: usize = 4096;

/// `\s` of a regex without Unicode: tab, line feed, vertical tab, form feed,
/// carriage return, space.
pub(crate) fn is_regex_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `\s*`.
fn is_optional_space(hir: &Hir) -> bool {
    let HirKind::Repetition(r) = hir.kind() else {
        return false;
    };
    let HirKind::Class(regex_syntax::hir::Class::Bytes(class)) = r.sub.kind() else {
        return false;
    };
    r.min == 0
        && r.max.is_none()
        && class
            .iter()
            .all(|range| (range.start()..=range.end()).all(is_regex_space))
}

/// The top-level alternatives of `hir`, also when the parser factored a
/// common zero-width prefix such as `\b` out of them (`\b(?:a|b)` for
/// `\ba|\bb`): each alternative gets it back.
fn alternatives(hir: &Hir) -> Option<Vec<Hir>> {
    match hir.kind() {
        HirKind::Alternation(alts) => Some(alts.clone()),
        HirKind::Concat(parts) => {
            let at = parts
                .iter()
                .position(|p| matches!(unwrap_captures(p).kind(), HirKind::Alternation(_)))?;
            let zero_width = |p: &Hir| matches!(p.kind(), HirKind::Look(_));
            if !parts[..at].iter().all(zero_width) || !parts[at + 1..].iter().all(zero_width) {
                return None;
            }
            let HirKind::Alternation(alts) = unwrap_captures(&parts[at]).kind() else {
                return None;
            };
            Some(
                alts.iter()
                    .map(|alt| {
                        let mut whole = parts[..at].to_vec();
                        whole.push(alt.clone());
                        whole.extend_from_slice(&parts[at + 1..]);
                        Hir::concat(whole)
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

fn unwrap_captures(hir: &Hir) -> &Hir {
    match hir.kind() {
        HirKind::Capture(c) => unwrap_captures(&c.sub),
        _ => hir,
    }
}

/// The sets one alternative requires: the most selective set of its
/// concatenation, plus up to two more from other parts of it when those are
/// selective too (`on\w+\s*=` needs `on` *and* `=`).
fn clause(hir: &Hir) -> Option<Vec<AtomSet>> {
    let hir = unwrap_captures(hir);
    let HirKind::Concat(parts) = hir.kind() else {
        return best(hir).map(|set| vec![set]);
    };
    // Every run of consecutive parts is in every match, so its prefixes are
    // required; runs that do not overlap give independent sets.
    let mut options: Vec<(f64, AtomSet, std::ops::Range<usize>)> = Vec::new();
    for i in 0..parts.len() {
        for j in i + 1..=parts.len() {
            if let Some(set) = prefixes(&Hir::concat(parts[i..j].to_vec())) {
                options.push((cost(&set), set, i..j));
            }
        }
        if let Some(set) = best(&parts[i]) {
            options.push((cost(&set), set, i..i + 1));
        }
    }
    options.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.len().cmp(&b.2.len())));
    let mut chosen: Vec<(AtomSet, std::ops::Range<usize>)> = Vec::new();
    for (c, set, span) in options {
        if chosen.len() == MAX_SETS || (!chosen.is_empty() && c > EXTRA_SET_COST) {
            break;
        }
        // Every set found is required on its own, so an overlapping one may
        // be added too when a chosen one does not already imply it: `abs(`,
        // `hex(` imply `(`; a name cut at a class (`sqlite_\w+` gives
        // `sqlite_`) does not, and then a small set such as `(` is worth
        // requiring.
        let independent = |s: &AtomSet, c: &std::ops::Range<usize>| {
            c.end <= span.start
                || span.end <= c.start
                || (set.len() <= FEW_OVERLAPPING && !implies(s, &set))
        };
        if chosen.iter().all(|(s, c)| independent(s, c)) {
            chosen.push((set, span));
        }
    }
    (!chosen.is_empty()).then(|| chosen.into_iter().map(|(set, _)| set).collect())
}

/// Whether finding an atom of `a` means an atom of `b` is there too: each
/// atom of `a` contains one of `b`.
fn implies(a: &[Vec<u8>], b: &[Vec<u8>]) -> bool {
    a.iter()
        .all(|x| b.iter().any(|y| memchr::memmem::find(x, y).is_some()))
}

/// The most selective atom set of `hir`, if it has one.
fn best(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Capture(c) => best(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => best(&r.sub),
        HirKind::Alternation(alts) => {
            // Every match matches one branch: the union is required (and
            // its expected hits are the sum of the branches').
            let mut all = Vec::new();
            for alt in alts {
                all.extend(best(alt)?);
            }
            minimal(all)
        }
        HirKind::Concat(parts) => {
            let mut choice: Option<(f64, Vec<Vec<u8>>)> = None;
            let mut consider = |set: Option<Vec<Vec<u8>>>| {
                if let Some(set) = set {
                    let c = cost(&set);
                    if choice.as_ref().is_none_or(|(best, _)| c < *best) {
                        choice = Some((c, set));
                    }
                }
            };
            for i in 0..parts.len() {
                consider(prefixes(&Hir::concat(parts[i..].to_vec())));
                consider(best(&parts[i]));
            }
            choice.map(|(_, set)| set)
        }
        _ => prefixes(hir),
    }
}

/// The literal prefixes every match of `hir` starts with, if finite and non-empty.
fn prefixes(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let seq = Extractor::new()
        .kind(ExtractKind::Prefix)
        .limit_class(32)
        .limit_total(MAX_ATOMS)
        .extract(hir);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    minimal(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// Lowercased, cut at the first whitespace (`\s` multiplies literals by
/// six; a prefix of a required prefix is required too), deduplicated, and
/// without atoms that contain another atom (finding the shorter one already
/// makes the rule a candidate). `None` when an atom is unselective.
fn minimal(atoms: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    let mut atoms: Vec<Vec<u8>> = atoms
        .into_iter()
        .map(|mut a| {
            if let Some(cut) = a.iter().position(|b| b.is_ascii_whitespace() || *b == 0x0b) {
                if cut > 0 {
                    a.truncate(cut);
                }
            }
            a.to_ascii_lowercase()
        })
        .collect();
    atoms.sort_by_key(|a| a.len());
    atoms.dedup();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(atoms.len());
    for a in atoms {
        if !kept.iter().any(|k| memchr::memmem::find(&a, k).is_some()) {
            kept.push(a);
        }
    }
    (kept.len() <= MAX_ATOMS && cost(&kept) < MAX_COST).then_some(kept)
}

/// Roughly how often a set's atoms turn up per byte of ordinary text.
fn cost(set: &[Vec<u8>]) -> f64 {
    set.iter().map(|a| frequency(a)).sum()
}

/// An unselective set: about as frequent as a lone letter.
const MAX_COST: f64 = 0.03;

/// A rough estimate of how often `atom` occurs per byte of prose, form
/// values and JSON: the product of its bytes' frequencies.
fn frequency(atom: &[u8]) -> f64 {
    atom.iter()
        .map(|&b| match b {
            b' ' | b'\t' => 0.15,
            b'a'..=b'z' | b'0'..=b'9' => 0.04,
            b'.' | b',' | b'-' | b'/' | b'(' | b')' | b':' | b';' | b'_' | b'?' => 0.01,
            b'\'' | b'"' | b'&' | b'=' | b'+' | b'#' | b'!' | b'*' | b'@' | b'[' | b']' => 0.003,
            // `<`, `>`, `$`, `{`, `}`, `|`, `\`, `^`, `~`, `%`, a backtick,
            // line breaks, control bytes, non-ASCII.
            _ => 0.0005,
        })
        .product()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clauses as strings: sets joined by ` & `, atoms by `|`.
    fn f(p: &str) -> Vec<String> {
        filter(p)
            .unwrap_or_default()
            .iter()
            .map(|clause| {
                clause
                    .iter()
                    .map(|set| {
                        set.iter()
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect::<Vec<_>>()
                    .join(" & ")
            })
            .collect()
    }

    #[test]
    fn picks_the_selective_parts_of_a_concatenation() {
        assert_eq!(f(r"(?:^|[\s;])(?:select|union)\s+\w"), ["union|select"]);
        assert_eq!(f(r"\bsleep\s*\("), ["sleep & ("]);
        assert_eq!(f(r"<\s*script\b"), ["script & <"]);
        assert_eq!(f(r"[\r\n]"), ["\n|\r"]);
    }

    #[test]
    fn alternatives_are_clauses() {
        // The parser factors `\b` out of `\bx|\by`: still two clauses.
        assert_eq!(
            f(r"\bsleep\s*\(|\bconcat\s*\(\s*0x"),
            ["sleep & (", "concat & 0x & ("]
        );
        // A long list keeps whole names, with the `(` after them: `fn007x(`,
        // not `fn0`, so a name inside other words is not a candidate.
        let names: Vec<String> = (0..200).map(|i| format!("fn{i:03}x")).collect();
        let clauses = filter(&format!(r"\b(?:{})\(", names.join("|"))).unwrap();
        assert_eq!(clauses.len(), 1, "{clauses:?}");
        assert!(
            clauses[0]
                .iter()
                .flatten()
                .all(|a| a.len() == 7 && a.ends_with(b"x(")),
            "{clauses:?}"
        );
        assert_eq!(
            f(r"__proto__|constructor\s*\.\s*prototype"),
            ["__proto__", "constructor & prototype & ."]
        );
    }

    #[test]
    fn anchored_patterns_have_start_literals() {
        let lits = |p: &str| {
            anchored_prefixes(p).map(|l| {
                l.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            lits(r"^\s*(?:ls|Cat)\s+-|^\s*whoami\s*$").unwrap(),
            ["cat", "ls", "whoami"]
        );
        assert_eq!(lits(r"(?:ls|cat)\s"), None, "not anchored");
        assert_eq!(lits(r"^\s*\w+"), None, "no literals");
        assert_eq!(lits(r"^\s*(?:\s|x)"), None, "may start with whitespace");
    }

    #[test]
    fn unselective_patterns_have_none() {
        assert!(filter(r"[a-z]{3}\d").is_none());
        assert!(filter(r"\w+\s+\w+").is_none());
        assert!(filter(r"^\s*\d+\s*$").is_none());
        assert!(
            filter(r"select|\w+").is_none(),
            "one unselective alternative spoils the rule"
        );
    }

    #[test]
    fn a_match_satisfies_a_clause() {
        for (pattern, text) in [
            (r"\bsleep\s*\(", "1 AND SLEEP(5)"),
            (r"(?:^|[\s;])(?:select|union)\s+\w", "x;UNION all"),
            (r"on[a-z]{3,}\s*=", "<b ONLOAD ="),
        ] {
            let re = regex::bytes::RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .unwrap();
            let m = re.find(text.as_bytes()).unwrap();
            let lower = m.as_bytes().to_ascii_lowercase();
            let has = |set: &AtomSet| {
                set.iter()
                    .any(|a| memchr::memmem::find(&lower, a).is_some())
            };
            assert!(
                filter(pattern)
                    .unwrap()
                    .iter()
                    .any(|clause| clause.iter().all(has)),
                "{pattern}"
            );
        }
    }
}
