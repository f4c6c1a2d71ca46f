//! Example plugin: IP and country access lists.
//!
//! A request is refused with `status` (default 403) when its client IP is in a
//! `deny` network, when `allow` is non-empty and the IP is in none of its
//! networks, or when the country named by `country_header` (set by a CDN or a
//! GeoIP stage in front, e.g. `cf-ipcountry`) is in `deny_countries`.
//!
//! Config: `{"deny": ["203.0.113.0/24"], "allow": [], "country_header": "cf-ipcountry", "deny_countries": ["XX"]}`.
//! Build: `gatehouse plugin build plugins/examples/ip-block -o ip-block.wasm`.

use std::net::IpAddr;

use gatehouse_plugin_sdk::{
    config, counter_add, export_plugin, log, Plugin, Request, RequestDecision, Respond,
};
use ipnet::IpNet;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Config {
    allow: Vec<String>,
    deny: Vec<String>,
    country_header: Option<String>,
    deny_countries: Vec<String>,
    status: Option<u16>,
}

/// Parses `10.0.0.0/8` or a bare address (a /32 or /128).
fn net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn contains(list: &[String], ip: IpAddr) -> bool {
    list.iter().filter_map(|s| net(s)).any(|n| n.contains(&ip))
}

struct IpBlock;

impl Plugin for IpBlock {
    fn on_request(req: &Request) -> RequestDecision {
        let cfg: Config = match config::parse() {
            Ok(c) => c,
            Err(_) => {
                return RequestDecision::respond(Respond::json_error(500, "ip_block_misconfigured"))
            }
        };
        let status = cfg.status.unwrap_or(403);
        let Ok(ip) = req.client_ip().parse::<IpAddr>() else {
            return RequestDecision::respond(Respond::json_error(status, "forbidden"));
        };
        let denied =
            contains(&cfg.deny, ip) || (!cfg.allow.is_empty() && !contains(&cfg.allow, ip));
        let country = cfg
            .country_header
            .as_deref()
            .and_then(|h| req.header_str(h))
            .map(str::to_ascii_uppercase);
        let country_denied = country
            .as_deref()
            .is_some_and(|c| cfg.deny_countries.iter().any(|d| d.eq_ignore_ascii_case(c)));
        if denied || country_denied {
            counter_add("blocked", 1);
            log::info(&format!(
                "blocked {ip} (country {})",
                country.as_deref().unwrap_or("-")
            ));
            return RequestDecision::respond(Respond::json_error(status, "forbidden"));
        }
        RequestDecision::proceed()
    }
}

export_plugin!(IpBlock);
