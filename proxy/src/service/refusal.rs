//! Why a request was refused or failed: one type read by the response
//! writer (status and JSON error code), the ban counter and the access log.
//!
//! A refusal is recorded once, where the policy that refused is decided; the
//! writer turns it into `{"error":"<code>","status":N}` and the access log's
//! `error` field prints it. Never compare its text: match the variant.

use std::fmt;

use http::{header, StatusCode};

use crate::local::LocalResponse;

/// Why a request was answered with an error instead of being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request target is longer than `limits.max_uri_bytes` (RFC 9110 §15.5.15).
    UriTooLong,
    /// More header fields than `limits.max_header_count` (RFC 6585 §5).
    TooManyHeaders,
    /// Header fields larger than `limits.max_header_bytes` (RFC 6585 §5).
    HeadersTooLarge,
    /// A body (declared or streamed) over `limits.max_body_bytes`.
    PayloadTooLarge,
    /// A path that cannot be normalised (see `route::normalize_path`).
    InvalidPath,
    /// Neither `:authority` nor `Host`.
    MissingHost,
    /// A host that is not a valid name or address.
    InvalidHost,
    /// The request went through Gatehouse too many times (`CDN-Loop`, RFC
    /// 8586): a pool pointed back at the edge.
    LoopDetected,
    /// No domain serves the host.
    UnknownHost,
    /// The domain's IP rules refuse the client.
    IpDenied,
    /// The client is banned from the domain (see `bans`).
    Banned,
    /// A TLS connection asking for a name its certificate does not cover
    /// (RFC 9110 §15.5.20).
    MisdirectedRequest,
    /// No route of the domain matches the path.
    NoRoute,
    /// Routes match the path, but not for this method.
    MethodNotAllowed {
        /// The `Allow` value: the methods the path's routes take.
        allow: String,
    },
    /// A rate limit's bucket is empty.
    RateLimited {
        /// `Retry-After` seconds.
        retry_after: u64,
        /// The refusing rule's advertisement headers.
        advertised: Vec<(&'static str, String)>,
    },
    /// The WAF's anomaly score reached the domain's threshold.
    WafBlocked,
    /// The WAF's process-wide budget for held bodies is full.
    WafBusy,
    /// A plugin failed and its binding fails closed.
    PluginFailed {
        /// The plugin's name.
        plugin: String,
        /// What went wrong (for the log only, never the client).
        failure: String,
        /// The binding's status for the refusal.
        status: StatusCode,
    },
    /// The tenant is over a plugin budget and the binding fails closed:
    /// the request is shed, not queued behind the tenant's other requests.
    PluginOverloaded {
        /// The plugin's name.
        plugin: String,
        /// Which budget (`cpu`, `memory`, `concurrency`).
        budget: &'static str,
        /// `Retry-After` seconds.
        retry_after: u32,
    },
    /// Every target of the pool was tried.
    NoUpstreamAvailable,
    /// Proxying failed after admission, as `fail_to_proxy` classified Pingora's error.
    Failed {
        /// Status sent (0: none, the client went away).
        status: u16,
        /// The JSON error code (`bad_gateway`, `upstream_timeout`, ...).
        code: &'static str,
        /// Pingora's error type.
        kind: &'static str,
    },
}

impl Refusal {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        use Refusal::*;
        match self {
            UriTooLong => StatusCode::URI_TOO_LONG,
            TooManyHeaders | HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            InvalidPath | MissingHost | InvalidHost => StatusCode::BAD_REQUEST,
            LoopDetected => StatusCode::LOOP_DETECTED,
            UnknownHost | NoRoute => StatusCode::NOT_FOUND,
            IpDenied | Banned | WafBlocked => StatusCode::FORBIDDEN,
            MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            WafBusy | PluginOverloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            PluginFailed { status, .. } => *status,
            NoUpstreamAvailable => StatusCode::BAD_GATEWAY,
            Failed { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        use Refusal::*;
        match self {
            UriTooLong => "uri_too_long",
            TooManyHeaders => "too_many_headers",
            HeadersTooLarge => "headers_too_large",
            PayloadTooLarge => "payload_too_large",
            InvalidPath => "invalid_path",
            MissingHost => "missing_host",
            InvalidHost => "invalid_host",
            LoopDetected => "loop_detected",
            UnknownHost => "unknown_host",
            IpDenied => "ip_denied",
            Banned => "banned",
            MisdirectedRequest => "misdirected_request",
            NoRoute => "no_route",
            MethodNotAllowed { .. } => "method_not_allowed",
            RateLimited { .. } => "rate_limited",
            WafBlocked => "waf_blocked",
            WafBusy => "waf_busy",
            PluginFailed { .. } => "plugin_failed",
            PluginOverloaded { .. } => "plugin_overloaded",
            NoUpstreamAvailable => "no_upstream_available",
            Failed { code, .. } => code,
        }
    }

    /// The response that tells the client (details stay in the log).
    pub fn response(&self) -> LocalResponse {
        let mut resp = LocalResponse::json_error(self.status(), self.code());
        match self {
            Refusal::MethodNotAllowed { allow } => {
                let _ = resp.head.insert_header(header::ALLOW, allow.as_str());
            }
            Refusal::RateLimited {
                retry_after,
                advertised,
            } => {
                let _ = resp
                    .head
                    .insert_header(header::RETRY_AFTER, retry_after.to_string());
                // Only the rule that refused is advertised on the 429.
                for (name, value) in advertised {
                    let _ = resp.head.insert_header(*name, value.as_str());
                }
            }
            // The budget frees up as held bodies finish.
            Refusal::WafBusy => {
                let _ = resp.head.insert_header(header::RETRY_AFTER, "1");
            }
            Refusal::PluginOverloaded { retry_after, .. } => {
                let _ = resp
                    .head
                    .insert_header(header::RETRY_AFTER, retry_after.to_string());
            }
            _ => {}
        }
        resp
    }
}

/// The access log's `error` field.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PluginFailed {
                plugin, failure, ..
            } => write!(f, "plugin {plugin}: {failure}"),
            Refusal::PluginOverloaded { plugin, budget, .. } => {
                write!(
                    f,
                    "plugin_overloaded: plugin {plugin}, tenant over its {budget} budget"
                )
            }
            Refusal::Failed { code, kind, .. } => write!(f, "{code}: {kind}"),
            other => f.write_str(other.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_names_the_code_and_plugin_failures_their_cause() {
        assert_eq!(Refusal::Banned.to_string(), "banned");
        let failed = Refusal::PluginFailed {
            plugin: "auth".into(),
            failure: "timeout".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
        };
        assert_eq!(failed.to_string(), "plugin auth: timeout");
        assert_eq!(failed.code(), "plugin_failed");
        let proxy = Refusal::Failed {
            status: 502,
            code: "bad_gateway",
            kind: "ConnectRefused",
        };
        assert_eq!(proxy.to_string(), "bad_gateway: ConnectRefused");
    }

    #[test]
    fn a_shed_request_gets_503_plugin_overloaded_with_retry_after() {
        let shed = Refusal::PluginOverloaded {
            plugin: "auth".into(),
            budget: "cpu",
            retry_after: 2,
        };
        assert_eq!(shed.code(), "plugin_overloaded");
        assert_eq!(
            shed.to_string(),
            "plugin_overloaded: plugin auth, tenant over its cpu budget"
        );
        let r = shed.response();
        assert_eq!(r.head.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.head.headers[header::RETRY_AFTER], "2");
    }

    #[test]
    fn a_429_carries_retry_after_and_only_the_refusing_rule() {
        let r = Refusal::RateLimited {
            retry_after: 3,
            advertised: vec![("ratelimit", "\"api\";r=0;t=3".into())],
        }
        .response();
        assert_eq!(r.head.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.head.headers["retry-after"], "3");
        assert_eq!(r.head.headers["ratelimit"], "\"api\";r=0;t=3");
    }
}
