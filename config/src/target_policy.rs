//! The platform's policy for the addresses tenants' pools may reach. The
//! admin API checks targets against it when they are written and publishes
//! it with every version; nodes apply it to every address they are about to
//! use for a published pool (each resolution of a name, and IP literals), so
//! a name that later resolves somewhere refused is not followed. A node's
//! own config file is the operator's and is never checked. Holds the
//! defaults, the file and checked types, and [`check`].

use crate::check::Checker;
use model::TargetPolicy;

/// Ranges refused by default: the machine itself, its link, multicast and
/// broadcast, and the cloud metadata and platform services (AWS, GCP, Azure,
/// Alibaba; AWS's and GCP's IPv6 metadata addresses), the deprecated
/// IPv4-compatible IPv6 range and the local-use NAT64 prefix. Private
/// networks are not refused: tenants' origins often live there. IPv4 inside
/// IPv6 (mapped `::ffff:0:0/96`, or behind the well-known NAT64 prefix
/// `64:ff9b::/96`) is judged as the IPv4 address.
pub const DEFAULT_REFUSED: [&str; 16] = [
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "100.100.100.200/32",
    "168.63.129.16/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
    "fd00:ec2::254/128",
    "fd20:ce::254/128",
    "::/96",
    "64:ff9b:1::/48",
    "240.0.0.0/4",
];

pub mod file {
    //! The policy as the admin publishes it.

    use serde::{Deserialize, Serialize};

    /// Where tenants' pool targets may not point.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::TargetPolicy))]
    #[serde(deny_unknown_fields)]
    pub struct TargetPolicy {
        /// Refused ranges (CIDRs).
        pub refused: Vec<String>,
        /// Refuse every address of the node's own network interfaces.
        pub node_addresses: bool,
    }

    impl Default for TargetPolicy {
        fn default() -> Self {
            TargetPolicy {
                refused: super::DEFAULT_REFUSED
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                node_addresses: true,
            }
        }
    }

    impl TargetPolicy {
        /// Nothing refused but a node's own listeners (one machine, one
        /// operator: `gatehouse run`, `--allow-internal-targets`).
        pub fn open() -> Self {
            TargetPolicy {
                refused: Vec::new(),
                node_addresses: false,
            }
        }
    }
}

pub mod model {
    //! The policy, checked.

    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use crate::ipset::IpSet;

    /// Where tenants' pool targets may not point (see `file::TargetPolicy`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TargetPolicy {
        /// Refused ranges.
        pub refused: IpSet,
        /// Refuse the node's own interface addresses.
        pub node_addresses: bool,
    }

    impl TargetPolicy {
        /// The default policy (see [`super::DEFAULT_REFUSED`]).
        pub fn default_policy() -> Self {
            TargetPolicy {
                refused: IpSet::parse(&super::DEFAULT_REFUSED).expect("valid default ranges"),
                node_addresses: true,
            }
        }

        /// Whether `ip` is in a refused range; an IPv4 address inside IPv6
        /// (mapped, or NAT64) is judged as itself.
        pub fn refuses(&self, ip: IpAddr) -> bool {
            let ip = embedded_v4(ip).map_or(ip, IpAddr::V4);
            self.refused.contains(ip)
        }
    }

    /// The IPv4 address an IPv6 address reaches, if it embeds one: mapped
    /// (`::ffff:a.b.c.d`) or behind the well-known NAT64 prefix (RFC 6052).
    pub fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
        let IpAddr::V6(v6) = ip else {
            return None;
        };
        v6.to_ipv4_mapped().or_else(|| nat64(v6))
    }

    fn nat64(v6: Ipv6Addr) -> Option<Ipv4Addr> {
        let s = v6.segments();
        (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
            let o = v6.octets();
            Ipv4Addr::new(o[12], o[13], o[14], o[15])
        })
    }
}

pub(crate) fn check(p: &file::TargetPolicy, path: &str, cx: &mut Checker<'_>) -> TargetPolicy {
    TargetPolicy {
        refused: cx.ip_set(&p.refused, &format!("{path}.refused")),
        node_addresses: p.node_addresses,
    }
}

#[cfg(test)]
mod tests {
    use super::model::TargetPolicy;

    #[test]
    fn the_machine_its_link_and_metadata_services_are_refused_by_default() {
        let p = TargetPolicy::default_policy();
        let refused = |s: &str| p.refuses(s.parse().unwrap());
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
            "::",
            "fe80::1",
            "ff02::1",
            "fd00:ec2::254",
            "fd20:ce::254",
            "::7f00:1",
            "64:ff9b:1::a9fe:a9fe",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(refused(a), "{a} should be refused");
        }
        for a in [
            "10.0.0.5",
            "192.168.1.1",
            "172.16.0.1",
            "100.100.100.201",
            "8.8.8.8",
            "2001:db8::1",
            "fd00::1",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(a), "{a} should be allowed");
        }
    }
}
