//! Addresses tenants must not reach through the edge: the machine's own and
//! its link's ([`is_internal`]), refused as pool targets and as ownership
//! check destinations. Imports nothing of this crate.

/// Whether `ip` is an address of this machine or its link: loopback (the
/// admin API itself), unspecified, link-local (cloud metadata services at
/// 169.254.169.254), multicast or broadcast, and the cloud metadata and
/// platform services that live at ordinary-looking addresses (Alibaba's
/// 100.100.100.200, Azure's 168.63.129.16, AWS's IPv6 `fd00:ec2::254`). An
/// IPv4 address inside IPv6 (mapped, or behind the NAT64 prefix
/// `64:ff9b::/96`) is judged as the IPv4 address it reaches. Private networks
/// are not internal: tenants' upstreams often live there.
pub fn is_internal(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    /// Metadata and platform services at addresses no other check catches.
    const V4_SERVICES: [Ipv4Addr; 2] = [
        Ipv4Addr::new(100, 100, 100, 200),
        Ipv4Addr::new(168, 63, 129, 16),
    ];
    const V6_SERVICES: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.octets()[0] == 0
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || V4_SERVICES.contains(&v4)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64(v6)) {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unicast_link_local()
                    || v6.is_multicast()
                    || V6_SERVICES.contains(&v6)
            }
        },
    }
}

/// The IPv4 address behind the well-known NAT64 prefix (RFC 6052).
fn nat64(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [a, b, c, d, ..] = v6.octets()[12..].try_into().unwrap_or([0u8; 4]);
        std::net::Ipv4Addr::new(a, b, c, d)
    })
}

#[cfg(test)]
mod tests {
    use super::is_internal;

    fn internal(s: &str) -> bool {
        is_internal(s.parse().unwrap())
    }

    #[test]
    fn the_machine_its_link_and_metadata_services_are_internal() {
        for a in [
            "127.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "100.100.100.200",
            "168.63.129.16",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
        ] {
            assert!(internal(a), "{a}");
        }
    }

    #[test]
    fn public_and_private_networks_are_not() {
        for a in [
            "8.8.8.8",
            "10.0.0.5",
            "192.168.1.10",
            "172.16.0.1",
            "100.64.0.1",
            "2001:db8::1",
            "fd00::1",
            "64:ff9b::808:808",
        ] {
            assert!(!internal(a), "{a}");
        }
    }
}
