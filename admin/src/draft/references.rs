//! What a draft object requires of the others in its tenant: the plugins a
//! chain binds, the certificate a domain uses (and covers it), and who still
//! uses an object about to change or go. Imports `draft`, `model`, `infra`.

use gatehouse_config::file;

use crate::draft::objects::{self, Kind};
use crate::infra::error::ApiError;
use crate::model::certificate::{covers, StoredCertificate};
use crate::model::domain::StoredDomain;
use crate::model::route::RouteSpec;

/// Checks that each plugin a chain binds exists in the tenant's draft.
pub async fn check_plugin_refs(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    bindings: &[file::PluginBinding],
) -> Result<(), ApiError> {
    for (i, b) in bindings.iter().enumerate() {
        if !objects::exists(conn, tenant, Kind::Plugin, &b.plugin).await? {
            return Err(ApiError::invalid(
                format!("plugins[{i}].plugin"),
                format!("no plugin {:?} in this tenant", b.plugin),
            ));
        }
    }
    Ok(())
}

/// Requires certificate `cert` of `tenant` to exist and cover `host`.
pub async fn check_covers(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    cert: &str,
    host: &str,
) -> Result<(), ApiError> {
    let o = objects::load(conn, tenant, Kind::Certificate, cert)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "certificate",
                format!("no certificate {cert:?} in this tenant"),
            )
        })?;
    let stored: StoredCertificate = o.spec()?;
    if covers(&stored.info.names, host) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "certificate",
            format!(
                "certificate {cert:?} does not cover {host} (it names {})",
                stored.info.names.join(", ")
            ),
        ))
    }
}

/// The domains of `tenant` that use certificate `cert`.
pub async fn certificate_users(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    cert: &str,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for d in objects::list(conn, tenant, Kind::Domain, None).await? {
        if d.spec::<StoredDomain>()?.spec.certificate.as_deref() == Some(cert) {
            out.push(d.name);
        }
    }
    Ok(out)
}

/// Domains and routes of `tenant` that bind plugin `name`.
pub async fn plugin_users(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    name: &str,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for d in objects::list(conn, tenant, Kind::Domain, None).await? {
        if d.spec::<StoredDomain>()?
            .spec
            .plugins
            .iter()
            .any(|b| b.plugin == name)
        {
            out.push(format!("domain {}", d.name));
        }
    }
    for r in objects::list(conn, tenant, Kind::Route, None).await? {
        if r.spec::<RouteSpec>()?
            .plugins
            .iter()
            .any(|b| b.plugin == name)
        {
            out.push(format!("route {}", r.name));
        }
    }
    Ok(out)
}

/// Refuses a change that another object depends on.
pub fn in_use(what: &str, by: &[String]) -> ApiError {
    ApiError::Conflict {
        message: format!("{what} is used by {}; change those first", by.join(", ")),
        field: None,
    }
}
