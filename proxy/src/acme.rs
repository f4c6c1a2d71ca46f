//! ACME HTTP-01 challenges this node answers at
//! `/.well-known/acme-challenge/<token>`, before routing: the set comes from
//! the control plane (`control::follow_challenges`), so a certificate can be
//! validated through any node, for domains not yet served (or served only
//! over HTTPS: the answer comes before `force_https`, the WAF and rate
//! limits). Only requests for the challenge's own host get the answer.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The path prefix of HTTP-01 validation requests (RFC 8555 §8.3).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// token → (host, key authorization).
type Set = HashMap<String, (String, String)>;

/// The challenges a node answers (one per node, in its `NodeState`).
#[derive(Default)]
pub struct Challenges(ArcSwap<Set>);

impl Challenges {
    /// Replaces the set this node answers: (host, token, key authorization).
    pub fn replace(&self, challenges: impl IntoIterator<Item = (String, String, String)>) {
        let set: Set = challenges
            .into_iter()
            .map(|(host, token, key)| (token, (host.to_ascii_lowercase(), key)))
            .collect();
        self.0.store(Arc::new(set));
    }

    /// The answer to a request for `path` on `host` (normalised), if it is a
    /// challenge this node holds.
    pub fn answer(&self, host: &str, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        let set = self.0.load();
        let (for_host, key) = set.get(token)?;
        (for_host == host).then(|| key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_challenges_host_gets_the_answer() {
        let challenges = Challenges::default();
        challenges.replace([(
            "Shop.Example.test".into(),
            "tok_1234567890abcdef".into(),
            "tok.thumb".into(),
        )]);
        let path = format!("{CHALLENGE_PREFIX}tok_1234567890abcdef");
        assert_eq!(
            challenges.answer("shop.example.test", &path).as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(challenges.answer("other.example.test", &path), None);
        assert_eq!(
            challenges.answer("shop.example.test", "/.well-known/acme-challenge/nope"),
            None
        );
        challenges.replace([]);
        assert_eq!(challenges.answer("shop.example.test", &path), None);
    }
}
