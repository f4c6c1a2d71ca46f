//! PROXY protocol v1/v2 from configured load balancers, on the plain and the
//! TLS listener: the header's source is the client (IP rules, `$client_ip`,
//! forwarded headers), it is read once per connection, it is required from
//! the configured peers and never read from anyone else.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Loopback addresses: 127.0.0.2 plays the load balancer, 127.0.0.1 a
/// client that connects directly.
const BALANCER: &str = "127.0.0.2";

fn config(up: SocketAddr, dir: &std::path::Path) -> String {
    let cert = make_cert(dir, "pp", &["pp.test"]);
    format!(
        r#"
listeners:
  http: "127.0.0.1:{{http}}"
  https: "127.0.0.1:{{https}}"
  internal: "127.0.0.1:{{internal}}"
server: {{ threads: 1, grace_period: 1s }}
client_ip: {{ proxy_protocol: ["{BALANCER}/32"] }}
tenants: [{{ name: t }}]
certificates: [{{ name: c, cert_path: "{}", key_path: "{}" }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{up}" }}] }}]
domains:
  - hosts: [pp.test]
    tenant: t
    certificate: c
    ip_rules: {{ deny: [198.51.100.0/24] }}
    headers: {{ request: {{ set: {{ X-Client: $client_ip }} }} }}
    routes: [{{ path: /, pool: p }}]
"#,
        cert.cert_path.display(),
        cert.key_path.display()
    )
}

/// A connection to `to` from the balancer's address.
async fn from_balancer(to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{BALANCER}:0").parse().unwrap())
        .unwrap();
    socket.connect(to).await.unwrap()
}

fn v2_header(src: [u8; 4], sport: u16, local: bool) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    h.push(0x11);
    let mut body = src.to_vec();
    body.extend_from_slice(&[127, 0, 0, 1]);
    body.extend_from_slice(&sport.to_be_bytes());
    body.extend_from_slice(&443u16.to_be_bytes());
    body.extend_from_slice(&[0x05, 0x00, 0x03, 1, 2, 3]); // a TLV (unique id), ignored
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&body);
    h
}

/// Reads one HTTP/1.1 response with a Content-Length body: (status, body).
async fn read_response<S: AsyncReadExt + Unpin>(s: &mut S) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("response within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, text[end + 4..end + 4 + len].to_string());
            }
        }
    }
}

const GET: &[u8] = b"GET /who HTTP/1.1\r\nHost: pp.test\r\n\r\n";

#[tokio::test]
async fn the_balancers_header_names_the_client_on_plain_and_tls_connections() {
    let up = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(up.addr, dir.path());
    let proxy = Proxy::start_in(dir, &cfg).await;

    // v1 on plain HTTP, two requests on one connection: the header is read once.
    let mut c = from_balancer(proxy.http).await;
    c.write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n")
        .await
        .unwrap();
    c.write_all(GET).await.unwrap();
    let (status, body) = read_response(&mut c).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-client"], "203.0.113.9");
    assert_eq!(body["headers"]["x-forwarded-for"], "203.0.113.9");
    c.write_all(GET).await.unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(
        status, 200,
        "the reused connection keeps its client: {body}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["headers"]["x-client"],
        "203.0.113.9"
    );

    // IP rules see the header's client: 198.51.100.0/24 is denied.
    let mut c = from_balancer(proxy.http).await;
    c.write_all(b"PROXY TCP4 198.51.100.4 127.0.0.1 40000 80\r\n")
        .await
        .unwrap();
    c.write_all(GET).await.unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ip_denied"), "{body}");

    // v2 before the TLS handshake, with a TLV.
    let mut tcp = from_balancer(proxy.https).await;
    tcp.write_all(&v2_header([192, 0, 2, 55], 40001, false))
        .await
        .unwrap();
    let mut tls = tls_handshake(tcp, "pp.test", rustls::DEFAULT_VERSIONS)
        .await
        .unwrap();
    tls.write_all(GET).await.unwrap();
    let (status, body) = read_response(&mut tls).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["headers"]["x-client"],
        "192.0.2.55"
    );

    // LOCAL (the balancer's own health check): the balancer is the client.
    let mut c = from_balancer(proxy.http).await;
    c.write_all(&v2_header([0, 0, 0, 0], 0, true))
        .await
        .unwrap();
    c.write_all(GET).await.unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["headers"]["x-client"],
        BALANCER
    );
}

#[tokio::test]
async fn a_header_is_required_from_balancers_and_ignored_from_everyone_else() {
    let up = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(up.addr, dir.path());
    let proxy = Proxy::start_in(dir, &cfg).await;

    // From the balancer without a header (plain and TLS): closed, nothing served.
    let mut c = from_balancer(proxy.http).await;
    c.write_all(GET).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
    assert!(
        out.is_empty(),
        "no response without a header: {:?}",
        String::from_utf8_lossy(&out)
    );
    let tcp = from_balancer(proxy.https).await;
    assert!(tls_handshake(tcp, "pp.test", rustls::DEFAULT_VERSIONS)
        .await
        .is_err());
    // A malformed header is refused the same way.
    let mut c = from_balancer(proxy.http).await;
    c.write_all(b"PROXY TCP4 203.0.113.9 nonsense\r\n")
        .await
        .unwrap();
    c.write_all(GET).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    eventually(Duration::from_secs(10), "rejections counted", || async {
        (proxy
            .metric("gatehouse_proxy_protocol_rejected_total", &[])
            .await
            == Some(3.0))
        .then_some(())
    })
    .await;
    assert_eq!(up.hits(), 0);

    // From anyone else a PROXY line is not a header but a bad request: a
    // client cannot claim an address.
    let reply = raw_request(
        proxy.http,
        b"PROXY TCP4 198.51.100.1 127.0.0.1 1 80\r\nGET /who HTTP/1.1\r\nHost: pp.test\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let mut c = TcpStream::connect(proxy.http).await.unwrap();
    c.write_all(GET).await.unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["headers"]["x-client"],
        "127.0.0.1"
    );
}

#[tokio::test]
async fn bad_proxy_protocol_ranges_are_config_errors_with_their_path() {
    let (ok, err) = check_config(&format!(
        "{LISTENERS}\nclient_ip: {{ proxy_protocol: [10.0.0.0/8, not-a-cidr] }}\n"
    ));
    assert!(!ok);
    assert!(err.contains("client_ip.proxy_protocol[1]"), "{err}");
}
