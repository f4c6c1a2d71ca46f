//! Names of tenant objects, and how they appear in published configs
//! (`tenant/name`). Imports `infra`.

// Objects are named per tenant (two tenants may both have a pool `web`); the
// published config qualifies them as `tenant/name`, a form the config
// validation checks against the owning tenant.

use crate::infra::error::ApiError;

/// Checks an object name: 1-63 of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
pub fn check(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
        ))
    }
}

/// `tenant/name`: the name an object has in a published config.
pub fn qualified(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        for ok in ["web", "a", "0day", "api_v2", "a-b"] {
            assert!(check("name", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["", "-web", "_x", "Web", "a/b", "a.b", long.as_str()] {
            assert!(check("name", bad).is_err(), "{bad:?}");
        }
    }
}
