use hookflow_tests::{event, Stack};
use serde_json::{json, Value};

use crate::post_workflow;

#[tokio::test]
async fn bad_requests_are_refused_with_json_errors_and_nothing_is_enqueued() {
    let stack = Stack::start(vec![post_workflow(
        "wf_x",
        "Card.Completed",
        json!({"workspace": true}),
        "http://127.0.0.1:9/x",
        json!({}),
    )])
    .await;
    let good = event("ok-1", "Card.Completed", &[], json!({}));
    let mut unknown = good.clone();
    unknown["type"] = json!("Card.Complete");
    let mut no_ws = good.clone();
    no_ws.as_object_mut().map(|o| o.remove("workspaceid"));
    let mut bad_batch_member = good.clone();
    bad_batch_member["time"] = json!("not a time");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/cloudevents+json",
            b"{\"specversion\": ".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "text/plain",
            good.to_string().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            unknown.to_string().into_bytes(),
            400,
            "unknown_trigger_type",
        ),
        (
            "application/json",
            no_ws.to_string().into_bytes(),
            400,
            "missing_attribute",
        ),
        (
            "application/cloudevents-batch+json",
            json!([good, bad_batch_member]).to_string().into_bytes(),
            400,
            "invalid_attribute",
        ),
        (
            "application/cloudevents-batch+json",
            good.to_string().into_bytes(),
            400,
            "invalid_batch",
        ),
        ("application/json", vec![b' '; 300 * 1024], 413, "payload_too_large"),
    ];
    for (content_type, body, status, code) in cases {
        let (got_status, got) = stack.post_raw(content_type, body).await;
        assert_eq!(
            (got_status, got["error"]["code"].as_str()),
            (status, Some(code)),
            "{got}"
        );
        assert!(got["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, unknown_reply) = stack
        .post_raw("application/json", unknown.to_string().into_bytes())
        .await;
    assert!(
        unknown_reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("did you mean Card.Completed"),
        "{unknown_reply}"
    );
    assert!(
        stack.server.memory.as_ref().is_some_and(|m| m.triggers.is_empty()),
        "a refused request enqueues nothing"
    );
    assert!(stack.runs("").await.is_empty());
    stack.shutdown().await;
}

#[tokio::test]
async fn batches_are_accepted_whole() {
    let stack = Stack::start(vec![]).await;
    let batch = json!([
        event("b-1", "Site.Published", &[], json!({})),
        event("b-2", "Form.Submitted", &[], json!({}))
    ]);
    let (status, body) = stack
        .post_raw("application/cloudevents-batch+json", batch.to_string().into_bytes())
        .await;
    assert_eq!((status, body), (202, json!({"event_ids": ["b-1", "b-2"]})));
    stack.shutdown().await;
}

#[tokio::test]
async fn the_runs_api_filters_and_refuses_bad_queries() {
    let stack = Stack::start(vec![
        post_workflow("wf_a", "Card.Completed", json!({"workspace": true}), "http://127.0.0.1:9/unreachable", json!({})),
        json!({"id": "wf_b", "workspace_id": hookflow_tests::WS, "name": "b", "status": "active", "scope": {"workspace": true},
               "trigger": {"type": "Card.Completed"}, "start": "s", "steps": {"s": {"action": {"type": "SetVariables", "values": {"x": 1}}}}}),
    ])
    .await;
    stack.post_event(&event("r-1", "Card.Completed", &[], json!({}))).await;
    // wf_a's POST goes nowhere: three network failures (about 3 s of backoff), then failed.
    let runs = stack.wait_for_finished_runs(2).await;
    let status_of = |wf: &str| {
        runs.iter()
            .find(|r| r["workflow_id"] == wf)
            .map(|r| r["status"].clone())
    };
    assert_eq!(status_of("wf_a"), Some(json!("failed")));
    assert_eq!(status_of("wf_b"), Some(json!("succeeded")));
    let failed: Vec<Value> = stack.runs("?status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["workflow_id"], "wf_a");
    assert_eq!(stack.runs("?workflow_id=wf_b").await.len(), 1);
    for query in ["?status=weird", "?limit=0", "?colour=blue"] {
        let (status, body) = stack
            .get(&format!("/v1/workspaces/{}/runs{query}", hookflow_tests::WS))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{query}"
        );
    }
    let (status, body) = stack
        .get(&format!("/v1/workspaces/{}/runs/run_nope", hookflow_tests::WS))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("run_not_found")));
    let run_id = runs[0]["run_id"].as_str().unwrap_or_default();
    let (status, _) = stack.get(&format!("/v1/workspaces/ws_other/runs/{run_id}")).await;
    assert_eq!(status, 404, "another workspace cannot read the run");
    stack.shutdown().await;
}

#[tokio::test]
async fn binary_content_mode_reads_ce_headers_and_the_body_as_data() {
    let sink = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![post_workflow(
        "wf_bin",
        "Prize.Won",
        json!({"card": "card_9"}),
        &sink.uri(),
        json!({"prize": "{{ prize.name }}", "source": "{{ event.source }}"}),
    )])
    .await;
    let send = |headers: Vec<(&'static str, &'static str)>, body: &'static str| {
        let mut request = stack
            .client
            .post(format!("{}/v1/events", stack.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let attributes = vec![
        ("ce-specversion", "1.0"),
        ("ce-id", "bin-1"),
        ("ce-source", "komo%2Fprizes"),
        ("ce-type", "Prize.Won"),
        ("ce-workspaceid", hookflow_tests::WS),
        ("ce-cardid", "card_9"),
        ("ce-depth", "0"),
    ];
    let accepted = send(attributes.clone(), r#"{"prize": {"name": "Mug"}}"#)
        .await
        .expect("POST");
    assert_eq!(accepted.status().as_u16(), 202);
    let answer: Value = accepted.json().await.expect("JSON");
    assert_eq!(answer["event_id"].as_str(), Some("bin-1"));

    let mut wrong_type = attributes.clone();
    wrong_type[3] = ("ce-type", "Prize.Wonn");
    let refused = send(wrong_type, "{}").await.expect("POST");
    assert_eq!(refused.status().as_u16(), 400);
    let mut no_id = attributes.clone();
    no_id.remove(1);
    assert_eq!(send(no_id, "{}").await.expect("POST").status().as_u16(), 400);

    stack.wait_for_finished_runs(1).await;
    let received = sink.received_requests().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&received[0].body).expect("JSON");
    assert_eq!(body, json!({"prize": "Mug", "source": "komo/prizes"}));
    stack.shutdown().await;
}
