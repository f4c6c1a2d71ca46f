//! A minimal HTTP/1.1 GET for ownership checks: one request to a known
//! address with a given `Host`, a small bounded body, a deadline.
//!
//! The admin makes exactly one kind of outgoing request, so it does not carry
//! a general HTTP client; responses are parsed with `httparse`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole exchange must finish within this.
const DEADLINE: Duration = Duration::from_secs(5);
/// Largest response read (head and body).
const MAX_RESPONSE: usize = 16 * 1024;

/// GETs `path` from `addr` with `Host: host`; the body of a 200 response.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<String, String> {
    tokio::time::timeout(DEADLINE, exchange(addr, host, path))
        .await
        .map_err(|_| format!("no answer within {DEADLINE:?}"))?
}

async fn exchange(addr: SocketAddr, host: &str, path: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gatehouse-admin\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE {
            return Err("response too large".into());
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("truncated response".into()),
        Err(e) => return Err(format!("invalid response: {e}")),
    };
    if resp.code != Some(200) {
        return Err(format!("status {}", resp.code.unwrap_or(0)));
    }
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = &buf[head_len..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(|_| "body is not UTF-8".into())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match httparse::parse_chunk_size(body) {
            Ok(httparse::Status::Complete((_, 0))) => return Ok(out),
            Ok(httparse::Status::Complete((start, size))) => {
                let end = usize::try_from(size)
                    .ok()
                    .and_then(|size| start.checked_add(size))
                    .ok_or("chunk too large")?;
                let data = body.get(start..end).ok_or("truncated chunk")?;
                out.extend_from_slice(data);
                body = body.get(end + 2..).ok_or("truncated chunk")?;
            }
            _ => return Err("invalid chunked body".into()),
        }
    }
}
