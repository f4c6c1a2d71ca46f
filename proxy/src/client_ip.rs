//! The real client address behind trusted proxies.
//!
//! A forwarding header is believed only when the connection comes from a
//! configured trusted proxy; then the client is the rightmost address in it
//! that is not itself a trusted proxy (everything to the left of that was
//! written by the client and may be forged). An entry that is not an address
//! (`unknown`, an obfuscated `Forwarded` node) ends the walk at the last
//! trusted hop.

use std::net::IpAddr;

use gatehouse_config::file::ClientIpHeader;
use gatehouse_config::model::ClientIp;
use http::HeaderMap;

/// The client address for a connection from `peer` carrying `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, cfg: &ClientIp) -> IpAddr {
    if !cfg.trusted_proxies.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for entry in hops(headers, cfg.header).iter().rev() {
        match parse_node(entry) {
            Some(ip) => {
                client = ip;
                if !cfg.trusted_proxies.contains(ip) {
                    return ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// The hops of every instance of the header, left to right.
fn hops(headers: &HeaderMap, header: ClientIpHeader) -> Vec<String> {
    let name = match header {
        ClientIpHeader::XForwardedFor => "x-forwarded-for",
        ClientIpHeader::Forwarded => "forwarded",
    };
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            // Not text: nothing in it can be believed.
            out.push(String::new());
            continue;
        };
        for element in text.split(',') {
            match header {
                ClientIpHeader::XForwardedFor => out.push(element.trim().to_string()),
                ClientIpHeader::Forwarded => {
                    let node = element.split(';').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| v.trim().to_string())
                    });
                    out.push(node.unwrap_or_default());
                }
            }
        }
    }
    out
}

/// An address from `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`,
/// optionally in quotes (RFC 7239 node syntax).
fn parse_node(text: &str) -> Option<IpAddr> {
    let t = text.trim().trim_matches('"');
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = t.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = t.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_config::model::IpSet;

    fn cfg(trusted: &[&str], header: ClientIpHeader) -> ClientIp {
        ClientIp {
            trusted_proxies: IpSet::parse(trusted).unwrap(),
            header,
            ..ClientIp::default()
        }
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let c = cfg(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["198.51.100.9, 203.0.113.7"]);
        // From an untrusted peer: the peer, whatever the header says.
        assert_eq!(resolve(ip("192.0.2.1"), &h, &c), ip("192.0.2.1"));
        // From a trusted one: the rightmost untrusted hop (the left one may be forged).
        assert_eq!(resolve(ip("10.0.0.5"), &h, &c), ip("203.0.113.7"));
        // Trusted hops are skipped; all trusted: the leftmost.
        let h = headers("x-forwarded-for", &["203.0.113.7", "10.1.1.1, 10.2.2.2"]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &c), ip("203.0.113.7"));
        let h = headers("x-forwarded-for", &["10.1.1.1"]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &c), ip("10.1.1.1"));
        // Garbage stops the walk at the last trusted hop.
        let h = headers("x-forwarded-for", &["203.0.113.7, unknown, 10.1.1.1"]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &c), ip("10.1.1.1"));
        // No header: the peer.
        assert_eq!(
            resolve(ip("10.0.0.5"), &HeaderMap::new(), &c),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn forwarded_for_parameters_with_ports_brackets_and_quotes() {
        let c = cfg(
            &["10.0.0.0/8", "2001:db8:ffff::/48"],
            ClientIpHeader::Forwarded,
        );
        let h = headers(
            "forwarded",
            &[r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.9.9.9:8080;by=10.0.0.1"#],
        );
        assert_eq!(resolve(ip("10.0.0.5"), &h, &c), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["For=192.0.2.60;proto=http"]);
        assert_eq!(resolve(ip("2001:db8:ffff::1"), &h, &c), ip("192.0.2.60"));
        let h = headers("forwarded", &["for=_hidden, for=10.2.2.2"]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &c), ip("10.2.2.2"));
    }
}
