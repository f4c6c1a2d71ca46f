//! Checks that a tenant controls a hostname before its domain goes active: by
//! HTTP (`http`) or by a DNS TXT record (`dns`). A room of its own beside the
//! layers; used by `api::domains`. Imports `model` and `infra`.

mod dns;
mod http;

pub(crate) use dns::dns_check;
pub(crate) use http::http_check;
