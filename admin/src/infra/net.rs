//! Addresses tenants must not reach through the edge: the machine's own and
//! its link's ([`is_internal`]), refused as pool targets and as ownership
//! check destinations. Imports nothing of this crate.

/// Whether `ip` is an address of this machine or its link: loopback (the
/// admin API itself), unspecified, link-local (cloud metadata services at
/// 169.254.169.254), multicast or broadcast. Private networks are not: tenants'
/// upstreams often live there.
pub fn is_internal(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unicast_link_local()
                    || v6.is_multicast()
            }
        },
    }
}
