//! Checking what a plugin returned before any of it touches a request.
//!
//! A decision is applied whole or not at all: every header name and value is
//! parsed, framing headers (which would let a plugin smuggle requests or
//! desynchronise the connection) are refused, sizes are bounded, and a pool
//! hint must name a pool of the plugin's own tenant. Anything wrong makes the
//! whole decision invalid, which the binding's failure mode then handles.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::bindings::gatehouse::plugin::types::{
    Header, HeaderOp, LocalResponse, RequestDecision, ResponseDecision,
};
use crate::call::Failure;

/// Most header edits one decision may carry.
pub const MAX_HEADER_OPS: usize = 64;
/// Bytes of header names and values one decision may carry: a request's
/// whole head is limited to 32 KiB by default (`limits.max_header_bytes`).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Largest local response body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest path rewrite or cache key.
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

/// One checked header edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Replace all fields of this name.
    Set(HeaderName, HeaderValue),
    /// Add a field.
    Append(HeaderName, HeaderValue),
    /// Remove all fields of this name.
    Remove(HeaderName),
}

/// Checked request edits from one plugin.
#[derive(Debug, Default, Clone)]
pub struct RequestEdits {
    /// Header edits on the upstream request.
    pub headers: Vec<HeaderEdit>,
    /// New path and query.
    pub path: Option<http::uri::PathAndQuery>,
    /// Index of the pool to use instead of the route's.
    pub pool: Option<usize>,
    /// Cache key override.
    pub cache_key: Option<String>,
    /// Key for the rate limits with `key: plugin` (`host.rate-limit-key`).
    pub rate_limit_key: Option<String>,
}

/// Checked response edits from one plugin.
pub type ResponseEdits = Vec<HeaderEdit>;

/// A checked local response.
#[derive(Debug, Clone)]
pub struct Respond {
    /// Status.
    pub status: StatusCode,
    /// Header fields.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: Bytes,
}

/// What the chain should do after one plugin's `on-request`.
#[derive(Debug)]
pub enum RequestOutcome {
    /// Apply these edits and go on.
    Continue(RequestEdits),
    /// Answer with this response.
    Respond(Respond),
}

/// What to do after one plugin's `on-response`.
#[derive(Debug)]
pub enum ResponseOutcome {
    /// Apply these header edits.
    Continue(ResponseEdits),
    /// Replace the response.
    Respond(Respond),
}

fn invalid(msg: impl Into<String>) -> Failure {
    Failure::InvalidDecision(msg.into())
}

fn name(n: &str) -> Result<HeaderName, Failure> {
    let name = HeaderName::from_bytes(n.as_bytes())
        .map_err(|_| invalid(format!("invalid header name {:?}", cut(n))))?;
    // `cdn-loop` too: without it a pool pointing back at the edge would loop.
    if gatehouse_config::FRAMING_HEADERS.contains(&name.as_str()) || name == "cdn-loop" {
        return Err(invalid(format!(
            "header {:?} frames the message and is managed by the proxy",
            name.as_str()
        )));
    }
    Ok(name)
}

fn value(v: &[u8], n: &HeaderName) -> Result<HeaderValue, Failure> {
    HeaderValue::from_bytes(v)
        .map_err(|_| invalid(format!("invalid value for header {:?}", n.as_str())))
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Refuses headers whose names and values add up to more than
/// [`MAX_HEADER_BYTES`] (checked before any is parsed or copied).
fn header_bytes<'h>(headers: impl Iterator<Item = (&'h str, &'h [u8])>) -> Result<(), Failure> {
    let total: usize = headers.map(|(n, v)| n.len() + v.len()).sum();
    if total > MAX_HEADER_BYTES {
        return Err(invalid(format!(
            "{total} bytes of header names and values; at most {MAX_HEADER_BYTES}"
        )));
    }
    Ok(())
}

fn header_ops(ops: Vec<HeaderOp>) -> Result<Vec<HeaderEdit>, Failure> {
    if ops.len() > MAX_HEADER_OPS {
        return Err(invalid(format!(
            "{} header edits; at most {MAX_HEADER_OPS}",
            ops.len()
        )));
    }
    header_bytes(ops.iter().map(|op| match op {
        HeaderOp::Set(h) | HeaderOp::Append(h) => (h.name.as_str(), h.value.as_slice()),
        HeaderOp::Remove(n) => (n.as_str(), &[][..]),
    }))?;
    ops.into_iter()
        .map(|op| match op {
            HeaderOp::Set(Header { name: n, value: v }) => {
                let n = name(&n)?;
                let v = value(&v, &n)?;
                Ok(HeaderEdit::Set(n, v))
            }
            HeaderOp::Append(Header { name: n, value: v }) => {
                let n = name(&n)?;
                let v = value(&v, &n)?;
                Ok(HeaderEdit::Append(n, v))
            }
            HeaderOp::Remove(n) => Ok(HeaderEdit::Remove(name(&n)?)),
        })
        .collect()
}

fn respond(r: LocalResponse) -> Result<Respond, Failure> {
    let status = StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| {
            invalid(format!(
                "local response status {} is not 200..=599",
                r.status
            ))
        })?;
    if r.body.len() > MAX_BODY_BYTES {
        return Err(invalid(format!(
            "local response body of {} bytes; at most {MAX_BODY_BYTES}",
            r.body.len()
        )));
    }
    if matches!(status.as_u16(), 204 | 304) && !r.body.is_empty() {
        return Err(invalid(format!("a {status} response has no body")));
    }
    if r.headers.len() > MAX_HEADER_OPS {
        return Err(invalid(format!(
            "{} response headers; at most {MAX_HEADER_OPS}",
            r.headers.len()
        )));
    }
    header_bytes(
        r.headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice())),
    )?;
    let headers = r
        .headers
        .into_iter()
        .map(|h| {
            let n = name(&h.name)?;
            let v = value(&h.value, &n)?;
            Ok((n, v))
        })
        .collect::<Result<_, Failure>>()?;
    Ok(Respond {
        status,
        headers,
        body: Bytes::from(r.body),
    })
}

/// Checks an `on-request` decision. `pool_of_tenant` resolves a pool name
/// among the plugin's tenant's pools.
pub fn check_request(
    d: RequestDecision,
    pool_of_tenant: impl Fn(&str) -> Option<usize>,
) -> Result<RequestOutcome, Failure> {
    match d {
        RequestDecision::Respond(r) => Ok(RequestOutcome::Respond(respond(r)?)),
        RequestDecision::Continue(e) => {
            let path = match e.path {
                None => None,
                Some(p) => {
                    if !p.starts_with('/') || p.len() > MAX_TEXT_BYTES {
                        return Err(invalid(format!(
                            "path rewrite {:?} must start with '/' and be at most {MAX_TEXT_BYTES} bytes",
                            cut(&p)
                        )));
                    }
                    Some(
                        http::uri::PathAndQuery::try_from(p.as_str())
                            .map_err(|_| invalid(format!("invalid path rewrite {:?}", cut(&p))))?,
                    )
                }
            };
            let pool = match e.pool {
                None => None,
                Some(name) => Some(pool_of_tenant(&name).ok_or_else(|| {
                    invalid(format!(
                        "pool {:?} is not a pool of this tenant",
                        cut(&name)
                    ))
                })?),
            };
            if e.cache_key
                .as_ref()
                .is_some_and(|k| k.len() > MAX_TEXT_BYTES)
            {
                return Err(invalid(format!("cache key over {MAX_TEXT_BYTES} bytes")));
            }
            Ok(RequestOutcome::Continue(RequestEdits {
                headers: header_ops(e.headers)?,
                path,
                pool,
                cache_key: e.cache_key,
                rate_limit_key: None,
            }))
        }
    }
}

/// Checks an `on-response` decision.
pub fn check_response(d: ResponseDecision) -> Result<ResponseOutcome, Failure> {
    match d {
        ResponseDecision::Continue(ops) => Ok(ResponseOutcome::Continue(header_ops(ops)?)),
        ResponseDecision::Respond(r) => Ok(ResponseOutcome::Respond(respond(r)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::gatehouse::plugin::types::RequestEdits as WitEdits;

    fn edits() -> WitEdits {
        WitEdits {
            headers: vec![],
            path: None,
            pool: None,
            cache_key: None,
        }
    }

    fn set(n: &str, v: &[u8]) -> HeaderOp {
        HeaderOp::Set(Header {
            name: n.into(),
            value: v.to_vec(),
        })
    }

    #[test]
    fn valid_edits_are_kept_in_order() {
        let mut e = edits();
        e.headers = vec![set("x-a", b"1"), HeaderOp::Remove("x-b".into())];
        e.path = Some("/new?q=1".into());
        e.pool = Some("canary".into());
        let out = check_request(RequestDecision::Continue(e), |n| {
            (n == "canary").then_some(3)
        })
        .unwrap();
        let RequestOutcome::Continue(e) = out else {
            panic!("expected continue")
        };
        assert_eq!(
            e.headers,
            vec![
                HeaderEdit::Set(
                    HeaderName::from_static("x-a"),
                    HeaderValue::from_static("1")
                ),
                HeaderEdit::Remove(HeaderName::from_static("x-b")),
            ]
        );
        assert_eq!(e.path.unwrap().as_str(), "/new?q=1");
        assert_eq!(e.pool, Some(3));
    }

    #[test]
    fn header_bytes_are_bounded_per_decision() {
        // 63 appends of 2 KiB each: within the count, over the bytes.
        let value = vec![b'v'; 2048];
        let mut e = edits();
        e.headers = (0..63).map(|_| set("x", &value)).collect();
        let err = check_request(RequestDecision::Continue(e), |_| None).unwrap_err();
        assert!(err.to_string().contains("at most 32768"), "{err}");
        let mut e = edits();
        e.headers = (0..15).map(|_| set("x", &value)).collect();
        assert!(check_request(RequestDecision::Continue(e), |_| None).is_ok());
    }

    #[test]
    fn framing_headers_and_bad_values_are_refused() {
        for op in [
            set("content-length", b"0"),
            set("Transfer-Encoding", b"chunked"),
            set("x-ok", b"bad\r\nvalue"),
            set("bad name", b"1"),
        ] {
            let mut e = edits();
            e.headers = vec![op];
            let err = check_request(RequestDecision::Continue(e), |_| None).unwrap_err();
            assert_eq!(err.kind(), "invalid_decision", "{err}");
        }
    }

    #[test]
    fn foreign_pools_and_bad_paths_are_refused() {
        let mut e = edits();
        e.pool = Some("other-tenant-pool".into());
        assert!(check_request(RequestDecision::Continue(e), |_| None).is_err());
        let mut e = edits();
        e.path = Some("no-slash".into());
        assert!(check_request(RequestDecision::Continue(e), |_| None).is_err());
    }

    #[test]
    fn local_responses_are_bounded() {
        let big = LocalResponse {
            status: 200,
            headers: vec![],
            body: vec![0; MAX_BODY_BYTES + 1],
        };
        assert!(check_request(RequestDecision::Respond(big), |_| None).is_err());
        let interim = LocalResponse {
            status: 101,
            headers: vec![],
            body: vec![],
        };
        assert!(check_request(RequestDecision::Respond(interim), |_| None).is_err());
        let ok = LocalResponse {
            status: 403,
            headers: vec![Header {
                name: "content-type".into(),
                value: b"text/plain".to_vec(),
            }],
            body: b"no".to_vec(),
        };
        let RequestOutcome::Respond(r) =
            check_request(RequestDecision::Respond(ok), |_| None).unwrap()
        else {
            panic!("expected respond")
        };
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(&r.body[..], b"no");
    }
}
