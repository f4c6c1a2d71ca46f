//! Validation with the proxy's own rules (gatehouse-config), of one object on
//! its own as it is written to the draft ([`check_alone`]) and of the tenant
//! parts a publish changes, each on its own ([`validate_changes`]), problems
//! mapped back to objects. Imports `release` and `infra`.

use gatehouse_config::file;

use crate::infra::auth::Principal;
use crate::infra::error::{ApiError, FieldProblem};
use crate::infra::state::AppState;
use crate::release::document::Document;
use crate::release::render::{render, ObjectPaths};

/// Validates one object on its own: `fill` adds it to an empty config of
/// `tenant`, and only problems under `prefix` are reported (without it).
pub async fn check_alone(
    state: &AppState,
    tenant: &str,
    fill: impl FnOnce(&mut gatehouse_config::file::FileConfig),
    prefix: &str,
) -> Result<(), ApiError> {
    let mut cfg = gatehouse_config::file::FileConfig::default();
    cfg.tenants.push(gatehouse_config::file::Tenant {
        name: tenant.to_string(),
        rate_limit: None,
        cache_bytes: None,
        plugin_cpu: None,
        plugin_memory_mb: None,
    });
    fill(&mut cfg);
    match validate(cfg, ObjectPaths::default(), state.max_plugin_chain).await {
        Ok(()) => Ok(()),
        Err(problems) => {
            let mut mine: Vec<FieldProblem> = problems
                .into_iter()
                .filter_map(|p| {
                    p.field.strip_prefix(prefix).map(|rest| FieldProblem {
                        field: rest.to_string(),
                        message: p.message,
                    })
                })
                .collect();
            match mine.len() {
                0 => Ok(()),
                1 => {
                    let p = mine.remove(0);
                    Err(ApiError::invalid(p.field, p.message))
                }
                _ => Err(ApiError::InvalidFields(mine)),
            }
        }
    }
}

/// Validates what `next` changes from `base`: each tenant part that is new
/// or different, on its own. A part nothing changed was valid when it was
/// published, and tenants' parts cannot conflict (names are per tenant and
/// hostnames unique across tenants in the store), so nothing in one
/// tenant's part — even one no longer valid under today's bounds — can make
/// another tenant's publish fail. Problems in other tenants' parts are not
/// shown to a tenant token.
pub async fn validate_changes(
    state: &AppState,
    who: &Principal,
    base: &Document,
    next: &Document,
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for (tenant, part) in &next.tenants {
        if base.tenants.get(tenant) == Some(part) {
            continue;
        }
        let (cfg, paths) = render(&next.only(tenant), &state.keys)?;
        if let Err(found) = validate(cfg, paths, state.max_plugin_chain).await {
            problems.extend(found);
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let problems = problems
        .into_iter()
        .map(|p| match (&who.tenant, ObjectPaths::tenant_of(&p.field)) {
            (Some(mine), Some(t)) if t != mine => FieldProblem {
                field: format!("tenants/{t}"),
                message: "another tenant's configuration is invalid; the platform operators have to fix it".into(),
            },
            _ => p,
        })
        .collect();
    Err(ApiError::InvalidConfig(problems))
}

/// Validates a rendered config with the proxy's validation, as a node with
/// HTTP and HTTPS listeners would (a node's own listeners are its business:
/// a node without HTTPS refuses `force_https` domains with a NACK), whose
/// `limits.plugins.max_chain` is `max_chain`. Runs off the async runtime
/// (it reads and parses certificates and plugins); problems come back by
/// object.
pub async fn validate(
    mut cfg: file::FileConfig,
    paths: ObjectPaths,
    max_chain: usize,
) -> Result<(), Vec<FieldProblem>> {
    use gatehouse_config::validate::{validate_with, Mode};
    cfg.limits.plugins.max_chain = Some(max_chain);
    cfg.listeners.http = Some("127.0.0.1:0".into());
    cfg.listeners.https = Some("127.0.0.1:0".into());
    let result = tokio::task::spawn_blocking(move || {
        validate_with(&cfg, std::path::Path::new("/nonexistent"), Mode::Node).map(|_| ())
    })
    .await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(errors)) => Err(errors
            .iter()
            .filter(|e| !e.path.starts_with("listeners"))
            .map(|e| FieldProblem {
                field: paths.map(&e.path),
                message: e.message.clone(),
            })
            .collect()),
        Err(e) => Err(vec![FieldProblem {
            field: String::new(),
            message: format!("validation did not complete: {e}"),
        }]),
    }
}
