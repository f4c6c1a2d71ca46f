//! Publishing a certificate the system issued (an ACME order): the
//! certificate as it is in the draft and the published domain made to use
//! it, on top of the latest version, and nothing else of the tenant's draft.
//! Imports `release`, `draft`, `model` and `infra`.

use sqlx::AnyConnection;

use crate::draft::objects::{self, Kind};
use crate::infra::auth::{Principal, RequestMeta};
use crate::infra::error::ApiError;
use crate::infra::state::AppState;
use crate::model::domain::StoredDomain;
use crate::release::document::{Document, Entry};
use crate::release::publish::{release, Label, Outcome, Plan};
use crate::release::versions::Version;

/// Publishes certificate `certificate` of `tenant`, issued for `host`, with
/// the published domain `host` using it (unpublished changes stay drafts).
/// Validated as a whole and retried like a publish; the new version, or
/// `None` when nothing changed.
pub async fn publish_certificate(
    state: &AppState,
    who: &Principal,
    meta: &RequestMeta,
    tenant: &str,
    certificate: &str,
    host: &str,
) -> Result<Option<Version>, ApiError> {
    let note = format!("certificate {certificate} for {host}");
    let label = Label {
        scope: Some(tenant),
        note: Some(&note),
        rollback_of: None,
    };
    let plan = Issued {
        tenant,
        certificate,
        host,
    };
    Ok(match release(state, who, meta, label, &plan).await? {
        Outcome::Kept(_) => None,
        Outcome::Stored { version, .. } => Some(version),
    })
}

/// A certificate the system issued for a host of a tenant.
struct Issued<'a> {
    tenant: &'a str,
    certificate: &'a str,
    host: &'a str,
}

impl Plan for Issued<'_> {
    async fn next(
        &self,
        conn: &mut AnyConnection,
        _latest: Option<&Version>,
        base: &Document,
    ) -> Result<Document, ApiError> {
        let Some(draft) =
            objects::load(conn, self.tenant, Kind::Certificate, self.certificate).await?
        else {
            return Err(ApiError::NotFound(format!(
                "certificate {}",
                self.certificate
            )));
        };
        let mut next = base.clone();
        let part = next.tenants.entry(self.tenant.to_string()).or_default();
        part.entry(Kind::Certificate.as_str().to_string())
            .or_default()
            .insert(
                self.certificate.to_string(),
                Entry {
                    spec: draft.spec,
                    status: draft.status,
                },
            );
        if let Some(domain) = part
            .get_mut(Kind::Domain.as_str())
            .and_then(|domains| domains.get_mut(self.host))
        {
            use_certificate(domain, self.certificate)?;
        }
        Ok(next)
    }
}

/// Makes the published domain `entry` use `certificate`. The typed spec is
/// edited and written back: the same serde output that stored it, so equal
/// documents keep equal bytes and hashes.
fn use_certificate(entry: &mut Entry, certificate: &str) -> Result<(), ApiError> {
    let mut domain: StoredDomain = entry.spec_as("domain")?;
    domain.spec.certificate = Some(certificate.to_string());
    entry.spec = serde_json::to_value(&domain).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::document::TenantPart;

    /// The edit as it was made before it was typed: the spec's JSON object
    /// given a `certificate` member.
    fn json_edit(spec: &serde_json::Value, certificate: &str) -> serde_json::Value {
        let mut spec = spec.clone();
        if let Some(map) = spec.as_object_mut() {
            map.insert("certificate".into(), certificate.into());
        }
        spec
    }

    #[test]
    fn the_typed_edit_stores_the_bytes_the_json_edit_stored() {
        let specs = [
            serde_json::json!({}),
            serde_json::json!({ "certificate": "manual", "acme": true }),
            serde_json::json!({
                "acme": true,
                "force_https": true,
                "headers": { "response": { "set": { "x-served-by": "edge" } } },
                "ip_rules": { "deny": ["203.0.113.0/24"] },
                "plugins": [{ "plugin": "auth", "config": { "b": [1, 2.5, null], "a": "x" } }],
            }),
        ];
        for spec in specs {
            // Stored as `PUT …/domains/{host}` stores it: the typed spec's serde output.
            let stored = StoredDomain {
                spec: serde_json::from_value(spec.clone()).unwrap(),
                verification_token: "0123456789abcdef0123456789abcdef".into(),
            };
            let stored = serde_json::to_value(&stored).unwrap();
            let mut entry = Entry {
                spec: stored.clone(),
                status: Some("active".into()),
            };
            use_certificate(&mut entry, "acme-a-example").unwrap();
            let expected = json_edit(&stored, "acme-a-example");
            assert_eq!(entry.spec.to_string(), expected.to_string(), "{spec}");

            let document = |spec: serde_json::Value| {
                let mut part = TenantPart::new();
                part.entry("domain".into()).or_default().insert(
                    "a.example".into(),
                    Entry {
                        spec,
                        status: Some("active".into()),
                    },
                );
                Document {
                    tenants: [("acme".to_string(), part)].into(),
                }
            };
            let (typed, by_json) = (document(entry.spec.clone()), document(expected));
            assert_eq!(typed.to_text(), by_json.to_text());
            assert_eq!(typed.hash(), by_json.hash());
        }
    }
}
