//! The WAF: per-domain request inspection with anomaly scoring.
//!
//! A request is taken apart into inputs ([`input`]), each input is looked at
//! in a few decoded forms ([`decode`]), and the rules of the catalog
//! ([`rules`]) that run at the domain's paranoia level score what they find.
//! Every rule's required literals ([`atoms`]) share one Aho-Corasick
//! automaton: one pass over an input finds which few regexes could match at
//! all (a rule's clause needs all of its literal sets present), and only
//! those run; phrase lists are atoms themselves, and libinjection's SQL
//! injection and XSS tokenizers (`libinjectionrs`) run only when gate atoms
//! (SQL punctuation and keywords, markup) are present. Regexes without
//! selective literals share a `RegexSet`. Request-level protocol rules are
//! plain functions.
//!
//! The severities of the rules that fire add up; at the domain's threshold
//! the request is blocked (mode `block`) or only logged (mode `detect`).
//! Compiled rule sets are shared by every domain with the same paranoia level
//! and families, and survive reloads that keep them.

mod atoms;
mod boundary;
mod decode;
mod engine;
mod exclusion;
mod input;
mod rules;
mod ruleset;
mod scanner;
mod scratch;
mod verdict;

pub use engine::Waf;
pub use input::RequestInput;
pub use rules::{catalog, RuleInfo};
pub use verdict::{Detection, Verdict};

#[cfg(test)]
mod tests;
