//! Certificates for tenants' domains from the platform's ACME CA: the protocol
//! client (`client`), orders (`orders`) with each domain's record (`records`),
//! the challenge set every node serves (`challenges`) and renewal in the
//! background (`renewal`). Imports `release`, `draft`, `model` and `infra`.

pub(crate) mod challenges;
pub(crate) mod client;
pub(crate) mod orders;
pub(crate) mod records;
pub(crate) mod renewal;

pub use crate::infra::acme_settings::{decode_eab_key, Eab, Settings};
pub use client::{
    account, begin, complete, issue, validate, AcmeError, HttpChallenge, Issued, Pending,
};
