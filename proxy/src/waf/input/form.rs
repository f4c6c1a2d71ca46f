//! URL-encoded arguments (`a=1&b=2`, in query strings and form bodies) and
//! the percent-decoding they and the path share; a malformed escape is a
//! [`Problem`], the argument is still inspected.

use std::borrow::Cow;

use super::{Parsed, Problem};

/// Percent-decodes (and, in forms, reads `+` as a space).
pub(super) fn percent_decode(s: &[u8], plus_is_space: bool) -> Cow<'_, [u8]> {
    if !(s.contains(&b'%') || plus_is_space && s.contains(&b'+')) {
        return Cow::Borrowed(s);
    }
    let replaced: Cow<[u8]> = if plus_is_space && s.contains(&b'+') {
        Cow::Owned(
            s.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    };
    let decoded: Vec<u8> = percent_encoding::percent_decode(&replaced).collect();
    Cow::Owned(decoded)
}

fn has_invalid_escape(s: &[u8]) -> bool {
    s.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            && !matches!(s.get(i + 1), Some(b'u' | b'U'))
    })
}

impl<'r> Parsed<'r> {
    /// `a=1&b=2` (query strings and form bodies).
    pub(super) fn url_encoded(&mut self, s: &'r [u8]) {
        if has_invalid_escape(s) {
            self.problems.push(Problem::InvalidUrlEncoding);
        }
        for pair in s.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            self.arg(percent_decode(name, true), percent_decode(value, true));
        }
    }
}
