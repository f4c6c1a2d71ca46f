//! Request-level checks on their own.

use super::*;

#[test]
fn loopback_hosts_are_found_behind_any_whitespace() {
    for v in [
        &b"localhost:8080/admin"[..],
        b"  http://user@LOCALHOST/x",
        "\u{a0}localhost".as_bytes(),
        "ip6-loopback\u{2003}".as_bytes(),
    ] {
        assert!(is_loopback_name(url_host_bytes(trim_space(v))), "{v:?}");
    }
    assert!(!is_loopback_name(url_host_bytes(trim_space(
        b"example.com"
    ))));
    // Not UTF-8: trimmed as ASCII only, never a panic.
    assert_eq!(trim_space(b" \xff "), b"\xff");
}
