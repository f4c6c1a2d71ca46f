//! Sets of IP addresses given as CIDRs, looked up in O(log n).
//!
//! CIDRs (parsed by `ipnet`) become sorted, merged address ranges per family;
//! a lookup is one binary search, whatever the number of entries, so a deny
//! list of thousands of networks costs the same per request as one of three.
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are looked up as IPv4.

use std::net::IpAddr;

use ipnet::IpNet;

/// A set of addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// Sorts and merges overlapping or adjacent inclusive ranges (`next` is +1,
/// saturating at the family's last address).
fn merge<T: Copy + Ord>(mut ranges: Vec<(T, T)>, next: impl Fn(T) -> T) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= next(last.1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn contains<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    // The last range starting at or before x is the only candidate.
    let i = ranges.partition_point(|(lo, _)| *lo <= x);
    i > 0 && x <= ranges[i - 1].1
}

impl IpSet {
    /// Builds a set from CIDRs (a bare address is a /32 or /128). Returns the
    /// index and text of the first entry that does not parse.
    pub fn parse<S: AsRef<str>>(cidrs: &[S]) -> Result<IpSet, (usize, String)> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, c) in cidrs.iter().enumerate() {
            let c = c.as_ref().trim();
            let net = match c.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match c.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err((i, c.to_string())),
                },
            };
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => match n.network().to_ipv4_mapped() {
                    // ::ffff:0:0/96 and narrower: the IPv4 addresses they map.
                    Some(_) if n.prefix_len() >= 96 => {
                        let lo = n.network().to_ipv4_mapped().map(u32::from).unwrap_or(0);
                        let hi = n
                            .broadcast()
                            .to_ipv4_mapped()
                            .map(u32::from)
                            .unwrap_or(u32::MAX);
                        v4.push((lo, hi));
                    }
                    _ => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
                },
            }
        }
        Ok(IpSet {
            v4: merge(v4, |x| x.saturating_add(1)),
            v6: merge(v6, |x| x.saturating_add(1)),
        })
    }

    /// Whether `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => contains(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => contains(&self.v4, u32::from(v4)),
                None => contains(&self.v6, u128::from(a)),
            },
        }
    }

    /// True when nothing is in the set.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_and_addresses_of_both_families() {
        let set =
            IpSet::parse(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "10.1.0.0/16"]).unwrap();
        assert!(set.contains(ip("10.255.255.255")));
        assert!(set.contains(ip("10.0.0.0")));
        assert!(!set.contains(ip("11.0.0.0")));
        assert!(!set.contains(ip("9.255.255.255")));
        assert!(set.contains(ip("192.168.1.7")));
        assert!(!set.contains(ip("192.168.1.8")));
        assert!(set.contains(ip("2001:db8:ffff::1")));
        assert!(!set.contains(ip("2001:db9::1")));
        // IPv4-mapped IPv6 is the IPv4 address.
        assert!(set.contains(ip("::ffff:10.2.3.4")));
        let mapped = IpSet::parse(&["::ffff:192.0.2.0/120"]).unwrap();
        assert!(mapped.contains(ip("192.0.2.200")));
        assert!(IpSet::parse(&["0.0.0.0/0"])
            .unwrap()
            .contains(ip("255.255.255.255")));
        assert!(IpSet::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let set = IpSet::parse(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.64/26"]).unwrap();
        assert_eq!(
            set.v4,
            vec![(
                u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)),
                u32::from(std::net::Ipv4Addr::new(10, 0, 0, 255))
            )]
        );
        assert!(set.contains(ip("10.0.0.200")));
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            IpSet::parse(&["10.0.0.0/8", "10.0.0.0/33"]),
            Err((1, "10.0.0.0/33".into()))
        );
        assert_eq!(IpSet::parse(&["nope"]), Err((0, "nope".into())));
    }
}
