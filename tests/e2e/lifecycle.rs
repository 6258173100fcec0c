//! The workflow lifecycle over real HTTP, on both backends: draft, validate,
//! publish, runs pinned to their version, a trigger type moved, pause,
//! resume, archive, and the revision rules of brief §8.

use std::time::Duration;

use hookflow_tests::{event, Stack, WS};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Waits a second, then posts which version of the workflow ran.
fn document(trigger: &str, start: &str, sink: &str) -> Value {
    json!({"id": "wf_life", "workspace_id": WS, "name": "lifecycle", "status": "active", "version": 7,
    "scope": {"workspace": true}, "trigger": {"type": trigger}, "start": start,
    "steps": {
        "wait": {"action": {"type": "Delay", "seconds": 1}, "next": "post"},
        "post": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/ran"),
                 "body": {"version": "{{ run.version }}", "event": "{{ event.id }}"}}}
    }})
}

async fn call(
    stack: &Stack,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut request = stack
        .client
        .request(method, format!("{}/v1/workspaces/{WS}/workflows{path}", stack.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, response.json().await.unwrap_or(Value::Null), etag)
}

async fn post(stack: &Stack, path: &str) -> (u16, Value) {
    let (status, body, _) = call(stack, Method::POST, path, &[], None).await;
    (status, body)
}

async fn send(stack: &Stack, id: &str, event_type: &str) {
    let (status, body) = stack.post_event(&event(id, event_type, &[], json!({}))).await;
    assert_eq!(status, 202, "{body}");
}

/// The (event id, version) of every request the sink received, sorted.
async fn ran(sink: &MockServer) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = sink
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|b| {
            (
                b["event"].as_str().unwrap_or_default().to_owned(),
                b["version"].to_string(),
            )
        })
        .collect();
    seen.sort();
    seen
}

async fn the_whole_lifecycle(stack: Stack) {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let uri = sink.uri();

    // 1-2. A draft with a problem is saved; validate lists it; publish refuses it.
    let (status, created, etag) = call(
        &stack,
        Method::POST,
        "",
        &[],
        Some(document("Prize.Won", "nowhere", &uri)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["status"].as_str(), created["revision"].as_u64()),
        (Some("draft"), Some(1))
    );
    assert_eq!(etag.as_deref(), Some("\"1\""));
    let (status, checked) = post(&stack, "/wf_life/validate").await;
    assert_eq!(status, 200);
    assert_eq!(checked["valid"], false);
    assert_eq!(checked["problems"][0]["code"], "unknown_step", "{checked}");
    assert_eq!(checked["problems"][0]["path"], "$.start");
    let (status, refused) = post(&stack, "/wf_life/publish").await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_workflow");
    assert_eq!(refused["error"]["details"]["problems"], checked["problems"]);

    // 7. The revision rules: missing If-Match 428, stale 412.
    let fixed = document("Prize.Won", "wait", &uri);
    let (status, body, _) = call(&stack, Method::PUT, "/wf_life", &[], Some(fixed.clone())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (428, Some("revision_required"))
    );
    let (status, body, _) = call(
        &stack,
        Method::PUT,
        "/wf_life",
        &[("if-match", "\"9\"")],
        Some(fixed.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (412, Some("revision_mismatch"))
    );
    let (status, updated, etag) = call(&stack, Method::PUT, "/wf_life", &[("if-match", "\"1\"")], Some(fixed)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(etag.as_deref(), Some("\"2\""));

    // 3. Publish v1; an event runs on v1.
    let (status, published) = post(&stack, "/wf_life/publish").await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(
        (published["status"].as_str(), published["published_version"].as_u64()),
        (Some("active"), Some(1))
    );
    send(&stack, "e1", "Prize.Won").await;

    // 4. While that run waits, v2 moves to another trigger type.
    let (_, head, etag) = call(&stack, Method::GET, "/wf_life", &[], None).await;
    let etag = etag.expect("GET sends the ETag");
    assert_eq!(etag, format!("\"{}\"", head["revision"]));
    let (status, body, _) = call(
        &stack,
        Method::PUT,
        "/wf_life",
        &[("if-match", etag.as_str())],
        Some(document("Form.Submitted", "wait", &uri)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, v2) = post(&stack, "/wf_life/publish").await;
    assert_eq!((status, v2["published_version"].as_u64()), (200, Some(2)), "{v2}");
    send(&stack, "e2", "Prize.Won").await;
    send(&stack, "e3", "Form.Submitted").await;
    let runs = stack.wait_for_finished_runs(2).await;
    let versions: Vec<(String, u64)> = runs
        .iter()
        .map(|r| {
            (
                r["event_id"].as_str().unwrap_or_default().to_owned(),
                r["workflow_version"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        versions.contains(&("e1".into(), 1)),
        "the v1 run finished on v1: {versions:?}"
    );
    assert!(versions.contains(&("e3".into(), 2)), "{versions:?}");
    assert_eq!(ran(&sink).await, [("e1".into(), "1".into()), ("e3".into(), "2".into())]);

    let (status, listed, _) = call(&stack, Method::GET, "/wf_life/versions", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["versions"][0]["version"], 2, "newest first: {listed}");
    assert_eq!(listed["versions"][1]["trigger_type"], "Prize.Won");

    // 5. Paused: no runs. 6. Resume, then archive.
    let (status, paused) = post(&stack, "/wf_life/pause").await;
    assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));
    send(&stack, "e4", "Form.Submitted").await;
    stack.wait_until_idle().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.runs("").await.len(), 2, "a paused workflow starts no run");
    let (status, resumed) = post(&stack, "/wf_life/resume").await;
    assert_eq!((status, resumed["status"].as_str()), (200, Some("active")));
    let (status, archived) = post(&stack, "/wf_life/archive").await;
    assert_eq!((status, archived["status"].as_str()), (200, Some("archived")));
    let (status, again) = post(&stack, "/wf_life/resume").await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );

    // 7. Two concurrent publishes of a new draft: never two new versions.
    let (status, copy, _) = call(
        &stack,
        Method::POST,
        "/wf_life/clone",
        &[],
        Some(json!({"id": "wf_copy"})),
    )
    .await;
    assert_eq!((status, copy["status"].as_str()), (201, Some("draft")), "{copy}");
    let (a, b) = tokio::join!(post(&stack, "/wf_copy/publish"), post(&stack, "/wf_copy/publish"));
    for (status, body) in [&a, &b] {
        assert!([200, 409].contains(status), "{status} {body}");
    }
    assert!(a.0 == 200 || b.0 == 200, "one publish wins: {a:?} {b:?}");
    let (_, copies, _) = call(&stack, Method::GET, "/wf_copy/versions", &[], None).await;
    assert_eq!(copies["versions"].as_array().map(Vec::len), Some(1), "{copies}");

    let (status, listed, _) = call(&stack, Method::GET, "?status=archived", &[], None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert_eq!(ids, ["wf_life"]);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_whole_lifecycle_in_memory() {
    the_whole_lifecycle(Stack::start(vec![]).await).await;
}

#[tokio::test]
async fn the_whole_lifecycle_on_dynamodb_and_sqs() {
    the_whole_lifecycle(Stack::start_aws(vec![]).await).await;
}

#[tokio::test]
async fn bad_requests_name_their_problem() {
    let stack = Stack::start(vec![]).await;
    let (status, body, _) = call(&stack, Method::POST, "", &[], Some(json!({"id": "x"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_document")),
        "{body}"
    );
    let (status, body, _) = call(&stack, Method::GET, "/nope", &[], None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("workflow_not_found"))
    );
    let (status, body, _) = call(&stack, Method::GET, "?limit=0", &[], None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")));
    let (status, body, _) = call(&stack, Method::GET, "?cursor=zz", &[], None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")));
    let (status, body) = post(&stack, "/nope/frobnicate").await;
    assert_eq!(status, 404, "{body}");
    // Ids end up in keys: refused before any store sees them.
    let long = "x".repeat(2000);
    let (status, body, _) = call(&stack, Method::GET, &format!("/{long}"), &[], None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_id")),
        "{body}"
    );
    let mut doc = document("Prize.Won", "wait", "http://127.0.0.1:9");
    doc["id"] = json!("has space");
    let (status, body, _) = call(&stack, Method::POST, "", &[], Some(doc)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_id")),
        "{body}"
    );
    // Every refusal is JSON, including the ones the framework makes.
    let (status, body, _) = call(&stack, Method::GET, "/%FF", &[], None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_path")),
        "{body}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn lists_page_with_a_cursor_newest_first() {
    let stack = Stack::start(vec![]).await;
    for n in 0..5 {
        let mut doc = document("Prize.Won", "wait", "http://127.0.0.1:9");
        doc["id"] = json!(format!("wf_{n}"));
        let (status, body, _) = call(&stack, Method::POST, "", &[], Some(doc)).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut seen = vec![];
    let mut query = "?limit=2".to_owned();
    loop {
        let (status, page, _) = call(&stack, Method::GET, &query, &[], None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["workflows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w["id"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["wf_4", "wf_3", "wf_2", "wf_1", "wf_0"]);
    stack.shutdown().await;
}
