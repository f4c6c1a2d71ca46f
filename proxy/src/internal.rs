//! The internal listener: `/metrics` (Prometheus text), `/healthz` (the
//! process is alive), `/readyz` (a config is loaded and the traffic
//! listeners accept connections) and `/bans` (list with GET, lift with
//! `DELETE /bans?ip=<addr>[&domain=<hosts>]`) and `POST /cache/purge`
//! (a JSON [`PurgeRequest`](crate::cache::purge::PurgeRequest); answers
//! `{"purged": n}`). `/bans` and `/cache/purge` take the bearer token of
//! `internal_api.token_file` and are off without one. Bind it to loopback or
//! a private network; tenants' pools can never reach it (see
//! [`crate::target_policy`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::bans::Bans;
use crate::metrics::metrics;
use crate::node::NodeState;
use crate::snapshot::SnapshotStore;

/// Handler of the internal listener.
pub struct InternalApi {
    store: Arc<SnapshotStore>,
    ready: Arc<AtomicBool>,
    node: Arc<NodeState>,
}

impl InternalApi {
    /// Serves metrics and health for `store`; `/readyz` follows `ready`;
    /// `/bans` lists and lifts `node`'s bans.
    pub fn new(store: Arc<SnapshotStore>, ready: Arc<AtomicBool>, node: Arc<NodeState>) -> Self {
        InternalApi { store, ready, node }
    }
}

impl InternalApi {
    /// Bans name clients and purges change what every tenant is served:
    /// they take `internal_api.token_file`'s bearer token, and without one
    /// configured they are off (401 or 403, nothing else said).
    #[allow(clippy::result_large_err)]
    fn authorize(&self, session: &ServerSession) -> Result<(), Response<Vec<u8>>> {
        let snap = self.store.load();
        let credential = &snap.config.internal_api;
        if credential.token.is_none() {
            return Err(reply(
                StatusCode::FORBIDDEN,
                "application/json",
                br#"{"error":"forbidden","detail":"set internal_api.token_file to use this endpoint"}"#
                    .to_vec(),
            ));
        }
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if credential.authorizes(presented) {
            return Ok(());
        }
        let mut refused = reply(
            StatusCode::UNAUTHORIZED,
            "application/json",
            br#"{"error":"unauthorized"}"#.to_vec(),
        );
        refused.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        Err(refused)
    }
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for InternalApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/metrics" => {
                // Gauges of state owned elsewhere are read now, by their owners.
                let m = metrics();
                self.store.load().certs.export_expiries(m);
                crate::cache::export_usage(m);
                reply(StatusCode::OK, "text/plain; version=0.0.4", m.render())
            }
            "/healthz" => reply(
                StatusCode::OK,
                "application/json",
                br#"{"status":"ok"}"#.to_vec(),
            ),
            "/readyz" => {
                let version = self.store.load().version;
                if self.ready.load(Ordering::Acquire) {
                    let body = format!(r#"{{"status":"ready","config_version":{version}}}"#);
                    reply(StatusCode::OK, "application/json", body.into_bytes())
                } else {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "application/json",
                        br#"{"status":"starting"}"#.to_vec(),
                    )
                }
            }
            "/bans" | "/cache/purge" => {
                if let Err(refused) = self.authorize(session) {
                    return refused;
                }
                match path.as_str() {
                    "/bans" => bans_endpoint(&self.node.bans, session),
                    _ => purge_endpoint(session).await,
                }
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "application/json",
                br#"{"error":"not_found"}"#.to_vec(),
            ),
        }
    }
}

/// Largest purge request body read.
const MAX_PURGE_BODY: usize = 64 * 1024;

/// `POST /cache/purge` with a JSON purge request.
async fn purge_endpoint(session: &mut ServerSession) -> Response<Vec<u8>> {
    let json = |status, v: serde_json::Value| {
        reply(status, "application/json", v.to_string().into_bytes())
    };
    if session.req_header().method != http::Method::POST {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "method_not_allowed" }),
        );
    }
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_PURGE_BODY {
                    return json(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        serde_json::json!({ "error": "payload_too_large" }),
                    );
                }
            }
            Ok(None) => break,
            Err(_) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": "unreadable body" }),
                )
            }
        }
    }
    let req: crate::cache::purge::PurgeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": "invalid_request", "detail": e.to_string() }),
            )
        }
    };
    match crate::cache::purge::purge(&req.tenant, &req.target()) {
        Ok(n) => json(StatusCode::OK, serde_json::json!({ "purged": n })),
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "invalid_request", "field": e.field, "detail": e.message }),
        ),
    }
}

/// `GET /bans` lists the bans in force; `DELETE /bans?ip=..[&domain=..]` lifts them.
fn bans_endpoint(bans: &Bans, session: &ServerSession) -> Response<Vec<u8>> {
    let req = session.req_header();
    let json = |status, v: serde_json::Value| {
        reply(status, "application/json", v.to_string().into_bytes())
    };
    match req.method {
        http::Method::GET => json(StatusCode::OK, serde_json::json!({ "bans": bans.list() })),
        http::Method::DELETE => {
            let mut ip = None;
            let mut domain = None;
            for pair in req.uri.query().unwrap_or("").split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned();
                match k {
                    "ip" => ip = v.parse::<std::net::IpAddr>().ok(),
                    "domain" => domain = Some(v),
                    _ => {}
                }
            }
            match ip {
                Some(ip) => {
                    let lifted = bans.lift(ip, domain.as_deref());
                    json(StatusCode::OK, serde_json::json!({ "lifted": lifted }))
                }
                None => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": "ip: expected ?ip=<address>" }),
                ),
            }
        }
        _ => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "method_not_allowed" }),
        ),
    }
}
