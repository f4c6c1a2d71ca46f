//! What a domain's references to other sections resolve against: the name
//! indexes `validate` builds from certificates, pools and plugins before it
//! checks the domains. Plain data, so that domains and routes need not know
//! how the other sections are checked.

use std::collections::HashMap;

use crate::pools::file::Pool;

/// Name indexes of the sections domains and routes refer to.
pub(crate) struct Refs<'a> {
    /// Certificate name → index into `certificates`.
    pub certificates: &'a HashMap<String, usize>,
    /// Pool name → index into `pools`.
    pub pools: &'a HashMap<String, usize>,
    /// The pools as written, for the tenant owning each.
    pub pool_files: &'a [Pool],
    /// Plugin name → (index into `plugins`, owning tenant).
    pub plugins: &'a HashMap<String, (usize, String)>,
    /// `limits.plugins.max_chain`: bindings one request may run.
    pub max_chain: usize,
}
