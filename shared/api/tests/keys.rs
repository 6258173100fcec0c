//! API keys and roles through the router, on the in-memory twins (brief §7):
//! 401 for no key, a bad key and a revoked one; 403 for another workspace
//! and a weak role; the audit trail of management writes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use chrono::{DateTime, Utc};
use hookflow_api::{router, ApiState, Gate, KeylessRequests, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::access::{Access, Role, KEY_CACHE_TTL};
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::ports::Clock;
use hookflow_core::wiring::Stores;
use serde_json::{json, Value};
use tower::ServiceExt;

/// A clock the test moves, to pass the key cache's window without waiting.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += chrono::Duration::from_std(by).expect("duration fits");
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

struct Stack {
    app: Router,
    access: Arc<Access>,
    clock: Arc<TestClock>,
    backend: MemoryBackend,
}

fn stack(keyless: KeylessRequests) -> Stack {
    let backend = MemoryBackend::new(QueueSettings {
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: 5,
    });
    let clock = Arc::new(TestClock(Mutex::new(Utc::now())));
    let stores = Stores::memory(&backend, clock.clone());
    let access = Arc::new(stores.access());
    let state = ApiState {
        gate: Gate {
            access: access.clone(),
            keyless,
        },
        ingest: Some(Arc::new(stores.ingest(backend.triggers.clone()))),
        runs: Some(stores.runs.clone()),
        workflows: Some(Arc::new(stores.workflows())),
        live_tests: Some(Arc::new(stores.dispatcher(backend.steps.clone()))),
        hooks: Some(Arc::new(stores.hooks())),
        hook_receiver: Some(Arc::new(stores.hook_receiver(backend.triggers.clone()))),
        recovery: Some(Arc::new(stores.recovery(backend.steps.clone()))),
        contacts: Some(Arc::new(stores.contacts())),
        connections: Some(Arc::new(stores.connections())),
        webhook_endpoints: Some(Arc::new(stores.webhook_endpoints(backend.steps.clone()))),
        sso_sites: Some(Arc::new(stores.sso_sites())),
        identify: Some(Arc::new(stores.identify(backend.triggers.clone()))),
    };
    Stack {
        app: router(state, DEFAULT_MAX_BODY_BYTES),
        access,
        clock,
        backend,
    }
}

impl Stack {
    async fn key(&self, workspace: &str, role: Role) -> String {
        self.access
            .create_key(workspace, role, Some(format!("{role:?}")))
            .await
            .expect("create key")
            .secret
    }

    async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("the router is infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn code(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, String) {
        let (status, body) = self.call(method, path, key, body).await;
        (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
    }
}

const WORKFLOWS: &str = "/v1/workspaces/ws_a/workflows";

fn draft(id: &str) -> Value {
    json!({"id": id, "workspace_id": "ws_a", "name": "n", "status": "draft", "version": 1,
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "s",
        "steps": {"s": {"action": {"type": "SetVariables", "values": {"a": 1}}}}})
}

fn event(workspace: &str) -> Value {
    json!({"specversion": "1.0", "id": format!("evt-{workspace}"), "source": "s", "type": "Prize.Won",
        "workspaceid": workspace, "data": {}})
}

#[tokio::test]
async fn no_key_a_bad_key_and_a_revoked_key_get_401() {
    let stack = stack(KeylessRequests::Refused);
    let admin = stack.key("ws_a", Role::Admin).await;
    assert_eq!(
        stack.code("GET", WORKFLOWS, None, None).await,
        (401, "unauthenticated".into())
    );
    let forged = format!("{}x", &admin[..admin.len() - 1]);
    for bad in ["hfk_nope", "not-a-key", forged.as_str()] {
        assert_eq!(
            stack.code("GET", WORKFLOWS, Some(bad), None).await,
            (401, "unauthenticated".into()),
            "{bad}"
        );
    }
    assert_eq!(stack.call("GET", WORKFLOWS, Some(&admin), None).await.0, 200);

    // Revoked by another process: this one's cache serves the key for at
    // most KEY_CACHE_TTL, then refuses it.
    let operator = stack.key("ws_a", Role::Operator).await;
    assert_eq!(stack.call("GET", WORKFLOWS, Some(&operator), None).await.0, 200);
    let other_process = Stores::memory(&stack.backend, stack.clock.clone()).access();
    let operator_id = operator.split('_').nth(1).expect("key id").to_owned();
    other_process.revoke_key("ws_a", &operator_id).await.expect("revoke");
    assert_eq!(
        stack.call("GET", WORKFLOWS, Some(&operator), None).await.0,
        200,
        "within the cache window"
    );
    stack.clock.advance(KEY_CACHE_TTL + Duration::from_secs(1));
    assert_eq!(
        stack.code("GET", WORKFLOWS, Some(&operator), None).await,
        (401, "unauthenticated".into())
    );
}

#[tokio::test]
async fn a_revocation_through_the_api_takes_effect_at_once_in_that_process() {
    let stack = stack(KeylessRequests::Refused);
    let admin = stack.key("ws_a", Role::Admin).await;
    let created = stack
        .call(
            "POST",
            "/v1/workspaces/ws_a/keys",
            Some(&admin),
            Some(json!({"role": "operator", "name": "on-call"})),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let operator = created.1["key"].as_str().expect("the key is in the answer").to_owned();
    let id = created.1["id"].as_str().expect("id").to_owned();
    assert_eq!(stack.call("GET", WORKFLOWS, Some(&operator), None).await.0, 200);

    let (status, listed) = stack.call("GET", "/v1/workspaces/ws_a/keys", Some(&admin), None).await;
    assert_eq!(status, 200);
    assert!(
        !listed.to_string().contains(&operator[20..]),
        "a listing never shows a secret"
    );
    assert!(!listed.to_string().contains("secret_hash"), "nor a hash");

    let revoked = stack
        .call("DELETE", &format!("/v1/workspaces/ws_a/keys/{id}"), Some(&admin), None)
        .await;
    assert_eq!(
        (revoked.0, revoked.1["revoked_at"].is_string()),
        (200, true),
        "{}",
        revoked.1
    );
    assert_eq!(stack.call("GET", WORKFLOWS, Some(&operator), None).await.0, 401);
}

#[tokio::test]
async fn another_workspace_or_a_weak_role_gets_403() {
    let stack = stack(KeylessRequests::Refused);
    let other_admin = stack.key("ws_b", Role::Admin).await;
    let ingest = stack.key("ws_a", Role::Ingest).await;
    let operator = stack.key("ws_a", Role::Operator).await;
    let admin = stack.key("ws_a", Role::Admin).await;
    let forbidden = (403, "forbidden".to_owned());

    assert_eq!(stack.code("GET", WORKFLOWS, Some(&other_admin), None).await, forbidden);
    assert_eq!(
        stack
            .code("POST", WORKFLOWS, Some(&other_admin), Some(draft("wf_x")))
            .await,
        forbidden
    );

    // An ingest key sends events of its workspace, and nothing else.
    assert_eq!(
        stack
            .call("POST", "/v1/events", Some(&ingest), Some(event("ws_a")))
            .await
            .0,
        202
    );
    assert_eq!(
        stack
            .code("POST", "/v1/events", Some(&ingest), Some(event("ws_b")))
            .await,
        forbidden
    );
    assert_eq!(stack.code("GET", WORKFLOWS, Some(&ingest), None).await, forbidden);
    assert_eq!(
        stack.call("POST", WORKFLOWS, Some(&admin), Some(draft("wf_1"))).await.0,
        201
    );
    let publish = format!("{WORKFLOWS}/wf_1/publish");
    assert_eq!(stack.code("POST", &publish, Some(&ingest), None).await, forbidden);

    // An operator reads but does not write, and cannot see keys.
    assert_eq!(
        stack
            .call("GET", &format!("{WORKFLOWS}/wf_1"), Some(&operator), None)
            .await
            .0,
        200
    );
    assert_eq!(
        stack
            .call("GET", "/v1/workspaces/ws_a/runs", Some(&operator), None)
            .await
            .0,
        200
    );
    assert_eq!(stack.code("POST", &publish, Some(&operator), None).await, forbidden);
    assert_eq!(
        stack
            .code("POST", WORKFLOWS, Some(&operator), Some(draft("wf_2")))
            .await,
        forbidden
    );
    assert_eq!(
        stack
            .code("POST", "/v1/events", Some(&operator), Some(event("ws_a")))
            .await,
        forbidden
    );
    assert_eq!(
        stack
            .code("GET", "/v1/workspaces/ws_a/keys", Some(&operator), None)
            .await,
        forbidden
    );
    assert_eq!(
        stack
            .code(
                "POST",
                "/v1/workspaces/ws_a/keys",
                Some(&operator),
                Some(json!({"role": "admin"}))
            )
            .await,
        forbidden,
        "an operator cannot make itself an admin"
    );

    let validate = format!("{WORKFLOWS}/wf_1/validate");
    assert_eq!(
        stack.call("POST", &validate, Some(&operator), None).await.0,
        200,
        "validating is a read"
    );

    // The admin may everything, in its own workspace.
    assert_eq!(stack.call("POST", &publish, Some(&admin), None).await.0, 200);
    assert_eq!(
        stack
            .call("POST", "/v1/events", Some(&admin), Some(event("ws_a")))
            .await
            .0,
        202
    );
}

#[tokio::test]
async fn a_key_for_a_malformed_workspace_is_refused() {
    let stack = stack(KeylessRequests::AllowedAsLocalDeveloper);
    let (status, code) = stack
        .code(
            "POST",
            "/v1/workspaces/ws%23x/keys",
            None,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!((status, code.as_str()), (400, "invalid_id"));
}

#[tokio::test]
async fn key_less_requests_are_the_local_developers_only_when_allowed() {
    let open = stack(KeylessRequests::AllowedAsLocalDeveloper);
    assert_eq!(open.call("GET", WORKFLOWS, None, None).await.0, 200);
    assert_eq!(
        open.code("GET", WORKFLOWS, Some("hfk_bad"), None).await,
        (401, "unauthenticated".into()),
        "a key that is presented is checked even then"
    );
    // A page in a browser reaching the loopback listener is not the developer.
    for (name, value) in [
        ("host", "attacker.example:3000"),
        ("origin", "https://attacker.example"),
    ] {
        let request = Request::builder()
            .uri(WORKFLOWS)
            .header(name, value)
            .body(Body::empty())
            .expect("request");
        let response = open.app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status().as_u16(), 401, "key-less with a foreign {name}");
    }
    let local = Request::builder()
        .uri(WORKFLOWS)
        .header("host", "127.0.0.1:3000")
        .header("origin", "http://localhost:3000")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        open.app
            .clone()
            .oneshot(local)
            .await
            .expect("infallible")
            .status()
            .as_u16(),
        200
    );
    let closed = stack(KeylessRequests::Refused);
    assert_eq!(closed.call("GET", WORKFLOWS, None, None).await.0, 401);
    assert_eq!(
        closed.call("GET", "/v1/openapi-nope", None, None).await.0,
        404,
        "an unknown route is a 404, key or not"
    );
}

#[tokio::test]
async fn every_management_write_is_in_the_audit_trail() {
    let stack = stack(KeylessRequests::Refused);
    let admin = stack.key("ws_a", Role::Admin).await;
    let admin_id = admin.split('_').nth(1).expect("key id").to_owned();
    assert_eq!(
        stack.call("POST", WORKFLOWS, Some(&admin), Some(draft("wf_1"))).await.0,
        201
    );
    assert_eq!(
        stack
            .call("POST", &format!("{WORKFLOWS}/wf_1/publish"), Some(&admin), None)
            .await
            .0,
        200
    );
    // Refused and read-only requests are not writes.
    assert_eq!(
        stack
            .call("POST", &format!("{WORKFLOWS}/wf_9/publish"), Some(&admin), None)
            .await
            .0,
        404
    );
    assert_eq!(stack.call("GET", WORKFLOWS, Some(&admin), None).await.0, 200);
    let made = stack
        .call(
            "POST",
            "/v1/workspaces/ws_a/keys",
            Some(&admin),
            Some(json!({"role": "ingest"})),
        )
        .await;
    assert_eq!(made.0, 201);

    let (status, trail) = stack
        .call("GET", "/v1/workspaces/ws_a/audit?limit=2", Some(&admin), None)
        .await;
    assert_eq!(status, 200, "{trail}");
    let (_, rest) = stack
        .call(
            "GET",
            &format!(
                "/v1/workspaces/ws_a/audit?cursor={}",
                trail["next_cursor"].as_str().expect("a next page")
            ),
            Some(&admin),
            None,
        )
        .await;
    let entries: Vec<(String, String, String)> = trail["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(rest["entries"].as_array().into_iter().flatten())
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["action"].as_str().unwrap_or("").to_owned(),
                e["target"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                admin_id.clone(),
                "POST /v1/workspaces/{workspace_id}/keys".into(),
                "/v1/workspaces/ws_a/keys".into()
            ),
            (
                admin_id.clone(),
                "POST /v1/workspaces/{workspace_id}/workflows/{workflow_id}/publish".into(),
                "/v1/workspaces/ws_a/workflows/wf_1/publish".into()
            ),
            (
                admin_id,
                "POST /v1/workspaces/{workspace_id}/workflows".into(),
                "/v1/workspaces/ws_a/workflows".into()
            ),
        ],
        "newest first; refusals and reads are not recorded"
    );
    assert_eq!(rest.get("next_cursor"), None);
}

#[tokio::test]
async fn on_call_actions_are_the_operators_and_refuse_clearly() {
    let stack = stack(KeylessRequests::Refused);
    let ingest = stack.key("ws_a", Role::Ingest).await;
    let operator = stack.key("ws_a", Role::Operator).await;
    let other_admin = stack.key("ws_b", Role::Admin).await;
    let runs = "/v1/workspaces/ws_a/runs";
    let forbidden = (403, "forbidden".to_owned());
    for action in ["run_missing/replay", "run_missing/cancel"] {
        let route = format!("{runs}/{action}");
        assert_eq!(
            stack.code("POST", &route, Some(&operator), None).await,
            (404, "run_not_found".to_owned()),
            "an operator reaches {action}"
        );
        assert_eq!(stack.code("POST", &route, Some(&ingest), None).await, forbidden);
        assert_eq!(stack.code("POST", &route, Some(&other_admin), None).await, forbidden);
    }
    assert_eq!(
        stack
            .code("POST", &format!("{runs}/replay"), Some(&operator), Some(json!({})))
            .await,
        (400, "idempotency_key_required".to_owned())
    );
    assert_eq!(
        stack
            .code(
                "POST",
                &format!("{runs}/run_missing/replay"),
                Some(&operator),
                Some(json!({"from": "yesterday"}))
            )
            .await,
        (400, "invalid_body".to_owned())
    );
    let long_workflow = format!("workflow_id={}", "w".repeat(3000));
    for query in [
        "cursor=forged",
        "limit=101",
        "since=yesterday",
        "status=paused",
        "since=2026-12-01T10:00:00Z&until=2026-12-01T09:00:00Z",
        long_workflow.as_str(),
    ] {
        assert_eq!(
            stack
                .code("GET", &format!("{runs}?{query}"), Some(&operator), None)
                .await,
            (400, "invalid_query".to_owned()),
            "{query}"
        );
    }
    let (status, stats) = stack.call("GET", &format!("{runs}/stats"), Some(&operator), None).await;
    assert_eq!((status, stats["workflows"].clone()), (200, json!([])));
    assert_eq!(
        stack
            .code(
                "GET",
                &format!("{runs}/stats?since=2026-12-01T10:00:00Z&until=2026-12-01T09:00:00Z"),
                Some(&operator),
                None
            )
            .await,
        (400, "invalid_query".to_owned())
    );
}
