//! `domains[].ip_rules`: client addresses a domain admits or refuses.
//! Holds the file type, the checked CIDR sets with [`model::IpRules::admits`],
//! and [`check`].

use crate::check::Checker;
use model::IpRules;

pub mod file {
    //! IP rules as operators write them.

    use serde::{Deserialize, Serialize};

    /// Per-domain client address rules (IPv4 and IPv6 CIDRs). `deny` always
    /// wins; a non-empty `allow` admits only its addresses. Refused: 403.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::IpRules))]
    #[serde(deny_unknown_fields)]
    pub struct IpRules {
        /// Only these addresses (empty: everyone).
        #[serde(default)]
        pub allow: Vec<String>,
        /// Never these addresses.
        #[serde(default)]
        pub deny: Vec<String>,
    }
}

pub mod model {
    //! IP rules with their CIDRs parsed.

    use crate::ipset::IpSet;

    /// A domain's client address rules: `deny` wins; a non-empty `allow` admits only its own.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct IpRules {
        /// Admitted addresses; `None`: everyone.
        pub allow: Option<IpSet>,
        /// Refused addresses.
        pub deny: IpSet,
    }

    impl IpRules {
        /// Whether `ip` may use the domain.
        pub fn admits(&self, ip: std::net::IpAddr) -> bool {
            !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
        }
    }
}

pub(crate) fn check(r: &file::IpRules, path: &str, cx: &mut Checker<'_>) -> IpRules {
    IpRules {
        allow: (!r.allow.is_empty()).then(|| cx.ip_set(&r.allow, &format!("{path}.allow"))),
        deny: cx.ip_set(&r.deny, &format!("{path}.deny")),
    }
}
