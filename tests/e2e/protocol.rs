//! Protocol edge cases: WebSocket upgrades, header and URI limits, malformed requests.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

async fn start(up: &Upstream) -> Proxy {
    Proxy::start(&format!(
        r#"{LISTENERS}
limits: {{ max_header_count: 50, max_header_bytes: 8192, max_uri_bytes: 1024, max_body_bytes: 1024 }}
tenants: [{{ name: t }}]
pools: [{{ name: p, tenant: t, targets: [{{ addr: "{}" }}] }}]
domains: [{{ hosts: [p.test], tenant: t, routes: [{{ path: /, pool: p }}] }}]
"#,
        up.addr
    ))
    .await
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let up = Upstream::start("ws");
    let proxy = start(&up).await;
    let mut req = format!("ws://{}/ws", proxy.http)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("host", "p.test".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        ws.send(Message::Text(format!("ping {i}").into()))
            .await
            .unwrap();
        let msg = ws.next().await.unwrap().unwrap();
        assert_eq!(msg.into_text().unwrap().as_str(), format!("echo: ping {i}"));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn header_and_uri_limits() {
    let up = Upstream::start("lim");
    let proxy = start(&up).await;
    let mut many = String::from("GET / HTTP/1.1\r\nHost: p.test\r\n");
    for i in 0..60 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let resp = raw_request(proxy.http, many.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(resp.contains("too_many_headers"));

    let big = format!(
        "GET / HTTP/1.1\r\nHost: p.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let resp = raw_request(proxy.http, big.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");

    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n",
        "a".repeat(2000)
    );
    let resp = raw_request(proxy.http, long.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 414"), "{resp}");

    let ok = raw_request(
        proxy.http,
        b"GET / HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(
        up.hits(),
        1,
        "rejected requests must not reach the upstream"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let up = Upstream::start("mal");
    let proxy = start(&up).await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nHost: p.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost p.test\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let resp = raw_request(proxy.http, bad).await;
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 400"),
            "{bad:?} → {resp}"
        );
    }
    let resp = raw_request(proxy.http, b"GARBAGE\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let missing_host =
        raw_request(proxy.http, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(missing_host.starts_with("HTTP/1.1 400"), "{missing_host}");
    let ok = raw_request(
        proxy.http,
        b"GET / HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let up = Upstream::start("body");
    let proxy = start(&up).await;
    let c = proxy.client(&["p.test"]);
    let r = c
        .post(proxy.url("p.test", "/"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Declared length over the limit: refused before the upstream is contacted.
    let r = c
        .post(proxy.url("p.test", "/"))
        .body(vec![b'x'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "payload_too_large"
    );
    assert_eq!(up.hits(), 1);

    // A chunked body declares no length: counted while it streams.
    let mut req = b"POST /slow?ms=3000 HTTP/1.1\r\nHost: p.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n".to_vec();
    req.extend(vec![b'y'; 0x800]);
    req.extend(b"\r\n0\r\n\r\n");
    let resp = raw_request(proxy.http, &req).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
}
