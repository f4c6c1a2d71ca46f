//! End-to-end tests: a real `gatehouse` process against real upstream
//! servers and real HTTP/1.1, HTTP/2, TLS and WebSocket clients, all on
//! loopback with OS-chosen ports.
//!
//! Run: `cargo test --test e2e`

mod admin;
mod balancing;
mod bans;
mod cache;
mod cli;
mod control_plane;
mod hostile;
mod ip_rules;
mod plugins;
mod protocol;
mod proxy_protocol;
mod rate_limits;
mod reload;
mod routing;
mod security_headers;
mod support;
mod tls;
mod upstream_tls;
mod waf;
