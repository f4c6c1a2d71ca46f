//! A certificate as uploaded, described and stored (its key sealed), the
//! checks of an upload (chain, key, validity, names) and of which hostnames
//! its names cover, and how it renders into the config. Imports only `infra`.

use gatehouse_config::file;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::infra::error::ApiError;
use crate::infra::names;

/// Body of a certificate upload.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// PEM certificate chain, leaf first.
    pub cert_pem: String,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1). Never returned.
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateUpload")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// What the API shows of a certificate (never its key).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificateInfo {
    /// DNS names of the leaf (subject alternative names).
    pub names: Vec<String>,
    /// Leaf subject.
    pub subject: String,
    /// Leaf issuer.
    pub issuer: String,
    /// Start of validity (Unix milliseconds).
    pub not_before_ms: i64,
    /// End of validity (Unix milliseconds).
    pub not_after_ms: i64,
    /// SHA-256 of the leaf (DER), hex.
    pub fingerprint_sha256: String,
    /// Certificates in the chain, leaf included.
    pub chain_length: usize,
    /// The PEM chain (public).
    pub cert_pem: String,
}

/// What is stored: the public part and the sealed key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCertificate {
    /// Public information and chain.
    #[serde(flatten)]
    pub info: CertificateInfo,
    /// The private key, sealed (`gh1.<key id>.<hex>`).
    pub key_sealed: String,
}

impl StoredCertificate {
    /// The config file's certificate `name` of `tenant`, with its private key
    /// `key` (opened by the caller).
    pub fn render(self, tenant: &str, name: &str, key: &[u8]) -> file::Certificate {
        file::Certificate {
            name: names::qualified(tenant, name),
            cert_path: None,
            key_path: None,
            cert_pem: Some(self.info.cert_pem),
            key_pem: Some(String::from_utf8_lossy(key).into_owned()),
            self_signed: false,
        }
    }
}

/// The associated data binding a sealed key to its certificate.
pub fn seal_context(tenant: &str, name: &str) -> String {
    format!("certificate/{tenant}/{name}")
}

/// What the audit log may show of a stored certificate `spec`: neither the
/// sealed key nor the chain.
pub fn public_part(spec: &serde_json::Value) -> serde_json::Value {
    let mut v = spec.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("key_sealed");
        map.remove("cert_pem");
    }
    v
}

/// Checks an upload and describes its leaf.
pub fn inspect(upload: &CertificateUpload, now_ms: i64) -> Result<CertificateInfo, ApiError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(upload.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::invalid("cert_pem", format!("invalid PEM certificate: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| ApiError::invalid("cert_pem", "no PEM certificate found"))?;
    gatehouse_config::certified_key_from_pem(upload.cert_pem.as_bytes(), upload.key_pem.as_bytes())
        .map_err(|e| ApiError::invalid("key_pem", e))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| ApiError::invalid("cert_pem", format!("invalid certificate: {e}")))?;
    let not_before_ms = cert.validity().not_before.timestamp() * 1000;
    let not_after_ms = cert.validity().not_after.timestamp() * 1000;
    if not_after_ms <= now_ms {
        return Err(ApiError::invalid("cert_pem", "the certificate has expired"));
    }
    if not_before_ms > now_ms {
        return Err(ApiError::invalid(
            "cert_pem",
            "the certificate is not valid yet",
        ));
    }
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        return Err(ApiError::invalid(
            "cert_pem",
            "the certificate names no DNS name (subject alternative names)",
        ));
    }
    Ok(CertificateInfo {
        names,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before_ms,
        not_after_ms,
        fingerprint_sha256: hex(ring::digest::digest(&ring::digest::SHA256, leaf).as_ref()),
        chain_length: chain.len(),
        cert_pem: upload.cert_pem.clone(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether certificate `names` cover `host`: equal, or a `*.` name covering
/// exactly one more label. A wildcard host needs the same wildcard.
pub fn covers(names: &[String], host: &str) -> bool {
    names.iter().any(|n| {
        n == host
            || (!host.starts_with("*.")
                && n.strip_prefix("*.").is_some_and(|suffix| {
                    host.split_once('.')
                        .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
                }))
    })
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_exactly_one_label() {
        let names = vec!["*.example.com".to_string(), "example.com".to_string()];
        assert!(covers(&names, "example.com"));
        assert!(covers(&names, "www.example.com"));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "example.org"));
        assert!(covers(&names, "*.example.com"));
        assert!(!covers(&["www.example.com".to_string()], "*.example.com"));
    }
}
