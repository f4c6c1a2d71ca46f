//! Proof of ownership over DNS: a TXT record `_gatehouse-challenge.<host>`
//! holding the token (the one method that works for wildcards).
//! Imports `infra`.

use crate::infra::error::ApiError;
use crate::infra::state::AppState;

/// Looks for the token in the TXT records of `_gatehouse-challenge.<host>`,
/// asking `dns_resolver` when set, else the system's resolvers. A resolver is
/// made per check so that no cached answer (or cached absence) is reused.
pub async fn dns_check(state: &AppState, host: &str, token: &str) -> Result<(), ApiError> {
    use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::TokioResolver;
    let failed = |why: String| ApiError::Conflict {
        message: format!("ownership of {host} not verified: {why}"),
        field: None,
    };
    let mut builder = match state.dns_resolver {
        Some(addr) => {
            let servers = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioConnectionProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| failed(format!("no DNS resolver configured: {e}")))?,
    };
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.timeout = std::time::Duration::from_secs(5);
    let resolver = builder.build();
    let name = format!("_gatehouse-challenge.{}.", host.trim_start_matches("*."));
    let records = resolver
        .txt_lookup(name.clone())
        .await
        .map_err(|e| failed(format!("TXT {name}: {e}")))?;
    let found = records.iter().any(|txt| {
        let value: Vec<u8> = txt
            .txt_data()
            .iter()
            .flat_map(|part| part.iter().copied())
            .collect();
        value == token.as_bytes()
    });
    if found {
        Ok(())
    } else {
        Err(failed(format!("no TXT record {name} with the token")))
    }
}
