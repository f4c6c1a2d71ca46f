//! `tls`: what the https listener does with an unknown SNI. Holds the file
//! types, the checked policy and [`check`], which resolves
//! `default_certificate` against the certificate names `validate` indexed.

use std::collections::HashMap;

use crate::check::Checker;
use model::{Tls, UnknownSni};

pub mod file {
    //! `tls` as operators write it.

    use serde::{Deserialize, Serialize};

    /// What to do with a TLS handshake whose SNI matches no configured certificate.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::UnknownSni))]
    #[serde(rename_all = "snake_case")]
    pub enum UnknownSni {
        /// Abort the handshake (the default): never present a certificate for a name we do not serve.
        #[default]
        Reject,
        /// Present `tls.default_certificate`.
        DefaultCertificate,
    }

    /// TLS termination policy for the `https` listener.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Tls))]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        /// Behaviour for an unknown or missing SNI (default `reject`).
        #[serde(default)]
        pub unknown_sni: UnknownSni,
        /// Certificate name used when `unknown_sni: default_certificate`.
        pub default_certificate: Option<String>,
    }
}

pub mod model {
    //! `tls`, with the default certificate resolved to an index.

    pub use super::file::UnknownSni;

    /// TLS termination policy.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Tls {
        /// Unknown SNI behaviour.
        pub unknown_sni: UnknownSni,
        /// Index into [`Config::certificates`](crate::model::Config::certificates) for the default certificate.
        pub default_certificate: Option<usize>,
    }
}

pub(crate) fn check(
    t: &file::Tls,
    cert_index: &HashMap<String, usize>,
    cx: &mut Checker<'_>,
) -> Tls {
    let default_certificate = t.default_certificate.as_ref().and_then(|name| {
        let found = cert_index.get(name).copied();
        if found.is_none() {
            cx.err(
                "tls.default_certificate",
                format!("unknown certificate {name:?}"),
            );
        }
        found
    });
    if t.unknown_sni == UnknownSni::DefaultCertificate && t.default_certificate.is_none() {
        cx.err(
            "tls.default_certificate",
            "required when `tls.unknown_sni` is `default_certificate`",
        );
    }
    Tls {
        unknown_sni: t.unknown_sni,
        default_certificate,
    }
}
