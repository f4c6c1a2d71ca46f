//! `domains`: virtual hosts and everything applied per host. This module
//! holds the domain itself and [`check`]; each per-domain setting has its own
//! submodule (routes, headers, security headers, IP rules, bans), and
//! references to other sections resolve through [`refs::Refs`].

pub mod bans;
pub mod headers;
pub mod ip_rules;
pub mod refs;
pub mod routes;
pub mod security_headers;

use std::collections::HashMap;

use crate::check::Checker;
use crate::hosts::{parse_host_pattern, HostPattern};
use model::Domain;
use refs::Refs;
use security_headers::model::SecurityHeaders;

pub mod file {
    //! `domains[]` as operators write them.

    use serde::{Deserialize, Serialize};

    use super::bans::file::Bans;
    use super::headers::file::HeaderRules;
    use super::ip_rules::file::IpRules;
    use super::routes::file::Route;
    use super::security_headers::file::SecurityHeaders;
    use crate::plugins::file::PluginBinding;
    use crate::rate_limits::file::RateLimit;

    /// A virtual host and its routes.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Domain))]
    #[serde(deny_unknown_fields)]
    pub struct Domain {
        /// Hostnames served: exact (`example.com`) or a one-label wildcard (`*.example.com`).
        pub hosts: Vec<String>,
        /// Owning tenant.
        pub tenant: String,
        /// Certificate (by name) served for these hosts on the HTTPS listener.
        pub certificate: Option<String>,
        /// Redirect plain-HTTP requests to HTTPS with 308.
        #[serde(default)]
        pub force_https: bool,
        /// Header edits applied to every request/response of this domain.
        #[serde(default)]
        pub headers: HeaderRules,
        /// Security response headers (default: none added).
        #[serde(default)]
        pub security_headers: Option<SecurityHeaders>,
        /// Client addresses allowed or denied (CIDRs), checked before routing.
        #[serde(default)]
        pub ip_rules: IpRules,
        /// Rate limits on every request of this domain.
        #[serde(default)]
        pub rate_limits: Vec<RateLimit>,
        /// Automatic bans of clients that keep failing (default off).
        #[serde(default)]
        pub bans: Option<Bans>,
        /// Request inspection (WAF): attacks scored and blocked (default off).
        #[serde(default)]
        pub waf: Option<crate::waf::Waf>,
        /// Edge caching of the responses of routes that forward to a pool (default off);
        /// routes refine it with their own `cache`.
        #[serde(default)]
        pub cache: Option<crate::cache::Cache>,
        /// Plugins run on every request of this domain, in order, before the route's.
        #[serde(default)]
        pub plugins: Vec<PluginBinding>,
        /// Routes, matched by longest path (exact beats prefix).
        #[serde(default)]
        pub routes: Vec<Route>,
    }
}

pub mod model {
    //! `domains[]`, checked.

    use super::bans::model::BanPolicy;
    use super::headers::model::HeaderEdits;
    use super::ip_rules::model::IpRules;
    use super::routes::model::Route;
    use super::security_headers::model::SecurityHeaders;
    use crate::hosts::HostPattern;
    use crate::plugins::model::PluginBinding;
    use crate::rate_limits::model::RateLimitRule;

    /// A virtual host.
    #[derive(Debug, Clone)]
    pub struct Domain {
        /// Host patterns served.
        pub hosts: Vec<HostPattern>,
        /// Owning tenant.
        pub tenant: String,
        /// Index into [`Config::certificates`](crate::model::Config::certificates).
        pub certificate: Option<usize>,
        /// Redirect plain HTTP to HTTPS.
        pub force_https: bool,
        /// Header edits.
        pub request_headers: HeaderEdits,
        /// Header edits on the response.
        pub response_headers: HeaderEdits,
        /// Security headers added to responses.
        pub security_headers: SecurityHeaders,
        /// Client addresses allowed and denied.
        pub ip_rules: IpRules,
        /// Rate limits on every request.
        pub rate_limits: Vec<RateLimitRule>,
        /// Automatic bans.
        pub bans: Option<BanPolicy>,
        /// Request inspection, unless off.
        pub waf: Option<crate::waf::WafPolicy>,
        /// Plugin chain run on every request, before the route's.
        pub plugins: Vec<PluginBinding>,
        /// Routes in file order.
        pub routes: Vec<Route>,
    }
}

/// Checks one domain at `dpath`, after `validate` has checked its tenant.
/// `seen_hosts` (host → the field that first named it) spans every domain:
/// a host is served by one domain only.
pub(crate) fn check(
    d: &file::Domain,
    dpath: &str,
    refs: &Refs<'_>,
    seen_hosts: &mut HashMap<HostPattern, String>,
    cx: &mut Checker<'_>,
) -> Domain {
    if d.hosts.is_empty() {
        cx.err(format!("{dpath}.hosts"), "at least one host is required");
    }
    let mut hosts = Vec::with_capacity(d.hosts.len());
    for (hi, h) in d.hosts.iter().enumerate() {
        let hpath = format!("{dpath}.hosts[{hi}]");
        match parse_host_pattern(h) {
            Ok(p) => {
                if let Some(prev) = seen_hosts.insert(p.clone(), hpath.clone()) {
                    cx.err(&hpath, format!("host {p} is already served by {prev}"));
                }
                hosts.push(p);
            }
            Err(msg) => cx.err(&hpath, msg),
        }
    }
    let certificate = d.certificate.as_ref().and_then(|name| {
        let found = refs.certificates.get(name).copied();
        if found.is_none() {
            cx.err(
                format!("{dpath}.certificate"),
                format!("unknown certificate {name:?}"),
            );
        }
        found
    });
    let request_headers =
        headers::check(&d.headers.request, &format!("{dpath}.headers.request"), cx);
    let response_headers = headers::check(
        &d.headers.response,
        &format!("{dpath}.headers.response"),
        cx,
    );
    let ip_rules = ip_rules::check(&d.ip_rules, &format!("{dpath}.ip_rules"), cx);
    let rate_limits =
        crate::rate_limits::check(&d.rate_limits, &format!("{dpath}.rate_limits"), cx);
    let bans = d
        .bans
        .as_ref()
        .map(|b| bans::check(b, &format!("{dpath}.bans"), cx));
    let waf = d.waf.as_ref().and_then(|w| {
        let policy = crate::waf::check(w, &format!("{dpath}.waf"), &mut |p, m| cx.err(p, m));
        (policy.mode != crate::waf::WafMode::Off).then_some(policy)
    });
    if let Some(c) = &d.cache {
        crate::cache::check(c, &format!("{dpath}.cache"), &mut |p, m| cx.err(p, m));
    }
    let security_headers = match &d.security_headers {
        Some(h) => security_headers::check(h, &format!("{dpath}.security_headers"), cx),
        None => SecurityHeaders::default(),
    };
    let plugins = crate::plugins::chain(
        &d.plugins,
        refs.plugins,
        &d.tenant,
        &format!("{dpath}.plugins"),
        cx,
    );
    check_chain_lengths(d, dpath, refs.max_chain, cx);
    let routes = d
        .routes
        .iter()
        .enumerate()
        .filter_map(|(ri, r)| {
            routes::check(
                r,
                &format!("{dpath}.routes[{ri}]"),
                &d.tenant,
                d.cache.as_ref(),
                refs,
                cx,
            )
        })
        .collect();
    Domain {
        hosts,
        tenant: d.tenant.clone(),
        certificate,
        force_https: d.force_https,
        request_headers,
        response_headers,
        security_headers,
        ip_rules,
        rate_limits,
        bans,
        waf,
        plugins,
        routes,
    }
}

/// A request runs its domain's chain and then its route's: together they
/// must stay within `limits.plugins.max_chain`, or one request could run
/// thousands of hooks (each with its own deadline).
fn check_chain_lengths(d: &file::Domain, dpath: &str, max: usize, cx: &mut Checker<'_>) {
    let mine = d.plugins.len();
    if mine > max {
        cx.err(
            format!("{dpath}.plugins"),
            format!("{mine} plugin bindings; a request may run at most {max} (limits.plugins.max_chain)"),
        );
        return;
    }
    for (ri, r) in d.routes.iter().enumerate() {
        let total = mine + r.plugins.len();
        if total > max {
            cx.err(
                format!("{dpath}.routes[{ri}].plugins"),
                format!(
                    "{} plugin bindings here and {mine} on the domain make {total}; a request may run at most {max} (limits.plugins.max_chain)",
                    r.plugins.len()
                ),
            );
        }
    }
}
