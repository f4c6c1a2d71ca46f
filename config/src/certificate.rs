//! A certificate chain with its private key, parsed from PEM and checked.
//!
//! Shared by the data plane (which serves the result per SNI) and the admin API
//! (which checks uploads before storing them), so both accept exactly the same
//! certificates and word their refusals the same way.

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Parses a PEM chain (leaf first) and its PEM private key into a rustls
/// identity, checking that the key is supported and matches the leaf.
pub fn certified_key_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err("no PEM certificate found".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("invalid PEM private key: {e}"))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let ck = CertifiedKey::new(chain, signing_key);
    ck.keys_match()
        .map_err(|e| format!("private key does not match the certificate: {e}"))?;
    Ok(ck)
}
