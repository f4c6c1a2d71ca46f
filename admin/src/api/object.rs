//! What every draft resource answers with: the object with its bookkeeping
//! ([`Object`]) and a JSON response carrying its revision as `ETag`.
//! Imports `draft`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::draft::objects::Stored;

/// What the API returns for an object: its name, spec and bookkeeping.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Object<S> {
    /// Name, unique within the tenant.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// The object's settings.
    pub spec: S,
    /// Revision, increased by every change (also the `ETag`).
    pub revision: i64,
    /// Creation time (Unix milliseconds).
    pub created_ms: i64,
    /// Last change (Unix milliseconds).
    pub updated_ms: i64,
}

impl<S> Object<S> {
    /// The response for `stored` with the client-facing `spec`.
    pub fn new(stored: &Stored, spec: S) -> Self {
        Object {
            name: stored.name.clone(),
            tenant: stored.tenant.clone(),
            spec,
            revision: stored.revision,
            created_ms: stored.created_ms,
            updated_ms: stored.updated_ms,
        }
    }
}

/// A JSON response with the object's revision as its `ETag`.
pub fn with_etag(status: StatusCode, revision: i64, body: impl Serialize) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        resp.headers_mut().insert(header::ETAG, tag);
    }
    resp
}
