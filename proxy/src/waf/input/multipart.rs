//! Multipart bodies: fields are arguments, uploads give their file names;
//! what split parsers read differently (odd names, transfer encodings,
//! unexpected charsets) is recorded as a [`Problem`].

use std::borrow::Cow;

use super::{allowed_charset, charset_of, Parsed, Problem, Source, MAX_VARS};

impl<'r> Parsed<'r> {
    pub(super) fn multipart(
        &mut self,
        body: &'r [u8],
        content_type: &str,
        truncated: bool,
    ) -> bool {
        use futures_util::FutureExt;
        let Ok(boundary) = multer::parse_boundary(content_type) else {
            self.problems.push(Problem::BodyUnparsable("multipart"));
            return false;
        };
        let chunk: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::copy_from_slice(body));
        let stream = futures_util::stream::iter([chunk]);
        let mut mp = multer::Multipart::new(stream, boundary);
        loop {
            if self.vars.len() >= MAX_VARS {
                return true;
            }
            // The whole body is in memory, so every future is ready at once.
            let next = match mp.next_field().now_or_never() {
                Some(Ok(Some(field))) => field,
                Some(Ok(None)) => return true,
                Some(Err(_)) | None if truncated => return false,
                Some(Err(_)) | None => {
                    self.problems.push(Problem::BodyUnparsable("multipart"));
                    return false;
                }
            };
            let headers = next.headers().clone();
            if headers.contains_key("content-transfer-encoding") {
                self.problems.push(Problem::MultipartTransferEncoding);
            }
            if let Some(cd) = headers.get(http::header::CONTENT_DISPOSITION) {
                check_disposition(cd.as_bytes(), &mut self.problems);
            }
            if let Some(ct) = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                if let Some(cs) = charset_of(ct) {
                    if !allowed_charset(&cs) {
                        self.problems.push(Problem::MultipartCharset(cs));
                    }
                }
            }
            let name = next.name().unwrap_or("").to_string();
            let file = next.file_name().map(str::to_string);
            let data = match next.bytes().now_or_never() {
                Some(Ok(b)) => b,
                _ if truncated => return false,
                _ => {
                    self.problems.push(Problem::BodyUnparsable("multipart"));
                    return false;
                }
            };
            if let Some(f) = file {
                self.push(
                    Source::FileName,
                    Cow::Owned(name.clone()),
                    Cow::Owned(f.into_bytes()),
                );
                self.arg_count += 1;
                self.push(
                    Source::ArgName,
                    Cow::Owned(name.clone()),
                    Cow::Owned(name.into_bytes()),
                );
            } else {
                if name == "_charset_" {
                    let cs = String::from_utf8_lossy(&data).trim().to_ascii_lowercase();
                    if !allowed_charset(&cs) {
                        self.problems.push(Problem::MultipartCharset(cs));
                    }
                }
                self.arg(Cow::Owned(name.into_bytes()), Cow::Owned(data.to_vec()));
            }
        }
    }
}

/// A multipart `Content-Disposition` whose `name`/`filename` holds quotes,
/// semicolons or backslashes reads differently in different parsers, which is
/// how multipart WAF bypasses work.
fn check_disposition(cd: &[u8], problems: &mut Vec<Problem>) {
    let text = String::from_utf8_lossy(cd);
    for param in text.split(';').skip(1) {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        if k != "name" && k != "filename" && k != "filename*" {
            continue;
        }
        let v = v.trim();
        let inner = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        if inner.contains(['"', '\'', '\\', '=', ';']) || (v.starts_with('"') != v.ends_with('"')) {
            problems.push(Problem::MultipartSuspiciousName(inner.to_string()));
        }
    }
}
