//! Secrets at rest: AEAD encryption of what the store must keep but never show
//! (certificate private keys, ACME account keys), bound to what they belong to
//! and naming the key that sealed them. Imports nothing else of this crate.

// Values are sealed with ChaCha20-Poly1305 (ring) under a 256-bit key read
// from a key file, with a fresh random nonce each time, and bound to what
// they belong to by associated data (`certificate/<id>`): a sealed value
// copied onto another row does not open. The sealed form names the key that
// sealed it (`gh1.<key id>.<hex>`), so keys can be rotated: the key file
// holds one key per line, the first seals, all open.

use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "gh1";
const KEY_BYTES: usize = 32;

/// Why a secret could not be opened or the keys loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The key file is malformed.
    #[error("secret key file: {0}")]
    KeyFile(String),
    /// The sealed value is not in the `gh1.<key id>.<hex>` form.
    #[error("not a sealed secret")]
    Malformed,
    /// It was sealed with a key that is not in the key file.
    #[error("sealed with key {0}, which is not in the key file")]
    UnknownKey(String),
    /// It was altered, or belongs to something else.
    #[error("the sealed secret does not open: altered, or bound to another object")]
    Rejected,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys that seal and open secrets.
pub struct Keys {
    /// The first seals; all open.
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keys").field("ids", &ids).finish()
    }
}

impl Keys {
    /// Keys from the text of a key file: one key per line, 64 hex digits;
    /// blank lines and `#` comments are skipped; the first key seals.
    pub fn parse(text: &str) -> Result<Keys, SecretError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = unhex(line)
                .filter(|b| b.len() == KEY_BYTES)
                .ok_or_else(|| {
                    SecretError::KeyFile(format!("line {}: expected 64 hex digits", n + 1))
                })?;
            let id = hex(&ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()[..4]);
            let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
                .map_err(|_| SecretError::KeyFile(format!("line {}: unusable key", n + 1)))?;
            keys.push(Key {
                id,
                key: LessSafeKey::new(key),
            });
        }
        if keys.is_empty() {
            return Err(SecretError::KeyFile("no key in the file".into()));
        }
        Ok(Keys {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// Reads the key file at `path`; when it does not exist and `create` is
    /// set, writes a new random key there first (owner-only permissions).
    pub fn load(path: &Path, create: bool) -> anyhow::Result<Keys> {
        if !path.exists() && create {
            let mut key = [0u8; KEY_BYTES];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| anyhow::anyhow!("no system randomness"))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            writeln!(
                f,
                "# Gatehouse secret key (first line seals; older keys below it still open)"
            )?;
            writeln!(f, "{}", hex(&key))?;
            f.sync_all()?;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the secret key file {}: {e}", path.display()))?;
        Ok(Keys::parse(&text)?)
    }

    /// Seals `plaintext`, bound to `context` (e.g. `certificate/<id>`).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let primary = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut data = plaintext.to_vec();
        primary
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .expect("sealing cannot fail for in-memory sizes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}.{}.{}", primary.id, hex(&out))
    }

    /// Opens what `seal` produced for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SecretError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(PREFIX), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        let bytes = unhex(body).ok_or(SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(SecretError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Malformed)?;
        let mut data = rest.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| SecretError::Rejected)?;
        Ok(plain.to_vec())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100";

    #[test]
    fn a_sealed_secret_opens_only_for_its_context() {
        let keys = Keys::parse(K1).unwrap();
        let sealed = keys.seal(b"-----BEGIN PRIVATE KEY-----", "certificate/a");
        assert!(sealed.starts_with("gh1."));
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            keys.open(&sealed, "certificate/a").unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert_eq!(
            keys.open(&sealed, "certificate/b"),
            Err(SecretError::Rejected)
        );
        // Fresh nonces: the same secret never seals to the same text.
        assert_ne!(
            sealed,
            keys.seal(b"-----BEGIN PRIVATE KEY-----", "certificate/a")
        );
    }

    #[test]
    fn an_altered_secret_does_not_open() {
        let keys = Keys::parse(K1).unwrap();
        let sealed = keys.seal(b"secret", "x");
        let last = sealed.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &sealed[..sealed.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert_eq!(keys.open(&flipped, "x"), Err(SecretError::Rejected));
        assert_eq!(keys.open("gh1.abc", "x"), Err(SecretError::Malformed));
        assert_eq!(keys.open("plain text", "x"), Err(SecretError::Malformed));
        assert_eq!(keys.open(&sealed[..20], "x"), Err(SecretError::Malformed));
    }

    #[test]
    fn keys_rotate_new_seals_old_still_opens() {
        let old = Keys::parse(K1).unwrap();
        let sealed_before = old.seal(b"kept", "c");
        let rotated = Keys::parse(&format!("# new first\n{K2}\n\n{K1}\n")).unwrap();
        assert_eq!(rotated.open(&sealed_before, "c").unwrap(), b"kept");
        let sealed_after = rotated.seal(b"new", "c");
        assert!(matches!(
            old.open(&sealed_after, "c"),
            Err(SecretError::UnknownKey(_))
        ));
        assert_eq!(rotated.open(&sealed_after, "c").unwrap(), b"new");
    }

    #[test]
    fn malformed_key_files_are_refused() {
        assert!(Keys::parse("").is_err());
        assert!(Keys::parse("# only a comment\n").is_err());
        assert!(Keys::parse("abcd").is_err());
        assert!(Keys::parse(&K1.replace('0', "g")).is_err());
        let debug = format!("{:?}", Keys::parse(K1).unwrap());
        assert!(!debug.contains(K1), "key material in Debug: {debug}");
    }

    #[test]
    fn a_missing_key_file_is_created_private_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/secret.key");
        assert!(
            Keys::load(&path, false).is_err(),
            "not created unless asked"
        );
        let keys = Keys::load(&path, true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = keys.seal(b"s", "c");
        let again = Keys::load(&path, true).unwrap();
        assert_eq!(
            again.open(&sealed, "c").unwrap(),
            b"s",
            "the same key on reload"
        );
    }
}
