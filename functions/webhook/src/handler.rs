use std::sync::Arc;

use hookflow_api::{doors_router, for_stage, ApiState, Gate, KeylessRequests, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::access::Access;
use hookflow_core::hooks::HookReceiver;
use hookflow_core::sso::Identify;
use hookflow_core::Ingest;

/// The same routes and errors as `hookflow dev`, with only ingest wired:
/// `POST /v1/events` behind an API key, the public hook route behind each
/// hook's sender auth, and the public identify route behind the site's JWT.
pub fn router(
    access: Arc<Access>,
    ingest: Arc<Ingest>,
    hook_receiver: Arc<HookReceiver>,
    identify: Arc<Identify>,
    stage: Option<&str>,
) -> Router {
    let state = ApiState {
        gate: Gate {
            access,
            keyless: KeylessRequests::Refused,
        },
        ingest: Some(ingest),
        runs: None,
        workflows: None,
        live_tests: None,
        hooks: None,
        hook_receiver: Some(hook_receiver),
        recovery: None,
        contacts: None,
        connections: None,
        webhook_endpoints: None,
        sso_sites: None,
        identify: Some(identify),
    };
    for_stage(doors_router(state, DEFAULT_MAX_BODY_BYTES), stage)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hookflow_core::access::Role;
    use hookflow_core::memory::{MemoryBackend, QueueSettings};
    use hookflow_core::ports::SystemClock;
    use hookflow_core::wiring::Stores;
    use lambda_http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// The key the API Gateway samples carry (`events/README.md`).
    const SAMPLE_KEY: &str = "hfk_5a3f0c0ffee0d00d_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";

    async fn call(fixture: &str) -> (u16, Value, usize) {
        call_with_key(fixture, "ws_demo", Role::Ingest).await
    }

    /// Sends a sample with the sample key, made for this workspace and role.
    async fn call_with_key(fixture: &str, workspace: &str, role: Role) -> (u16, Value, usize) {
        let backend = MemoryBackend::new(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        });
        let stores = Stores::memory(&backend, Arc::new(SystemClock));
        stores
            .access()
            .import_key(workspace, role, None, SAMPLE_KEY)
            .await
            .unwrap();
        let request: Request = lambda_http::request::from_str(fixture).unwrap();
        let response = crate::wire(&stores.doors(), backend.triggers.clone(), Some("dev"))
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, backend.triggers.len())
    }

    #[tokio::test]
    async fn a_valid_event_is_accepted_and_enqueued() {
        let (status, body, queued) = call(include_str!("../../../events/lambda/apigw-post-event.json")).await;
        assert_eq!(
            (status, body["event_id"].as_str(), queued),
            (202, Some("evt-apigw-1"), 1)
        );
    }

    #[tokio::test]
    async fn a_named_stage_in_the_path_is_served() {
        let (status, body, queued) = call(include_str!("../../../events/lambda/apigw-post-event-staged.json")).await;
        assert_eq!(
            (status, body["event_id"].as_str(), queued),
            (202, Some("evt-apigw-staged"), 1)
        );
    }

    #[tokio::test]
    async fn a_malformed_body_is_a_400_and_enqueues_nothing() {
        let (status, body, queued) = call(include_str!("../../../events/lambda/apigw-malformed.json")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str(), queued),
            (400, Some("malformed_json"), 0)
        );
    }

    #[tokio::test]
    async fn an_unknown_type_is_a_400_with_suggestions() {
        let (status, body, queued) = call(include_str!("../../../events/lambda/apigw-unknown-type.json")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str(), queued),
            (400, Some("unknown_trigger_type"), 0)
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean Gameplay.Ended"));
    }

    #[tokio::test]
    async fn without_a_key_nothing_is_enqueued() {
        let fixture = include_str!("../../../events/lambda/apigw-post-event.json").replace(SAMPLE_KEY, "");
        let fixture = fixture.replace("\"authorization\": \"Bearer \",", "");
        let (status, body, queued) = call(&fixture).await;
        assert_eq!(
            (status, body["error"]["code"].as_str(), queued),
            (401, Some("unauthenticated"), 0)
        );
    }

    #[tokio::test]
    async fn a_key_of_another_workspace_or_role_enqueues_nothing() {
        let fixture = include_str!("../../../events/lambda/apigw-post-event.json");
        for (workspace, role) in [("ws_other", Role::Ingest), ("ws_demo", Role::Operator)] {
            let (status, body, queued) = call_with_key(fixture, workspace, role).await;
            assert_eq!(
                (status, body["error"]["code"].as_str(), queued),
                (403, Some("forbidden"), 0),
                "{workspace} {role:?}"
            );
        }
    }
}
