use chrono::{DateTime, Utc};
use hookflow_tests::{event, step, timeline, Stack};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn retrying_workflow(sink: &str, max_attempts: u32, with_on_failure: bool) -> Value {
    let mut wf = json!({"id": "wf_retry", "workspace_id": hookflow_tests::WS, "name": "retry", "status": "active",
    "scope": {"workspace": true}, "trigger": {"type": "Coupon.Redeemed"}, "start": "push",
    "steps": {
        "push": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/push"), "body": {"code": "{{ coupon.code }}"}},
                 "retry": {"max_attempts": max_attempts, "initial_interval_s": 0.05, "backoff_rate": 2.0, "max_interval_s": 0.2, "jitter": "none"}},
        "alert": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/alert"),
                  "body": {"text": "push failed: {{ error.message }}", "step": "{{ error.step_id }}"}}}
    }});
    if with_on_failure {
        wf["steps"]["push"]["on_failure"] = json!("alert");
    } else {
        wf["steps"].as_object_mut().map(|s| s.remove("alert"));
    }
    wf
}

fn redeemed(id: &str) -> Value {
    event(id, "Coupon.Redeemed", &[], json!({"coupon": {"code": "SUMMER-25"}}))
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

#[tokio::test]
async fn retries_then_succeeds_with_one_idempotency_key() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/push"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .and(path("/push"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![retrying_workflow(&sink.uri(), 4, true)]).await;
    stack.post_event(&redeemed("c1")).await;
    let runs = stack.wait_for_finished_runs(1).await;
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded");
    assert_eq!(
        timeline(run),
        vec![
            step("push", "failed", 1),
            step("push", "failed", 2),
            step("push", "succeeded", 3)
        ]
    );
    assert_eq!(run["steps"][0]["error"], "HTTP 500 from POST");
    let requests = sink.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 3);
    let keys: Vec<String> = requests
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0] && k.ends_with(":push")), "{keys:?}");
    // Backoff without jitter: 50 ms, then 100 ms.
    let gap = |a: usize, b: usize| time(&run["steps"][b]["started_at"]) - time(&run["steps"][a]["ended_at"]);
    assert!(gap(0, 1).num_milliseconds() >= 50, "{}", gap(0, 1));
    assert!(gap(1, 2).num_milliseconds() >= 100, "{}", gap(1, 2));
    stack.shutdown().await;
}

#[tokio::test]
async fn exhausted_retries_follow_on_failure() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/push"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .and(path("/alert"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![retrying_workflow(&sink.uri(), 3, true)]).await;
    stack.post_event(&redeemed("c2")).await;
    let runs = stack.wait_for_finished_runs(1).await;
    let run = &runs[0];
    // The failure was handled by on_failure, so the run itself succeeds.
    assert_eq!(run["status"], "succeeded");
    assert_eq!(
        timeline(run),
        vec![
            step("push", "failed", 1),
            step("push", "failed", 2),
            step("push", "failed", 3),
            step("alert", "succeeded", 1)
        ]
    );
    let alert = sink
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.url.path() == "/alert")
        .map(|r| r.body_json::<Value>().unwrap_or_default());
    assert_eq!(
        alert,
        Some(json!({"text": "push failed: HTTP 503 from POST", "step": "push"}))
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn exhausted_retries_without_on_failure_fail_the_run() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .expect(2)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![retrying_workflow(&sink.uri(), 2, false)]).await;
    stack.post_event(&redeemed("c3")).await;
    let runs = stack.wait_for_finished_runs(1).await;
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(
        runs[0]["error"],
        "step push failed after 2 attempt(s): HTTP 502 from POST"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/push"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"why": "bad email"})))
        .expect(1)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .and(path("/alert"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![retrying_workflow(&sink.uri(), 4, true)]).await;
    stack.post_event(&redeemed("c4")).await;
    let runs = stack.wait_for_finished_runs(1).await;
    assert_eq!(
        timeline(&runs[0]),
        vec![step("push", "failed", 1), step("alert", "succeeded", 1)]
    );
    // What the peer said is kept for whoever reads the run log.
    assert_eq!(runs[0]["steps"][0]["output"]["body"], json!({"why": "bad email"}));
    stack.shutdown().await;
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/push"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .and(path("/push"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![retrying_workflow(&sink.uri(), 3, true)]).await;
    stack.post_event(&redeemed("c5")).await;
    let runs = stack.wait_for_finished_runs(1).await;
    let run = &runs[0];
    assert_eq!(
        timeline(run),
        vec![step("push", "failed", 1), step("push", "succeeded", 2)]
    );
    let waited = time(&run["steps"][1]["started_at"]) - time(&run["steps"][0]["ended_at"]);
    // The policy alone would wait 50 ms; Retry-After asks for a second.
    assert!(waited.num_milliseconds() >= 1000, "retried after {waited}");
    stack.shutdown().await;
}

#[tokio::test]
async fn delay_waits_before_the_next_step() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&sink)
        .await;
    let workflow = json!({"id": "wf_delay", "workspace_id": hookflow_tests::WS, "name": "d", "status": "active",
    "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "mark",
    "steps": {
        "mark": {"action": {"type": "SetVariables", "values": {"at": "{{ event.time }}"}}, "next": "wait"},
        "wait": {"action": {"type": "Delay", "seconds": 1.2}, "next": "notify"},
        "notify": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/n", sink.uri()), "body": {"at": "{{ vars.at }}"}}}
    }});
    let stack = Stack::start(vec![workflow]).await;
    stack.post_event(&event("d1", "Prize.Won", &[], json!({}))).await;
    let runs = stack.wait_for_finished_runs(1).await;
    let run = &runs[0];
    assert_eq!(
        timeline(run),
        vec![
            step("mark", "succeeded", 1),
            step("wait", "succeeded", 1),
            step("notify", "succeeded", 1)
        ]
    );
    let waited = time(&run["steps"][2]["started_at"]) - time(&run["steps"][0]["ended_at"]);
    assert!(waited.num_milliseconds() >= 1200, "waited only {waited}");
    let body = sink.received_requests().await.unwrap_or_default()[0]
        .body_json::<Value>()
        .unwrap_or_default();
    assert_eq!(body, json!({"at": "2026-11-23T10:00:00Z"}));
    stack.shutdown().await;
}
