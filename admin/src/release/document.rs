//! Snapshot documents: what a published version holds ([`Document`]: every
//! tenant's objects as published, specs as stored, private keys still sealed),
//! in a canonical order so that equal configurations have equal hashes and a
//! rollback can restore the draft. Imports `draft` and `infra`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::draft::objects::{Kind, Stored};
use crate::infra::error::ApiError;

/// One object in a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The spec as stored.
    pub spec: serde_json::Value,
    /// Lifecycle state (domains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Entry {
    /// The spec as its typed form (`what` names the kind in the error).
    pub fn spec_as<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, ApiError> {
        serde_json::from_value(self.spec.clone()).map_err(|err| {
            ApiError::Internal(anyhow::anyhow!("stored {what} does not parse: {err}"))
        })
    }
}

/// One tenant's objects: kind → name → entry.
pub type TenantPart = BTreeMap<String, BTreeMap<String, Entry>>;

/// A published configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Tenant → its objects.
    pub tenants: BTreeMap<String, TenantPart>,
}

impl Document {
    /// Canonical JSON text (maps are ordered).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a document always serializes")
    }

    /// SHA-256 of the canonical text, hex.
    pub fn hash(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, self.to_text().as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses a stored document.
    pub fn parse(text: &str) -> Result<Document, ApiError> {
        serde_json::from_str(text)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored snapshot does not parse: {e}")))
    }

    /// The document with only `tenant`'s part (what a tenant token may see).
    pub fn only(&self, tenant: &str) -> Document {
        Document {
            tenants: self
                .tenants
                .iter()
                .filter(|(t, _)| t.as_str() == tenant)
                .map(|(t, p)| (t.clone(), p.clone()))
                .collect(),
        }
    }

    /// The document without sealed keys (for API responses).
    pub fn redacted(&self) -> Document {
        let mut out = self.clone();
        for part in out.tenants.values_mut() {
            if let Some(certs) = part.get_mut(Kind::Certificate.as_str()) {
                for e in certs.values_mut() {
                    if let Some(m) = e.spec.as_object_mut() {
                        m.remove("key_sealed");
                    }
                }
            }
        }
        out
    }
}

/// A tenant's draft objects as a document part.
pub fn part_of(objects: Vec<(String, Stored)>) -> TenantPart {
    let mut part = TenantPart::new();
    for (kind, o) in objects {
        part.entry(kind).or_default().insert(
            o.name,
            Entry {
                spec: o.spec,
                status: o.status,
            },
        );
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_documents_hash_equal_and_redaction_drops_sealed_keys() {
        let mut a = Document::default();
        let entry = |v: serde_json::Value| Entry {
            spec: v,
            status: None,
        };
        a.tenants
            .entry("acme".into())
            .or_default()
            .entry("certificate".into())
            .or_default()
            .insert(
                "main".into(),
                entry(serde_json::json!({ "names": ["a.example"], "key_sealed": "gh1.x.y" })),
            );
        let b = Document::parse(&a.to_text()).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
        let shown = a.redacted().to_text();
        assert!(
            !shown.contains("key_sealed") && shown.contains("a.example"),
            "{shown}"
        );
        assert!(a.only("beta").tenants.is_empty());
    }
}
