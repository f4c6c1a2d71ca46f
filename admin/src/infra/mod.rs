//! The bottom layer: the store, secrets at rest, who is calling (auth and API
//! token credentials), the audit log's writing side, the one error shape, the
//! state handlers share, and small helpers (object names, hostnames,
//! durations, internal addresses). Imports nothing else of this crate.

pub mod acme_settings;
pub(crate) mod audit;
pub mod auth;
pub mod credentials;
pub(crate) mod duration;
pub(crate) mod error;
pub(crate) mod hostname;
pub(crate) mod names;
pub mod net;
pub mod secrets;
pub(crate) mod state;
pub mod store;
