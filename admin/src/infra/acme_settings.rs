//! Where and as whom this admin orders certificates over ACME: the CA's
//! settings, which the shared state carries (the client that uses them is
//! `acme::client`). Imports nothing of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// Where and as whom to order certificates.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The ACME directory URL.
    pub directory_url: String,
    /// Contact addresses (`mailto:ops@example.com`).
    pub contact: Vec<String>,
    /// External account binding, for CAs that require one.
    pub eab: Option<Eab>,
    /// PEM file of CA certificates to trust for the ACME server itself
    /// (private ACME servers), instead of the system roots.
    pub ca_bundle: Option<PathBuf>,
    /// How long to wait for validation and for the certificate.
    pub timeout: Duration,
    /// How often the admin looks for certificates due for renewal.
    pub renew_check: Duration,
}

/// An external account binding: key id and the raw HMAC key.
#[derive(Clone)]
pub struct Eab {
    pub kid: String,
    pub hmac_key: Vec<u8>,
}

impl std::fmt::Debug for Eab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Eab").field("kid", &self.kid).finish()
    }
}

/// An EAB HMAC key as CAs hand it out (base64url, padding optional).
pub fn decode_eab_key(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))?;
    if key.is_empty() {
        return Err("empty key".into());
    }
    Ok(key)
}
