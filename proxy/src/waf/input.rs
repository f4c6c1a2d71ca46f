//! Turns a request into the inputs rules look at: the path, query and body
//! arguments (URL-encoded, JSON, XML, multipart), cookies, headers and file
//! names, each tagged with where it came from.
//!
//! Parsing never fails: what cannot be parsed is recorded as a [`Problem`]
//! (protocol rules score those) and inspected raw instead.

use std::borrow::Cow;

use http::HeaderMap;

mod form;
mod json;
mod multipart;
mod xml;

use form::percent_decode;

/// Where an input came from; each is one bit of a rule's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// The request path, URL-decoded once.
    Path,
    /// The path and query exactly as received.
    RawUri,
    /// An argument's name (query, form, JSON key, XML element/attribute, multipart field).
    ArgName,
    /// An argument's value.
    Arg,
    /// A cookie's name.
    CookieName,
    /// A cookie's value.
    Cookie,
    /// `User-Agent`.
    UserAgent,
    /// `Referer`.
    Referer,
    /// Any other header value.
    Header,
    /// A header name.
    HeaderName,
    /// An uploaded file's name (multipart or `X-Filename`-style headers).
    FileName,
    /// A body that is not parsed into arguments, as received.
    Body,
}

impl Source {
    pub(crate) const fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The name used in logs (`args`, `headers`, ...).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Source::Path => "path",
            Source::RawUri => "uri",
            Source::ArgName => "args_names",
            Source::Arg => "args",
            Source::CookieName => "cookies_names",
            Source::Cookie => "cookies",
            Source::UserAgent | Source::Referer | Source::Header => "headers",
            Source::HeaderName => "headers_names",
            Source::FileName => "files",
            Source::Body => "body",
        }
    }
}

/// One input.
#[derive(Debug, Clone)]
pub(crate) struct Var<'r> {
    pub source: Source,
    /// The argument, header or cookie name (empty for the path and body).
    pub name: Cow<'r, str>,
    pub value: Cow<'r, [u8]>,
}

/// Something about the request's encoding that is wrong in itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A body that does not parse as its declared type.
    BodyUnparsable(&'static str),
    /// A `%` not followed by two hex digits in the query or a form body.
    InvalidUrlEncoding,
    /// Multipart: a part header or name with characters that split parsers disagree on.
    MultipartSuspiciousName(String),
    /// Multipart: a part uses `Content-Transfer-Encoding` (deprecated; hides content).
    MultipartTransferEncoding,
    /// Multipart: a part or `_charset_` names a charset outside the allowed ones.
    MultipartCharset(String),
    /// More inputs than are inspected (`MAX_VARS`).
    TooManyInputs,
}

/// A request, as the WAF needs it.
pub struct RequestInput<'a> {
    /// Method as received.
    pub method: &'a str,
    /// Path and query exactly as received.
    pub raw_uri: &'a [u8],
    /// Protocol version.
    pub version: http::Version,
    /// The host the request was routed by (HTTP/2 has no `Host` header).
    pub host: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The inspected prefix of the body (empty without one).
    pub body: &'a [u8],
    /// The body is longer than `body`.
    pub body_truncated: bool,
}

/// The request's inputs and facts protocol rules check.
pub(crate) struct Parsed<'r> {
    /// Where names built while parsing live (JSON paths).
    arena: &'r bumpalo::Bump,
    pub vars: Vec<Var<'r>>,
    pub problems: Vec<Problem>,
    /// Lowercase media type of the body (no parameters), if declared.
    pub media_type: Option<String>,
    /// Number of arguments and their total length (names + values).
    pub arg_count: usize,
    pub args_bytes: usize,
}

/// Most inputs taken from one request: bounds the work a crafted body can cause.
const MAX_VARS: usize = 2048;
/// Longest input name kept (JSON paths).
const MAX_NAME: usize = 256;
/// Deepest JSON/XML nesting followed.
const MAX_DEPTH: usize = 64;

/// The lowercase media type of a `Content-Type` value.
pub(crate) fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Headers that carry an upload's file name in some frameworks.
fn is_filename_header(name: &str) -> bool {
    // `X-File-Name`, `x_filename`, `X-Filenames`: letters compared, the rest skipped.
    let mut letters = name
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase());
    b"xfilename".iter().all(|&c| letters.next() == Some(c))
        && matches!(letters.next(), None | Some(b's'))
        && letters.next().is_none()
}

pub(crate) fn parse<'r>(req: &'r RequestInput<'r>, arena: &'r bumpalo::Bump) -> Parsed<'r> {
    let mut p = Parsed {
        arena,
        // Roughly one input per 12 body bytes (JSON keys and values), so
        // that the list rarely grows (and copies) while parsing.
        vars: Vec::with_capacity((64 + req.body.len() / 12).min(MAX_VARS)),
        problems: Vec::new(),
        media_type: None,
        arg_count: 0,
        args_bytes: 0,
    };
    let (path, query) = match memchr::memchr(b'?', req.raw_uri) {
        Some(i) => (&req.raw_uri[..i], Some(&req.raw_uri[i + 1..])),
        None => (req.raw_uri, None),
    };
    p.vars.push(Var {
        source: Source::RawUri,
        name: Cow::Borrowed(""),
        value: Cow::Borrowed(req.raw_uri),
    });
    p.vars.push(Var {
        source: Source::Path,
        name: Cow::Borrowed(""),
        value: percent_decode(path, false),
    });
    if let Some(q) = query {
        p.url_encoded(q);
    }
    for (name, value) in req.headers {
        let n = name.as_str();
        p.push(
            Source::HeaderName,
            Cow::Borrowed(""),
            Cow::Borrowed(n.as_bytes()),
        );
        let v = value.as_bytes();
        match n {
            "cookie" => p.cookies(v),
            "user-agent" => p.push(Source::UserAgent, Cow::Borrowed(n), Cow::Borrowed(v)),
            "referer" => p.push(Source::Referer, Cow::Borrowed(n), Cow::Borrowed(v)),
            _ if is_filename_header(n) => {
                p.push(Source::FileName, Cow::Borrowed(n), Cow::Borrowed(v));
                p.push(Source::Header, Cow::Borrowed(n), Cow::Borrowed(v));
            }
            _ => p.push(Source::Header, Cow::Borrowed(n), Cow::Borrowed(v)),
        }
    }
    if !req.body.is_empty() {
        let ct = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = media_type(ct);
        p.body(req.body, ct, &media, req.body_truncated);
        p.media_type = Some(media);
    } else if let Some(ct) = req.headers.get(http::header::CONTENT_TYPE) {
        p.media_type = ct.to_str().ok().map(media_type);
    }
    if p.vars.len() >= MAX_VARS && !p.problems.contains(&Problem::TooManyInputs) {
        p.problems.push(Problem::TooManyInputs);
    }
    p
}

impl<'r> Parsed<'r> {
    #[inline]
    fn push(&mut self, source: Source, name: Cow<'r, str>, value: Cow<'r, [u8]>) {
        if self.vars.len() < MAX_VARS {
            self.vars.push(Var {
                source,
                name,
                value,
            });
        } else if !self.problems.contains(&Problem::TooManyInputs) {
            // What is not inspected must not pass quietly: the request is refused.
            self.problems.push(Problem::TooManyInputs);
        }
    }

    fn arg(&mut self, name: Cow<'r, [u8]>, value: Cow<'r, [u8]>) {
        self.arg_count += 1;
        self.args_bytes += name.len() + value.len();
        let name_text: Cow<'r, str> = match name {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        };
        let name_bytes = match &name_text {
            Cow::Borrowed(n) => Cow::Borrowed(n.as_bytes()),
            Cow::Owned(n) => Cow::Owned(n.as_bytes().to_vec()),
        };
        self.push(Source::ArgName, name_text.clone(), name_bytes);
        self.push(Source::Arg, name_text, value);
    }

    fn cookies(&mut self, header: &'r [u8]) {
        for pair in header.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = String::from_utf8_lossy(name.trim_ascii());
            self.push(
                Source::CookieName,
                name.clone(),
                Cow::Owned(name.as_bytes().to_vec()),
            );
            self.push(Source::Cookie, name, Cow::Borrowed(value));
        }
    }

    fn body(&mut self, body: &'r [u8], content_type: &str, media: &str, truncated: bool) {
        let parsed = match media {
            "application/x-www-form-urlencoded" => {
                self.url_encoded(body);
                true
            }
            m if m == "application/json"
                || m.ends_with("+json")
                || m == "application/x-ndjson"
                || m == "application/csp-report" =>
            {
                self.json(body, truncated)
            }
            m if m == "text/xml" || m == "application/xml" || m.ends_with("+xml") => {
                self.xml(body, truncated)
            }
            m if m.starts_with("multipart/") => self.multipart(body, content_type, truncated),
            _ => false,
        };
        if !parsed {
            self.push(Source::Body, Cow::Borrowed(""), Cow::Borrowed(body));
        }
    }
}

/// The `charset` parameter of a media type, lowercase and unquoted.
pub(crate) fn charset_of(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']).to_ascii_lowercase())
    })
}

/// Charsets a body may declare (the common web ones).
pub(crate) fn allowed_charset(cs: &str) -> bool {
    matches!(
        cs,
        "utf-8" | "utf8" | "iso-8859-1" | "iso-8859-15" | "windows-1252" | "us-ascii"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(uri: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> RequestInput<'a> {
        RequestInput {
            method: "POST",
            raw_uri: uri.as_bytes(),
            version: http::Version::HTTP_11,
            host: None,
            headers,
            body,
            body_truncated: false,
        }
    }

    fn values(p: &Parsed, source: Source) -> Vec<String> {
        p.vars
            .iter()
            .filter(|v| v.source == source)
            .map(|v| String::from_utf8_lossy(&v.value).into_owned())
            .collect()
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        h
    }

    #[test]
    fn query_form_cookies_and_headers_become_inputs() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        h.insert("cookie", "sid=abc; theme=dark".parse().unwrap());
        h.insert("user-agent", "curl/8".parse().unwrap());
        h.insert("x-file-name", "a.php".parse().unwrap());
        let req = input("/a%20b?q=1+2&x=%3Cb%3E", &h, b"c=d&e");
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert_eq!(values(&p, Source::Path), ["/a b"]);
        assert_eq!(values(&p, Source::Arg), ["1 2", "<b>", "d", ""]);
        assert_eq!(values(&p, Source::ArgName), ["q", "x", "c", "e"]);
        assert_eq!(values(&p, Source::Cookie), ["abc", "dark"]);
        assert_eq!(values(&p, Source::UserAgent), ["curl/8"]);
        assert_eq!(values(&p, Source::FileName), ["a.php"]);
        assert_eq!(p.arg_count, 4);
    }

    #[test]
    fn json_keys_and_leaves_are_arguments() {
        let h = json_headers();
        let req = input(
            "/",
            &h,
            br#"{"a":{"__proto__":{"x":"1 OR 1=1"}},"n":[2,"s"]}"#,
        );
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert_eq!(values(&p, Source::ArgName), ["a", "__proto__", "x", "n"]);
        // Numbers are only digits, signs and exponents: nothing to inspect.
        assert_eq!(values(&p, Source::Arg), ["1 OR 1=1", "s"]);
        let names: Vec<_> = p
            .vars
            .iter()
            .filter(|v| v.source == Source::Arg)
            .map(|v| v.name.to_string())
            .collect();
        assert_eq!(names, ["a.__proto__.x", "n"]);
    }

    #[test]
    fn keys_repeated_by_array_items_are_one_input() {
        let h = json_headers();
        let req = input("/", &h, br#"{"items":[{"a":"x"},{"a":"y"}],"b":1,"b":2}"#);
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        // Both items' `a` are one input; the object's own repeat stays.
        assert_eq!(values(&p, Source::ArgName), ["items", "a", "b", "b"]);
        assert_eq!(values(&p, Source::Arg), ["x", "y"]);
        assert_eq!(p.arg_count, 5, "every key is still counted");
    }

    #[test]
    fn dotted_keys_and_nested_keys_stay_apart() {
        let h = json_headers();
        let req = input(
            "/",
            &h,
            br#"[{"q.$ne":"x","q":{"$ne":"y"}},{"q":{"$ne":"z"}}]"#,
        );
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        // `q.$ne` (one key) and `q` -> `$ne` share a dotted name, not a key.
        assert_eq!(values(&p, Source::ArgName), ["q.$ne", "q", "$ne"]);
        assert_eq!(values(&p, Source::Arg), ["x", "y", "z"]);
    }

    #[test]
    fn only_numbers_that_can_be_overflow_probes_are_inputs() {
        let h = json_headers();
        let req = input(
            "/",
            &h,
            br#"{"a":4294967296,"b":-2147483648,"c":4294967296.0,"d":42,"e":-7,"f":4.95,"g":true}"#,
        );
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert_eq!(
            values(&p, Source::Arg),
            ["4294967296", "-2147483648", "4294967296.0"]
        );
    }

    #[test]
    fn repeated_long_keys_do_not_grow_the_arena() {
        let h = json_headers();
        let long = "k".repeat(250);
        let mut body = format!(r#"{{"{long}":["#);
        for _ in 0..20_000 {
            body.push_str(r#"{"a":0},"#);
        }
        body.push_str(r#"{"a":0}]}"#);
        let req = input("/", &h, body.as_bytes());
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert_eq!(values(&p, Source::ArgName).len(), 2);
        assert!(
            arena.allocated_bytes() < 64 * 1024,
            "{} bytes for two names",
            arena.allocated_bytes()
        );
    }

    #[test]
    fn distinct_keys_past_the_input_cap_build_no_names() {
        let h = json_headers();
        let long = "k".repeat(250);
        let mut body = format!(r#"{{"{long}":{{"#);
        for i in 0..20_000 {
            body.push_str(&format!(r#""a{i}":0,"#));
        }
        body.push_str(r#""z":0}}"#);
        let req = input("/", &h, body.as_bytes());
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert!(p.problems.contains(&Problem::TooManyInputs));
        // About MAX_VARS names of ~255 bytes, not 20,000.
        assert!(
            arena.allocated_bytes() < 2 * MAX_VARS * 300,
            "{} bytes",
            arena.allocated_bytes()
        );
    }

    #[test]
    fn broken_bodies_are_problems_and_inspected_raw() {
        let h = json_headers();
        let req = input("/", &h, b"{not json");
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert_eq!(p.problems, [Problem::BodyUnparsable("json")]);
        assert_eq!(values(&p, Source::Body), ["{not json"]);
    }

    #[test]
    fn xml_text_and_attributes_are_arguments() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "text/xml".parse().unwrap());
        let req = input(
            "/",
            &h,
            br#"<?xml version="1.0"?><root><a probe="&lt;x&gt;">t&amp;t</a></root>"#,
        );
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert_eq!(values(&p, Source::Arg), ["<x>", "t&t"]);
    }

    #[test]
    fn multipart_fields_files_and_suspicious_names() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "multipart/form-data; boundary=XX".parse().unwrap(),
        );
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\n\r\n<?php\r\n--XX\r\nContent-Disposition: form-data; name=\"t\"\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nhello\r\n--XX--\r\n";
        let req = input("/", &h, body);
        let arena = bumpalo::Bump::new();
        let p = parse(&req, &arena);
        assert_eq!(values(&p, Source::FileName), ["a.php"]);
        assert_eq!(values(&p, Source::Arg), ["hello"]);
        assert_eq!(p.problems, [Problem::MultipartCharset("utf-7".into())]);
    }
}
