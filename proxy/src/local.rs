//! Responses Gatehouse generates itself: route actions (`respond`, `redirect`,
//! `static`) and error bodies.
//!
//! Each builder returns a [`LocalResponse`]; the proxy adds the common headers
//! (request id, the domain's response header rules) and writes it, so every
//! locally generated answer is treated the same way.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use gatehouse_config::model::{PathMatch, Redirect, Respond, StaticFiles};
use http::{header, Method, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use tokio::io::AsyncReadExt;

/// A response ready to be written downstream.
pub struct LocalResponse {
    /// Status and headers (Content-Length included).
    pub head: ResponseHeader,
    /// Body.
    pub body: LocalBody,
}

/// Body of a [`LocalResponse`].
pub enum LocalBody {
    /// No body (HEAD, 304, redirects).
    Empty,
    /// In memory.
    Bytes(Bytes),
    /// Streamed from a file of the given length.
    File(tokio::fs::File, u64),
}

impl LocalBody {
    fn from_bytes(body: Bytes) -> Self {
        if body.is_empty() {
            LocalBody::Empty
        } else {
            LocalBody::Bytes(body)
        }
    }
}

impl LocalResponse {
    /// A response with an in-memory body and content type.
    pub fn with_body(status: StatusCode, content_type: &str, body: Bytes) -> Self {
        let mut head = ResponseHeader::build(status, Some(4)).expect("status is valid");
        let _ = head.insert_header(header::CONTENT_TYPE, content_type);
        let _ = head.insert_header(header::CONTENT_LENGTH, body.len());
        LocalResponse {
            head,
            body: LocalBody::from_bytes(body),
        }
    }

    /// A small JSON error body: `{"error":"<code>","status":N}`. Never includes internals.
    pub fn json_error(status: StatusCode, code: &str) -> Self {
        let body = serde_json::json!({ "error": code, "status": status.as_u16() }).to_string();
        Self::with_body(status, "application/json", Bytes::from(body))
    }

    /// A response with the given header fields and body (a plugin's answer).
    pub fn from_parts(
        status: StatusCode,
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
        body: Bytes,
    ) -> Self {
        let mut head =
            ResponseHeader::build(status, Some(headers.len() + 1)).expect("status is valid");
        for (n, v) in headers {
            let _ = head.append_header(n, v);
        }
        let _ = head.insert_header(header::CONTENT_LENGTH, body.len());
        LocalResponse {
            head,
            body: LocalBody::from_bytes(body),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: StatusCode, location: &str) -> Self {
        let mut r = Self::with_body(status, "text/plain; charset=utf-8", Bytes::new());
        let _ = r.head.insert_header(header::LOCATION, location);
        r
    }

    /// Writes the response; `head_only` (HEAD requests) skips the body.
    pub async fn write(self, session: &mut Session, head_only: bool) -> pingora::Result<()> {
        let no_body = head_only || matches!(self.body, LocalBody::Empty);
        session
            .write_response_header(Box::new(self.head), no_body)
            .await?;
        if no_body {
            return Ok(());
        }
        match self.body {
            LocalBody::Empty => Ok(()),
            LocalBody::Bytes(b) => session.write_response_body(Some(b), true).await,
            LocalBody::File(mut f, len) => {
                let mut remaining = len;
                while remaining > 0 {
                    let chunk = remaining.min(64 * 1024) as usize;
                    let mut buf = vec![0u8; chunk];
                    let n = f.read(&mut buf).await.map_err(|e| {
                        pingora::Error::because(
                            pingora::ErrorType::InternalError,
                            "reading static file",
                            e,
                        )
                    })?;
                    if n == 0 {
                        // The file shrank after we sent Content-Length: cut the connection
                        // rather than send a short body that looks complete.
                        return pingora::Error::e_explain(
                            pingora::ErrorType::InternalError,
                            "static file truncated",
                        );
                    }
                    buf.truncate(n);
                    remaining -= n as u64;
                    session
                        .write_response_body(Some(Bytes::from(buf)), remaining == 0)
                        .await?;
                }
                Ok(())
            }
        }
    }
}

/// The `respond` action.
pub fn respond(r: &Respond) -> LocalResponse {
    let mut head =
        ResponseHeader::build(r.status, Some(r.headers.len() + 2)).expect("status is valid");
    let mut has_type = false;
    for (name, value) in &r.headers {
        has_type |= name == header::CONTENT_TYPE;
        let _ = head.append_header(name.clone(), value.clone());
    }
    if !has_type && !r.body.is_empty() {
        let _ = head.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    }
    let _ = head.insert_header(header::CONTENT_LENGTH, r.body.len());
    LocalResponse {
        head,
        body: if r.body.is_empty() {
            LocalBody::Empty
        } else {
            LocalBody::Bytes(Bytes::from(r.body.clone()))
        },
    }
}

/// The `redirect` action; `path_and_query` is appended when `keep_path` is set.
pub fn redirect(r: &Redirect, path_and_query: &str) -> LocalResponse {
    if r.keep_path {
        let base = r.to.trim_end_matches('/');
        LocalResponse::redirect(r.status, &format!("{base}{path_and_query}"))
    } else {
        LocalResponse::redirect(r.status, &r.to)
    }
}

/// Where a static request maps on disk.
#[derive(Debug, PartialEq, Eq)]
pub enum StaticTarget {
    /// A regular file inside the root.
    File(PathBuf),
    /// A directory requested without a trailing slash: redirect to add it.
    AddSlash,
    /// Nothing servable (missing, outside the root, hidden, no index).
    NotFound,
}

/// Maps a request path to a file under `cfg.root`, refusing anything that
/// would leave it: `..` segments, encoded or not; symlinks pointing out;
/// hidden (dot) files; NUL bytes.
pub async fn resolve_static(
    cfg: &StaticFiles,
    route_path: &str,
    route_match: PathMatch,
    path: &str,
) -> StaticTarget {
    let rel = if cfg.strip_prefix && route_match == PathMatch::Prefix && route_path != "/" {
        path.strip_prefix(route_path.trim_end_matches('/'))
            .unwrap_or(path)
    } else {
        path
    };
    let Ok(decoded) = percent_encoding::percent_decode_str(rel).decode_utf8() else {
        return StaticTarget::NotFound;
    };
    let mut candidate = cfg.root.clone();
    for seg in decoded.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        if seg.starts_with('.') || seg.contains('\0') || seg.contains('\\') {
            return StaticTarget::NotFound;
        }
        candidate.push(seg);
    }
    let Some(real) = inside_root(&cfg.root, &candidate).await else {
        return StaticTarget::NotFound;
    };
    let Ok(meta) = tokio::fs::metadata(&real).await else {
        return StaticTarget::NotFound;
    };
    if meta.is_file() {
        return StaticTarget::File(real);
    }
    if !meta.is_dir() {
        return StaticTarget::NotFound;
    }
    if !decoded.ends_with('/') && !decoded.is_empty() {
        return StaticTarget::AddSlash;
    }
    for index in &cfg.index {
        if let Some(f) = inside_root(&cfg.root, &real.join(index)).await {
            if tokio::fs::metadata(&f).await.is_ok_and(|m| m.is_file()) {
                return StaticTarget::File(f);
            }
        }
    }
    StaticTarget::NotFound
}

async fn inside_root(root: &Path, candidate: &Path) -> Option<PathBuf> {
    let real = tokio::fs::canonicalize(candidate).await.ok()?;
    real.starts_with(root).then_some(real)
}

/// The `static` action: serves `file` with validators and conditional GET.
pub async fn serve_file(
    cfg: &StaticFiles,
    file: &Path,
    req: &pingora::http::RequestHeader,
) -> LocalResponse {
    if req.method != Method::GET && req.method != Method::HEAD {
        let mut r = LocalResponse::json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        let _ = r.head.insert_header(header::ALLOW, "GET, HEAD");
        return r;
    }
    let (f, meta) = match tokio::fs::File::open(file).await {
        Ok(f) => match f.metadata().await {
            Ok(m) => (f, m),
            Err(_) => return LocalResponse::json_error(StatusCode::NOT_FOUND, "not_found"),
        },
        Err(_) => return LocalResponse::json_error(StatusCode::NOT_FOUND, "not_found"),
    };
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let since_epoch = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let etag = format!(
        "\"{:x}-{:x}{:08x}\"",
        len,
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    );
    let last_modified = httpdate::fmt_http_date(mtime);

    let not_modified = if let Some(inm) = req.headers.get(header::IF_NONE_MATCH) {
        // RFC 9110 §13.1.2: weak comparison; If-Modified-Since is ignored when If-None-Match is present.
        inm.to_str().is_ok_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        })
    } else if let Some(ims) = req.headers.get(header::IF_MODIFIED_SINCE) {
        ims.to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|ims| {
                since_epoch.as_secs()
                    <= ims
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs()
            })
    } else {
        false
    };

    let status = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut head = ResponseHeader::build(status, Some(6)).expect("status is valid");
    let _ = head.insert_header(header::ETAG, &etag);
    let _ = head.insert_header(header::LAST_MODIFIED, &last_modified);
    if let Some(cc) = &cfg.cache_control {
        let _ = head.insert_header(header::CACHE_CONTROL, cc.clone());
    }
    if not_modified {
        return LocalResponse {
            head,
            body: LocalBody::Empty,
        };
    }
    let _ = head.insert_header(header::CONTENT_TYPE, content_type(file));
    let _ = head.insert_header(header::CONTENT_LENGTH, len);
    LocalResponse {
        head,
        body: if len == 0 {
            LocalBody::Empty
        } else {
            LocalBody::File(f, len)
        },
    }
}

/// Content type from the extension; text types get `charset=utf-8`.
fn content_type(file: &Path) -> String {
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg"
        );
    if textual && mime.get_param("charset").is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(root: &Path) -> StaticFiles {
        StaticFiles {
            root: std::fs::canonicalize(root).unwrap(),
            index: vec!["index.html".into()],
            strip_prefix: true,
            cache_control: None,
        }
    }

    #[tokio::test]
    async fn resolves_inside_root_and_refuses_escapes() {
        let dir = std::env::temp_dir().join(format!("gh-static-{}", std::process::id()));
        let root = dir.join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        std::fs::write(root.join("sub/a.css"), "a").unwrap();
        std::fs::write(root.join(".env"), "secret").unwrap();
        std::fs::write(dir.join("outside.txt"), "o").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("outside.txt"), root.join("link.txt"));
        let c = cfg(&root);
        let real = c.root.clone();
        let r = |p: &'static str| {
            let c = c.clone();
            async move { resolve_static(&c, "/static", PathMatch::Prefix, p).await }
        };
        assert_eq!(
            r("/static/").await,
            StaticTarget::File(real.join("index.html"))
        );
        assert_eq!(
            r("/static").await,
            StaticTarget::File(real.join("index.html"))
        );
        assert_eq!(
            r("/static/sub/a.css").await,
            StaticTarget::File(real.join("sub/a.css"))
        );
        assert_eq!(r("/static/sub").await, StaticTarget::AddSlash);
        assert_eq!(r("/static/sub/").await, StaticTarget::NotFound);
        assert_eq!(r("/static/../outside.txt").await, StaticTarget::NotFound);
        assert_eq!(
            r("/static/%2e%2e/outside.txt").await,
            StaticTarget::NotFound
        );
        assert_eq!(
            r("/static/sub/..%2f..%2foutside.txt").await,
            StaticTarget::NotFound
        );
        assert_eq!(r("/static/link.txt").await, StaticTarget::NotFound);
        assert_eq!(r("/static/.env").await, StaticTarget::NotFound);
        assert_eq!(r("/static/nope").await, StaticTarget::NotFound);
        assert_eq!(content_type(Path::new("a.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
