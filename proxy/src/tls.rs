//! TLS termination: per-SNI certificate selection for the rustls listener.
//!
//! Certificates are parsed when a config is compiled (never during a
//! handshake) into a [`CertMap`] that lives in the [`Snapshot`](crate::snapshot::Snapshot).
//! The listener's resolver (`listeners::SniResolver`) looks the SNI up in the
//! current snapshot's map with one atomic load, so a reload swaps
//! certificates for new handshakes without touching established connections.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use gatehouse_config::certified_key_from_pem;
use gatehouse_config::model::{CertSource, Certificate, Config, HostPattern, UnknownSni};
use gatehouse_config::ConfigErrors;
use rustls::sign::CertifiedKey;

/// Whether compiling may write self-signed certificates that do not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertGeneration {
    /// Generate missing self-signed certificates (`gatehouse run`).
    Generate,
    /// Leave them out of the map (`gatehouse check` must not write files).
    Skip,
}

/// SNI → certificate, exact names first, then one-label wildcards.
#[derive(Default, Debug)]
pub struct CertMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// Parsed identities by SHA-256 of their PEM chain and key, so a reload
    /// re-parses only the certificates whose files actually changed.
    parsed: HashMap<[u8; 32], Arc<CertifiedKey>>,
    /// When the certificate each served host pattern presents expires:
    /// (tenant, host pattern, not-after in Unix seconds).
    expiries: Vec<(Arc<str>, Arc<str>, i64)>,
}

/// A certificate expiring sooner than this is warned about at every load.
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// The leaf's not-after time (Unix seconds), if it parses.
fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The DNS names (lowercase) the leaf certificate is for.
fn dns_names(key: &CertifiedKey) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Some(leaf) = key.cert.first() else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Whether a certificate for `names` is valid for `host` (RFC 6125: a
/// wildcard name covers exactly one label; a wildcard host needs the same
/// wildcard name).
fn covers(names: &[String], host: &HostPattern) -> bool {
    match host {
        HostPattern::Exact(h) => names.iter().any(|n| {
            n == h
                || n.strip_prefix("*.").is_some_and(|parent| {
                    h.split_once('.')
                        .is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
                })
        }),
        HostPattern::Wildcard(suffix) => names
            .iter()
            .any(|n| n.strip_prefix("*.") == Some(suffix.as_str())),
    }
}

impl CertMap {
    /// Builds the map for `cfg`, loading (and, where asked, generating) every
    /// certificate. Errors carry the certificate's field path.
    pub fn build(
        cfg: &Config,
        generation: CertGeneration,
        previous: Option<&CertMap>,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut parsed = HashMap::with_capacity(cfg.certificates.len());
        let mut keys: Vec<Option<Arc<CertifiedKey>>> = Vec::with_capacity(cfg.certificates.len());
        for (i, c) in cfg.certificates.iter().enumerate() {
            if generation == CertGeneration::Skip && c.self_signed && !cert_files_exist(c) {
                keys.push(None);
                continue;
            }
            match load_certificate(c, previous, &mut parsed) {
                Ok(k) => keys.push(Some(k)),
                Err(msg) => {
                    errors.push(format!("certificates[{i}]"), msg);
                    keys.push(None);
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut map = CertMap {
            parsed,
            ..CertMap::default()
        };
        let expiry_of: Vec<Option<i64>> = keys
            .iter()
            .map(|k| k.as_deref().and_then(not_after))
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let names: Vec<Vec<String>> = keys
            .iter()
            .map(|k| k.as_deref().map(dns_names).unwrap_or_default())
            .collect();
        for d in &cfg.domains {
            let Some(key) = d.certificate.and_then(|i| keys[i].clone()) else {
                continue;
            };
            let names = d.certificate.map(|i| &names[i][..]).unwrap_or_default();
            if let Some(expires) = d.certificate.and_then(|i| expiry_of[i]) {
                let tenant: Arc<str> = Arc::from(d.tenant.as_str());
                for h in &d.hosts {
                    let host: Arc<str> = Arc::from(h.to_string().as_str());
                    if expires - now < EXPIRY_WARNING.as_secs() as i64 {
                        tracing::warn!(
                            tenant = %tenant,
                            domain = %host,
                            seconds_left = expires - now,
                            "certificate expires within 14 days: renew it"
                        );
                    }
                    map.expiries.push((tenant.clone(), host, expires));
                }
            }
            for h in &d.hosts {
                // A certificate is only served for names it is valid for: a
                // domain pointing at another name's certificate (a mistake,
                // or an attempt to make a node present it) gets none.
                if !covers(names, h) {
                    tracing::warn!(
                        tenant = %d.tenant,
                        domain = %h,
                        "the domain's certificate does not cover it: not served for it"
                    );
                    continue;
                }
                match h {
                    HostPattern::Exact(name) => map.exact.insert(name.clone(), key.clone()),
                    HostPattern::Wildcard(suffix) => {
                        map.wildcard.insert(suffix.clone(), key.clone())
                    }
                };
            }
        }
        if cfg.tls.unknown_sni == UnknownSni::DefaultCertificate {
            map.default = cfg.tls.default_certificate.and_then(|i| keys[i].clone());
        }
        Ok(map)
    }

    /// (tenant, host pattern, not-after in Unix seconds) of every served host
    /// with a certificate.
    pub fn expiries(&self) -> &[(Arc<str>, Arc<str>, i64)] {
        &self.expiries
    }

    /// The certificate for `sni`; `None` aborts the handshake.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            // rustls hands us the SNI already lowercased and without a trailing dot.
            self.exact.get(name).cloned().or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent).cloned()
            })
        });
        found.or_else(|| self.default.clone())
    }

    /// True when a connection whose handshake named `sni` may carry a request
    /// for `host`: both resolve to the same certificate (which allows HTTP/2
    /// connection coalescing under a shared or wildcard certificate).
    pub fn same_certificate(&self, sni: Option<&str>, host: &str) -> bool {
        match (self.lookup(sni), self.lookup(Some(host))) {
            (Some(a), Some(b)) => Arc::ptr_eq(&a, &b) || a.cert.first() == b.cert.first(),
            _ => false,
        }
    }
}

impl CertMap {
    /// Sets the certificate expiry gauges (hosts no longer served disappear).
    pub fn export_expiries(&self, m: &crate::metrics::Metrics) {
        m.certificate_expiry.reset();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for (tenant, host, not_after) in self.expiries() {
            m.certificate_expiry
                .with_label_values(&[tenant, host])
                .set(not_after - now);
        }
    }
}

/// The SNI a TLS client sent, kept with the connection for the HTTP layer.
#[derive(Debug)]
pub struct TlsSni(pub Option<String>);

fn cert_files_exist(c: &Certificate) -> bool {
    match &c.source {
        CertSource::Files { cert, key } => cert.exists() || key.exists(),
        CertSource::Inline { .. } => true,
    }
}

/// Reads a certificate's PEM and returns its parsed identity, reusing the
/// previous snapshot's parse when the bytes are identical (key parsing and the
/// key/certificate match check dominate a 10,000-certificate reload).
fn load_certificate(
    c: &Certificate,
    previous: Option<&CertMap>,
    parsed: &mut HashMap<[u8; 32], Arc<CertifiedKey>>,
) -> Result<Arc<CertifiedKey>, String> {
    let (cert_pem, key_pem) = match &c.source {
        CertSource::Inline { cert_pem, key_pem } => {
            (cert_pem.as_bytes().to_vec(), key_pem.as_bytes().to_vec())
        }
        CertSource::Files { cert, key } => {
            if c.self_signed && !cert_files_exist(c) {
                generate_self_signed(c, cert, key)?;
            }
            (
                std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?,
                std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?,
            )
        }
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(cert_pem.len() as u64).to_le_bytes());
    ctx.update(&cert_pem);
    ctx.update(&key_pem);
    let mut id = [0u8; 32];
    id.copy_from_slice(ctx.finish().as_ref());
    if let Some(k) = parsed
        .get(&id)
        .or_else(|| previous.and_then(|p| p.parsed.get(&id)))
    {
        let k = k.clone();
        parsed.insert(id, k.clone());
        return Ok(k);
    }
    let k = Arc::new(certified_key_from_pem(&cert_pem, &key_pem)?);
    parsed.insert(id, k.clone());
    Ok(k)
}

/// Writes a self-signed certificate for the certificate's hosts (quickstart and
/// development). The key file is created readable by the owner only.
fn generate_self_signed(c: &Certificate, cert_path: &Path, key_path: &Path) -> Result<(), String> {
    let mut names: Vec<String> = c.hosts.iter().map(|h| h.to_string()).collect();
    if names.is_empty() {
        names.push("localhost".into());
    }
    if names.iter().any(|n| n == "localhost") {
        names.push("127.0.0.1".into());
        names.push("::1".into());
    }
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("generating a self-signed certificate failed: {e}"))?;
    for p in [cert_path, key_path] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    write_private(key_path, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, generated.cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), name = %c.name, "generated a self-signed certificate");
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_certificate_covers_its_names_and_one_label_under_its_wildcards() {
        let names = vec![
            "a.example.com".to_string(),
            "*.shop.example.com".to_string(),
        ];
        let exact = |h: &str| HostPattern::Exact(h.into());
        assert!(covers(&names, &exact("a.example.com")));
        assert!(covers(&names, &exact("x.shop.example.com")));
        assert!(!covers(&names, &exact("shop.example.com")));
        assert!(!covers(&names, &exact("x.y.shop.example.com")));
        assert!(!covers(&names, &exact("b.example.com")));
        assert!(covers(
            &names,
            &HostPattern::Wildcard("shop.example.com".into())
        ));
        assert!(!covers(
            &names,
            &HostPattern::Wildcard("example.com".into())
        ));
    }

    fn config(pems: &[(String, String)]) -> Config {
        let mut y = String::from(
            "listeners: { https: \"127.0.0.1:0\" }\ntenants: [{ name: t }]\ncertificates:\n",
        );
        for (i, (c, k)) in pems.iter().enumerate() {
            let ind = |s: &str| {
                s.lines()
                    .map(|l| format!("      {l}\n"))
                    .collect::<String>()
            };
            y.push_str(&format!(
                "  - name: c{i}\n    cert_pem: |\n{}    key_pem: |\n{}",
                ind(c),
                ind(k)
            ));
        }
        y.push_str("domains:\n");
        for i in 0..pems.len() {
            y.push_str(&format!(
                "  - {{ hosts: [d{i}.test], tenant: t, certificate: c{i} }}\n"
            ));
        }
        gatehouse_config::load_str(&y, Path::new(".")).unwrap()
    }

    fn pem(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    #[test]
    fn reload_reuses_unchanged_certificates_and_reparses_changed_ones() {
        let mut pems = vec![pem("d0.test"), pem("d1.test")];
        let first = CertMap::build(&config(&pems), CertGeneration::Skip, None).unwrap();
        pems[1] = pem("d1.test");
        let second = CertMap::build(&config(&pems), CertGeneration::Skip, Some(&first)).unwrap();
        let same = |m: &CertMap, host: &str| m.lookup(Some(host)).unwrap();
        assert!(Arc::ptr_eq(
            &same(&first, "d0.test"),
            &same(&second, "d0.test")
        ));
        assert!(!Arc::ptr_eq(
            &same(&first, "d1.test"),
            &same(&second, "d1.test")
        ));
        assert_ne!(
            same(&first, "d1.test").cert[0],
            same(&second, "d1.test").cert[0]
        );
        // Only the certificates in use are kept: the replaced one is gone.
        assert_eq!(second.parsed.len(), 2);
    }
}
