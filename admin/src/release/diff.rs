//! What differs between two documents, object by object, and what of it a
//! caller may see (a tenant token: its own tenant's part, keys never).
//! Imports `release` and `infra`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::infra::auth::{Principal, Role};
use crate::release::document::{Document, Entry, TenantPart};

/// One object that differs between two versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Change {
    /// Owning tenant.
    pub tenant: String,
    /// `pool`, `domain`, `route`, `certificate` or `plugin`.
    pub kind: String,
    /// Object name (routes: `<host>/<route>`).
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: ChangeKind,
    /// The object before (absent when added; private keys omitted).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The object after (absent when removed; private keys omitted).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// How an object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the newer version.
    Added,
    /// Only in the older version.
    Removed,
    /// In both, different.
    Changed,
}

/// Objects that differ between `old` and `new` (both already redacted).
pub fn diff(old: &Document, new: &Document) -> Vec<Change> {
    let mut out = Vec::new();
    let tenants: BTreeSet<&String> = old.tenants.keys().chain(new.tenants.keys()).collect();
    let empty = TenantPart::new();
    for t in tenants {
        let (a, b) = (
            old.tenants.get(t).unwrap_or(&empty),
            new.tenants.get(t).unwrap_or(&empty),
        );
        let kinds: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in kinds {
            let none = Default::default();
            let (ka, kb) = (a.get(k).unwrap_or(&none), b.get(k).unwrap_or(&none));
            let names: BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
            for n in names {
                let (x, y) = (ka.get(n), kb.get(n));
                let change = match (x, y) {
                    (None, Some(_)) => ChangeKind::Added,
                    (Some(_), None) => ChangeKind::Removed,
                    (Some(x), Some(y)) if x != y => ChangeKind::Changed,
                    _ => continue,
                };
                let show = |e: Option<&Entry>| e.and_then(|e| serde_json::to_value(e).ok());
                out.push(Change {
                    tenant: t.clone(),
                    kind: k.clone(),
                    name: n.clone(),
                    change,
                    before: show(x),
                    after: show(y),
                });
            }
        }
    }
    out
}

/// The diff of `old` and `new` as `who` may see it.
pub fn visible_diff(who: &Principal, old: &Document, new: &Document) -> Vec<Change> {
    diff(&visible(who, old), &visible(who, new))
}

/// `doc` as `who` may see it.
pub fn visible(who: &Principal, doc: &Document) -> Document {
    match (&who.role, &who.tenant) {
        (Role::PlatformAdmin, _) | (_, None) => doc.redacted(),
        (_, Some(t)) => doc.only(t).redacted(),
    }
}
