//! The transformations on their own: each undoes its encoding, repeated
//! encodings included, and leaves text without one untouched.

use super::*;

fn d(s: &str) -> String {
    String::from_utf8_lossy(&decode(s.as_bytes())).into_owned()
}

#[test]
fn decodes_layered_encodings_until_stable() {
    assert_eq!(d("%253Cscript%253E"), "<script>");
    assert_eq!(d("%u003cscript%u003e"), "<script>");
    assert_eq!(d("&#x3c;svg&#62;&lt;"), "<svg><");
    assert_eq!(d("ja&Tab;vascript&colon;"), "ja\tvascript:");
    assert_eq!(d("\\x3cimg\\u0020src\\u{3d}"), "<img src=");
    assert_eq!(d("%uff1cscript%uff1e"), "<script>");
    assert_eq!(d("100%"), "100%");
    assert_eq!(d("%zz%4"), "%zz%4");
}

#[test]
fn overlong_utf8_spells_ascii() {
    assert_eq!(&*decode(b"\xc0\xae\xc0\xae\xc0\xaf"), b"../");
    assert_eq!(&*decode(b"%c0%ae%c0%ae/etc"), b"../etc");
    assert_eq!(&*decode(b"\xe0\x80\xae"), b".");
    // Real two-byte characters are untouched.
    assert_eq!(&*decode("é".as_bytes()), "é".as_bytes());
}

#[test]
fn nul_bytes_are_dropped() {
    assert_eq!(&*decode(b"sel%00ect"), b"select");
}

#[test]
fn comments_and_whitespace_collapse() {
    assert_eq!(&*strip_comments(b"UNION/**/SELECT\t\n1"), b"UNION SELECT 1");
    assert_eq!(&*strip_comments(b"/*!50000select*/ 1"), b" select 1");
}

#[test]
fn needs_agrees_with_the_transformations() {
    let samples: &[&[u8]] = &[
        b"plain words 42",
        b"a  b",
        b"a\tb",
        b"100%25",
        b"fish & chips",
        b"50% off",
        b"a&lt;b",
        b"%%41",
        b"it's",
        b"x/**/y",
        b"$IFS",
        b"\xc0\xae",
        b"sel\0ect",
        b"line\nbreak",
        b"caf\xc3\xa9",
    ];
    for s in samples {
        let n = needs(s);
        let changed = |c: &Cow<[u8]>| matches!(c, Cow::Owned(o) if o.as_slice() != *s);
        // Whatever a transformation changes, the scan must have flagged.
        assert!(n.decode || !changed(&decode(s)), "{s:?}");
        assert!(n.strip || !changed(&strip_comments(s)), "{s:?}");
        assert!(n.shell || !changed(&shell(s)), "{s:?}");
    }
    assert_eq!(
        needs(b"Organic cotton t-shirt, relaxed fit (navy)"),
        Needs::default()
    );
    assert!(needs(b"a  b").strip && needs(b"a  b").shell);
    assert!(needs(b"%3c").decode && !needs(b"%3c").shell);
    // `%` and `&` that start no escape leave prose as it is.
    for prose in [&b"fish & chips"[..], b"50% off", b"100%", b"a&", b"%zz"] {
        assert!(!needs(prose).decode, "{prose:?}");
        assert!(matches!(decode(prose), Cow::Borrowed(_)), "{prose:?}");
    }
    for escaped in [
        &b"&lt;"[..],
        b"&#60;",
        b"&#x3c",
        b"%u003c",
        b"100%25",
        b"&Tab;",
    ] {
        assert!(needs(escaped).decode, "{escaped:?}");
    }
}

#[test]
fn shell_view_removes_quoting_tricks() {
    assert_eq!(&*shell(b"c'a't /e\"t\"c/pa\\sswd"), b"cat /etc/passwd");
    assert_eq!(&*shell(b"cat${IFS}/etc/passwd"), b"cat /etc/passwd");
    assert_eq!(&*shell(b"w$@ho^ami"), b"whoami");
}
