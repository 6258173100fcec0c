//! API Gateway (HTTP API, payload v2) → the management API of workflows
//! (`…/workflows…`), the runs read API (`GET …/runs`, `GET …/runs/{id}`),
//! keys (`…/keys`), the audit trail (`GET …/audit`) and the OpenAPI document.
//! `main` reads the environment and calls [`wire`]; the tests call the same
//! `wire`.

use std::sync::Arc;

use hookflow_api::{for_stage, router, ApiState, Gate, KeylessRequests, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::ports::Queue;
use hookflow_core::wiring::Stores;

/// The function as deployed: the management API (workflows and their
/// lifecycle; live tests start their runs on `steps`), the runs read API,
/// keys, the audit trail and the OpenAPI document, every route but the
/// document behind an API key. The same routes as `hookflow dev` serves.
pub fn wire(stores: &Stores, steps: Arc<dyn Queue>, stage: Option<&str>) -> Router {
    let state = ApiState {
        gate: Gate {
            access: Arc::new(stores.access()),
            keyless: KeylessRequests::Refused,
        },
        ingest: None,
        runs: Some(stores.runs.clone()),
        workflows: Some(Arc::new(stores.workflows())),
        live_tests: Some(Arc::new(stores.dispatcher(steps.clone()))),
        hooks: Some(Arc::new(stores.hooks())),
        hook_receiver: None,
        recovery: Some(Arc::new(stores.recovery(steps.clone()))),
        contacts: Some(Arc::new(stores.contacts())),
        connections: Some(Arc::new(stores.connections())),
        webhook_endpoints: Some(Arc::new(stores.webhook_endpoints(steps))),
        sso_sites: Some(Arc::new(stores.sso_sites())),
        identify: None,
    };
    for_stage(router(state, DEFAULT_MAX_BODY_BYTES), stage)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use hookflow_aws::{dynamo_stores, sqs_queue};
    use hookflow_core::access::Role;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;

    async fn call(router: &Router, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = router
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("the router never fails");
        hookflow_tests::answer_of(response).await
    }

    /// The handler as `main` wires it, on DynamoDB (moto): the document is
    /// public, and a workflow goes draft → validate → publish → pause behind
    /// an admin key made with AWS credentials, as `keys create --aws` does.
    #[tokio::test]
    async fn serves_the_openapi_document_and_the_lifecycle_on_dynamodb() {
        let aws = hookflow_tests::emulator_stack("apifn").await;
        let stores = dynamo_stores(
            aws.dynamo,
            aws.services.clone(),
            &aws.names.workflows_table,
            &aws.names.runs_table,
            None,
        );
        let steps = sqs_queue(&aws.sqs, aws.urls.steps);
        let router = wire(&stores, steps.clone(), Some("prod"));

        let (status, doc) = call(&router, "GET", "/prod/v1/openapi.json", None, None).await;
        assert_eq!((status, doc["openapi"].as_str()), (200, Some("3.1.0")));
        let workflows = "/prod/v1/workspaces/ws_fn/workflows";
        assert_eq!(call(&router, "GET", workflows, None, None).await.0, 401);

        let admin = stores
            .access()
            .create_key("ws_fn", Role::Admin, None)
            .await
            .expect("key")
            .secret;
        let key = Some(admin.as_str());
        let draft = json!({"id": "wf_fn", "workspace_id": "ws_fn", "name": "fn", "status": "draft",
            "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "s",
            "steps": {"s": {"action": {"type": "SetVariables", "values": {"a": "{{ nope."}}}}});
        assert_eq!(call(&router, "POST", workflows, key, Some(draft)).await.0, 201);
        let (status, report) = call(&router, "POST", &format!("{workflows}/wf_fn/validate"), key, None).await;
        assert_eq!((status, report["valid"].as_bool()), (200, Some(false)), "{report}");
        let (status, refused) = call(&router, "POST", &format!("{workflows}/wf_fn/publish"), key, None).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (422, Some("invalid_workflow"))
        );

        let (_, head) = call(&router, "GET", &format!("{workflows}/wf_fn"), key, None).await;
        let mut fixed = head["draft"].clone();
        fixed["steps"]["s"]["action"]["values"]["a"] = json!(1);
        let revision = head["revision"].to_string();
        let put = http::Request::builder()
            .method("PUT")
            .uri(format!("{workflows}/wf_fn"))
            .header("authorization", format!("Bearer {admin}"))
            .header("if-match", revision)
            .body(Body::from(fixed.to_string()))
            .expect("request");
        assert_eq!(
            router.clone().oneshot(put).await.expect("router").status().as_u16(),
            200
        );
        let (status, published) = call(&router, "POST", &format!("{workflows}/wf_fn/publish"), key, None).await;
        assert_eq!(
            (status, published["published_version"].as_u64()),
            (200, Some(1)),
            "{published}"
        );
        let (status, paused) = call(&router, "POST", &format!("{workflows}/wf_fn/pause"), key, None).await;
        assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));

        // A live test of the published version: a test run, its first step
        // on the steps queue, listed with the tests and not with the runs.
        let live = json!({"dry_run": false, "event": {"specversion": "1.0", "id": "evt_live",
            "source": "komo/test", "type": "Prize.Won", "workspaceid": "ws_fn", "data": {}}});
        let (status, started) = call(&router, "POST", &format!("{workflows}/wf_fn/test"), key, Some(live)).await;
        assert_eq!(status, 202, "{started}");
        let run_id = started["run_id"].as_str().expect("run id").to_owned();
        assert_eq!(
            started["run_url"].as_str(),
            Some(format!("/prod/v1/workspaces/ws_fn/runs/{run_id}").as_str()),
            "the run's URL keeps the stage"
        );
        let sent = steps
            .receive(10, std::time::Duration::from_secs(1))
            .await
            .expect("receive");
        assert_eq!(sent.len(), 1);
        let message: Value = serde_json::from_str(&sent[0].body).expect("step message");
        assert_eq!(message["run_id"].as_str(), Some(run_id.as_str()));
        let runs = "/prod/v1/workspaces/ws_fn/runs";
        let (_, tests) = call(&router, "GET", &format!("{runs}?test=true"), key, None).await;
        assert_eq!(tests["runs"][0]["run_id"].as_str(), Some(run_id.as_str()), "{tests}");
        let (_, production) = call(&router, "GET", runs, key, None).await;
        assert_eq!(production["runs"].as_array().map(Vec::len), Some(0), "{production}");

        let (status, trail) = call(&router, "GET", "/prod/v1/workspaces/ws_fn/audit", key, None).await;
        assert_eq!(
            (status, trail["entries"].as_array().map(Vec::len)),
            (200, Some(5)),
            "create, update, publish, pause, the live test (validate is a read): {trail}"
        );

        // On-call, on DynamoDB: the running test run is cancelled, and shows so.
        let (status, cancelled) = call(&router, "POST", &format!("{runs}/{run_id}/cancel"), key, None).await;
        assert_eq!(
            (status, cancelled["status"].as_str()),
            (200, Some("cancelled")),
            "{cancelled}"
        );
        let (_, detail) = call(&router, "GET", &format!("{runs}/{run_id}"), key, None).await;
        assert_eq!(detail["status"].as_str(), Some("cancelled"));
        assert_eq!(
            detail["event"]["id"].as_str(),
            Some("evt_live"),
            "the start point holds the event"
        );
    }

    /// Every route of the OpenAPI document reaches a function through an
    /// HttpApi event of `template.yaml`: a route added in code and not in
    /// the template answers 404 from API Gateway.
    #[test]
    fn the_template_routes_every_documented_path() {
        use utoipa::OpenApi as _;
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .expect("read template.yaml");
        let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml parses");
        let resources = template["Resources"].as_mapping().expect("resources");
        let routed: Vec<String> = resources
            .values()
            .filter_map(|r| r["Properties"]["Events"].as_mapping())
            .flat_map(|events| events.values())
            .filter(|e| e["Type"].as_str() == Some("HttpApi"))
            .filter_map(|e| e["Properties"]["Path"].as_str().map(str::to_owned))
            .collect();
        let doc = serde_json::to_value(hookflow_api::openapi::ApiDoc::openapi()).expect("document");
        let paths = doc["paths"].as_object().expect("paths");
        for documented in paths.keys() {
            let served = routed.iter().any(|route| match route.strip_suffix("{proxy+}") {
                Some(prefix) => documented.starts_with(prefix) && documented.len() > prefix.len(),
                None => route == documented,
            });
            assert!(served, "{documented} has no HttpApi event in template.yaml");
        }
    }

    /// The dashboard behind a stage: at `/prod` (`/prod/` sends the browser
    /// there), its assets under the stage, every file with the policy.
    #[tokio::test]
    async fn serves_the_dashboard_under_its_stage() {
        let backend = hookflow_core::memory::MemoryBackend::new(hookflow_core::memory::QueueSettings {
            visibility_timeout: std::time::Duration::from_secs(30),
            max_receive_count: 5,
        });
        let stores = Stores::memory(&backend, Arc::new(hookflow_core::ports::SystemClock));
        let router = wire(&stores, backend.steps.clone(), Some("prod"));
        let get = |path: &'static str| {
            let router = router.clone();
            async move {
                let request = http::Request::builder().uri(path).body(Body::empty()).expect("request");
                router.oneshot(request).await.expect("router")
            }
        };
        let moved = get("/prod/").await;
        assert_eq!(moved.status().as_u16(), 308);
        assert_eq!(moved.headers()["location"], "/prod");
        let page = get("/prod").await;
        let html = axum::body::to_bytes(page.into_body(), 1 << 20).await.expect("page");
        let html = String::from_utf8_lossy(&html);
        assert!(html.contains("src=\"/prod/dashboard/app.js\""), "{html}");
        for (path, kind) in [
            ("/prod", "text/html"),
            ("/prod/dashboard/app.js", "text/javascript"),
            ("/prod/dashboard/app.css", "text/css"),
        ] {
            let response = get(path).await;
            assert_eq!(response.status().as_u16(), 200, "{path}");
            let headers = response.headers();
            assert!(
                headers["content-type"].to_str().unwrap_or_default().starts_with(kind),
                "{path}"
            );
            let policy = headers["content-security-policy"].to_str().unwrap_or_default();
            assert!(
                policy.starts_with("default-src 'none'") && !policy.contains("unsafe"),
                "{path}: {policy}"
            );
            assert_eq!(headers["x-content-type-options"], "nosniff");
        }
    }
}
