//! Per-domain header rules: template rendering and edits on request/response heads.

use std::sync::Arc;

use gatehouse_config::model::{HeaderEdits, Template, TemplatePart, Variable};
use pingora::http::{RequestHeader, ResponseHeader};

/// Per-request values that header templates can reference.
#[derive(Debug, Default, Clone)]
pub struct RequestVars {
    /// Client IP.
    pub client_ip: String,
    /// Request id.
    pub request_id: String,
    /// Host without port.
    pub host: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Path and query.
    pub request_uri: String,
    /// Tenant of the matched domain.
    pub tenant: Arc<str>,
}

impl RequestVars {
    fn get(&self, v: Variable) -> &str {
        match v {
            Variable::ClientIp => &self.client_ip,
            Variable::RequestId => &self.request_id,
            Variable::Host => &self.host,
            Variable::Scheme => self.scheme,
            Variable::RequestUri => &self.request_uri,
            Variable::Tenant => &self.tenant,
        }
    }

    /// Renders `t` with these values.
    pub fn render(&self, t: &Template) -> String {
        let mut out = String::new();
        for p in &t.parts {
            match p {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Var(v) => out.push_str(self.get(*v)),
            }
        }
        out
    }
}

/// A request or response head that header edits can apply to.
pub trait EditableHead {
    /// Removes every value of `name`.
    fn remove(&mut self, name: &http::HeaderName);
    /// Replaces `name` with `value`.
    fn set(&mut self, name: &http::HeaderName, value: String);
    /// Appends a value of `name`.
    fn add(&mut self, name: &http::HeaderName, value: String);
}

macro_rules! editable_head {
    ($t:ty) => {
        impl EditableHead for $t {
            fn remove(&mut self, name: &http::HeaderName) {
                self.remove_header(name);
            }
            fn set(&mut self, name: &http::HeaderName, value: String) {
                // Values were validated at load and variables hold header-safe text;
                // a failure here would only drop this one header.
                let _ = self.insert_header(name.clone(), value);
            }
            fn add(&mut self, name: &http::HeaderName, value: String) {
                let _ = self.append_header(name.clone(), value);
            }
        }
    };
}
editable_head!(RequestHeader);
editable_head!(ResponseHeader);

/// Applies `edits` in the order remove, set, add.
pub fn apply(edits: &HeaderEdits, head: &mut impl EditableHead, vars: &RequestVars) {
    for name in &edits.remove {
        head.remove(name);
    }
    for (name, t) in &edits.set {
        head.set(name, vars.render(t));
    }
    for (name, t) in &edits.add {
        head.add(name, vars.render(t));
    }
}
