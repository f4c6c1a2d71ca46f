//! Which addresses a published (tenant's) pool may connect to: the
//! platform's target policy as the control plane published it, the node's
//! own interface addresses (unless the policy allows them), and always the
//! node's own listeners that are not for tenants (the internal listener, the
//! admin API). Checked for IP literals when a snapshot is compiled and for
//! every answer when a name is resolved ([`crate::resolve`]), so a name that
//! was public when it was written cannot later point inside.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use gatehouse_config::model::{embedded_v4, TargetPolicy};

/// Sockets of this process no tenant pool may reach, whatever the policy
/// (registered at start: the admin API under `gatehouse run`, the control
/// plane's address under `gatehouse proxy`).
static PROTECTED: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());

/// Adds a socket no published pool may target.
pub fn protect(addr: SocketAddr) {
    let mut all = PROTECTED.lock().unwrap_or_else(|p| p.into_inner());
    if !all.contains(&addr) {
        all.push(addr);
    }
}

/// The checks for one snapshot's published pools.
#[derive(Debug)]
pub struct AddressGuard {
    policy: TargetPolicy,
    /// The node's interface addresses when the guard was made.
    own: Vec<IpAddr>,
    /// [`protect`]ed sockets plus the internal listener.
    protected: Vec<SocketAddr>,
}

impl AddressGuard {
    /// A guard for `policy`; `internal` is the node's internal listener.
    pub fn new(policy: &TargetPolicy, internal: Option<SocketAddr>) -> Self {
        let mut protected = PROTECTED.lock().unwrap_or_else(|p| p.into_inner()).clone();
        protected.extend(internal);
        AddressGuard {
            policy: policy.clone(),
            own: interface_addresses(),
            protected,
        }
    }

    /// Whether a published pool may connect to `addr`.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        let ip = embedded_v4(addr.ip()).map_or(addr.ip(), IpAddr::V4);
        if self.policy.refuses(ip) {
            return false;
        }
        let own = ip.is_loopback() || ip.is_unspecified() || self.own.contains(&ip);
        if self.policy.node_addresses && own {
            return false;
        }
        // A listener bound to every address (or to loopback) is reached
        // through any of the node's own addresses.
        !self.protected.iter().any(|p| {
            p.port() == addr.port()
                && (p.ip() == ip || ((p.ip().is_unspecified() || p.ip().is_loopback()) && own))
        })
    }
}

/// The addresses of the node's network interfaces (empty if unreadable).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    all.filter_map(|i| {
        let a = i.address?;
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(IpAddr::V4(v4.ip()));
        }
        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_config::file;

    fn policy(p: file::TargetPolicy) -> TargetPolicy {
        TargetPolicy {
            refused: gatehouse_config::ipset::IpSet::parse(&p.refused).unwrap(),
            node_addresses: p.node_addresses,
        }
    }

    #[test]
    fn the_default_policy_refuses_the_node_and_its_services() {
        let g = AddressGuard::new(&policy(file::TargetPolicy::default()), None);
        let allows = |s: &str| g.allows(s.parse().unwrap());
        assert!(!allows("127.0.0.1:80"));
        assert!(!allows("169.254.169.254:80"));
        assert!(!allows("[::ffff:127.0.0.1]:80"));
        assert!(!allows("[64:ff9b::a9fe:a9fe]:80"));
        assert!(allows("10.1.2.3:8080"));
        assert!(allows("203.0.113.7:443"));
        for own in interface_addresses()
            .into_iter()
            .filter(|ip| !ip.is_loopback())
        {
            assert!(!g.allows(SocketAddr::new(own, 8080)), "{own}");
        }
    }

    #[test]
    fn an_open_policy_still_refuses_the_nodes_own_listeners() {
        let internal: SocketAddr = "0.0.0.0:9901".parse().unwrap();
        protect("127.0.0.1:9900".parse().unwrap());
        let g = AddressGuard::new(&policy(file::TargetPolicy::open()), Some(internal));
        let allows = |s: &str| g.allows(s.parse().unwrap());
        assert!(allows("127.0.0.1:8080"), "the operator allowed loopback");
        assert!(!allows("127.0.0.1:9901"));
        assert!(!allows("127.0.0.1:9900"));
        assert!(!allows("[::ffff:127.0.0.1]:9900"));
        assert!(allows("10.1.2.3:9901"), "another machine's port 9901");
        for own in interface_addresses() {
            assert!(!g.allows(SocketAddr::new(own, 9901)), "{own}");
        }
    }
}
