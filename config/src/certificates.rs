//! `certificates`: PEM chains and keys that domains and `tls` refer to by
//! name. Holds the file type, the checked certificate and [`check`], which
//! reads the files and parses the PEM (names and hosts are `validate`'s), and
//! [`certified_key_from_pem`], the one parse of a chain with its key that the
//! data plane (serving) and the admin API (checking uploads) share.

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::check::Checker;
use model::{CertSource, Certificate};

pub mod file {
    //! `certificates[]` as operators write them.

    use serde::{Deserialize, Serialize};

    /// A certificate chain and private key, in PEM.
    #[derive(Clone, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Certificate))]
    #[serde(deny_unknown_fields)]
    pub struct Certificate {
        /// Unique name referenced by domains.
        pub name: String,
        /// Path to the PEM certificate chain (leaf first).
        pub cert_path: Option<String>,
        /// Path to the PEM private key.
        pub key_path: Option<String>,
        /// Inline PEM certificate chain.
        pub cert_pem: Option<String>,
        /// Inline PEM private key.
        pub key_pem: Option<String>,
        /// Generate a self-signed certificate at `cert_path`/`key_path` for the hosts of the
        /// domains using it when the files do not exist yet (development and quickstart only).
        #[serde(default)]
        pub self_signed: bool,
    }

    // Written out to leave an inline private key out of every log and panic message.
    impl std::fmt::Debug for Certificate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Certificate")
                .field("name", &self.name)
                .field("cert_path", &self.cert_path)
                .field("key_path", &self.key_path)
                .field("cert_pem", &self.cert_pem.as_ref().map(|p| p.len()))
                .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
                .field("self_signed", &self.self_signed)
                .finish()
        }
    }
}

pub mod model {
    //! `certificates[]`, checked.

    use std::path::PathBuf;

    use crate::hosts::HostPattern;

    /// Where a certificate's PEM comes from.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum CertSource {
        /// Files on disk.
        Files {
            /// Chain path.
            cert: PathBuf,
            /// Key path.
            key: PathBuf,
        },
        /// Inline PEM.
        Inline {
            /// Chain PEM.
            cert_pem: String,
            /// Key PEM.
            key_pem: String,
        },
    }

    /// A certificate.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Certificate {
        /// Unique name.
        pub name: String,
        /// PEM source.
        pub source: CertSource,
        /// Generate when files are missing.
        pub self_signed: bool,
        /// Host patterns of the domains that use it (for self-signed generation).
        pub hosts: Vec<HostPattern>,
    }
}

pub(crate) fn check(c: &file::Certificate, path: &str, cx: &mut Checker<'_>) -> Certificate {
    let source = match (&c.cert_path, &c.key_path, &c.cert_pem, &c.key_pem) {
        (Some(cert), Some(key), None, None) => CertSource::Files {
            cert: cx.resolve_path(cert),
            key: cx.resolve_path(key),
        },
        (None, None, Some(cert_pem), Some(key_pem)) => CertSource::Inline {
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        },
        _ => {
            cx.err(
                path,
                "set either `cert_path` and `key_path`, or `cert_pem` and `key_pem`",
            );
            CertSource::Inline {
                cert_pem: String::new(),
                key_pem: String::new(),
            }
        }
    };
    if c.self_signed && !matches!(source, CertSource::Files { .. }) {
        cx.err(
            format!("{path}.self_signed"),
            "needs `cert_path` and `key_path` to write the generated certificate to",
        );
    }
    let cert = Certificate {
        name: c.name.clone(),
        source,
        self_signed: c.self_signed,
        hosts: Vec::new(),
    };
    match &cert.source {
        CertSource::Files { cert: cp, key: kp } => {
            let missing = !cp.exists() && !kp.exists();
            if !(c.self_signed && missing) {
                match std::fs::read(cp) {
                    Ok(pem) => check_cert_pem(&pem, &format!("{path}.cert_path"), cx),
                    Err(e) => cx.err(
                        format!("{path}.cert_path"),
                        format!("cannot read {}: {e}", cp.display()),
                    ),
                }
                match std::fs::read(kp) {
                    Ok(pem) => check_key_pem(&pem, &format!("{path}.key_path"), cx),
                    Err(e) => cx.err(
                        format!("{path}.key_path"),
                        format!("cannot read {}: {e}", kp.display()),
                    ),
                }
            }
        }
        CertSource::Inline { cert_pem, key_pem } if !cert_pem.is_empty() => {
            check_cert_pem(cert_pem.as_bytes(), &format!("{path}.cert_pem"), cx);
            check_key_pem(key_pem.as_bytes(), &format!("{path}.key_pem"), cx);
        }
        CertSource::Inline { .. } => {}
    }
    cert
}

fn check_cert_pem(pem: &[u8], path: &str, cx: &mut Checker<'_>) {
    let mut count = 0;
    for c in CertificateDer::pem_slice_iter(pem) {
        if let Err(e) = c {
            cx.err(path, format!("invalid PEM certificate: {e}"));
            return;
        }
        count += 1;
    }
    if count == 0 {
        cx.err(path, "no PEM certificate found");
    }
}

fn check_key_pem(pem: &[u8], path: &str, cx: &mut Checker<'_>) {
    if let Err(e) = PrivateKeyDer::from_pem_slice(pem) {
        cx.err(path, format!("no usable PEM private key: {e}"));
    }
}

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
