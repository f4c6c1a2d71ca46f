//! The atom automaton in the shape its per-byte loop wants.
//!
//! `aho-corasick` builds the automaton (an ASCII-case-insensitive DFA with
//! standard, overlapping match semantics); this module re-encodes its
//! transitions for the one thing the WAF does with it: walk every byte of
//! every input and report every atom occurrence. A byte costs two loads and
//! an add, and nothing else happens in the loop:
//!
//! - one column per byte the atoms contain, ASCII letters folded, plus one
//!   for every other byte (no atom contains it, so from every state it leads
//!   back to the start): 80 columns instead of 106 classes at paranoia 1;
//! - entries are the next state's row offset (premultiplied), so the next
//!   lookup is `trans[row + column]`;
//! - states are numbered breadth-first from the start (the shallow states
//!   ordinary text keeps returning to sit together, and letters' columns are
//!   adjacent within a row), except that states where atoms end come last:
//!   "an atom ends here" is one comparison beside the chain of loads;
//! - the walk stops only at those states ([`Scanner::run`] is its own,
//!   register-only function: with the match handling inside the loop, the
//!   state went through the stack at every byte, which cost more than the
//!   transitions).
//!
//! On the benchmark's JSON request (`perf`), the walk took 28% of the WAF's
//! time with the DFA walked in place; it takes 17% here.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// A byte-at-a-time multi-pattern scanner over a fixed set of atoms.
pub(crate) struct Scanner {
    /// Byte → column (ASCII letters folded to one).
    class: [u8; 256],
    /// Entries per row: one per column, then where the state's atoms are
    /// in `ends` (from, to).
    stride: u32,
    /// `row + column` → the next state's row (its number × `stride`).
    trans: Vec<u32>,
    /// Rows from here on are states where atoms end.
    first_match: u32,
    /// Atoms ending in each match state: (atom, length).
    ends: Vec<(u32, u32)>,
}

impl Scanner {
    /// Builds the scanner for `patterns` (atom `i` is `patterns[i]`).
    pub(crate) fn new(patterns: &[Vec<u8>]) -> anyhow::Result<Scanner> {
        // An empty atom would make the start a match state, and the walk
        // starts at row 0, the first state that is not one.
        if patterns.iter().any(Vec::is_empty) {
            anyhow::bail!("WAF atoms: an empty atom");
        }
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(patterns)
            .map_err(|e| anyhow::anyhow!("WAF atoms: {e}"))?;

        // Columns: 0 for bytes in no atom, then one per (folded) byte.
        let mut class = [0u8; 256];
        let mut present = [false; 256];
        for &b in patterns.iter().flatten() {
            present[usize::from(b.to_ascii_lowercase())] = true;
        }
        // A byte in no atom stands for column 0; if every byte is in one,
        // column 0 is unused.
        let mut representative =
            vec![(0..=255u8).find(|&b| !present[usize::from(b.to_ascii_lowercase())])];
        // Letters first, so a row's letter columns share a cache line.
        let order = (b'a'..=b'z').chain((0..=255u8).filter(|b| !b.is_ascii_alphabetic()));
        for b in order.filter(|&b| present[usize::from(b)]) {
            let c = u8::try_from(representative.len())
                .map_err(|_| anyhow::anyhow!("WAF atoms: more than 255 byte classes"))?;
            representative.push(Some(b));
            class[usize::from(b)] = c;
            class[usize::from(b.to_ascii_uppercase())] = c;
        }
        let columns = representative.len();

        // The states breadth-first from the start, with their transitions.
        let start = dfa
            .start_state(Anchored::No)
            .map_err(|e| anyhow::anyhow!("WAF atoms: {e}"))?;
        let mut number: std::collections::HashMap<StateID, u32> =
            std::collections::HashMap::from([(start, 0)]);
        let mut states = vec![start];
        let mut next_of: Vec<u32> = Vec::new();
        let mut next = 0;
        while next < states.len() {
            let old = states[next];
            next += 1;
            for byte in &representative {
                let to = byte.map_or(start, |b| dfa.next_state(Anchored::No, old, b));
                let n = *number.entry(to).or_insert_with(|| {
                    states.push(to);
                    (states.len() - 1) as u32
                });
                next_of.push(n);
            }
        }

        // Match states last (breadth-first within each group): "atoms end
        // here" is one comparison beside the loop's chain of loads.
        let order: Vec<usize> = (0..states.len())
            .filter(|&i| !dfa.is_match(states[i]))
            .chain((0..states.len()).filter(|&i| dfa.is_match(states[i])))
            .collect();
        let first_match = order
            .iter()
            .take_while(|&&i| !dfa.is_match(states[i]))
            .count();
        let stride = columns + 2;
        let mut row_of = vec![0u32; states.len()];
        for (new, &old) in order.iter().enumerate() {
            row_of[old] = u32::try_from(new * stride)
                .map_err(|_| anyhow::anyhow!("WAF atoms: automaton too large"))?;
        }
        let mut trans = Vec::with_capacity(states.len() * stride);
        let mut ends = Vec::new();
        for &old in &order {
            trans.extend(
                next_of[old * columns..][..columns]
                    .iter()
                    .map(|&n| row_of[n as usize]),
            );
            let from = u32::try_from(ends.len())?;
            let state = states[old];
            if dfa.is_match(state) {
                for k in 0..dfa.match_len(state) {
                    let atom = dfa.match_pattern(state, k);
                    ends.push((atom.as_u32(), u32::try_from(dfa.pattern_len(atom))?));
                }
            }
            trans.extend([from, u32::try_from(ends.len())?]);
        }
        Ok(Scanner {
            class,
            stride: u32::try_from(stride)?,
            trans,
            first_match: u32::try_from(first_match * stride)?,
            ends,
        })
    }

    /// Appends `(atom, start, end)` for every occurrence of every atom in
    /// `text`, overlapping ones included; `text` must be shorter than 4 GiB.
    pub(crate) fn scan(&self, text: &[u8], found: &mut Vec<(u32, u32, u32)>) {
        let (mut at, mut row) = (0, 0);
        while let Some((end, to)) = self.run(text, at, row) {
            let atoms = to as usize + self.stride as usize - 2;
            let (from, until) = (self.trans[atoms], self.trans[atoms + 1]);
            let end32 = end as u32;
            for &(atom, len) in &self.ends[from as usize..until as usize] {
                found.push((atom, end32 - len, end32));
            }
            (at, row) = (end, to);
        }
    }

    /// Walks `text` from `at` in the state at `row` to the next state where
    /// atoms end: the position after the byte that led there, and its row.
    /// Nothing else happens in this loop, so the state stays in a register
    /// (with the match handling inside, it went through the stack at every
    /// byte, which cost more than the transitions themselves), and a byte
    /// costs two loads and an add.
    #[inline(never)]
    fn run(&self, text: &[u8], at: usize, mut row: u32) -> Option<(usize, u32)> {
        let (class, trans) = (&self.class, &self.trans[..]);
        for (i, &byte) in text.get(at..)?.iter().enumerate() {
            row = trans[row as usize + usize::from(class[usize::from(byte)])];
            if row >= self.first_match {
                return Some((at + i + 1, row));
            }
        }
        None
    }

    /// Size of the tables in bytes.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.trans.len() * 4 + self.ends.len() * 8
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Every occurrence, overlapping and case-folded, as the DFA reports.
    #[test]
    fn finds_every_occurrence_of_every_atom() {
        let patterns: Vec<Vec<u8>> = ["on", "union", "sel", "select", "(", "/*", "é"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let scanner = Scanner::new(&patterns).unwrap();
        let text = "x UNION Select(1)/* on é".as_bytes();
        let mut found = Vec::new();
        scanner.scan(text, &mut found);
        found.sort();
        let mut expected = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            for start in 0..text.len() {
                if text[start..].len() >= p.len()
                    && text[start..start + p.len()].eq_ignore_ascii_case(p)
                {
                    expected.push((i as u32, start as u32, (start + p.len()) as u32));
                }
            }
        }
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn an_empty_atom_is_refused() {
        assert!(Scanner::new(&[b"on".to_vec(), Vec::new()]).is_err());
    }
}
