//! The platform's target policy as the admin holds it: where tenants' pools
//! (and HTTP ownership checks) may not point. The admin checks targets
//! against it when they are written, and publishes it with every version so
//! that nodes check every address they resolve (see
//! `gatehouse_config::DEFAULT_REFUSED_TARGETS` for the default ranges).

use gatehouse_config::{file, ipset::IpSet, model};

/// The policy, as published and as checked.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    /// What nodes receive with each version.
    pub published: file::TargetPolicy,
    checked: model::TargetPolicy,
}

impl TargetPolicy {
    /// Checks `published` (its CIDRs).
    pub fn new(published: file::TargetPolicy) -> Result<Self, String> {
        let refused = IpSet::parse(&published.refused)
            .map_err(|(i, e)| format!("refused target range #{}: {e}", i + 1))?;
        Ok(TargetPolicy {
            checked: model::TargetPolicy {
                refused,
                node_addresses: published.node_addresses,
            },
            published,
        })
    }

    /// Whether tenants may not reach `ip` (an IPv4 address inside IPv6 is
    /// judged as itself).
    pub fn refuses(&self, ip: std::net::IpAddr) -> bool {
        self.checked.refuses(ip)
    }
}

impl Default for TargetPolicy {
    fn default() -> Self {
        TargetPolicy::new(file::TargetPolicy::default()).expect("valid default ranges")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_refuses_the_machine_and_metadata_and_an_open_policy_nothing() {
        let p = TargetPolicy::default();
        for a in [
            "127.0.0.1",
            "169.254.169.254",
            "fd00:ec2::254",
            "64:ff9b::7f00:1",
        ] {
            assert!(p.refuses(a.parse().unwrap()), "{a}");
        }
        for a in ["10.0.0.5", "8.8.8.8", "2001:db8::1"] {
            assert!(!p.refuses(a.parse().unwrap()), "{a}");
        }
        let open = TargetPolicy::new(file::TargetPolicy::open()).unwrap();
        assert!(!open.refuses("127.0.0.1".parse().unwrap()));
        assert!(TargetPolicy::new(file::TargetPolicy {
            refused: vec!["nonsense".into()],
            node_addresses: true
        })
        .is_err());
    }
}
