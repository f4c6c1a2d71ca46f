//! `--acme-*` flags of `gatehouse admin`, and the same settings from the
//! config file's `admin.acme`, turned into the admin's ACME settings.

use std::path::PathBuf;

use gatehouse_config::admin_defaults as defaults;
use gatehouse_config::file::AdminAcme;

/// Where the admin orders certificates (`gatehouse admin --acme-directory …`).
#[derive(clap::Args, Debug)]
pub struct AcmeArgs {
    /// ACME directory URL of the CA to order certificates from (e.g. Let's Encrypt's
    /// https://acme-v02.api.letsencrypt.org/directory); without it ordering is refused.
    #[arg(long, env = "GATEHOUSE_ACME_DIRECTORY")]
    acme_directory: Option<String>,
    /// Contact for the ACME account (mailto:ops@example.com); repeatable.
    #[arg(long)]
    acme_contact: Vec<String>,
    /// PEM file of CA certificates trusted for the ACME server itself (private CAs).
    #[arg(long, env = "GATEHOUSE_ACME_CA_BUNDLE")]
    acme_ca_bundle: Option<PathBuf>,
    /// External account binding key id, for CAs that require one.
    #[arg(long, requires = "acme_eab_hmac_key_file")]
    acme_eab_kid: Option<String>,
    /// File holding the EAB HMAC key (base64url, as CAs hand it out).
    #[arg(long, requires = "acme_eab_kid")]
    acme_eab_hmac_key_file: Option<PathBuf>,
    /// How long validation and issuance may take per order, in seconds.
    #[arg(long, default_value_t = defaults::ACME_TIMEOUT_SECONDS)]
    acme_timeout_seconds: u64,
    /// How often to look for certificates due for renewal (two thirds into their
    /// lifetime) and failed orders due for a retry, in seconds.
    #[arg(
        long,
        default_value_t = defaults::ACME_RENEW_CHECK_SECONDS,
        env = "GATEHOUSE_ACME_RENEW_CHECK_SECONDS"
    )]
    acme_renew_check_seconds: u64,
}

impl AcmeArgs {
    /// The same settings from the config file's `admin.acme`.
    pub fn from_config(a: AdminAcme) -> Self {
        AcmeArgs {
            acme_directory: Some(a.directory_url),
            acme_contact: a.contact,
            acme_ca_bundle: a.ca_bundle.map(PathBuf::from),
            acme_eab_kid: a.eab_kid,
            acme_eab_hmac_key_file: a.eab_hmac_key_file.map(PathBuf::from),
            acme_timeout_seconds: a.timeout_seconds.unwrap_or(defaults::ACME_TIMEOUT_SECONDS),
            acme_renew_check_seconds: a
                .renew_check_seconds
                .unwrap_or(defaults::ACME_RENEW_CHECK_SECONDS),
        }
    }

    /// The admin's ACME settings; `None` without a directory (ordering refused).
    pub fn settings(self) -> anyhow::Result<Option<gatehouse_admin::acme::Settings>> {
        let Some(directory_url) = self.acme_directory else {
            return Ok(None);
        };
        let eab = match (self.acme_eab_kid, self.acme_eab_hmac_key_file) {
            (Some(kid), Some(file)) => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let hmac_key = gatehouse_admin::acme::decode_eab_key(text.trim())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                Some(gatehouse_admin::acme::Eab { kid, hmac_key })
            }
            _ => None,
        };
        Ok(Some(gatehouse_admin::acme::Settings {
            directory_url,
            contact: self.acme_contact,
            eab,
            ca_bundle: self.acme_ca_bundle,
            timeout: std::time::Duration::from_secs(self.acme_timeout_seconds),
            renew_check: std::time::Duration::from_secs(self.acme_renew_check_seconds.max(1)),
        }))
    }
}
