//! The API's one error shape (`{"error":{"code","message","field"}}`), and the
//! body, query and path extractors that answer with it. Imports nothing else
//! of this crate.

// Every error is `{"error":{"code","message","field"}}` with a 4xx status for
// anything the client can fix. Database and other internal failures become a
// bare 500 whose details go only to the log, tagged with the request id.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a field is invalid.
    #[error("{message}")]
    Invalid {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
        /// Path of the offending field (`name`, `targets[2].addr`), if any.
        field: Option<String>,
    },
    /// 401: no credentials, or credentials that are not valid.
    #[error("missing or invalid API token")]
    Unauthenticated,
    /// 403: the token may see the object but not do this to it.
    #[error("this token's role may not {0}")]
    Forbidden(&'static str),
    /// 404: no such object (also what a token sees of another tenant's objects).
    #[error("{0} not found")]
    NotFound(String),
    /// 409: the object conflicts with an existing one.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The field that conflicts.
        field: Option<String>,
    },
    /// 412: `If-Match` names a revision that is no longer current.
    #[error("the object changed since revision {0}; fetch it again")]
    PreconditionFailed(String),
    /// 405: the resource exists but not with this method.
    #[error("this resource does not support that method")]
    MethodNotAllowed,
    /// 413: the body is larger than the endpoint accepts.
    #[error("request body too large")]
    TooLarge,
    /// 429: too many failed authentications from this client.
    #[error("too many failed authentications; retry later")]
    TooManyAuthFailures,
    /// 400: several fields of one object are invalid; every problem with its path.
    #[error("{} fields are invalid", .0.len())]
    InvalidFields(Vec<FieldProblem>),
    /// 422: the configuration to publish does not validate; every problem with its path.
    #[error("the configuration is invalid ({} error(s)); nothing was published", .0.len())]
    InvalidConfig(Vec<FieldProblem>),
    /// 500: a failure that is not the client's; logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } | ApiError::InvalidFields(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyAuthFailures => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::InvalidFields(_) => "invalid_field",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::TooLarge => "body_too_large",
            ApiError::TooManyAuthFailures => "too_many_auth_failures",
            ApiError::InvalidConfig(_) => "invalid_config",
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { field, .. } | ApiError::Conflict { field, .. } => field.as_deref(),
            ApiError::InvalidConfig(problems) | ApiError::InvalidFields(problems) => {
                problems.first().map(|p| p.field.as_str())
            }
            _ => None,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Two requests creating the same thing at once (PostgreSQL runs them
        // concurrently): the loser's insert breaks a unique key. Not a server fault.
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return ApiError::Conflict {
                    message: "a concurrent change created the same object; fetch it and retry"
                        .into(),
                    field: None,
                };
            }
        }
        ApiError::Internal(e.into())
    }
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code (`invalid_field`, `not_found`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Path of the offending field, when one is to blame.
    pub field: Option<String>,
    /// Every problem found, each with its field path (an invalid object or configuration).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldProblem>,
}

/// One problem of a configuration, at a field path.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldProblem {
    /// Where: the object and field (`tenants/acme/pools/web.targets[0].addr`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "admin API internal error");
        }
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                field: self.field().map(str::to_string),
                details: match self {
                    ApiError::InvalidConfig(problems) | ApiError::InvalidFields(problems) => {
                        problems
                    }
                    _ => Vec::new(),
                },
            },
        };
        (status, axum::Json(body)).into_response()
    }
}

/// A JSON body, deserialised with the path of the field that failed.
///
/// Unlike `axum::Json`, every rejection uses the API's error shape: a wrong
/// content type, malformed JSON, an unknown or mistyped field (400 with the
/// field), or a body over the limit (413).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || m.to_ascii_lowercase().ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::Invalid {
                code: "unsupported_media_type",
                message: "the body must be JSON (Content-Type: application/json)".into(),
                field: None,
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge
                } else {
                    ApiError::Invalid {
                        code: "unreadable_body",
                        message: e.body_text(),
                        field: None,
                    }
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Query parameters, with rejections in the API's error shape (an unknown or
/// mistyped parameter is a 400 naming it).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(q)) => Ok(ApiQuery(q)),
            Err(rejection) => {
                let message = rejection.body_text();
                let field = message
                    .split_once("unknown field `")
                    .or_else(|| message.split_once("missing field `"))
                    .and_then(|(_, rest)| rest.split('`').next())
                    .map(str::to_string);
                Err(ApiError::Invalid {
                    code: "invalid_query",
                    message,
                    field,
                })
            }
        }
    }
}

/// Path parameters; a path whose parameters do not parse (not a number,
/// not UTF-8) names nothing that exists: 404 in the API's error shape.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(_) => Err(ApiError::NotFound("resource".into())),
        }
    }
}

/// Parses `bytes` as `T`, naming the field that failed. Bodies are JSON
/// objects: serde would also read a struct from an array of its fields.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::Invalid {
            code: "invalid_body",
            message: "the body must be a JSON object".into(),
            field: None,
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (code, field) = if inner.is_syntax() || inner.is_eof() {
            ("malformed_json", None)
        } else {
            ("invalid_field", (path != ".").then_some(path))
        };
        // A missing field is reported at its parent's path; name it.
        let message = inner.to_string();
        let field = match (field, missing_field(&message)) {
            (Some(parent), Some(name)) => Some(format!("{parent}.{name}")),
            (None, Some(name)) => Some(name.to_string()),
            (field, None) => field,
        };
        ApiError::Invalid {
            code,
            message,
            field,
        }
    })
}

/// The field name in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Target {
        addr: String,
        weight: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Pool {
        name: String,
        targets: Vec<Target>,
    }

    fn err(json: &str) -> (String, Option<String>) {
        match parse_json::<Pool>(json.as_bytes()) {
            Err(ApiError::Invalid { code, field, .. }) => (code.to_string(), field),
            other => panic!("{other:?}"),
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Days {
        #[serde(default, deserialize_with = "integral::option_u32")]
        days: Option<u32>,
    }

    #[test]
    fn integral_numbers_with_a_fraction_are_integers() {
        let days = |j: &str| parse_json::<Days>(j.as_bytes()).map(|d| d.days);
        assert_eq!(days(r#"{"days":30}"#).unwrap(), Some(30));
        assert_eq!(days(r#"{"days":30.0}"#).unwrap(), Some(30));
        assert_eq!(days(r#"{}"#).unwrap(), None);
        assert_eq!(days(r#"{"days":null}"#).unwrap(), None);
        for bad in [
            r#"{"days":30.5}"#,
            r#"{"days":-1}"#,
            r#"{"days":5000000000}"#,
            r#"{"days":"3"}"#,
        ] {
            assert!(days(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(r#"{"name":"a","targets":[{"addr":"x","weight":"heavy"}]}"#),
            ("invalid_field".into(), Some("targets[0].weight".into()))
        );
        assert_eq!(
            err(r#"{"name":"a","targets":[],"colour":1}"#),
            ("invalid_field".into(), Some("colour".into()))
        );
        assert_eq!(
            err(r#"{"name":"a","targets":[{"addr":"x","weight":1,"x":2}]}"#),
            ("invalid_field".into(), Some("targets[0].x".into()))
        );
        assert_eq!(
            err(r#"{"name":"a","targets":[{"addr":"x"}]}"#),
            ("invalid_field".into(), Some("targets[0].weight".into()))
        );
        assert_eq!(err(r#"{"name":"a","#).0, "malformed_json");
    }
}

/// Deserialisers for integer fields that also take integral JSON numbers
/// written with a fraction (`30.0`): JSON Schema counts those as integers, so
/// a client generated from the spec may send them.
pub mod integral {
    use serde::{Deserialize, Deserializer};

    /// An optional `u32`.
    pub fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
            return Ok(None);
        };
        if let Some(v) = n.as_u64() {
            return u32::try_from(v)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{v} is out of range")));
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
                Ok(Some(f as u32))
            }
            _ => Err(serde::de::Error::custom(format!(
                "expected a non-negative integer, got {n}"
            ))),
        }
    }
}
