//! Transformations that undo the encodings attackers hide payloads behind.
//!
//! Every input is inspected in a few *views* (see [`View`]): the value fully
//! decoded (URL escapes including IIS `%uXXXX`, HTML character references,
//! JavaScript escapes and overlong UTF-8, repeated until nothing changes, so
//! double encoding does not hide anything), the decoded value with comments
//! removed and whitespace compressed (SQL and JavaScript obfuscation), and a
//! shell view with the quoting tricks a shell ignores taken out. Rules match
//! case-insensitively, so no view needs lowercasing.

use std::borrow::Cow;

/// The forms of a value rules can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum View {
    /// As received (after the one URL decoding argument parsing does).
    Raw,
    /// Fully decoded ([`decode`]).
    Decoded,
    /// Decoded, `/* */` comments removed and whitespace compressed ([`strip_comments`]).
    Stripped,
    /// Decoded as a shell would read it ([`shell`]).
    Shell,
}

impl View {
    pub(crate) const ALL: [View; 4] = [View::Raw, View::Decoded, View::Stripped, View::Shell];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What a one-pass scan of a value found: which transformations could
/// change it. Most values (words, numbers, identifiers, dates) need none,
/// and then every view is the value itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    /// [`decode`] may change it.
    pub decode: bool,
    /// [`strip_comments`] may change it.
    pub strip: bool,
    /// [`shell`] may change it.
    pub shell: bool,
}

const DECODE: u8 = 1;
const STRIP: u8 = 2;
const SHELL: u8 = 4;
/// `%` and `&` start an escape only before certain bytes (see [`needs`]).
const DECODE_IF_NEXT: u8 = 8;

/// Per byte: the transformations it can matter to.
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c == b'%' || c == b'&' {
            t[b] |= DECODE_IF_NEXT;
        } else if starts_encoding(c) {
            t[b] |= DECODE;
        }
        if c == b'*' {
            t[b] |= STRIP;
        }
        if matches!(c, b'\'' | b'"' | b'\\' | b'^' | b'$' | b'\n' | b'\r') {
            t[b] |= SHELL;
        }
        // Whitespace other than a single space is compressed by both.
        if (c.is_ascii_whitespace() && c != b' ') || c == 0x0b {
            t[b] |= STRIP | SHELL;
        }
        b += 1;
    }
    t
};

/// Scans `s` once for anything [`decode`], [`strip_comments`] or [`shell`]
/// would change.
pub(crate) fn needs(s: &[u8]) -> Needs {
    let mut found = 0u8;
    // Two spaces in a row are compressed too; tracked without a branch.
    let mut prev_space = 0u8;
    let mut double_space = 0u8;
    for &b in s {
        found |= CLASSES[usize::from(b)];
        let space = u8::from(b == b' ');
        double_space |= space & prev_space;
        prev_space = space;
    }
    if double_space != 0 {
        found |= STRIP | SHELL;
    }
    // Rare enough to look at again: is any `%` or `&` really an escape?
    if found & (DECODE | DECODE_IF_NEXT) == DECODE_IF_NEXT
        && memchr::memchr2_iter(b'%', b'&', s).any(|i| starts_escape(s[i], s.get(i + 1).copied()))
    {
        found |= DECODE;
    }
    Needs {
        decode: found & DECODE != 0,
        strip: found & STRIP != 0,
        shell: found & SHELL != 0,
    }
}

/// Whether `%` or `&` followed by `next` is something [`decode`] changes:
/// `%XX` and `%uXXXX` escapes, `&#...` and `&name` character references. A
/// `%` or `&` before anything else ("50% off", "fish & chips") is left as it
/// is by every decoder, so prose with them needs no decoding at all.
fn starts_escape(b: u8, next: Option<u8>) -> bool {
    let Some(n) = next else { return false };
    match b {
        b'%' => n.is_ascii_hexdigit() || n == b'u' || n == b'U',
        _ => n == b'#' || n.is_ascii_alphabetic(),
    }
}

/// Most decoding rounds: enough for double and triple encoding, bounded so a
/// crafted value cannot make us loop.
const MAX_ROUNDS: usize = 4;

/// Bytes that start something [`decode`] changes: escapes of every kind,
/// NUL, and the lead bytes of overlong UTF-8.
const fn starts_encoding(b: u8) -> bool {
    matches!(b, b'%' | b'&' | b'\\' | 0 | 0xc0 | 0xc1 | 0xe0)
}

/// Decodes repeatedly until the value stops changing. Most values have
/// nothing to decode and are borrowed as they are.
pub(crate) fn decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| starts_encoding(b)) {
        return Cow::Borrowed(input);
    }
    let mut cur: Cow<[u8]> = Cow::Borrowed(input);
    // A value still carrying `%XX` escapes was form-encoded once more, so its
    // `+` are spaces too.
    if has_escape(input) && input.contains(&b'+') {
        cur = Cow::Owned(
            input
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        );
    }
    for _ in 0..MAX_ROUNDS {
        let mut changed = false;
        let mut next = url_decode(&cur, &mut changed);
        next = html_decode(&next, &mut changed);
        next = js_decode(&next, &mut changed);
        next = overlong_utf8(&next, &mut changed);
        if !changed {
            break;
        }
        cur = Cow::Owned(next);
    }
    // NUL bytes split keywords for some parsers and are never legitimate text.
    if !cur.contains(&0) {
        return cur;
    }
    Cow::Owned(cur.iter().copied().filter(|&b| b != 0).collect())
}

/// Whether `s` has whitespace other than single spaces (which
/// [`strip_comments`] and [`shell`] compress).
fn uncompressed_space(s: &[u8]) -> bool {
    s.iter()
        .any(|&b| b.is_ascii_whitespace() && b != b' ' || b == 0x0b)
        || memchr::memmem::find(s, b"  ").is_some()
}

fn has_escape(s: &[u8]) -> bool {
    s.windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte spelled by two hex digits at `s[at..at + 2]`.
fn hex2(s: &[u8], at: usize) -> Option<u8> {
    Some(hex(*s.get(at)?)? << 4 | hex(*s.get(at + 1)?)?)
}

/// The code point spelled by four hex digits at `s[at..at + 4]`.
fn hex4(s: &[u8], at: usize) -> Option<u32> {
    (at..at + 4).try_fold(0u32, |acc, k| Some(acc << 4 | u32::from(hex(*s.get(k)?)?)))
}

fn push_char(out: &mut Vec<u8>, cp: u32) {
    let c = char::from_u32(cp).unwrap_or('\u{fffd}');
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// `%XX` and `%uXXXX` (also `\uXXXX`-style full-width forms land here via
/// [`fold_fullwidth`]); malformed escapes stay as they are.
fn url_decode(s: &[u8], changed: &mut bool) -> Vec<u8> {
    if !s.contains(&b'%') {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let Some(b) = hex2(s, i + 1) {
                out.push(b);
                i += 3;
                *changed = true;
                continue;
            }
            if matches!(s.get(i + 1), Some(b'u' | b'U')) {
                if let Some(cp) = hex4(s, i + 2) {
                    push_char(&mut out, fold_fullwidth(cp));
                    i += 6;
                    *changed = true;
                    continue;
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Full-width ASCII (U+FF01..U+FF5E) as IIS maps it: to the ASCII character.
fn fold_fullwidth(cp: u32) -> u32 {
    if (0xff01..=0xff5e).contains(&cp) {
        cp - 0xff01 + 0x21
    } else {
        cp
    }
}

/// HTML character references: numeric (`&#60;`, `&#x3c;`, with or without the
/// `;`, as browsers accept them) and the named ones used to hide markup.
fn html_decode(s: &[u8], changed: &mut bool) -> Vec<u8> {
    if !s.contains(&b'&') {
        return s.to_vec();
    }
    const NAMED: [(&[u8], u8); 16] = [
        (b"lt", b'<'),
        (b"gt", b'>'),
        (b"amp", b'&'),
        (b"quot", b'"'),
        (b"apos", b'\''),
        (b"tab", b'\t'),
        (b"newline", b'\n'),
        (b"colon", b':'),
        (b"lpar", b'('),
        (b"rpar", b')'),
        (b"sol", b'/'),
        (b"bsol", b'\\'),
        (b"semi", b';'),
        (b"comma", b','),
        (b"period", b'.'),
        (b"nbsp", b' '),
    ];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    'outer: while i < s.len() {
        if s[i] == b'&' {
            if s.get(i + 1) == Some(&b'#') {
                let (radix, start) = match s.get(i + 2) {
                    Some(b'x' | b'X') => (16, i + 3),
                    _ => (10, i + 2),
                };
                let mut j = start;
                let mut cp: u32 = 0;
                while j < s.len() && j - start < 8 {
                    let d = match (radix, s[j]) {
                        (16, b) => hex(b).map(u32::from),
                        (_, b @ b'0'..=b'9') => Some(u32::from(b - b'0')),
                        _ => None,
                    };
                    match d {
                        Some(d) => cp = cp.saturating_mul(radix).saturating_add(d),
                        None => break,
                    }
                    j += 1;
                }
                if j > start {
                    push_char(&mut out, cp);
                    i = if s.get(j) == Some(&b';') { j + 1 } else { j };
                    *changed = true;
                    continue;
                }
            } else {
                for (name, ch) in NAMED {
                    let end = i + 1 + name.len();
                    if s.len() >= end && s[i + 1..end].eq_ignore_ascii_case(name) {
                        out.push(ch);
                        i = if s.get(end) == Some(&b';') {
                            end + 1
                        } else {
                            end
                        };
                        *changed = true;
                        continue 'outer;
                    }
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// JavaScript and CSS escapes: `\xHH`, `\uHHHH`, `\u{H..}`.
fn js_decode(s: &[u8], changed: &mut bool) -> Vec<u8> {
    if !s.contains(&b'\\') {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            match s.get(i + 1) {
                Some(b'x' | b'X') => {
                    if let Some(b) = hex2(s, i + 2) {
                        out.push(b);
                        i += 4;
                        *changed = true;
                        continue;
                    }
                }
                Some(b'u' | b'U') => {
                    if s.get(i + 2) == Some(&b'{') {
                        let mut j = i + 3;
                        let mut cp: u32 = 0;
                        while j < s.len() && j - i < 10 {
                            match hex(s[j]) {
                                Some(d) => cp = cp.saturating_mul(16).saturating_add(u32::from(d)),
                                None => break,
                            }
                            j += 1;
                        }
                        if j > i + 3 && s.get(j) == Some(&b'}') {
                            push_char(&mut out, cp);
                            i = j + 1;
                            *changed = true;
                            continue;
                        }
                    } else {
                        if let Some(cp) = hex4(s, i + 2) {
                            push_char(&mut out, fold_fullwidth(cp));
                            i += 6;
                            *changed = true;
                            continue;
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Overlong UTF-8 forms of ASCII (`C0 AE` for `.`, `E0 80 AF` for `/`): some
/// decoders accept them, so they are read as the character they spell.
fn overlong_utf8(s: &[u8], changed: &mut bool) -> Vec<u8> {
    if !s.iter().any(|&b| b == 0xc0 || b == 0xc1 || b == 0xe0) {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let cont = |k: usize| s.get(i + k).copied().filter(|c| c & 0xc0 == 0x80);
        if b == 0xc0 || b == 0xc1 {
            if let Some(c1) = cont(1) {
                out.push(((b & 0x1f) << 6) | (c1 & 0x3f));
                i += 2;
                *changed = true;
                continue;
            }
        }
        if b == 0xe0 {
            if let (Some(c1), Some(c2)) = (cont(1), cont(2)) {
                if c1 < 0xa0 {
                    let cp = (u32::from(c1 & 0x3f) << 6) | u32::from(c2 & 0x3f);
                    if cp < 0x80 {
                        out.push(cp as u8);
                        i += 3;
                        *changed = true;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Replaces `/* ... */` comments (keeping the body of MySQL `/*! ... */`
/// executable comments) and `--`/`#` line tails are left alone; runs of
/// whitespace become one space.
pub(crate) fn strip_comments(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'*') && !uncompressed_space(s) {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'/' && s.get(i + 1) == Some(&b'*') {
            if s.get(i + 2) == Some(&b'!') {
                // MySQL runs the contents: keep them, minus the version number.
                i += 3;
                while i < s.len() && s[i].is_ascii_digit() {
                    i += 1;
                }
                push_space(&mut out);
                continue;
            }
            match memchr::memmem::find(&s[i + 2..], b"*/") {
                Some(end) => i += 2 + end + 2,
                None => i = s.len(),
            }
            push_space(&mut out);
            continue;
        }
        if s[i] == b'*' && s.get(i + 1) == Some(&b'/') {
            i += 2;
            push_space(&mut out);
            continue;
        }
        if s[i].is_ascii_whitespace() || s[i] == 0x0b {
            push_space(&mut out);
            i += 1;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn push_space(out: &mut Vec<u8>) {
    if out.last() != Some(&b' ') {
        out.push(b' ');
    }
}

/// The value as a POSIX shell or `cmd.exe` would see the command words:
/// line breaks read as `;`, quotes, backslashes and carets removed (`c'a't`, `c\at`, `c^at` are
/// `cat`), `$IFS`-style separators and empty expansions (`$@`, `$*`, `${x}`
/// of one short name) read as nothing or a space, whitespace compressed.
pub(crate) fn shell(s: &[u8]) -> Cow<'_, [u8]> {
    if !s
        .iter()
        .any(|b| matches!(b, b'\'' | b'"' | b'\\' | b'^' | b'$' | b'\n' | b'\r'))
        && !uncompressed_space(s)
    {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        match b {
            b'\'' | b'"' | b'\\' | b'^' => {
                i += 1;
                continue;
            }
            b'$' => {
                let rest = &s[i + 1..];
                if starts_with_ci(rest, b"{ifs}") {
                    push_space(&mut out);
                    i += 6;
                    continue;
                }
                if starts_with_ci(rest, b"ifs") {
                    push_space(&mut out);
                    i += 4;
                    continue;
                }
                if matches!(rest.first(), Some(b'@' | b'*')) {
                    i += 2;
                    continue;
                }
                if rest.first() == Some(&b'{') && rest.get(1) == Some(&b'}') {
                    i += 3;
                    continue;
                }
                // `$u`, `$xy`: a short unset variable expands to nothing.
                let short = rest.iter().take_while(|c| c.is_ascii_lowercase()).count();
                if (1..=2).contains(&short)
                    && rest
                        .get(short)
                        .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_')
                {
                    i += 1 + short;
                    continue;
                }
                out.push(b);
                i += 1;
                continue;
            }
            _ => {}
        }
        if b == b'\n' || b == b'\r' {
            // A line break ends a command like `;` does.
            out.push(b';');
        } else if b.is_ascii_whitespace() {
            push_space(&mut out);
        } else {
            out.push(b);
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests;
