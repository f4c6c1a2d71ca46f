//! Request-level rules: protocol facts that are not a pattern in one input.
//! Each returns what it found (for the log) or `None`.

use std::sync::OnceLock;

use http::header;

use super::lists;
use crate::waf::engine::CheckCtx;
use crate::waf::input::{self, Problem, Source};

/// A header read as context (`Host` for "is this the site itself",
/// `Content-Length` for "has a body", the presence of `User-Agent`): seen
/// whatever the rule's exclusions say. A header a check inspects is read
/// with [`CheckCtx::header`], which honours `headers:<name>` exclusions.
fn header_str<'a>(ctx: &'a CheckCtx<'_>, name: impl http::header::AsHeaderName) -> Option<&'a str> {
    ctx.req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn has_body(ctx: &CheckCtx<'_>) -> bool {
    !ctx.req.body.is_empty()
        || ctx.req.headers.contains_key(header::TRANSFER_ENCODING)
        || header_str(ctx, header::CONTENT_LENGTH).is_some_and(|v| v.trim() != "0")
}

pub(super) fn method(ctx: &CheckCtx<'_>) -> Option<String> {
    (!ctx
        .policy
        .allowed_methods
        .iter()
        .any(|m| m == ctx.req.method))
    .then(|| ctx.req.method.to_string())
}

pub(super) fn content_type_allowed(ctx: &CheckCtx<'_>) -> Option<String> {
    let ct = ctx.header(header::CONTENT_TYPE)?;
    if ct.trim().is_empty() {
        return None;
    }
    let media = input::media_type(ct);
    (!ctx.policy.allowed_content_types.contains(&media)).then_some(media)
}

pub(super) fn content_type_syntax(ctx: &CheckCtx<'_>) -> Option<String> {
    static RE: OnceLock<regex::bytes::Regex> = OnceLock::new();
    // ASCII classes: media types are tokens (RFC 9110), and a Unicode `\w`
    // makes the regex several times slower on every request with a body.
    let re = RE.get_or_init(|| {
        regex::bytes::Regex::new(
            r#"(?-u)^\s*[\w.+*-]+/[\w.+*-]+(?:\s*;\s*[\w.-]+=\s?(?:"[^"]*"|[^;"\s]+))*\s*;?\s*$"#,
        )
        .expect("static regex")
    });
    let ct = ctx.header(header::CONTENT_TYPE)?;
    (!ct.trim().is_empty() && !re.is_match(ct.as_bytes())).then(|| ct.to_string())
}

pub(super) fn charset(ctx: &CheckCtx<'_>) -> Option<String> {
    let cs = input::charset_of(ctx.header(header::CONTENT_TYPE)?)?;
    (!input::allowed_charset(&cs)).then_some(cs)
}

pub(super) fn multiple_charsets(ctx: &CheckCtx<'_>) -> Option<String> {
    let ct = ctx.header(header::CONTENT_TYPE)?;
    (ct.to_ascii_lowercase().matches("charset").count() > 1).then(|| ct.to_string())
}

pub(super) fn body_without_type(ctx: &CheckCtx<'_>) -> Option<String> {
    let declared = header_str(ctx, header::CONTENT_TYPE).is_some_and(|v| !v.trim().is_empty());
    (!ctx.req.body.is_empty() && !declared).then(|| format!("{} body bytes", ctx.req.body.len()))
}

pub(super) fn get_with_body(ctx: &CheckCtx<'_>) -> Option<String> {
    (matches!(ctx.req.method, "GET" | "HEAD") && has_body(ctx)).then(|| ctx.req.method.to_string())
}

pub(super) fn length_and_chunked(ctx: &CheckCtx<'_>) -> Option<String> {
    (ctx.req.headers.contains_key(header::CONTENT_LENGTH)
        && ctx.req.headers.contains_key(header::TRANSFER_ENCODING))
    .then(|| "content-length + transfer-encoding".to_string())
}

pub(super) fn content_length_syntax(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.req
        .headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .find(|v| v.is_empty() || !v.as_bytes().iter().all(u8::is_ascii_digit))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

pub(super) fn body_unparsable(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.parsed.problems.iter().find_map(|p| match p {
        Problem::BodyUnparsable(kind) => Some(format!("invalid {kind} body")),
        Problem::TooManyInputs => Some("more inputs than are inspected".into()),
        _ => None,
    })
}

/// Headers with no business in a request to a web application: `Proxy`
/// (httpoxy), WebDAV locking, `Content-Range` on requests, method overrides
/// that sneak past method rules, Next.js's internal subrequest marker, and
/// `Content-Encoding` (a compressed body cannot be inspected).
pub(super) fn restricted_header(ctx: &CheckCtx<'_>) -> Option<String> {
    const RESTRICTED: [&str; 9] = [
        "proxy",
        "lock-token",
        "content-range",
        "if",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-middleware-subrequest",
        "content-encoding",
    ];
    ctx.req
        .headers
        .keys()
        .find(|k| RESTRICTED.contains(&k.as_str()))
        .map(|k| k.as_str().to_string())
}

fn parse_ranges(v: &str) -> Option<Vec<(Option<u64>, Option<u64>)>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    spec.split(',')
        .map(|r| {
            let (a, b) = r.trim().split_once('-')?;
            let num = |s: &str| {
                if s.trim().is_empty() {
                    Some(None)
                } else {
                    s.trim().parse().ok().map(Some)
                }
            };
            Some((num(a)?, num(b)?))
        })
        .collect()
}

pub(super) fn range(ctx: &CheckCtx<'_>) -> Option<String> {
    let v = ctx.header(header::RANGE)?;
    let ranges = parse_ranges(v)?;
    ranges
        .iter()
        .any(|r| matches!(r, (Some(a), Some(b)) if b < a) || *r == (None, None))
        .then(|| v.to_string())
}

pub(super) fn many_ranges(ctx: &CheckCtx<'_>) -> Option<String> {
    let v = ctx.header(header::RANGE)?;
    (v.matches(',').count() >= 5).then(|| v.to_string())
}

pub(super) fn any_range(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.header(header::RANGE).map(str::to_string)
}

pub(super) fn request_range(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.header(http::header::HeaderName::from_static("request-range"))
        .map(str::to_string)
}

pub(super) fn connection(ctx: &CheckCtx<'_>) -> Option<String> {
    let v = ctx.header(header::CONNECTION)?;
    let tokens: Vec<String> = v
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let keep = tokens.iter().filter(|t| *t == "keep-alive").count();
    let close = tokens.iter().filter(|t| *t == "close").count();
    (keep > 1 || close > 1 || (keep > 0 && close > 0)).then(|| v.to_string())
}

/// Argument names over 100 bytes or more than 255 arguments: parsers and
/// frameworks disagree at such extremes, and no form needs them.
pub(super) fn arg_limits(ctx: &CheckCtx<'_>) -> Option<String> {
    if ctx.parsed.arg_count > 255 {
        return Some(format!("{} arguments", ctx.parsed.arg_count));
    }
    ctx.vars()
        .find(|v| v.source == Source::ArgName && v.value.len() > 100)
        .map(|v| format!("argument name of {} bytes", v.value.len()))
}

/// A JavaScript `\uXXXX` escape in the path, an argument (name or value,
/// from the query or the body), a cookie or a header of a request whose body
/// is not JSON (JSON decodes those escapes itself, so there they are
/// ordinary text). Only parsed inputs are looked at, as CRS does
/// (`REQUEST_URI|REQUEST_HEADERS|ARGS|ARGS_NAMES`): a multipart file's
/// contents (an uploaded script or JSON file) are data.
pub(super) fn unicode_escape_outside_json(ctx: &CheckCtx<'_>) -> Option<String> {
    static RE: OnceLock<regex::bytes::Regex> = OnceLock::new();
    let json = ctx
        .parsed
        .media_type
        .as_deref()
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if json {
        return None;
    }
    let re =
        RE.get_or_init(|| regex::bytes::Regex::new(r"(?i)\\u[0-9a-f]{4}").expect("static regex"));
    // Only a backslash can start one: most requests have none anywhere.
    let found = |text: &[u8]| {
        memchr::memchr(b'\\', text)
            .and_then(|at| re.find_at(text, at))
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
    };
    ctx.vars()
        .filter(|v| {
            matches!(
                v.source,
                Source::Path
                    | Source::Arg
                    | Source::ArgName
                    | Source::Header
                    | Source::UserAgent
                    | Source::Referer
                    | Source::Cookie
                    | Source::CookieName
            )
        })
        .find_map(|v| found(&v.value))
}

/// `Accept` with a charset outside the allowed ones.
pub(super) fn accept(ctx: &CheckCtx<'_>) -> Option<String> {
    let v = ctx.header(header::ACCEPT)?;
    v.split([',', ';'])
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, cs)| cs.trim().trim_matches(['"', '\'']).to_ascii_lowercase())
        .find(|cs| !input::allowed_charset(cs))
}

pub(super) fn accept_encoding(ctx: &CheckCtx<'_>) -> Option<String> {
    let v = ctx.header(header::ACCEPT_ENCODING)?;
    (v.len() > 100).then(|| format!("{} bytes", v.len()))
}

pub(super) fn multipart_names(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.parsed.problems.iter().find_map(|p| match p {
        Problem::MultipartSuspiciousName(n) => Some(n.clone()),
        _ => None,
    })
}

pub(super) fn multipart_charset(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.parsed.problems.iter().find_map(|p| match p {
        Problem::MultipartCharset(c) => Some(c.clone()),
        _ => None,
    })
}

pub(super) fn multipart_transfer_encoding(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.parsed
        .problems
        .contains(&Problem::MultipartTransferEncoding)
        .then(|| "content-transfer-encoding".to_string())
}

fn request_host(ctx: &CheckCtx<'_>) -> Option<String> {
    if let Some(host) = ctx.req.host {
        return Some(host.to_ascii_lowercase());
    }
    let h = header_str(ctx, header::HOST)?.trim().to_ascii_lowercase();
    let h = match h.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or("").to_string(),
        None => h.rsplit_once(':').map_or(h.clone(), |(host, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                host.to_string()
            } else {
                h.clone()
            }
        }),
    };
    Some(h)
}

pub(super) fn host_is_ip(ctx: &CheckCtx<'_>) -> Option<String> {
    let h = request_host(ctx)?;
    h.parse::<std::net::IpAddr>().is_ok().then_some(h)
}

pub(super) fn http_version(ctx: &CheckCtx<'_>) -> Option<String> {
    use http::Version;
    (!matches!(
        ctx.req.version,
        Version::HTTP_10 | Version::HTTP_11 | Version::HTTP_2 | Version::HTTP_3
    ))
    .then(|| format!("{:?}", ctx.req.version))
}

pub(super) fn invalid_url_encoding(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.parsed
        .problems
        .contains(&Problem::InvalidUrlEncoding)
        .then(|| "invalid % escape".to_string())
}

pub(super) fn method_override_arg(ctx: &CheckCtx<'_>) -> Option<String> {
    let query = memchr::memchr(b'?', ctx.req.raw_uri).map(|i| &ctx.req.raw_uri[i + 1..])?;
    let q = String::from_utf8_lossy(query).to_ascii_lowercase();
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| {
            matches!(
                k.trim(),
                "_method" | "method" | "_httpmethod" | "x-http-method-override"
            )
        })
        .map(|(k, v)| format!("{k}={v}"))
}

pub(super) fn missing_accept(ctx: &CheckCtx<'_>) -> Option<String> {
    (!ctx.req.headers.contains_key(header::ACCEPT) && ctx.req.method != "OPTIONS")
        .then(|| "no Accept".into())
}

pub(super) fn accept_charset(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.header(header::ACCEPT_CHARSET).map(str::to_string)
}

pub(super) fn missing_user_agent(ctx: &CheckCtx<'_>) -> Option<String> {
    header_str(ctx, header::USER_AGENT)
        .is_none_or(|v| v.trim().is_empty())
        .then(|| "no User-Agent".into())
}

pub(super) fn response_cache_control(ctx: &CheckCtx<'_>) -> Option<String> {
    let v = ctx.header(header::CACHE_CONTROL)?.to_ascii_lowercase();
    [
        "public",
        "private",
        "must-revalidate",
        "proxy-revalidate",
        "s-maxage",
        "no-transform",
    ]
    .iter()
    .any(|d| v.contains(d))
    .then_some(v)
}

pub(super) fn cookie_v1(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.req
        .headers
        .get_all(header::COOKIE)
        .iter()
        .find(|v| {
            v.as_bytes()
                .windows(8)
                .any(|w| w.eq_ignore_ascii_case(b"$version"))
        })
        .map(|_| "$Version".into())
}

/// A media type smuggled into a parameter (`application/x-www-form-urlencoded;
/// boundary="application/json"`): servers disagree on which one applies.
pub(super) fn content_type_list(ctx: &CheckCtx<'_>) -> Option<String> {
    static RE: OnceLock<regex::bytes::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::bytes::Regex::new(r#"(?i-u)[;,]\s*(?:[\w.-]+\s*=\s*["']?\s*)?(?:application|text|multipart|image|audio|video|message|model|font)/[\w.+-]+"#)
            .expect("static regex")
    });
    let ct = ctx.header(header::CONTENT_TYPE)?;
    // Most Content-Types have no parameter and cannot name a second type.
    if !ct.contains([';', ',']) {
        return None;
    }
    re.find(ct.as_bytes())
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
}

pub(super) fn query_line_break(ctx: &CheckCtx<'_>) -> Option<String> {
    let query = memchr::memchr(b'?', ctx.req.raw_uri).map(|i| &ctx.req.raw_uri[i + 1..])?;
    let q: Vec<u8> = percent_encoding::percent_decode(query).collect();
    q.iter()
        .any(|&b| b == b'\r' || b == b'\n')
        .then(|| "line break in query".into())
}

pub(super) fn duplicate_args(ctx: &CheckCtx<'_>) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    ctx.vars()
        .filter(|v| v.source == Source::ArgName && !v.name.contains('.'))
        .find(|v| !seen.insert(v.name.as_ref()))
        .map(|v| v.name.to_string())
}

/// Host of an absolute URL (lowercase), if `value` is one.
fn url_host(value: &[u8]) -> Option<String> {
    // Cheap refusal first: most values are not URLs (`memmem::find` would
    // build a searcher per call).
    memchr::memchr_iter(b':', value).find(|&at| value[at..].starts_with(b"://"))?;
    let text = String::from_utf8_lossy(value).trim().to_ascii_lowercase();
    let rest = ["http://", "https://", "ftp://", "ftps://", "file://"]
        .iter()
        .find_map(|s| text.strip_prefix(s))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    Some(host.split(':').next().unwrap_or("").to_string())
}

pub(super) fn off_domain_url(ctx: &CheckCtx<'_>) -> Option<String> {
    let own = request_host(ctx).unwrap_or_default();
    ctx.vars()
        .filter(|v| v.source == Source::Arg)
        .filter_map(|v| url_host(&v.value))
        .find(|h| !h.is_empty() && *h != own && !h.ends_with(&format!(".{own}")))
}

pub(super) fn restricted_upload(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.vars()
        .filter(|v| v.source == Source::FileName)
        .find_map(|v| {
            let name = String::from_utf8_lossy(&v.value)
                .trim()
                .to_ascii_lowercase();
            let base = name.rsplit(['/', '\\']).next().unwrap_or("").to_string();
            lists::RESTRICTED_UPLOADS
                .contains(&base.as_str())
                .then_some(base)
        })
}

pub(super) fn session_id_param(ctx: &CheckCtx<'_>) -> Option<String> {
    let name = ctx
        .vars()
        .filter(|v| v.source == Source::ArgName)
        .find_map(|v| session_param(&v.value))?;
    match header_str(ctx, header::REFERER) {
        None => Some(format!("{name} without Referer")),
        Some(r) => {
            let own = request_host(ctx).unwrap_or_default();
            let from = url_host(r.as_bytes()).unwrap_or_default();
            (from != own).then(|| format!("{name} from {from}"))
        }
    }
}

/// The session parameter `name` is (any case), if it is one.
fn session_param(name: &[u8]) -> Option<&'static str> {
    type Names = std::collections::HashMap<&'static [u8], &'static str, foldhash::fast::FixedState>;
    /// The names, and a bit per length some name has (all are under 64).
    static NAMES: OnceLock<(Names, u64)> = OnceLock::new();
    let (names, lengths) = NAMES.get_or_init(|| {
        let names: Names = lists::SESSION_PARAMS
            .iter()
            .map(|n| (n.as_bytes(), *n))
            .collect();
        let lengths = names.keys().fold(0u64, |m, n| m | 1 << n.len());
        (names, lengths)
    });
    if name.len() >= 64 || lengths & (1 << name.len()) == 0 {
        return None;
    }
    // Lowercased on the stack: this runs for every argument name.
    let mut lower = [0u8; 64];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    names.get(&*lower).copied()
}

/// Many SQL/shell special characters in one value (paranoia 3).
pub(super) fn special_chars(ctx: &CheckCtx<'_>) -> Option<String> {
    ctx.vars()
        .filter(|v| matches!(v.source, Source::Arg | Source::Cookie))
        .find(|v| {
            v.value
                .iter()
                .filter(|b| b"~!@#$%^&*()-+={}[]|:;\"'`<>".contains(b))
                .count()
                >= 12
        })
        .map(|v| v.name.to_string())
}

/// Invalid UTF-8 in the query string's arguments.
pub(super) fn invalid_utf8_args(ctx: &CheckCtx<'_>) -> Option<String> {
    let query = memchr::memchr(b'?', ctx.req.raw_uri).map(|i| &ctx.req.raw_uri[i + 1..])?;
    let decoded: Vec<u8> = percent_encoding::percent_decode(query).collect();
    std::str::from_utf8(&decoded)
        .is_err()
        .then(|| "invalid UTF-8 in query".into())
}

/// Whether `host` (any case) is a name the machine itself answers to.
fn is_loopback_name(host: &[u8]) -> bool {
    const NAMES: [&str; 8] = [
        "localhost",
        "localhost.localdomain",
        "localhost4",
        "localhost4.localdomain4",
        "localhost6",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ip6-loopback",
    ];
    NAMES
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(host))
}

/// An argument naming a loopback host (`http://localhost/...`,
/// `localhost:8080`), unless the site itself is served under that name.
pub(super) fn loopback_url(ctx: &CheckCtx<'_>) -> Option<String> {
    if request_host(ctx).is_some_and(|h| is_loopback_name(h.as_bytes())) {
        return None;
    }
    ctx.vars()
        .filter(|v| v.source == Source::Arg)
        .find(|v| {
            let value = trim_space(&v.value);
            // A host starts the value, follows `://` or follows `@`: most
            // values start with neither name and have neither `:` nor `@`.
            let may_start = |name: &[u8]| {
                value.len() >= name.len() && value[..name.len()].eq_ignore_ascii_case(name)
            };
            (may_start(b"localhost")
                || may_start(b"ip6-")
                || memchr::memchr2(b':', b'@', value).is_some())
                && is_loopback_name(url_host_bytes(value))
        })
        .map(|v| String::from_utf8_lossy(trim_space(&v.value)).to_ascii_lowercase())
}

/// `value` without leading and trailing whitespace, Unicode's included
/// (`\u{a0}localhost`); the UTF-8 check only runs when an end is not ASCII.
fn trim_space(value: &[u8]) -> &[u8] {
    let ascii = value.trim_ascii();
    match (ascii.first(), ascii.last()) {
        (Some(a), Some(z)) if !a.is_ascii() || !z.is_ascii() => std::str::from_utf8(ascii)
            .map(|s| s.trim().as_bytes())
            .unwrap_or(ascii),
        _ => ascii,
    }
}

/// The host part of `scheme://user@host:port/path` or of `host:port/path`.
/// Plain loops rather than `memchr`: values are short, and this runs for
/// every argument.
fn url_host_bytes(value: &[u8]) -> &[u8] {
    let scheme_len = value
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')))
        .unwrap_or(value.len());
    let rest = match value[scheme_len..].strip_prefix(b"://") {
        Some(rest) => rest,
        None => value,
    };
    let authority = match rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')) {
        Some(end) => &rest[..end],
        None => rest,
    };
    let host = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    match host.iter().position(|&b| b == b':') {
        Some(end) => &host[..end],
        None => host,
    }
}

/// `Accept:` or `User-Agent:` sent with nothing in it: clients either send a
/// value or leave the header out; a blank one is a hand-made request.
pub(super) fn empty_accept_or_agent(ctx: &CheckCtx<'_>) -> Option<String> {
    [header::ACCEPT, header::USER_AGENT]
        .into_iter()
        .find(|h| {
            ctx.req
                .headers
                .get(h)
                .is_some_and(|v| v.as_bytes().trim_ascii().is_empty())
        })
        .map(|h| format!("empty {h}"))
}

/// `GET http://host/ HTTP/1.1`: the form meant for forward proxies, sent to
/// an origin to confuse routing and cache keys.
pub(super) fn absolute_form(ctx: &CheckCtx<'_>) -> Option<String> {
    let target = ctx.req.raw_uri;
    (!target.is_empty() && target[0] != b'/' && target != b"*")
        .then(|| String::from_utf8_lossy(target).into_owned())
}

#[cfg(test)]
mod tests;
