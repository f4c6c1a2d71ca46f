//! ACME issuance against a real ACME server: Debian's Pebble, with
//! `pebble-challtestsrv` as its DNS, validating HTTP-01 against a real HTTP
//! server on loopback. Pebble rejects a share of nonces on purpose here.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gatehouse_admin::acme::{self, AcmeError, Settings};

#[allow(dead_code)]
#[path = "support/dns.rs"]
mod dns;
#[path = "support/pebble.rs"]
mod pebble;

type Tokens = Arc<Mutex<HashMap<String, String>>>;

async fn challenge(State(tokens): State<Tokens>, Path(token): Path<String>) -> impl IntoResponse {
    match tokens.lock().unwrap().get(&token) {
        Some(body) => (StatusCode::OK, body.clone()),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}

/// What validation reaches: an HTTP server answering the tokens it is given.
async fn responder() -> (SocketAddr, Tokens) {
    let tokens: Tokens = Arc::default();
    let app = axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(challenge),
        )
        .with_state(tokens.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, tokens)
}

struct Setup {
    dns: dns::ChallTestSrv,
    pebble: pebble::Pebble,
    tokens: Tokens,
    settings: Settings,
}

async fn setup(nonce_reject: u8) -> Setup {
    let dns = dns::ChallTestSrv::start().await;
    let (http, tokens) = responder().await;
    let pebble = pebble::Pebble::start(dns.dns, http.port(), nonce_reject).await;
    let settings = Settings {
        directory_url: pebble.directory.clone(),
        contact: vec!["mailto:ops@example.test".into()],
        eab: None,
        ca_bundle: Some(pebble.tls_ca.clone()),
        timeout: Duration::from_secs(30),
        renew_check: Duration::from_secs(300),
    };
    Setup {
        dns,
        pebble,
        tokens,
        settings,
    }
}

/// The DER certificates of a PEM chain, leaf first.
fn pem_certs(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.unwrap().contents)
        .collect()
}

#[tokio::test]
async fn a_certificate_is_issued_through_http_01_despite_nonce_rejections() {
    // A third of the nonces are refused: every request must survive retries.
    let s = setup(33).await;
    let hosts = vec![
        "shop.example.test".to_string(),
        "www.example.test".to_string(),
    ];
    for h in &hosts {
        s.dns.set_a(h, Ipv4Addr::LOCALHOST).await;
    }
    let (account, credentials) = acme::account(&s.settings, None).await.unwrap();
    // The stored credentials restore the same account.
    let (again, _) = acme::account(&s.settings, Some(&credentials))
        .await
        .unwrap();
    assert_eq!(account.id(), again.id());

    let pending = acme::begin(&account, &hosts).await.unwrap();
    assert_eq!(pending.challenges.len(), 2);
    for c in &pending.challenges {
        assert!(hosts.contains(&c.host));
        assert!(c.key_authorization.starts_with(&format!("{}.", c.token)));
        s.tokens
            .lock()
            .unwrap()
            .insert(c.token.clone(), c.key_authorization.clone());
    }
    let issued = acme::complete(pending, s.settings.timeout).await.unwrap();
    assert!(issued.key_pem.contains("PRIVATE KEY"));

    // The leaf names both hosts, and the chain leads to this Pebble's root.
    let chain = pem_certs(&issued.chain_pem);
    assert!(chain.len() >= 2, "leaf and intermediate");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let names: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    for h in &hosts {
        assert!(names.iter().any(|n| n.contains(h.as_str())), "{names:?}");
    }
    let root_pem = s.pebble.issuing_root_pem().await;
    let root_der = pem_certs(&root_pem).remove(0);
    let (_, root) = x509_parser::parse_x509_certificate(&root_der).unwrap();
    let (_, last) = x509_parser::parse_x509_certificate(chain.last().unwrap()).unwrap();
    assert_eq!(
        last.issuer(),
        root.subject(),
        "the chain ends under the root"
    );
    assert!(last.verify_signature(Some(root.public_key())).is_ok());
    for pair in chain.windows(2) {
        let (_, child) = x509_parser::parse_x509_certificate(&pair[0]).unwrap();
        let (_, parent) = x509_parser::parse_x509_certificate(&pair[1]).unwrap();
        assert!(child.verify_signature(Some(parent.public_key())).is_ok());
    }
}

#[tokio::test]
async fn an_unreachable_challenge_fails_with_the_servers_reason() {
    let s = setup(0).await;
    let host = vec!["broken.example.test".to_string()];
    s.dns.set_a(&host[0], Ipv4Addr::LOCALHOST).await;
    let (account, _) = acme::account(&s.settings, None).await.unwrap();
    // The challenge is never served: validation gets a 404.
    let pending = acme::begin(&account, &host).await.unwrap();
    match acme::complete(pending, s.settings.timeout).await {
        Err(AcmeError::Rejected { detail }) => {
            assert!(detail.contains("broken.example.test"), "{detail}");
            assert!(
                detail.contains("404") || detail.contains("unauthorized"),
                "{detail}"
            );
        }
        other => panic!("expected a rejection, got {:?}", other.map(|i| i.chain_pem)),
    }
}

#[tokio::test]
async fn a_ca_requiring_external_account_binding_gets_it() {
    let dns = dns::ChallTestSrv::start().await;
    let (http, _tokens) = responder().await;
    let mut pebble = pebble::Pebble::new();
    let key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    pebble.eab = Some(("kid-1".into(), key.into()));
    pebble.run(dns.dns, http.port(), 0).await;
    let mut settings = Settings {
        directory_url: pebble.directory.clone(),
        contact: vec![],
        eab: None,
        ca_bundle: Some(pebble.tls_ca.clone()),
        timeout: Duration::from_secs(30),
        renew_check: Duration::from_secs(300),
    };
    // Without a binding the CA refuses the account, with its reason.
    match acme::account(&settings, None).await {
        Err(AcmeError::Rejected { detail }) => {
            assert!(detail.to_lowercase().contains("external"), "{detail}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|(_, c)| c.len())),
    }
    settings.eab = Some(acme::Eab {
        kid: "kid-1".into(),
        hmac_key: acme::decode_eab_key(key).unwrap(),
    });
    let (account, _) = acme::account(&settings, None).await.unwrap();
    assert!(!account.id().is_empty());
}
