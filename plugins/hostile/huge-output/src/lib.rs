//! Hostile test plugin: answers with a 2 MiB body, or (on `/headers`) with
//! thousands of header edits. Both exceed the proxy's decision limits.

use gatehouse_plugin_sdk::{export_plugin, Plugin, Request, RequestDecision, Respond};

struct Huge;

impl Plugin for Huge {
    fn on_request(req: &Request) -> RequestDecision {
        if req.path().starts_with("/headers") {
            let mut d = RequestDecision::proceed();
            for i in 0..5000 {
                d = d.set_header(&format!("x-h{i}"), "v");
            }
            return d;
        }
        RequestDecision::respond(Respond::new(200).body(vec![b'x'; 2 << 20]))
    }
}

export_plugin!(Huge);
