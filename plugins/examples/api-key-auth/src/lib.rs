//! Example plugin: authenticates requests with an API key or a signed token.
//!
//! - `x-api-key: <key>` is accepted when the key's SHA-256 (hex) is listed in
//!   `keys` (label → digest), so the config never holds a key in clear.
//! - `authorization: Bearer <subject>.<expiry-unix-s>.<hex HMAC-SHA256>` is
//!   accepted when the HMAC of `<subject>.<expiry>` under `hmac_secret` matches
//!   and the expiry is in the future.
//!
//! No credential: 401 with `www-authenticate`. A wrong or expired one: 403.
//! Accepted requests go upstream with `x-auth-subject` (the key's label or the
//! token's subject) and without the credential headers, and count under that
//! subject for the route's rate limits with `key: plugin`.
//!
//! Config: `{"keys": {"ci": "<sha256 hex>"}, "hmac_secret": "..."}`.
//! Build: `gatehouse plugin build plugins/examples/api-key-auth -o api-key-auth.wasm`.

use std::collections::BTreeMap;

use gatehouse_plugin_sdk::{
    config, counter_add, export_plugin, property, rate_limit_key, Plugin, Request, RequestDecision,
    Respond,
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Config {
    /// Label → SHA-256 hex digest of the key.
    keys: BTreeMap<String, String>,
    /// Secret for bearer tokens; tokens are refused when absent.
    hmac_secret: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equal-length comparison whose time does not depend on where bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_key(cfg: &Config, key: &str) -> Option<String> {
    let digest = hex(&Sha256::digest(key.as_bytes()));
    cfg.keys
        .iter()
        .find(|(_, d)| same(d.to_ascii_lowercase().as_bytes(), digest.as_bytes()))
        .map(|(label, _)| label.clone())
}

fn check_token(cfg: &Config, token: &str) -> Option<String> {
    let secret = cfg.hmac_secret.as_deref()?;
    let (signed, sig) = token.rsplit_once('.')?;
    let (subject, expiry) = signed.rsplit_once('.')?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(signed.as_bytes());
    mac.verify_slice(&unhex(sig)?).ok()?;
    let now_s = property("unix-time-ms")?.parse::<u64>().ok()? / 1000;
    (expiry.parse::<u64>().ok()? > now_s).then(|| subject.to_string())
}

struct ApiKeyAuth;

impl Plugin for ApiKeyAuth {
    fn on_request(req: &Request) -> RequestDecision {
        let cfg: Config = match config::parse() {
            Ok(c) => c,
            // A broken config must not open the door.
            Err(_) => {
                return RequestDecision::respond(Respond::json_error(500, "auth_misconfigured"))
            }
        };
        let bearer = req.header_str("authorization").and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
        let subject = match (req.header_str("x-api-key"), bearer) {
            (None, None) => {
                counter_add("missing", 1);
                return RequestDecision::respond(
                    Respond::json_error(401, "credentials_required").header(
                        "www-authenticate",
                        "Bearer realm=\"gatehouse\", ApiKey header=\"x-api-key\"",
                    ),
                );
            }
            (Some(key), _) => check_key(&cfg, key),
            (None, Some(token)) => check_token(&cfg, token),
        };
        match subject {
            Some(subject) => {
                counter_add("accepted", 1);
                // Rate limits with `key: plugin` count per user, not per address.
                rate_limit_key(&subject);
                RequestDecision::proceed()
                    .remove_header("x-api-key")
                    .remove_header("authorization")
                    .set_header("x-auth-subject", subject)
            }
            None => {
                counter_add("refused", 1);
                RequestDecision::respond(Respond::json_error(403, "invalid_credentials"))
            }
        }
    }
}

export_plugin!(ApiKeyAuth);
