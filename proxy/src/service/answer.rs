//! Stage 4, answer: what the request gets when it is not proxied, and the one
//! place local responses are written.
//!
//! Contract: [`Stop`] is how any stage ends the request early (a response of
//! its own, a [`Refusal`], or Pingora's error). [`acme_challenge`] answers
//! HTTP-01 validation before routing; [`action`] carries out the route's
//! action: `Ok(pool)` proxies to that pool, a `respond`, `redirect` or
//! `static` action is a [`Stop::Respond`]. [`write`] decorates
//! (see `decorate`) and writes a local response.

use http::{header, HeaderValue, StatusCode};
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::decorate;
use super::refusal::Refusal;
use crate::local::{self, LocalResponse, StaticTarget};
use crate::node::NodeState;
use crate::route::CompiledRoute;
use gatehouse_config::model::RouteAction;

/// Why the request path stops before going upstream.
pub(super) enum Stop {
    /// Answer with this response (a redirect, a challenge, a plugin's own
    /// answer, a route's local action): not a refusal. Boxed: the common
    /// `Ok` path should not carry a response's worth of bytes.
    Respond(Box<LocalResponse>),
    /// Refuse the request.
    Refuse(Refusal),
    /// Pingora failed (reading the body): its error handling takes over.
    Fail(Box<pingora::Error>),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Stop::Refuse(r)
    }
}

impl From<Box<pingora::Error>> for Stop {
    fn from(e: Box<pingora::Error>) -> Self {
        Stop::Fail(e)
    }
}

/// ACME HTTP-01 validation comes before routing, redirects, the WAF and
/// rate limits: the name may not be served yet, or only over HTTPS.
pub(super) fn acme_challenge(node: &NodeState, ctx: &RequestCtx, path: &str) -> Result<(), Stop> {
    match node.challenges.answer(&ctx.vars.host, path) {
        Some(key) => Err(Stop::Respond(Box::new(LocalResponse::from_parts(
            StatusCode::OK,
            vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            key.into(),
        )))),
        None => Ok(()),
    }
}

/// The route's action: the pool to proxy to, or the local answer. A plugin's
/// pool hint proxies the request, whatever the route's action.
pub(super) async fn action(
    session: &Session,
    ctx: &RequestCtx,
    route: &CompiledRoute,
    path: &str,
) -> Result<usize, Stop> {
    if let Some(pool) = ctx.plugins.edits.pool.filter(|_| !route.plugins.is_empty()) {
        return Ok(pool);
    }
    let resp = match &route.action {
        RouteAction::Pool(i) => return Ok(*i),
        RouteAction::Respond(r) => local::respond(r),
        RouteAction::Redirect(r) => local::redirect(r, &ctx.vars.request_uri),
        RouteAction::Static(s) => {
            match local::resolve_static(s, &route.path, route.path_match, path).await {
                StaticTarget::File(f) => local::serve_file(s, &f, session.req_header()).await,
                StaticTarget::AddSlash => {
                    let query = session
                        .req_header()
                        .uri
                        .query()
                        .map(|q| format!("?{q}"))
                        .unwrap_or_default();
                    LocalResponse::redirect(
                        StatusCode::MOVED_PERMANENTLY,
                        &format!("{path}/{query}"),
                    )
                }
                StaticTarget::NotFound => {
                    LocalResponse::json_error(StatusCode::NOT_FOUND, "not_found")
                }
            }
        }
    };
    Err(Stop::Respond(Box::new(resp)))
}

/// Writes a local response after `on-response` and the common decoration.
/// Always `Ok(true)` unless writing fails: the response was sent.
pub(super) async fn write(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut resp: LocalResponse,
) -> pingora::Result<bool> {
    if let Some(replacement) = decorate::response_plugins(ctx, &mut resp.head).await {
        resp = replacement;
    }
    decorate::head(ctx, &mut resp.head);
    ctx.local_status = Some(resp.head.status.as_u16());
    let head_only = session.req_header().method == http::Method::HEAD;
    resp.write(session, head_only).await?;
    Ok(true)
}

/// Records the refusal and writes its response.
pub(super) async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    refusal: Refusal,
) -> pingora::Result<bool> {
    let resp = ctx.refuse(refusal).response();
    write(session, ctx, resp).await
}
