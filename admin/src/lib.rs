//! Gatehouse's control plane: the admin API that tenants and automation use
//! to manage the edge (JSON under `/v1`, bearer tokens with roles, every
//! mutation audited, state in SQLite or PostgreSQL, an OpenAPI document
//! generated from the handlers and served at `/v1/openapi.json`).
//!
//! The code is in layers, each importing only the ones below it:
//!
//! - `api`: the HTTP face, one module per resource (handlers, request and
//!   response types, OpenAPI paths, router), and `server` that runs it;
//! - `acme`: certificates from the platform's ACME CA (client, orders,
//!   challenges, renewal); `ownership`: HTTP and DNS ownership checks;
//! - `release`: the published document, its rendering into the proxies'
//!   config, validation, versions (one optimistic retry loop) and diffs;
//! - `draft`: tenants' objects as edited: rows, revisions, preconditions,
//!   access, hostnames and references between objects;
//! - `model`: each resource's spec and how it renders into the config model;
//! - `infra`: store, secrets, auth and token credentials, audit log, errors,
//!   the shared state, names, hostnames and durations.
//!
//! `ownership` imports only `model` and `infra`; `acme` imports `release` and
//! below. The modules callers use are re-exported here under their names.

pub mod acme;
mod api;
mod draft;
mod infra;
mod model;
mod ownership;
mod release;
mod server;

pub use api::{openapi, router, MAX_BODY_BYTES};
pub use draft::blobs;
pub use infra::credentials as token;
pub use infra::state::AppState;
pub use infra::{auth, net, secrets, store};
pub use server::{
    bootstrap, install_local_node_token, serve, Bootstrap, ServeOptions, PENDING_DOMAIN_TTL,
    PLUGIN_STORAGE_BYTES,
};
