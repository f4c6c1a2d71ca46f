//! API token credentials: their format (`gh_<prefix>_<secret>`), generation,
//! the hash that is stored and its verification; also public as `token`.
//! Imports nothing else of this crate.

// A token reads `gh_<prefix>_<secret>`: the 8-character prefix identifies it
// (shown in listings and the audit log, unique), the 40-character secret is
// 160 random bits. Only the SHA-256 of the secret is stored: the secret has
// full entropy, so a slow password hash would add cost without adding safety.
// The token itself is shown once, when it is created.

use ring::rand::{SecureRandom, SystemRandom};

const PREFIX_LEN: usize = 8;
const SECRET_BYTES: usize = 20;
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A freshly generated token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The whole token, to show once.
    pub token: String,
    /// Its public prefix.
    pub prefix: String,
    /// SHA-256 of its secret, hex: what is stored.
    pub secret_sha256: String,
}

/// The parts of a presented token.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    /// The public prefix.
    pub prefix: &'a str,
    /// The secret.
    pub secret: &'a str,
}

/// Generates a token.
pub fn generate() -> NewToken {
    let rng = SystemRandom::new();
    let mut prefix = [0u8; PREFIX_LEN];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill(&mut prefix).expect("system random source");
    rng.fill(&mut secret).expect("system random source");
    let prefix: String = prefix
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    let secret = hex(&secret);
    NewToken {
        token: format!("gh_{prefix}_{secret}"),
        secret_sha256: secret_sha256(&secret),
        prefix,
    }
}

/// Splits a presented token, or `None` when it is not in token form.
pub fn parse(token: &str) -> Option<Presented<'_>> {
    let rest = token.strip_prefix("gh_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let prefix_ok = prefix.len() == PREFIX_LEN && prefix.bytes().all(|b| ALPHABET.contains(&b));
    let secret_ok =
        secret.len() == SECRET_BYTES * 2 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    (prefix_ok && secret_ok).then_some(Presented { prefix, secret })
}

/// SHA-256 of a secret, hex.
pub fn secret_sha256(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Whether `secret` hashes to `stored` (compared in constant time).
pub fn verify(secret: &str, stored: &str) -> bool {
    let computed = secret_sha256(secret);
    computed.len() == stored.len()
        && computed
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` random bytes from the system source, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random source");
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify() {
        let t = generate();
        let p = parse(&t.token).expect("well-formed");
        assert_eq!(p.prefix, t.prefix);
        assert!(verify(p.secret, &t.secret_sha256));
        assert!(
            !t.token.contains(&t.secret_sha256),
            "the stored hash is not the secret"
        );
        let other = generate();
        assert_ne!(t.token, other.token);
        assert!(!verify(p.secret, &other.secret_sha256));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = generate().token;
        assert!(parse(&t[..t.len() - 1]).is_none(), "short secret");
        assert!(parse(&t.replacen("gh_", "gx_", 1)).is_none());
        assert!(parse("gh_ABCDEFGH_0123").is_none());
        assert!(parse("").is_none());
        assert!(parse(&format!("{t}x")).is_none());
    }
}
