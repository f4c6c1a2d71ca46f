//! Releasing the draft: the published document (`document`) and how it
//! renders into the proxies' config (`render`), validation (`validate`),
//! stored versions (`versions`), diffs (`diff`), and the one optimistic loop
//! every new version goes through (`publish`, `certificate`).
//! Imports `draft`, `model` and `infra`.

pub(crate) mod certificate;
pub(crate) mod diff;
pub(crate) mod document;
pub(crate) mod publish;
pub(crate) mod render;
pub(crate) mod validate;
pub(crate) mod versions;
