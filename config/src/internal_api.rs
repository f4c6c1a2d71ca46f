//! `internal_api`: the credential the internal listener's mutating and
//! revealing endpoints (`/bans`, `/cache/purge`) require. Without one they
//! are refused: the listener is often bound to a network that more than the
//! operator can reach. Holds the file types, the checked settings and
//! [`check`].

use crate::check::Checker;
use model::InternalApi;

/// Shortest token accepted: guessing must be hopeless.
const MIN_TOKEN_LEN: usize = 32;

pub mod file {
    //! `internal_api` as operators write it.

    use serde::{Deserialize, Serialize};

    /// The internal listener's credential.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "schema", schema(as = config::InternalApi))]
    #[serde(deny_unknown_fields)]
    pub struct InternalApi {
        /// File holding the bearer token (at least 32 characters; surrounding
        /// whitespace ignored). Read at every reload, so it can be rotated.
        pub token_file: Option<String>,
    }
}

pub mod model {
    //! `internal_api`, checked.

    /// The internal listener's credential (see `file::InternalApi`).
    #[derive(Clone, Default, PartialEq, Eq)]
    pub struct InternalApi {
        /// The bearer token; `None`: the guarded endpoints are refused.
        pub token: Option<String>,
    }

    impl std::fmt::Debug for InternalApi {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // Never print the token.
            f.debug_struct("InternalApi")
                .field("token", &self.token.as_ref().map(|_| "<redacted>"))
                .finish()
        }
    }

    impl InternalApi {
        /// Whether `presented` (an `Authorization` header value) carries the
        /// token, compared in constant time.
        pub fn authorizes(&self, presented: Option<&[u8]>) -> bool {
            let (Some(token), Some(presented)) = (&self.token, presented) else {
                return false;
            };
            let Some(given) = presented.strip_prefix(b"Bearer ") else {
                return false;
            };
            given.len() == token.len()
                && given
                    .iter()
                    .zip(token.as_bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
    }
}

pub(crate) fn check(c: &file::InternalApi, cx: &mut Checker<'_>) -> InternalApi {
    let Some(path) = &c.token_file else {
        return InternalApi::default();
    };
    let field = "internal_api.token_file";
    let token = match std::fs::read_to_string(cx.resolve_path(path)) {
        Ok(t) => t.trim().to_string(),
        Err(e) => {
            cx.err(field, format!("cannot read {path}: {e}"));
            return InternalApi::default();
        }
    };
    if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        cx.err(
            field,
            format!(
                "the token must be at least {MIN_TOKEN_LEN} printable characters without spaces"
            ),
        );
        return InternalApi::default();
    }
    InternalApi { token: Some(token) }
}

#[cfg(test)]
mod tests {
    use super::model::InternalApi;

    #[test]
    fn only_the_exact_bearer_token_authorizes() {
        let api = InternalApi {
            token: Some("a".repeat(32)),
        };
        let good = format!("Bearer {}", "a".repeat(32));
        assert!(api.authorizes(Some(good.as_bytes())));
        assert!(!api.authorizes(None));
        assert!(!api.authorizes(Some(b"Bearer aaaa")));
        assert!(!api.authorizes(Some("a".repeat(32).as_bytes())));
        assert!(!InternalApi::default().authorizes(Some(good.as_bytes())));
        assert!(!format!("{api:?}").contains("aaaa"));
    }
}
