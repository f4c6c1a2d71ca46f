//! The ACME (RFC 8555) client over `instant-acme`: the platform's account,
//! and orders answered with HTTP-01 in two steps ([`begin`], then
//! [`complete`]) so that the caller decides when the server may validate.
//! Knows nothing of tenants or the store. Imports only `infra` (the CA's settings).

use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};

use crate::infra::acme_settings::Settings;

/// Why an ACME operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The server refused the order or a validation (`detail` is its own words).
    #[error("the ACME server refused: {detail}")]
    Rejected { detail: String },
    /// Validation or issuance did not finish within the timeout.
    #[error("timed out waiting for the ACME server ({0})")]
    TimedOut(&'static str),
    /// The server could not be reached or answered something unusable.
    #[error("ACME: {0}")]
    Protocol(String),
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(p) => AcmeError::Rejected {
                detail: problem_text(&p),
            },
            instant_acme::Error::Timeout(_) => AcmeError::TimedOut("the order"),
            other => AcmeError::Protocol(other.to_string()),
        }
    }
}

fn problem_text(p: &instant_acme::Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_default();
    if let Some(t) = &p.r#type {
        if text.is_empty() {
            text = t.clone();
        } else {
            text = format!("{text} ({t})");
        }
    }
    for sub in &p.subproblems {
        if let Some(d) = &sub.detail {
            text.push_str("; ");
            text.push_str(d);
        }
    }
    text
}

/// How often a step is tried while the server answers `badNonce`.
///
/// ACME servers may reject any nonce (Pebble does so on purpose, for a share
/// of requests): `instant-acme` retries a `badNonce` answer a few times, and
/// every step here is retried again as a whole while the server keeps
/// answering `badNonce` (a request it refused had no effect). Private ACME
/// servers are reached through a CA bundle of their own.
const NONCE_ATTEMPTS: usize = 10;

fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce"))
}

/// Runs `step` again while it fails with `badNonce`.
macro_rules! retry_nonce {
    ($step:expr) => {{
        let mut attempt = 1;
        loop {
            match $step {
                Err(e) if is_bad_nonce(&e) && attempt < NONCE_ATTEMPTS => attempt += 1,
                other => break other,
            }
        }
    }};
}

fn builder(settings: &Settings) -> Result<instant_acme::AccountBuilder, AcmeError> {
    match &settings.ca_bundle {
        Some(path) => Account::builder_with_root(path)
            .map_err(|e| AcmeError::Protocol(format!("CA bundle {}: {e}", path.display()))),
        None => Account::builder().map_err(|e| AcmeError::Protocol(e.to_string())),
    }
}

/// The platform's account: restored from `stored` credentials (JSON, as
/// [`account`] returned them before) or created. The credentials hold the
/// account's private key: the caller seals them at rest.
pub async fn account(
    settings: &Settings,
    stored: Option<&str>,
) -> Result<(Account, String), AcmeError> {
    if let Some(json) = stored {
        let credentials: AccountCredentials = serde_json::from_str(json)
            .map_err(|e| AcmeError::Protocol(format!("stored account credentials: {e}")))?;
        let account = builder(settings)?.from_credentials(credentials).await?;
        // Restoring reads the directory only: no signed request, no nonce.
        return Ok((account, json.to_string()));
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let eab = settings
        .eab
        .as_ref()
        .map(|e| ExternalAccountKey::new(e.kid.clone(), &e.hmac_key));
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = retry_nonce!(
        builder(settings)?
            .create(&new, settings.directory_url.clone(), eab.as_ref())
            .await
    )?;
    let json = serde_json::to_string(&credentials)
        .map_err(|e| AcmeError::Protocol(format!("encoding account credentials: {e}")))?;
    Ok((account, json))
}

/// An HTTP-01 challenge every edge node must answer before [`complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpChallenge {
    /// The hostname it proves.
    pub host: String,
    /// The last path segment of `/.well-known/acme-challenge/<token>`.
    pub token: String,
    /// The body to answer with.
    pub key_authorization: String,
}

/// An order whose challenges are known but not yet declared ready.
pub struct Pending {
    order: Order,
    /// What to serve.
    pub challenges: Vec<HttpChallenge>,
}

/// An issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// The certificate's private key (PKCS#8 PEM): seal it at rest.
    pub key_pem: String,
}

/// Opens an order for `hosts` and collects their HTTP-01 challenges.
///
/// An order runs in two steps so that the caller controls when the ACME
/// server may validate: this opens the order and returns each hostname's
/// challenge token and key authorization; the caller makes every edge node
/// serve them at `/.well-known/acme-challenge/<token>`, and only then calls
/// [`complete`], which tells the server the challenges are ready, waits for
/// validation, finalizes with a fresh key and downloads the chain. A failed
/// validation comes back as [`AcmeError::Rejected`] carrying the server's
/// own problem detail (for the domain's visible state).
pub async fn begin(account: &Account, hosts: &[String]) -> Result<Pending, AcmeError> {
    let identifiers: Vec<Identifier> = hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
    let mut order = retry_nonce!(account.new_order(&NewOrder::new(&identifiers)).await)?;
    // A walk over the authorizations cannot resume after a refused nonce
    // (the iterator has moved on): it starts again.
    let challenges = retry_nonce!(http_challenges(&mut order).await)?;
    Ok(Pending { order, challenges })
}

/// The HTTP-01 challenge of every authorization still to be validated.
async fn http_challenges(order: &mut Order) -> Result<Vec<HttpChallenge>, instant_acme::Error> {
    let mut challenges = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status == AuthorizationStatus::Valid {
            // Validated recently for this account: nothing to answer.
            continue;
        }
        let host = authz.identifier().to_string();
        let Some(challenge) = authz.challenge(ChallengeType::Http01) else {
            return Err(instant_acme::Error::Str(
                "the server offers no HTTP-01 challenge",
            ));
        };
        challenges.push(HttpChallenge {
            host,
            token: challenge.token.clone(),
            key_authorization: challenge.key_authorization().as_str().to_string(),
        });
    }
    Ok(challenges)
}

/// Tells the server each pending HTTP-01 challenge is ready (once: a
/// challenge already being processed is left alone, so a walk restarted
/// after a refused nonce does not repeat itself).
async fn set_ready(order: &mut Order) -> Result<(), instant_acme::Error> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut challenge) = authz.challenge(ChallengeType::Http01) {
            if challenge.status == instant_acme::ChallengeStatus::Pending {
                challenge.set_ready().await?;
            }
        }
    }
    Ok(())
}

/// Declares the challenges ready (the caller serves them on every node by
/// now), waits for validation, finalizes with a fresh key and downloads the
/// chain: [`validate`] then [`issue`].
pub async fn complete(mut pending: Pending, timeout: Duration) -> Result<Issued, AcmeError> {
    validate(&mut pending, timeout).await?;
    issue(pending, timeout).await
}

/// Declares the challenges ready and waits until the server validated
/// every name (or refused one: the error carries its reason).
pub async fn validate(pending: &mut Pending, timeout: Duration) -> Result<(), AcmeError> {
    let order = &mut pending.order;
    retry_nonce!(set_ready(order).await)?;
    let retries = RetryPolicy::new().timeout(timeout);
    let status = retry_nonce!(order.poll_ready(&retries).await)?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Rejected {
            detail: failure_detail(order).await,
        });
    }
    Ok(())
}

/// Finalizes a validated order with a fresh key and downloads the chain.
pub async fn issue(mut pending: Pending, timeout: Duration) -> Result<Issued, AcmeError> {
    let order = &mut pending.order;
    let retries = RetryPolicy::new().timeout(timeout);
    let key_pem = retry_nonce!(order.finalize().await)?;
    let chain_pem = retry_nonce!(order.poll_certificate(&retries).await)?;
    Ok(Issued { chain_pem, key_pem })
}

/// Why an order went invalid: the order's error, or its first failed
/// challenge's.
async fn failure_detail(order: &mut Order) -> String {
    if let Some(p) = &order.state().error {
        return problem_text(p);
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in &authz.challenges {
            if let Some(p) = &c.error {
                return format!("{}: {}", authz.identifier(), problem_text(p));
            }
        }
    }
    "the order became invalid".to_string()
}
