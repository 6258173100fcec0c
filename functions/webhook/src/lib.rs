//! API Gateway (HTTP API, payload v2) → `POST /v1/events` (an `ingest` or `admin`
//! key), `POST /v1/hooks/{hook_id}` (the hook's sender auth) and
//! `POST /v1/sites/{site_id}/identify` (the site's JWT) → ingest → triggers
//! queue. `main` reads the environment and calls
//! [`wire`]; the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_api::Router;
use hookflow_core::ports::Queue;
use hookflow_core::wiring::DoorStores;

/// The function as deployed: keys and hooks are looked up in the workflows table,
/// events are deduplicated in the runs table and sent to the triggers queue.
pub fn wire(stores: &DoorStores, triggers: Arc<dyn Queue>, stage: Option<&str>) -> Router {
    handler::router(
        Arc::new(stores.access()),
        Arc::new(stores.ingest(triggers.clone())),
        Arc::new(stores.hook_receiver(triggers.clone())),
        Arc::new(stores.identify(triggers)),
        stage,
    )
}

#[cfg(test)]
mod tests {
    use hookflow_aws::{dynamo_stores, sqs_queue};
    use hookflow_core::hooks::HookRequest;
    use hookflow_core::memory::{MemoryBackend, QueueSettings};
    use hookflow_core::ports::SystemClock;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;

    /// The API Gateway event of a hook request: the sample's envelope with
    /// this path, these headers and this body.
    fn apigw_hook_request(hook_id: &str, headers: &[(String, String)], body: &str) -> lambda_http::Request {
        apigw_request(&format!("/v1/hooks/{hook_id}"), headers, body)
    }

    /// The sample's API Gateway envelope with this raw path (a stage's
    /// prefix included), these headers and this body.
    fn apigw_request(path: &str, headers: &[(String, String)], body: &str) -> lambda_http::Request {
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/lambda/apigw-post-event.json")).expect("fixture");
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        let mut sent = json!({"content-type": "application/json", "host": "id.execute-api.us-east-1.amazonaws.com"});
        for (name, value) in headers {
            sent[name.to_ascii_lowercase()] = json!(value);
        }
        event["headers"] = sent;
        event["body"] = json!(body);
        lambda_http::request::from_str(&event.to_string()).expect("API Gateway request")
    }

    async fn status_of(router: &Router, request: lambda_http::Request) -> (u16, Value) {
        hookflow_tests::answer_of(router.clone().oneshot(request).await.expect("the router never fails")).await
    }

    /// The function as `main` wires it, on DynamoDB and SQS (moto): a hook
    /// request signed by the official Standard Webhooks library is accepted
    /// and enqueued; the same request tampered with is refused and enqueues
    /// nothing.
    #[tokio::test]
    async fn serves_a_signed_hook_request_on_dynamodb_and_sqs() {
        let aws = hookflow_tests::emulator_stack("hookfn").await;
        let stores = dynamo_stores(
            aws.dynamo,
            aws.services.clone(),
            &aws.names.workflows_table,
            &aws.names.runs_table,
            None,
        );
        let request: HookRequest = serde_json::from_value(
            json!({"name": "crm", "kind": "webhook", "cardid": "card_1", "auth": {"type": "standard_webhooks"}}),
        )
        .expect("hook request");
        let minted = stores.hooks().create("ws_fn", request).await.expect("create the hook");
        let (hook_id, secret) = (minted.hook.id.clone(), minted.secret.expect("a secret").1);
        let triggers = sqs_queue(&aws.sqs, aws.urls.triggers);
        let router = wire(&stores.doors(), triggers.clone(), Some("$default"));

        let body = r#"{"order": {"id": 7}}"#;
        let now = chrono::Utc::now().timestamp().to_string();
        let signed = hookflow_tests::sign_hook(&["standard-webhooks", &secret, "msg_fn", &now], body.as_bytes());
        let tampered = apigw_hook_request(&hook_id, &signed, r#"{"order": {"id": 8}}"#);
        assert_eq!(status_of(&router, tampered).await.0, 401);
        let (status, accepted) = status_of(&router, apigw_hook_request(&hook_id, &signed, body)).await;
        assert_eq!(
            (status, accepted["event_id"].as_str()),
            (202, Some("msg_fn")),
            "{accepted}"
        );

        let queued = triggers
            .receive(10, std::time::Duration::from_secs(1))
            .await
            .expect("receive");
        assert_eq!(queued.len(), 1, "only the signed request is enqueued");
        let event: Value = serde_json::from_str(&queued[0].body).expect("trigger event");
        assert_eq!(
            (event["type"].as_str(), event["cardid"].as_str(), &event["data"]),
            (Some("Hook.crm"), Some("card_1"), &json!({"order": {"id": 7}}))
        );
        assert_eq!(
            event["source"].as_str(),
            Some(format!("hookflow/hooks/{hook_id}").as_str())
        );
    }

    /// The hook and identify doors as `main` wires them behind the
    /// template's default stage (`/dev/…`; the events door is the handler
    /// tests'): a signed hook request and a PyJWT token each get in, and a
    /// management path is not served by this function.
    #[tokio::test]
    async fn serves_the_hook_and_identify_doors_behind_a_stage() {
        let backend = MemoryBackend::new(QueueSettings {
            visibility_timeout: std::time::Duration::from_secs(30),
            max_receive_count: 5,
        });
        let stores = hookflow_core::wiring::Stores::memory(&backend, Arc::new(SystemClock));
        let router = wire(&stores.doors(), backend.triggers.clone(), Some("dev"));

        let request: HookRequest =
            serde_json::from_value(json!({"name": "crm", "kind": "webhook", "auth": {"type": "standard_webhooks"}}))
                .expect("hook request");
        let minted = stores.hooks().create("ws_fn", request).await.expect("create the hook");
        let (hook_id, secret) = (minted.hook.id.clone(), minted.secret.expect("a secret").1);
        let body = r#"{"order": {"id": 7}}"#;
        let now = chrono::Utc::now().timestamp().to_string();
        let signed = hookflow_tests::sign_hook(&["standard-webhooks", &secret, "msg_staged", &now], body.as_bytes());
        let hook = apigw_request(&format!("/dev/v1/hooks/{hook_id}"), &signed, body);
        let (status, accepted) = status_of(&router, hook).await;
        assert_eq!(
            (status, accepted["event_id"].as_str()),
            (202, Some("msg_staged")),
            "{accepted}"
        );

        let (audience, issuer) = ("hookflow-fn", "https://login.example");
        let material = hookflow_tests::pyjwt_material(audience, issuer);
        let settings = json!({"algorithm": "HS256", "secret": material["keys"]["hs256_secret"],
            "issuer": issuer, "audience": audience});
        stores
            .sso_sites()
            .configure("ws_fn", "site_fn", serde_json::from_value(settings).expect("settings"))
            .await
            .expect("configure SSO");
        let token = json!({"token": material["tokens"]["hs256"]}).to_string();
        let identify = apigw_request("/dev/v1/sites/site_fn/identify", &[], &token);
        let (status, identified) = status_of(&router, identify).await;
        assert_eq!(
            (status, identified["created"].as_bool()),
            (200, Some(true)),
            "{identified}"
        );
        assert_eq!(
            backend.triggers.len(),
            3,
            "the hook's event, Contact.Identified and Contact.Verified.Sso"
        );

        let management = apigw_request("/dev/v1/workspaces/ws_fn/workflows", &[], "{}");
        let (status, missing) = status_of(&router, management).await;
        assert_eq!(status, 404, "{missing}");
    }
}
