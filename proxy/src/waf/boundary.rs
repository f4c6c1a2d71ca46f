//! Where an atom occurrence sits among its neighbours: a whole word, inside
//! a word, between letters or digits. Phrases and libinjection gates count
//! only at boundaries like these, so prose does not look like an attack.
//!
//! They run for every gate or phrase occurrence in the scoring loop:
//! `#[inline]` keeps them inlined there, as when they lived in its module.

/// Whether `text[start..end]` is a whole word.
#[inline]
pub(super) fn whole_word(text: &[u8], start: usize, end: usize) -> bool {
    (start == 0 || !text[start - 1].is_ascii_alphanumeric())
        && text.get(end).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// Whether `text[start..end]` sits between two letters.
#[inline]
pub(super) fn inside_word(text: &[u8], start: usize, end: usize) -> bool {
    start > 0
        && text[start - 1].is_ascii_alphabetic()
        && text.get(end).is_some_and(|c| c.is_ascii_alphabetic())
}

/// Whether `text[start..end]` sits between two letters, allowing one space
/// on either side.
#[inline]
pub(super) fn between_letters(text: &[u8], start: usize, end: usize) -> bool {
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
#[inline]
pub(super) fn between_words(text: &[u8], start: usize, end: usize) -> bool {
    start > 0
        && text[start - 1].is_ascii_alphanumeric()
        && text.get(end).is_some_and(|c| c.is_ascii_alphanumeric())
}
