//! Purge requests: what to remove from one tenant's part of the edge cache.
//!
//! A purge names its tenant and one target; it can only ever reach that
//! tenant's objects (the store keeps tenants apart), so a purge for another
//! tenant's URL removes nothing. URLs are given as clients use them
//! (`https://shop.example.com/p/1?x=2`) or without a scheme; the port, the
//! scheme and the host's case do not matter, as for the cache key.

use gatehouse_config::published::PurgeTarget;
use serde::Deserialize;

use crate::metrics::metrics;
use crate::route::{normalize_host, normalize_path};

/// A purge request (JSON), e.g. `{"tenant":"acme","prefix":"https://acme.test/img/"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    pub tenant: String,
    /// One URL, every variant of it.
    pub url: Option<String>,
    /// Every URL starting with this (host and path prefix).
    pub prefix: Option<String>,
    /// Every object the origin tagged so (`Cache-Tag`, `Surrogate-Key`).
    pub tag: Option<String>,
    /// Every object of one host.
    pub host: Option<String>,
    /// Everything the tenant has stored.
    #[serde(default)]
    pub all: bool,
}

impl PurgeRequest {
    /// What the request purges.
    pub fn target(&self) -> PurgeTarget {
        PurgeTarget {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
            tag: self.tag.clone(),
            host: self.host.clone(),
            all: self.all,
        }
    }
}

/// A purge request that cannot be carried out, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> PurgeError {
    PurgeError {
        field,
        message: message.into(),
    }
}

/// `url` in the store's form: lowercase host without port, then the
/// normalised path and the query.
fn store_url(url: &str, field: &'static str) -> Result<String, PurgeError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = normalize_host(authority)
        .ok_or_else(|| invalid(field, format!("invalid host in {url:?}")))?;
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let path =
        normalize_path(path).map_err(|_| invalid(field, format!("invalid path in {url:?}")))?;
    Ok(match query {
        Some(q) => format!("{host}{path}?{q}"),
        None => format!("{host}{path}"),
    })
}

/// Carries out a purge of `tenant`'s objects; returns how many were removed.
pub fn purge(tenant: &str, req: &PurgeTarget) -> Result<usize, PurgeError> {
    if tenant.is_empty() {
        return Err(invalid("tenant", "name the tenant whose objects to purge"));
    }
    req.check()
        .map_err(|(field, message)| invalid(field, message))?;
    let store = super::store();
    let (kind, n) = if let Some(url) = &req.url {
        ("url", store.purge_url(tenant, &store_url(url, "url")?))
    } else if let Some(prefix) = &req.prefix {
        // A prefix may end mid-segment (`/img/2024-`).
        (
            "prefix",
            store.purge_prefix(tenant, &store_url(prefix, "prefix")?),
        )
    } else if let Some(tag) = &req.tag {
        ("tag", store.purge_tag(tenant, tag))
    } else if let Some(host) = &req.host {
        let host = normalize_host(host)
            .ok_or_else(|| invalid("host", format!("invalid host {host:?}")))?;
        ("host", store.purge_host(tenant, &host))
    } else {
        ("tenant", store.purge_tenant(tenant))
    };
    metrics()
        .cache_purged
        .with_label_values(&[tenant, kind])
        .inc_by(n as u64);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_the_cache_keys_form() {
        assert_eq!(
            store_url("https://Shop.Example.com:8443/a/../b?x=1", "url").unwrap(),
            "shop.example.com/b?x=1"
        );
        assert_eq!(
            store_url("shop.example.com", "url").unwrap(),
            "shop.example.com/"
        );
        assert!(store_url("http://bad host/", "url").is_err());
    }

    #[test]
    fn a_purge_names_exactly_one_target() {
        assert_eq!(
            purge("t", &PurgeTarget::default()).unwrap_err().field,
            "url"
        );
        let two = PurgeTarget {
            tag: Some("a".into()),
            all: true,
            ..Default::default()
        };
        assert!(purge("t", &two).is_err());
        let all = PurgeTarget {
            all: true,
            ..Default::default()
        };
        assert_eq!(purge("", &all).unwrap_err().field, "tenant");
        let bad_tag = PurgeTarget {
            tag: Some("a b".into()),
            ..Default::default()
        };
        assert_eq!(purge("t", &bad_tag).unwrap_err().field, "tag");
    }
}
