//! The tenant resources' specs as the API takes them and the store keeps
//! them, and how each renders into the proxies' config model
//! (`gatehouse_config::file`). No HTTP and no SQL here. Imports only `infra`.

pub(crate) mod certificate;
pub(crate) mod domain;
pub(crate) mod plugin;
pub(crate) mod pool;
pub(crate) mod rate_ceiling;
pub(crate) mod route;
