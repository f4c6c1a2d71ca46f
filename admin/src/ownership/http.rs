//! Proof of ownership over HTTP: the edge serves the pending domain's token
//! at the challenge URL once published, and the name's DNS must lead there.
//! Imports `model` and `infra`.

use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::model::domain::CHALLENGE_PREFIX;

/// Fetches the challenge URL (through `verify_via` when set: the edge's
/// address, for hosts whose DNS does not point at it from here).
pub async fn http_check(state: &AppState, host: &str, token: &str) -> Result<(), ApiError> {
    let failed = |why: String| ApiError::Conflict {
        message: format!("ownership of {host} not verified: {why}"),
        field: None,
    };
    if host.starts_with("*.") {
        return Err(failed("a wildcard cannot be verified over HTTP".into()));
    }
    let addr = match state.verify_via {
        Some(a) => a,
        None => {
            let addrs = resolve(state, host)
                .await
                .map_err(|_| failed("it does not resolve".into()))?;
            // The same policy as pool targets: the check must not become a
            // way to probe the edge's own services or its metadata endpoint.
            if addrs.iter().any(|a| state.target_policy.refuses(a.ip())) {
                return Err(failed(
                    "it resolves to an address ownership checks may not reach".into(),
                ));
            }
            *addrs
                .first()
                .ok_or_else(|| failed("it does not resolve".into()))?
        }
    };
    let path = format!("{CHALLENGE_PREFIX}{token}");
    // What went wrong (refused, timed out, which status) stays in the log:
    // reporting it would tell a tenant what answers at any address.
    let body = fetch_challenge(addr, host, &path)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(%host, error = %e, "HTTP ownership check failed");
            String::new()
        });
    if body.trim() == token {
        Ok(())
    } else {
        Err(failed(format!(
            "http://{host}{path} did not answer with the token"
        )))
    }
}

/// `host`'s addresses on port 80: from `--dns-resolver` when set (like the
/// DNS method), else the system's resolver.
async fn resolve(state: &AppState, host: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::TokioResolver;
    let Some(dns) = state.dns_resolver else {
        return tokio::net::lookup_host((host, 80))
            .await
            .map(|a| a.collect())
            .map_err(|e| e.to_string());
    };
    let servers = NameServerConfigGroup::from_ips_clear(&[dns.ip()], dns.port(), true);
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, Vec::new(), servers),
        TokioConnectionProvider::default(),
    );
    builder.options_mut().cache_size = 0;
    let answer = builder
        .build()
        .lookup_ip(format!("{host}."))
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer
        .iter()
        .map(|ip| std::net::SocketAddr::new(ip, 80))
        .collect())
}

/// GETs `path` of `host` from `addr`: no redirects, 5 s, at most 16 KiB; the
/// body of a 200.
async fn fetch_challenge(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> Result<String, String> {
    const MAX_BODY: usize = 16 * 1024;
    let client = reqwest::Client::builder()
        .resolve(host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(5))
        .user_agent("gatehouse-admin")
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client
        .get(format!("http://{host}{path}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err("response too large".into());
        }
    }
    String::from_utf8(body).map_err(|_| "body is not UTF-8".into())
}
