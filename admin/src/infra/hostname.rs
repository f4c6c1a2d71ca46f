//! Hostnames as tenants type them, made canonical (IDNA ASCII form) for
//! storage and matching. Imports nothing else of this crate.

// A domain is stored in its ASCII form (IDNA/UTS #46 with STD3 rules:
// lowercase, Punycode for non-ASCII labels, letters-digits-hyphens only, no
// hyphen first or last in a label, label and name lengths checked), without a trailing dot, so `Bücher.Example.`
// and `xn--bcher-kva.example` are the same domain and uniqueness holds
// across spellings. A leading `*.` wildcard label is kept as is. IP
// addresses are refused: domains are names a certificate can cover.

/// The canonical ASCII form of `input`, or why it is not a valid hostname.
pub fn canonical(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if name.is_empty() {
        return Err("is empty".into());
    }
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if rest.contains('*') {
        return Err("a wildcard may only be the whole first label (*.example.com)".into());
    }
    if rest.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address, not a hostname".into());
    }
    // UTS #46 with STD3 rules and DNS lengths, hyphens barred only first and
    // last in a label: CDN names such as `r3---sn-x.googlevideo.com` are real.
    let ascii = idna::uts46::Uts46::new()
        .to_ascii(
            rest.as_bytes(),
            idna::uts46::AsciiDenyList::STD3,
            idna::uts46::Hyphens::CheckFirstLast,
            idna::uts46::DnsLength::Verify,
        )
        .map_err(|_| format!("{input:?} is not a valid hostname"))?
        .into_owned();
    if !ascii.contains('.') {
        return Err("needs at least two labels (example.com)".into());
    }
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the last label cannot be numeric".into());
    }
    // A wildcard over a public suffix (`*.co.uk`, `*.github.io`) would claim
    // every customer of a registry or a hosting platform at once. The
    // Public Suffix List (ICANN and private sections) says what those are;
    // a name that is itself a suffix has no registrable domain.
    if wildcard && psl::domain(ascii.as_bytes()).is_none() {
        return Err(format!(
            "a wildcard over {ascii}, a public suffix, is not allowed (name a domain under it)"
        ));
    }
    let full = if wildcard {
        format!("*.{ascii}")
    } else {
        ascii
    };
    if full.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphens_are_barred_only_at_label_edges() {
        assert_eq!(
            canonical("r3---sn-4g5e6nsz.googlevideo.com").unwrap(),
            "r3---sn-4g5e6nsz.googlevideo.com"
        );
        assert!(canonical("-a.example.com").is_err());
        assert!(canonical("a-.example.com").is_err());
    }

    #[test]
    fn spellings_of_one_name_are_one_name() {
        for spelling in ["Example.COM", "example.com.", " example.com "] {
            assert_eq!(canonical(spelling).unwrap(), "example.com", "{spelling:?}");
        }
        assert_eq!(
            canonical("Bücher.Example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            canonical("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            canonical("*.Shop.example.com").unwrap(),
            "*.shop.example.com"
        );
    }

    #[test]
    fn wildcards_over_public_suffixes_are_refused() {
        for suffix in [
            "*.co.uk",
            "*.github.io",
            "*.s3.amazonaws.com",
            "*.pages.dev",
        ] {
            let e = canonical(suffix).unwrap_err();
            assert!(e.contains("public suffix"), "{suffix}: {e}");
        }
        for fine in [
            "*.example.co.uk",
            "*.me.github.io",
            "*.shop.example.com",
            "*.wild.test",
        ] {
            assert!(canonical(fine).is_ok(), "{fine}");
        }
        assert!(canonical("co.uk").is_ok(), "only wildcards are refused");
    }

    #[test]
    fn invalid_hostnames_say_why() {
        for bad in [
            "",
            ".",
            "localhost",
            "exa mple.com",
            "under_score.example.com",
            "-lead.example.com",
            "a..b.com",
            "*.*.example.com",
            "api.*.example.com",
            "203.0.113.7",
            "[2001:db8::1]",
            "2001:db8::1",
            "example.123",
        ] {
            assert!(canonical(bad).is_err(), "{bad:?} accepted");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(canonical(&long_label).is_err());
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        assert!(canonical(&long_name).is_err());
    }
}
