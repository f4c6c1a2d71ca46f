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

/// Adds a domain's security headers the response lacks (an application's own
/// stricter policy wins), HSTS on HTTPS only (browsers ignore it over HTTP,
/// and RFC 6797 says not to send it there), and strips `Server` /
/// `X-Powered-By` when asked.
pub fn apply_security(
    sec: &gatehouse_config::model::SecurityHeaders,
    head: &mut pingora::http::ResponseHeader,
    https: bool,
) {
    if sec.strip_server_headers {
        head.remove_header(&http::header::SERVER);
        head.remove_header("x-powered-by");
    }
    for (name, value) in &sec.headers {
        if !head.headers.contains_key(name) {
            let _ = head.insert_header(name.clone(), value.clone());
        }
    }
    if let (true, Some(hsts)) = (https, &sec.hsts) {
        if !head
            .headers
            .contains_key(http::header::STRICT_TRANSPORT_SECURITY)
        {
            let _ = head.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}
