//! Stage 2, route: from the host and path to the domain and route that serve them.
//!
//! Contract: [`find_domain`] looks the host up in the snapshot's router and
//! records the domain, its label and its tenant in the context;
//! [`check_connection`] refuses a TLS connection asking for a name its
//! certificate does not cover; [`force_https`] answers plain HTTP with the
//! redirect when the domain wants HTTPS; [`match_route`] picks the route for
//! the method and path. Refusals are [`Refusal`]s; answers are [`Stop`]s.

use http::StatusCode;
use pingora::proxy::Session;

use super::answer::Stop;
use super::ctx::RequestCtx;
use super::refusal::Refusal;
use crate::local::LocalResponse;
use crate::route::{CompiledRoute, DomainPolicy, HostMatch, RouteMatch};
use crate::snapshot::Snapshot;
use crate::tls::TlsSni;

/// The domain serving the request's host.
pub(super) fn find_domain<'s>(
    ctx: &mut RequestCtx,
    snap: &'s Snapshot,
) -> Result<HostMatch<'s>, Refusal> {
    let found = snap
        .router
        .lookup(&ctx.vars.host)
        .ok_or(Refusal::UnknownHost)?;
    ctx.domain = Some(found.index);
    ctx.domain_label = Some(found.label.clone());
    ctx.vars.tenant = found.domain.tenant.clone();
    Ok(found)
}

/// A TLS connection may only carry requests for names its certificate
/// covers: otherwise a connection made for one tenant's name could address
/// another tenant's domain (RFC 9110 §15.5.20).
pub(super) fn check_connection(
    session: &Session,
    ctx: &RequestCtx,
    snap: &Snapshot,
) -> Result<(), Refusal> {
    if ctx.vars.scheme != "https" {
        return Ok(());
    }
    if snap
        .certs
        .same_certificate(tls_sni(session), &ctx.vars.host)
    {
        Ok(())
    } else {
        Err(Refusal::MisdirectedRequest)
    }
}

/// The SNI the TLS client sent, if any (borrowed: checked on every HTTPS request).
pub(super) fn tls_sni(session: &Session) -> Option<&str> {
    session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .and_then(|d| d.extension.get::<TlsSni>())
        .and_then(|s| s.0.as_deref())
}

/// The 308 to HTTPS for plain HTTP requests to a `force_https` domain (when
/// an HTTPS listener exists). 308 keeps the method and body (RFC 9110 §15.4.9).
pub(super) fn force_https(
    ctx: &RequestCtx,
    snap: &Snapshot,
    domain: &DomainPolicy,
) -> Result<(), Stop> {
    if !domain.force_https || ctx.vars.scheme == "https" {
        return Ok(());
    }
    let Some(https) = snap.config.listeners.https else {
        return Ok(());
    };
    let port = match https.port() {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let host = &ctx.vars.host;
    let location = if host.contains(':') {
        format!("https://[{host}]{port}{}", ctx.vars.request_uri)
    } else {
        format!("https://{host}{port}{}", ctx.vars.request_uri)
    };
    Err(Stop::Respond(Box::new(LocalResponse::redirect(
        StatusCode::PERMANENT_REDIRECT,
        &location,
    ))))
}

/// The route for the method and path: 404 when none matches the path, 405
/// (with `Allow`) when routes match it for other methods only.
pub(super) fn match_route<'d>(
    session: &Session,
    domain: &'d DomainPolicy,
    path: &str,
) -> Result<&'d CompiledRoute, Refusal> {
    match domain.match_route(&session.req_header().method, path) {
        RouteMatch::Found(r) => Ok(r),
        RouteMatch::NotFound => Err(Refusal::NoRoute),
        RouteMatch::MethodNotAllowed(allowed) => Err(Refusal::MethodNotAllowed {
            allow: allowed
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
