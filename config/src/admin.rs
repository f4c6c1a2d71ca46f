//! `admin`: the in-process admin API of `gatehouse run`. The admin crate
//! reads these settings itself; the config only checks what it can check
//! without the admin ([`check`]: the listen address).

use crate::check::Checker;

pub mod defaults {
    //! What an unset `admin` setting means: also the defaults of
    //! `gatehouse admin`'s and `gatehouse proxy`'s flags, defined once here.

    /// `admin.listen`, `gatehouse admin --listen`.
    pub const LISTEN: &str = "127.0.0.1:9900";
    /// `admin.database`, `gatehouse admin --database`.
    pub const DATABASE: &str = "sqlite://data/gatehouse.db";
    /// `admin.secrets_key_file`, `gatehouse admin --secrets-key-file`.
    pub const SECRETS_KEY_FILE: &str = "data/secrets.key";
    /// `admin.state_dir`, `gatehouse proxy --state-dir`.
    pub const STATE_DIR: &str = "data/node";
    /// `admin.acme.timeout_seconds`, `--acme-timeout-seconds`.
    pub const ACME_TIMEOUT_SECONDS: u64 = 60;
    /// `admin.acme.renew_check_seconds`, `--acme-renew-check-seconds`.
    pub const ACME_RENEW_CHECK_SECONDS: u64 = 300;
}

pub mod file {
    //! `admin` as operators write it.

    use serde::{Deserialize, Serialize};

    /// The in-process admin API of `gatehouse run`. Relative paths are relative to
    /// the working directory (as with `gatehouse admin`).
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::Admin))]
    #[serde(deny_unknown_fields)]
    pub struct Admin {
        /// Address of the admin API (default `127.0.0.1:9900`; keep it private).
        pub listen: Option<String>,
        /// Database URL (default `sqlite://data/gatehouse.db`).
        pub database: Option<String>,
        /// Key file sealing private keys at rest (default `data/secrets.key`, created when missing).
        pub secrets_key_file: Option<String>,
        /// Where the proxy keeps the last applied version and plugin components
        /// (default `data/node`).
        pub state_dir: Option<String>,
        /// The ACME CA the admin orders certificates from (default: none, ordering refused).
        #[serde(default)]
        pub acme: Option<AdminAcme>,
    }

    /// `admin.acme`: as `gatehouse admin --acme-*`.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::AdminAcme))]
    #[serde(deny_unknown_fields)]
    pub struct AdminAcme {
        /// ACME directory URL.
        pub directory_url: String,
        /// Account contacts (`mailto:ops@example.com`).
        #[serde(default)]
        pub contact: Vec<String>,
        /// PEM file of CA certificates trusted for the ACME server itself.
        pub ca_bundle: Option<String>,
        /// External account binding key id.
        pub eab_kid: Option<String>,
        /// File holding the EAB HMAC key (base64url).
        pub eab_hmac_key_file: Option<String>,
        /// Seconds validation and issuance may take per order (default 60).
        pub timeout_seconds: Option<u64>,
        /// Seconds between looks for renewals due (default 300).
        pub renew_check_seconds: Option<u64>,
    }
}

pub(crate) fn check(admin: &file::Admin, cx: &mut Checker<'_>) {
    cx.listen_addr(&admin.listen, "admin.listen");
}
