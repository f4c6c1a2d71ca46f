//! The per-thread working memory of an inspection: stamps, clause progress
//! and occurrence lists sized for the largest rule set a thread has seen, so
//! a request neither allocates nor clears them.

use std::cell::RefCell;

use super::decode::View;
use super::ruleset::RuleSet;

/// Occurrence entries the per-thread list keeps between requests (768 KiB).
pub(super) const MAX_KEPT_MATCHES: usize = 1 << 16;

/// Per-thread working memory of [`Waf::inspect`](super::Waf::inspect).
#[derive(Default)]
pub(super) struct Scratch {
    /// The next unused stamp.
    pub(super) next: u64,
    /// Per rule: the input it last became a candidate for.
    pub(super) stamp: Vec<u64>,
    /// Per clause: the sets found so far, valid for the input `clause_stamp` says.
    pub(super) clause_found: Vec<u8>,
    pub(super) clause_stamp: Vec<u64>,
    /// Per atom: the last automaton pass (one per distinct text) it was found in.
    pub(super) atom_pass: Vec<u64>,
    /// Regex rules to confirm for the current input, and the view.
    pub(super) candidates: Vec<(usize, View)>,
    /// Atom occurrences (atom, start, end) in the text being scanned.
    pub(super) matches: Vec<(u32, u32, u32)>,
}

impl Scratch {
    /// Grows the tables for `set` (they serve every rule set a thread sees).
    pub(super) fn fit(&mut self, set: &RuleSet) {
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
    pub(super) static SCRATCH: RefCell<Scratch> = RefCell::default();
}
