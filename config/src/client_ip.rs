//! `client_ip`: where the real client address comes from behind other
//! proxies (trusted forwarders, PROXY protocol peers). Holds the file types,
//! the checked CIDR sets and [`check`].

use crate::check::Checker;
use model::ClientIp;

pub mod file {
    //! `client_ip` as operators write it.

    use serde::{Deserialize, Serialize};

    /// The header a trusted proxy reports the client address in.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::ClientIpHeader))]
    #[serde(rename_all = "kebab-case")]
    pub enum ClientIpHeader {
        /// `X-Forwarded-For` (default).
        #[default]
        XForwardedFor,
        /// `Forwarded` (RFC 7239), its `for=` parameters.
        Forwarded,
    }

    /// How the client address is found. Without trusted proxies it is the
    /// connection's peer address and forwarding headers are not believed.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::ClientIp))]
    #[serde(deny_unknown_fields)]
    pub struct ClientIp {
        /// Proxies (CIDRs) whose forwarding header is believed; the client is the
        /// rightmost address in it that is not itself a trusted proxy.
        #[serde(default)]
        pub trusted_proxies: Vec<String>,
        /// `x-forwarded-for` (default) or `forwarded`.
        #[serde(default)]
        pub header: ClientIpHeader,
        /// Load balancers (CIDRs) that open every connection with a PROXY
        /// protocol v1 or v2 header (HAProxy, AWS NLB, ...): the client is the
        /// source address in it. Connections from these peers without a valid
        /// header are closed; other peers' connections are never read as PROXY.
        #[serde(default)]
        pub proxy_protocol: Vec<String>,
    }
}

pub mod model {
    //! `client_ip` with its CIDRs parsed.

    use crate::ipset::IpSet;

    /// How the client address is found (see `file::ClientIp`).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ClientIp {
        /// Proxies whose forwarding header is believed.
        pub trusted_proxies: IpSet,
        /// The header they use.
        pub header: crate::file::ClientIpHeader,
        /// Peers whose connections start with a PROXY protocol header.
        pub proxy_protocol: IpSet,
    }
}

pub(crate) fn check(c: &file::ClientIp, cx: &mut Checker<'_>) -> ClientIp {
    ClientIp {
        trusted_proxies: cx.ip_set(&c.trusted_proxies, "client_ip.trusted_proxies"),
        header: c.header,
        proxy_protocol: cx.ip_set(&c.proxy_protocol, "client_ip.proxy_protocol"),
    }
}
