//! Running a route's plugin chain over a request or a response.
//!
//! `on-request` runs in chain order (the domain's bindings, then the route's);
//! each plugin sees the request as edited by those before it, and the first
//! local response ends the chain. `on-response` runs in reverse order, like
//! unwinding middleware. A failed call is handled by its binding's failure
//! mode: fail-open skips the plugin, fail-closed ends the chain with an error
//! status. A call shed because its tenant is over a plugin budget follows the
//! failure mode too, except that failing closed always answers 503
//! `plugin_overloaded` with `Retry-After`. Calls are futures that yield to the
//! runtime at every epoch tick (see the plugin host's `call`), so a chain never
//! holds a worker thread for long. Edits reach the real message only through
//! `apply_*`, after checks.

use std::sync::Arc;

use pingora::http::{RequestHeader, ResponseHeader};

use gatehouse_plugin_host::{
    Failure, Header, HeaderEdit, Instance, PluginCall, Properties, RequestEdits, RequestOutcome,
    RequestView, Respond, ResponseOutcome, ResponseView, Shed,
};

use super::BoundPlugin;
use gatehouse_config::model::FailureMode;

/// Why a chain stopped before its end.
#[derive(Debug)]
pub enum ChainStop {
    /// A plugin answered locally.
    Respond(Respond),
    /// A fail-closed binding's tenant is over a plugin budget: answer 503
    /// `plugin_overloaded` with `Retry-After`.
    Overloaded {
        /// Plugin name.
        plugin: String,
        /// Which budget.
        shed: Shed,
        /// `Retry-After` seconds.
        retry_after: u32,
    },
    /// A fail-closed plugin failed; answer with `status`.
    Failed {
        /// Plugin name.
        plugin: String,
        /// What went wrong.
        failure: Failure,
        /// Status to answer with.
        status: u16,
    },
}

/// Header fields in WIT form.
pub fn wit_headers(headers: &http::HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .map(|(n, v)| Header {
            name: n.as_str().to_string(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

fn edit_wit(headers: &mut Vec<Header>, edit: &HeaderEdit) {
    match edit {
        HeaderEdit::Set(n, v) => {
            headers.retain(|h| h.name != n.as_str());
            headers.push(Header {
                name: n.as_str().to_string(),
                value: v.as_bytes().to_vec(),
            });
        }
        HeaderEdit::Append(n, v) => headers.push(Header {
            name: n.as_str().to_string(),
            value: v.as_bytes().to_vec(),
        }),
        HeaderEdit::Remove(n) => headers.retain(|h| h.name != n.as_str()),
    }
}

/// Whether a failure is logged: only calls that ran, within the tenant's log
/// budget (the line counts as 256 bytes).
fn logged(plugin: &gatehouse_plugin_host::CompiledPlugin, failure: &Failure) -> bool {
    failure.ran() && plugin.may_log(256)
}

fn failed(
    bound: &BoundPlugin,
    call: &PluginCall<'_>,
    failure: Failure,
    props: &Properties,
) -> Option<ChainStop> {
    let p = &bound.plugin;
    match bound.binding.failure_mode {
        // Calls not run (shed, or an open circuit) are not logged: a flood
        // would write a line per request. They are counted, and the circuit
        // opening is logged once.
        FailureMode::Open if !logged(p, &failure) => None,
        FailureMode::Open => {
            tracing::warn!(tenant = %p.tenant, plugin = %p.name, request_id = %props.request_id, failure = %failure, "plugin failed; skipped (fail_open)");
            None
        }
        FailureMode::Closed => {
            if let Failure::Overloaded { shed, retry_after } = failure {
                return Some(ChainStop::Overloaded {
                    plugin: p.name.clone(),
                    shed,
                    retry_after,
                });
            }
            let status = call.failure_status(&failure);
            if logged(p, &failure) {
                tracing::warn!(tenant = %p.tenant, plugin = %p.name, request_id = %props.request_id, failure = %failure, status, "plugin failed; request refused (fail_closed)");
            }
            Some(ChainStop::Failed {
                plugin: p.name.clone(),
                failure,
                status,
            })
        }
    }
}

/// Runs `on-request` through `chain`, accumulating checked edits in `edits`
/// and applying them to `head` for the next plugin. `pool_of_tenant` resolves
/// a pool hint among the tenant's pools. `instances` receives the instances
/// kept for `on-response` (one slot per binding); when the chain stops they
/// are released at once, since `on-response` will not run. `Ok(false)`: the
/// tenant was over a plugin budget and its fail-open bindings were skipped
/// from there on; `on-response` is skipped too (the request goes on without
/// the tenant's plugins, and a shed request costs two hooks less).
pub async fn run_request(
    chain: &[BoundPlugin],
    request: &mut RequestView,
    props: &Arc<Properties>,
    pool_of_tenant: &(dyn Fn(&str) -> Option<usize> + Sync),
    edits: &mut RequestEdits,
    instances: &mut Vec<Option<Instance>>,
) -> Result<bool, ChainStop> {
    instances.clear();
    instances.resize_with(chain.len(), || None);
    let result = request_chain(chain, request, props, pool_of_tenant, edits, instances).await;
    if !matches!(result, Ok(true)) {
        instances.clear();
    }
    result
}

async fn request_chain(
    chain: &[BoundPlugin],
    request: &mut RequestView,
    props: &Arc<Properties>,
    pool_of_tenant: &(dyn Fn(&str) -> Option<usize> + Sync),
    edits: &mut RequestEdits,
    instances: &mut [Option<Instance>],
) -> Result<bool, ChainStop> {
    for (i, (bound, slot)) in chain.iter().zip(instances.iter_mut()).enumerate() {
        let call = PluginCall {
            plugin: &bound.plugin,
            binding: &bound.binding,
            props,
        };
        match call.on_request(slot, request, pool_of_tenant).await {
            Ok(RequestOutcome::Continue(e)) => {
                for h in &e.headers {
                    edit_wit(&mut request.headers, h);
                }
                if let Some(p) = &e.path {
                    request.line.path = p.as_str().to_string();
                    edits.path = Some(p.clone());
                }
                edits.headers.extend(e.headers);
                if e.pool.is_some() {
                    edits.pool = e.pool;
                }
                if e.cache_key.is_some() {
                    edits.cache_key = e.cache_key;
                }
                if e.rate_limit_key.is_some() {
                    edits.rate_limit_key = e.rate_limit_key;
                }
            }
            Ok(RequestOutcome::Respond(r)) => return Err(ChainStop::Respond(r)),
            Err(failure) => {
                let shed = match &failure {
                    Failure::Overloaded { shed, retry_after } => Some((*shed, *retry_after)),
                    _ => None,
                };
                if let Some(stop) = failed(bound, &call, failure, props) {
                    return Err(stop);
                }
                if let Some((shed, retry_after)) = shed {
                    // The tenant is over a budget: the rest of its chain
                    // would be shed too, so it is not called. Fail-open
                    // bindings are skipped; the first fail-closed one refuses.
                    return match chain[i + 1..]
                        .iter()
                        .find(|b| b.binding.failure_mode == FailureMode::Closed)
                    {
                        Some(b) => Err(ChainStop::Overloaded {
                            plugin: b.plugin.name.clone(),
                            shed,
                            retry_after,
                        }),
                        None => Ok(false),
                    };
                }
            }
        }
    }
    Ok(true)
}

/// Runs `on-response` through `chain` in reverse, applying header edits to
/// `response`, in the instances `run_request` kept (fresh ones where it could
/// not keep them); all are released by the time it returns.
pub async fn run_response(
    chain: &[BoundPlugin],
    request: &mut RequestView,
    props: &Arc<Properties>,
    response: &mut ResponseHeader,
    instances: &mut Vec<Option<Instance>>,
) -> Result<(), ChainStop> {
    instances.resize_with(chain.len(), || None);
    let result = response_chain(chain, request, props, response, instances).await;
    instances.clear();
    result
}

async fn response_chain(
    chain: &[BoundPlugin],
    request: &mut RequestView,
    props: &Arc<Properties>,
    response: &mut ResponseHeader,
    instances: &mut [Option<Instance>],
) -> Result<(), ChainStop> {
    let mut view = ResponseView {
        status: response.status.as_u16(),
        headers: wit_headers(&response.headers),
    };
    for (bound, slot) in chain.iter().zip(instances.iter_mut()).rev() {
        let call = PluginCall {
            plugin: &bound.plugin,
            binding: &bound.binding,
            props,
        };
        match call.on_response(slot, request, &mut view).await {
            Ok(ResponseOutcome::Continue(ops)) => {
                for op in &ops {
                    edit_wit(&mut view.headers, op);
                    apply_response_edit(response, op);
                }
            }
            Ok(ResponseOutcome::Respond(r)) => return Err(ChainStop::Respond(r)),
            Err(failure) => {
                if let Some(stop) = failed(bound, &call, failure, props) {
                    return Err(stop);
                }
            }
        }
    }
    Ok(())
}

/// Applies one checked edit to a Pingora request or response head (the two
/// types share these methods but no trait). Names and values were checked in
/// `decision`, so the inserts cannot fail.
macro_rules! apply_edit {
    ($head:expr, $edit:expr) => {{
        let _ = match $edit {
            HeaderEdit::Set(n, v) => $head.insert_header(n.clone(), v.clone()),
            HeaderEdit::Append(n, v) => $head.append_header(n.clone(), v.clone()).map(|_| ()),
            HeaderEdit::Remove(n) => {
                $head.remove_header(n);
                Ok(())
            }
        };
    }};
}

fn apply_response_edit(response: &mut ResponseHeader, edit: &HeaderEdit) {
    apply_edit!(response, edit);
}

/// Applies accumulated request edits to the upstream request.
pub fn apply_request_edits(upstream: &mut RequestHeader, edits: &RequestEdits) {
    for edit in &edits.headers {
        apply_edit!(upstream, edit);
    }
    if let Some(p) = &edits.path {
        if let Ok(uri) = http::Uri::try_from(p.as_str()) {
            upstream.set_uri(uri);
        }
    }
}
