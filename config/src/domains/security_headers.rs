//! `domains[].security_headers`: a preset plus overrides, resolved once into
//! the headers the proxy adds. Holds the file types, the resolved headers
//! and [`check`].

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::check::Checker;
use model::SecurityHeaders;

pub mod file {
    //! Security headers as operators write them.

    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    /// A starting set of security headers; the fields of [`SecurityHeaders`] override it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::SecurityPreset))]
    #[serde(rename_all = "snake_case")]
    pub enum SecurityPreset {
        /// `nosniff`, framing by the same origin only, `strict-origin-when-cross-origin`
        /// referrers, `Server`/`X-Powered-By` removed; no HSTS.
        Basic,
        /// Basic, plus HSTS for a year with subdomains, no framing at all, no referrer,
        /// and sensors, camera, microphone, geolocation, payment and USB disabled.
        Strict,
    }

    /// How the domain's pages may be framed (`X-Frame-Options` and CSP `frame-ancestors`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::FrameOptions))]
    #[serde(rename_all = "snake_case")]
    pub enum FrameOptions {
        /// Never (`DENY`, `frame-ancestors 'none'`).
        Deny,
        /// By pages of the same origin (`SAMEORIGIN`, `frame-ancestors 'self'`).
        Sameorigin,
        /// No framing headers.
        Off,
    }

    /// HTTP Strict Transport Security, sent on HTTPS responses only.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Hsts))]
    #[serde(deny_unknown_fields)]
    pub struct Hsts {
        /// How long browsers remember to use HTTPS only (default 365d; 0s clears it).
        #[serde(default, with = "humantime_serde")]
        #[cfg_attr(feature = "schema", schema(value_type = Option<String>, example = "365d"))]
        pub max_age: Option<Duration>,
        /// Also for every subdomain.
        #[serde(default)]
        pub include_subdomains: bool,
        /// Ask to be in browsers' preload lists (needs `include_subdomains` and at least a year).
        #[serde(default)]
        pub preload: bool,
    }

    /// Security response headers of a domain. Each is added only when the
    /// response does not already carry it, so an application can send a stricter
    /// policy of its own; `strip_server_headers` removes what the upstream sent.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::SecurityHeaders))]
    #[serde(deny_unknown_fields)]
    pub struct SecurityHeaders {
        /// Start from `basic` or `strict` (default: nothing).
        pub preset: Option<SecurityPreset>,
        /// HSTS on HTTPS responses (`false`-like: leave out by not setting it and no `strict` preset).
        pub hsts: Option<Hsts>,
        /// `X-Content-Type-Options: nosniff`.
        pub content_type_options: Option<bool>,
        /// Framing policy.
        pub frame_options: Option<FrameOptions>,
        /// `Referrer-Policy`, e.g. `strict-origin-when-cross-origin`.
        pub referrer_policy: Option<String>,
        /// `Permissions-Policy`, e.g. `camera=(), microphone=()`.
        pub permissions_policy: Option<String>,
        /// Remove `Server` and `X-Powered-By` from upstream responses.
        pub strip_server_headers: Option<bool>,
    }
}

pub mod model {
    //! Security headers, resolved.

    use http::{HeaderName, HeaderValue};

    /// Security headers of a domain, ready to apply.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct SecurityHeaders {
        /// Added to every response that lacks them.
        pub headers: Vec<(HeaderName, HeaderValue)>,
        /// `Strict-Transport-Security`, added to HTTPS responses that lack it.
        pub hsts: Option<HeaderValue>,
        /// Remove `Server` and `X-Powered-By`.
        pub strip_server_headers: bool,
    }
}

/// Resolves a domain's security headers: the preset, then each field.
pub(crate) fn check(
    h: &file::SecurityHeaders,
    path: &str,
    cx: &mut Checker<'_>,
) -> SecurityHeaders {
    use file::{FrameOptions, SecurityPreset};
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    let preset = h.preset;
    let strict = preset == Some(SecurityPreset::Strict);
    let any = preset.is_some();
    let nosniff = h.content_type_options.unwrap_or(any);
    let frame = h.frame_options.unwrap_or(match preset {
        Some(SecurityPreset::Strict) => FrameOptions::Deny,
        Some(SecurityPreset::Basic) => FrameOptions::Sameorigin,
        None => FrameOptions::Off,
    });
    let referrer = h.referrer_policy.clone().or_else(|| match preset {
        Some(SecurityPreset::Strict) => Some("no-referrer".into()),
        Some(SecurityPreset::Basic) => Some("strict-origin-when-cross-origin".into()),
        None => None,
    });
    let permissions = h.permissions_policy.clone().or_else(|| {
        strict.then(|| {
            "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), \
             microphone=(), payment=(), usb=()"
                .into()
        })
    });
    let hsts = h.hsts.clone().or(strict.then_some(file::Hsts {
        max_age: Some(YEAR),
        include_subdomains: true,
        preload: false,
    }));
    let mut out = SecurityHeaders {
        strip_server_headers: h.strip_server_headers.unwrap_or(any),
        ..SecurityHeaders::default()
    };
    let mut add = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.headers.push((HeaderName::from_static(name), v));
        }
    };
    if nosniff {
        add("x-content-type-options", "nosniff");
    }
    match frame {
        FrameOptions::Deny => {
            add("x-frame-options", "DENY");
            add("content-security-policy", "frame-ancestors 'none'");
        }
        FrameOptions::Sameorigin => {
            add("x-frame-options", "SAMEORIGIN");
            add("content-security-policy", "frame-ancestors 'self'");
        }
        FrameOptions::Off => {}
    }
    if let Some(r) = &referrer {
        const POLICIES: [&str; 8] = [
            "no-referrer",
            "no-referrer-when-downgrade",
            "origin",
            "origin-when-cross-origin",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin",
            "unsafe-url",
        ];
        // A comma list is allowed: browsers use the last token they know.
        if r.split(',').all(|t| POLICIES.contains(&t.trim())) {
            add("referrer-policy", r);
        } else {
            cx.err(
                format!("{path}.referrer_policy"),
                format!(
                    "unknown referrer policy {r:?}; one of {}",
                    POLICIES.join(", ")
                ),
            );
        }
    }
    if let Some(p) = &permissions {
        if HeaderValue::from_str(p).is_ok() && !p.trim().is_empty() {
            add("permissions-policy", p);
        } else {
            cx.err(
                format!("{path}.permissions_policy"),
                "must be a non-empty header value, e.g. \"camera=(), microphone=()\"",
            );
        }
    }
    if let Some(hsts) = hsts {
        let max_age = hsts.max_age.unwrap_or(YEAR);
        if hsts.preload && (!hsts.include_subdomains || max_age < YEAR) {
            cx.err(
                format!("{path}.hsts.preload"),
                "preload lists require include_subdomains and a max_age of at least 365d",
            );
        }
        let mut v = format!("max-age={}", max_age.as_secs());
        if hsts.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if hsts.preload {
            v.push_str("; preload");
        }
        out.hsts = HeaderValue::from_str(&v).ok();
    }
    out
}
