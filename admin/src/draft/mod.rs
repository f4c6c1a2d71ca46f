//! The draft: each tenant's objects as edited, not yet published. Object rows
//! and revisions with their preconditions (`objects`), who may read and change
//! them (`access`), who holds a hostname (`hostnames`) and what objects
//! require of each other (`references`). Imports `model` and `infra`.

pub(crate) mod access;
pub mod blobs;
pub(crate) mod hostnames;
pub(crate) mod objects;
pub(crate) mod references;
