use std::time::Duration;

use hookflow_tests::{event, step, timeline, Stack};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::post_workflow;

#[tokio::test]
async fn the_same_event_id_delivered_twice_starts_one_run() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![post_workflow(
        "wf_once",
        "Card.Completed",
        json!({"workspace": true}),
        &sink.uri(),
        json!({"e": "{{ event.id }}"}),
    )])
    .await;
    let e = event("dup-1", "Card.Completed", &[], json!({}));
    let first = stack.post_event(&e).await;
    let second = stack.post_event(&e).await;
    assert_eq!(first, (202, json!({"event_id": "dup-1"})));
    assert_eq!(second, first, "a duplicate gets the original id back");

    // Past the ingest dedupe (as SQS may redeliver): the trigger message
    // arrives twice more at the dispatcher, the run id is the same.
    let body = serde_json::to_string(&hookflow_core::TriggerEvent::from_cloudevent(&e, "").expect("valid event"))
        .expect("json");
    stack
        .server
        .ports
        .triggers
        .send(body.clone(), Duration::ZERO)
        .await
        .expect("send");
    stack
        .server
        .ports
        .triggers
        .send(body, Duration::ZERO)
        .await
        .expect("send");
    stack.wait_until_idle().await;

    let runs = stack.wait_for_finished_runs(1).await;
    assert_eq!(timeline(&runs[0]), vec![step("post", "succeeded", 1)]);
    assert_eq!(sink.received_requests().await.unwrap_or_default().len(), 1);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_redelivered_step_message_does_not_repeat_the_side_effect() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![post_workflow(
        "wf_step_once",
        "Card.Completed",
        json!({"workspace": true}),
        &sink.uri(),
        json!({}),
    )])
    .await;
    stack.post_event(&event("s-1", "Card.Completed", &[], json!({}))).await;
    let runs = stack.wait_for_finished_runs(1).await;
    let run_id = runs[0]["run_id"].as_str().unwrap_or_default();

    // Rebuild the step message the dispatcher sent and deliver it again.
    let again = json!({"run_id": run_id, "workspace_id": hookflow_tests::WS, "workflow_id": "wf_step_once", "workflow_version": 1,
                       "step_id": "post", "attempt": 1, "context": {"event": {"id": "s-1"}, "steps": {}, "vars": {}}});
    stack
        .server
        .ports
        .steps
        .send(again.to_string(), Duration::ZERO)
        .await
        .expect("send");
    stack.wait_until_idle().await;
    assert_eq!(stack.run(run_id).await["steps"].as_array().map(Vec::len), Some(1));
    assert_eq!(sink.received_requests().await.unwrap_or_default().len(), 1);
    stack.shutdown().await;
}
