//! Write Gatehouse policy plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export_plugin!`],
//! built to a WebAssembly component with `gatehouse plugin build <crate-dir>`.
//! The proxy creates a fresh instance for every request. `on-response` usually
//! runs in the instance `on-request` used, but gets a fresh one when the proxy
//! could not keep it, so never carry state between the hooks (or requests) in
//! statics: keep it in [`kv`], or derive it from the request again. The ABI itself is `wit/plugin.wit` in the Gatehouse
//! repository; this crate wraps the bindings `wit-bindgen` generates from it.
//!
//! ```ignore
//! use gatehouse_plugin_sdk::{export_plugin, Plugin, Request, RequestDecision};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn on_request(req: &Request) -> RequestDecision {
//!         RequestDecision::proceed().set_header("x-hello", req.tenant())
//!     }
//! }
//! export_plugin!(Hello);
//! ```

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::OnceCell;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy",
        default_bindings_module: "gatehouse_plugin_sdk::bindings",
    });
}

use bindings::gatehouse::plugin::host;
use bindings::gatehouse::plugin::types as wit;

pub use wit::{Header, HeaderOp, LocalResponse, RequestLine};

/// A policy plugin. Both hooks default to "carry on unchanged".
pub trait Plugin {
    /// Called once the request is routed, before it goes upstream.
    fn on_request(request: &Request) -> RequestDecision {
        let _ = request;
        RequestDecision::proceed()
    }

    /// Called when the response head is ready, before it goes to the client.
    fn on_response(request: &Request, response: &Response) -> ResponseDecision {
        let _ = (request, response);
        ResponseDecision::proceed()
    }
}

/// Exports a [`Plugin`] implementation as the component's `handler`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct GatehouseExport;
            impl $crate::bindings::exports::gatehouse::plugin::handler::Guest for GatehouseExport {
                fn on_request(
                    request: $crate::RequestLine,
                ) -> $crate::bindings::gatehouse::plugin::types::RequestDecision {
                    <$plugin as $crate::Plugin>::on_request(&$crate::Request::new(request))
                        .into_wit()
                }
                fn on_response(
                    request: $crate::RequestLine,
                    status: u16,
                ) -> $crate::bindings::gatehouse::plugin::types::ResponseDecision {
                    <$plugin as $crate::Plugin>::on_response(
                        &$crate::Request::new(request),
                        &$crate::Response::new(status),
                    )
                    .into_wit()
                }
            }
    $crate::bindings::__export_policy!(GatehouseExport with_types_in $crate::bindings);
        };
    };
}

fn find<'h>(headers: &'h [Header], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// A property from the proxy, fetched on first use and kept for the hook.
fn cached_property<'a>(cell: &'a OnceCell<Option<String>>, name: &str) -> Option<&'a str> {
    cell.get_or_init(|| host::property(name)).as_deref()
}

/// The request as the proxy routed it. The request line comes with the
/// hook; headers and properties are fetched from the proxy the first time
/// they are read (and kept for the rest of the hook), so a plugin pays only
/// for what it reads.
pub struct Request {
    line: RequestLine,
    headers: OnceCell<Vec<Header>>,
    client_ip: OnceCell<Option<String>>,
    tls_sni: OnceCell<Option<String>>,
    tenant: OnceCell<Option<String>>,
    route: OnceCell<Option<String>>,
    pool: OnceCell<Option<String>>,
    request_id: OnceCell<Option<String>>,
}

impl Request {
    #[doc(hidden)]
    pub fn new(line: RequestLine) -> Self {
        Request {
            line,
            headers: OnceCell::new(),
            client_ip: OnceCell::new(),
            tls_sni: OnceCell::new(),
            tenant: OnceCell::new(),
            route: OnceCell::new(),
            pool: OnceCell::new(),
            request_id: OnceCell::new(),
        }
    }
    /// Method, uppercase.
    pub fn method(&self) -> &str {
        &self.line.method
    }
    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.line.scheme
    }
    /// Authority (host) the request was routed on, lowercase.
    pub fn authority(&self) -> &str {
        &self.line.authority
    }
    /// Path and query.
    pub fn path(&self) -> &str {
        &self.line.path
    }
    /// Path without the query.
    pub fn path_only(&self) -> &str {
        self.line.path.split('?').next().unwrap_or("")
    }
    /// Query string without the `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.line.path.split_once('?').map(|(_, q)| q)
    }
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(self.headers(), name)
    }
    /// First value of a header, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| core::str::from_utf8(v).ok())
    }
    /// All header fields, in order, as edited by earlier plugins.
    pub fn headers(&self) -> &[Header] {
        self.headers.get_or_init(host::request_headers)
    }
    /// Value of a cookie from the `cookie` header(s).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .filter(|h| h.name == "cookie")
            .filter_map(|h| core::str::from_utf8(&h.value).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
    /// Client IP address.
    pub fn client_ip(&self) -> &str {
        cached_property(&self.client_ip, "client-ip").unwrap_or_default()
    }
    /// TLS server name, if the client sent one.
    pub fn tls_sni(&self) -> Option<&str> {
        cached_property(&self.tls_sni, "tls-sni")
    }
    /// Tenant owning the domain.
    pub fn tenant(&self) -> &str {
        cached_property(&self.tenant, "tenant").unwrap_or_default()
    }
    /// Path prefix of the matched route.
    pub fn route(&self) -> &str {
        cached_property(&self.route, "route").unwrap_or_default()
    }
    /// Pool the route proxies to, if any.
    pub fn pool(&self) -> Option<&str> {
        cached_property(&self.pool, "pool")
    }
    /// Request id assigned by the proxy.
    pub fn request_id(&self) -> &str {
        cached_property(&self.request_id, "request-id").unwrap_or_default()
    }
}

/// The response head; headers are fetched on first read.
pub struct Response {
    status: u16,
    headers: OnceCell<Vec<Header>>,
}

impl Response {
    #[doc(hidden)]
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: OnceCell::new(),
        }
    }
    /// Status code.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(self.headers(), name)
    }
    /// All header fields, in order, as edited by the plugins that ran before.
    pub fn headers(&self) -> &[Header] {
        self.headers.get_or_init(host::response_headers)
    }
}

fn header(name: &str, value: impl AsRef<[u8]>) -> Header {
    Header {
        name: name.into(),
        value: value.as_ref().to_vec(),
    }
}

/// A locally generated response.
pub struct Respond(LocalResponse);

impl Respond {
    /// A response with this status and no body.
    pub fn new(status: u16) -> Self {
        Respond(LocalResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
    /// Adds a header field.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.0.headers.push(header(name, value));
        self
    }
    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = body.into();
        self
    }
    /// A JSON error body `{"error": "<message>"}` with its content type.
    pub fn json_error(status: u16, message: &str) -> Self {
        let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
        Respond::new(status)
            .header("content-type", "application/json")
            .body(body)
    }
}

/// What `on-request` decided: carry on (with edits) or answer locally.
pub enum RequestDecision {
    /// Carry on with these edits.
    Continue(wit::RequestEdits),
    /// Answer the client now.
    Respond(LocalResponse),
}

impl RequestDecision {
    /// Carry on unchanged; chain edits with the builder methods.
    pub fn proceed() -> Self {
        RequestDecision::Continue(wit::RequestEdits {
            headers: Vec::new(),
            path: None,
            pool: None,
            cache_key: None,
        })
    }
    /// Answer the client with this response.
    pub fn respond(response: Respond) -> Self {
        RequestDecision::Respond(response.0)
    }
    fn edit(mut self, f: impl FnOnce(&mut wit::RequestEdits)) -> Self {
        if let RequestDecision::Continue(e) = &mut self {
            f(e);
        }
        self
    }
    /// Sets a request header (replacing existing ones).
    pub fn set_header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.edit(|e| e.headers.push(HeaderOp::Set(header(name, value))))
    }
    /// Appends a request header.
    pub fn append_header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.edit(|e| e.headers.push(HeaderOp::Append(header(name, value))))
    }
    /// Removes a request header.
    pub fn remove_header(self, name: &str) -> Self {
        self.edit(|e| e.headers.push(HeaderOp::Remove(name.into())))
    }
    /// Rewrites the upstream path (and query); must start with `/`.
    pub fn path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.edit(|e| e.path = Some(path))
    }
    /// Sends the request to another pool of the same tenant.
    pub fn pool(self, pool: impl Into<String>) -> Self {
        let pool = pool.into();
        self.edit(|e| e.pool = Some(pool))
    }
    /// Overrides the cache key.
    pub fn cache_key(self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.edit(|e| e.cache_key = Some(key))
    }
    #[doc(hidden)]
    pub fn into_wit(self) -> wit::RequestDecision {
        match self {
            RequestDecision::Continue(e) => wit::RequestDecision::Continue(e),
            RequestDecision::Respond(r) => wit::RequestDecision::Respond(r),
        }
    }
}

/// What `on-response` decided: carry on (with header edits) or replace the response.
pub enum ResponseDecision {
    /// Send the response on with these header edits.
    Continue(Vec<HeaderOp>),
    /// Replace the response.
    Respond(LocalResponse),
}

impl ResponseDecision {
    /// Carry on unchanged; chain edits with the builder methods.
    pub fn proceed() -> Self {
        ResponseDecision::Continue(Vec::new())
    }
    /// Replace the response with this one.
    pub fn respond(response: Respond) -> Self {
        ResponseDecision::Respond(response.0)
    }
    fn edit(mut self, op: HeaderOp) -> Self {
        if let ResponseDecision::Continue(ops) = &mut self {
            ops.push(op);
        }
        self
    }
    /// Sets a response header (replacing existing ones).
    pub fn set_header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.edit(HeaderOp::Set(header(name, value)))
    }
    /// Appends a response header.
    pub fn append_header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.edit(HeaderOp::Append(header(name, value)))
    }
    /// Removes a response header.
    pub fn remove_header(self, name: &str) -> Self {
        self.edit(HeaderOp::Remove(name.into()))
    }
    #[doc(hidden)]
    pub fn into_wit(self) -> wit::ResponseDecision {
        match self {
            ResponseDecision::Continue(ops) => wit::ResponseDecision::Continue(ops),
            ResponseDecision::Respond(r) => wit::ResponseDecision::Respond(r),
        }
    }
}

/// The binding's configuration.
pub mod config {
    use alloc::boxed::Box;
    use alloc::string::String;
    use core::any::Any;
    use once_cell::race::OnceBox;

    /// The configuration as a JSON document (`{}` when the binding has none).
    pub fn json() -> String {
        super::host::config()
    }

    /// The configuration parsed into `T`, afresh on every call.
    pub fn parse<T: serde::de::DeserializeOwned>() -> Result<T, serde_json::Error> {
        serde_json::from_str(&json())
    }

    /// The configuration parsed into `T` once per instance: when
    /// `on-response` runs in the instance `on-request` used, it reuses what
    /// `on-request` parsed. (Only the first type asked for is kept; asking for
    /// another parses it each time, held until the instance ends.)
    pub fn get<T>() -> Result<&'static T, serde_json::Error>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        static PARSED: OnceBox<Box<dyn Any + Send + Sync>> = OnceBox::new();
        let parsed = PARSED.get_or_try_init(|| {
            parse::<T>().map(|t| Box::new(Box::new(t) as Box<dyn Any + Send + Sync>))
        })?;
        match parsed.downcast_ref::<T>() {
            Some(t) => Ok(t),
            None => parse::<T>().map(|t| &*Box::leak(Box::new(t))),
        }
    }
}

/// Logging through the proxy (lines are capped and tagged with tenant, plugin and request id).
pub mod log {
    use super::host::{self, Level};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        host::log(Level::Debug, message)
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        host::log(Level::Info, message)
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        host::log(Level::Warn, message)
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        host::log(Level::Error, message)
    }
}

/// Counters exported as `gatehouse_plugin_counter_total{tenant,plugin,name}`.
pub fn counter_add(name: &str, delta: u64) {
    host::counter_add(name, delta)
}

/// Sets the key this request counts under for the route's `key: plugin`
/// rate limits (e.g. the authenticated user), during `on_request`.
pub fn rate_limit_key(key: &str) {
    host::rate_limit_key(key)
}

/// A request property not in the head (`tls-version`, `http-version`, `domain`, ...).
pub fn property(name: &str) -> Option<String> {
    host::property(name)
}

/// The tenant's key-value store, shared by the tenant's plugins across requests.
pub mod kv {
    use alloc::vec::Vec;

    pub use super::host::KvError as Error;

    /// Reads a value.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        super::host::kv_get(key)
    }
    /// Stores a value for `ttl_ms` milliseconds (capped by the proxy).
    pub fn set(key: &str, value: &[u8], ttl_ms: u32) -> Result<(), Error> {
        super::host::kv_set(key, value, ttl_ms)
    }
    /// Removes a value.
    pub fn delete(key: &str) {
        super::host::kv_delete(key)
    }
}
