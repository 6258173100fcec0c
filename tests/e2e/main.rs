//! End-to-end: events in over HTTP, requests out to wiremock sinks, and the
//! run log read back over HTTP.

mod aws;
mod chaos;
mod connectors;
mod contacts;
mod delivery;
mod hooks;
mod ingest;
mod lambda_aws;
mod lifecycle;
mod matching;
mod messaging;
mod outbound;
mod recipes;
mod retries;
mod sqs_charset;
mod sso;
mod templating;

use serde_json::{json, Value};

/// A minimal workflow: one HTTP POST of `body` to `url`.
pub fn post_workflow(id: &str, trigger: &str, scope: Value, url: &str, body: Value) -> Value {
    json!({"id": id, "workspace_id": hookflow_tests::WS, "name": id, "status": "active", "scope": scope,
           "trigger": {"type": trigger}, "start": "post",
           "steps": {"post": {"action": {"type": "HttpRequest", "method": "POST", "url": url, "body": body}}}})
}
