//! The WAF: per-domain request inspection with anomaly scoring.
//!
//! A request is taken apart into inputs ([`input`]), each input is looked at
//! in a few decoded forms ([`decode`]), and the rules of the catalog
//! ([`rules`]) that run at the domain's paranoia level score what they find.
//! Regex rules of one form are matched together through a `RegexSet` (one
//! pass over the input finds every candidate; the single rule's regex then
//! runs only to report the matched fragment), phrase lists through
//! Aho-Corasick automatons, and SQL injection and XSS additionally through
//! libinjection's tokenizers (`libinjectionrs`). Request-level protocol rules
//! are plain functions.
//!
//! The severities of the rules that fire add up; at the domain's threshold
//! the request is blocked (mode `block`) or only logged (mode `detect`).
//! Compiled rule sets are shared by every domain with the same paranoia level
//! and families, and survive reloads that keep them.

mod decode;
mod engine;
mod input;
mod rules;

pub use engine::{catalog, Detection, RuleInfo, Verdict, Waf};
pub use input::RequestInput;

#[cfg(test)]
mod tests;
