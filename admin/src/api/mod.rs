//! The HTTP face: one module per resource, each with its handlers, request
//! and response types, OpenAPI paths and router, merged here into the admin
//! API with its OpenAPI document, request ids and access log. Imports every
//! layer below: `acme`, `ownership`, `release`, `draft`, `model`, `infra`.

mod acme;
mod audit;
mod certificates;
mod dataplane;
mod domains;
mod object;
mod plugins;
mod pools;
mod purges;
mod rate_ceiling;
mod routes;
mod tenants;
mod tokens;
mod versions;

pub(crate) use tokens::insert as insert_token;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::infra::auth::RequestId;
use crate::infra::error::{self, ApiError};
use crate::infra::state::AppState;

/// Largest request body the API reads (plugin uploads will have their own limit).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "Manage tenants, domains, upstreams, certificates, plugins, tokens and configuration snapshots of a Gatehouse edge."
    ),
    modifiers(&BearerAuth),
    // Referenced by the common error responses every operation gets (`CommonErrors`).
    components(schemas(error::ErrorBody, error::ErrorDetail, error::FieldProblem)),
    tags(
        (name = "tenants", description = "Tenants own everything else"),
        (name = "tokens", description = "API tokens and their roles"),
        (name = "audit", description = "The append-only log of every change"),
        (name = "pools", description = "Upstream pools and their targets (draft)"),
        (name = "domains", description = "Hostnames, their ownership and routes (draft)"),
        (name = "certificates", description = "Certificate chains and sealed private keys (draft)"),
        (name = "plugins", description = "WebAssembly policy plugins (draft)"),
        (name = "versions", description = "Publish the draft, list, compare and roll back versions"),
        (name = "dataplane", description = "How proxy nodes fetch versions and report on them"),
        (name = "cache", description = "Purging a tenant's objects from the edge cache of every node"),
        (name = "acme", description = "ACME HTTP-01 challenges served by every node"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token: gh_<prefix>_<secret>"))
                    .build(),
            ),
        );
    }
}

/// Declares the errors any operation can answer with, so that every
/// operation's responses are complete without repeating them per handler.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let common = [
            ("400", "Malformed request or invalid field"),
            ("401", "Missing or invalid API token"),
            ("404", "No such object (or another tenant's)"),
            ("405", "Method not supported by this resource"),
            ("413", "Request body too large"),
            ("429", "Too many failed authentications from this client"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for (status, description) in common {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

/// The API's routes and their OpenAPI document.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Merged in the order the OpenAPI document lists the paths.
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tenants::router())
        .merge(rate_ceiling::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(pools::router())
        .merge(domains::router())
        .merge(routes::router())
        .merge(certificates::router())
        .merge(plugins::router())
        .merge(versions::router())
        .merge(purges::router())
        .merge(acme::router())
        .merge(dataplane::router())
        .split_for_parts();
    // After the routes are merged in: the modifier walks every operation.
    utoipa::Modify::modify(&CommonErrors, &mut doc);
    (router, doc)
}

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The admin API over `state`.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api();
    let doc = Arc::new(doc);
    routes
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(middleware::from_fn_with_state(state.clone(), audit_invalid))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Audits mutations refused as invalid (400, 413, 422) that their handler did
/// not audit itself — most are refused before a handler knows what they
/// would change — as `<METHOD> <route>`, under the caller. Unauthenticated
/// requests are not events of anyone's (they are in the access log).
async fn audit_invalid(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    use axum::http::{Method, StatusCode};
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let action = format!("{} {route}", req.method());
    let target = req.uri().path().to_string();
    let meta = crate::infra::auth::RequestMeta::of(&req);
    let (resp, caller, audited) = crate::infra::audit::scoped(next.run(req)).await;
    let invalid = matches!(
        resp.status(),
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
    );
    if let (true, false, Some(who)) = (invalid, audited, caller) {
        crate::infra::audit::record_refusal(&state, &who, &meta, &action, None, target, "invalid")
            .await;
    }
    resp
}

/// Gives every request an id (its own `x-request-id` if sane), runs it in a
/// span carrying that id (so internal errors logged by handlers name it),
/// echoes the id back and writes one access log line.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let span = tracing::info_span!("admin_request", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    tracing::info!(
        target: "gatehouse::admin::access",
        request_id = %id,
        method = %method,
        path,
        status = resp.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
