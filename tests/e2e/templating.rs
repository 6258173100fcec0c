use hookflow_tests::{event, step, timeline, Stack};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The example workflow, pointed at a local sink.
fn hot_leads(sink: &str) -> Value {
    json!({"id": "wf_hot_leads", "workspace_id": hookflow_tests::WS, "name": "Route hot Sponsor A leads", "status": "active",
    "scope": {"card": "card_sponsor_a"},
    "trigger": {"type": "Gameplay.DataCapturedQualified", "filter": {"path": "form_fields.consent", "op": "eq", "value": true}},
    "start": "route",
    "vars": {"token": "t0k3n"},
    "steps": {
      "route": {"action": {"type": "Decision", "branches": [{"when": {"path": "gameplay.score", "op": "gte", "value": 100}, "next": "hot"}], "default": "cold"}},
      "hot":  {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/leads"),
               "headers": {"Authorization": "Bearer {{ vars.token }}"},
               "body": {"email": "{{ contact.email }}", "source": "Komo - {{ card.name }}", "score": "{{ gameplay.score }}"}},
               "retry": {"max_attempts": 4, "initial_interval_s": 0.05, "backoff_rate": 2.0, "max_interval_s": 1, "jitter": "full"},
               "on_failure": "alert"},
      "cold": {"action": {"type": "SetVariables", "values": {"tier": "cold"}}},
      "alert": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/alerts"), "body": {"text": "lead {{ contact.email }} failed"}}}
    }})
}

fn lead(id: &str, score: i64) -> Value {
    event(
        id,
        "Gameplay.DataCapturedQualified",
        &[("cardid", "card_sponsor_a")],
        json!({"contact": {"email": "ana@example.com"}, "card": {"name": "Sponsor A Trivia"},
               "gameplay": {"score": score}, "form_fields": {"consent": true}}),
    )
}

#[tokio::test]
async fn both_decision_branches_with_typed_and_mixed_templates() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/leads"))
        .and(header("authorization", "Bearer t0k3n"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"lead_id": "L-9"})))
        .expect(1)
        .mount(&sink)
        .await;
    let stack = Stack::start(vec![hot_leads(&sink.uri())]).await;

    stack.post_event(&lead("hot-1", 120)).await;
    let runs = stack.wait_for_finished_runs(1).await;
    let hot = &runs[0];
    assert_eq!(hot["status"], "succeeded");
    assert_eq!(
        timeline(hot),
        vec![step("route", "succeeded", 1), step("hot", "succeeded", 1)]
    );
    assert_eq!(hot["steps"][0]["output"], json!({"branch": 0, "next": "hot"}));
    assert_eq!(hot["steps"][1]["output"]["body"], json!({"lead_id": "L-9"}));
    assert_eq!(hot["steps"][1]["output"]["status"], 201);

    let requests = sink.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1);
    // "score": "{{ gameplay.score }}" keeps the number; mixed text is a string.
    assert_eq!(
        requests[0].body_json::<Value>().unwrap_or_default(),
        json!({"email": "ana@example.com", "source": "Komo - Sponsor A Trivia", "score": 120})
    );
    let key = requests[0]
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(key, format!("{}:hot", hot["run_id"].as_str().unwrap_or_default()));

    stack.post_event(&lead("cold-1", 40)).await;
    let runs = stack.wait_for_finished_runs(2).await;
    let cold = &runs[1];
    assert_eq!(cold["event_id"], "cold-1");
    assert_eq!(cold["status"], "succeeded");
    assert_eq!(
        timeline(cold),
        vec![step("route", "succeeded", 1), step("cold", "succeeded", 1)]
    );
    assert_eq!(cold["steps"][0]["output"], json!({"branch": "default", "next": "cold"}));
    assert_eq!(cold["steps"][1]["output"], json!({"tier": "cold"}));
    assert_eq!(
        sink.received_requests().await.unwrap_or_default().len(),
        1,
        "the cold lead sends nothing"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_missing_variable_fails_the_run_and_names_the_variable() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&sink)
        .await;
    let workflow = json!({"id": "wf_missing", "workspace_id": hookflow_tests::WS, "name": "m", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "notify",
        "steps": {"notify": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/n", sink.uri()),
            "body": {"text": "Congrats {{ contact.first_name }}, you won {{ prize.name }}"}}}}});
    let stack = Stack::start(vec![workflow]).await;
    stack
        .post_event(&event(
            "p1",
            "Prize.Won",
            &[],
            json!({"contact": {"first_name": "Ana"}}),
        ))
        .await;
    let runs = stack.wait_for_finished_runs(1).await;
    let run = &runs[0];
    assert_eq!(run["status"], "failed");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("prize.name"),
        "run error should name the variable: {error}"
    );
    // A template error is the workflow's fault: no retry.
    assert_eq!(timeline(run), vec![step("notify", "failed", 1)]);
    assert!(run["steps"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("`prize.name` is missing"));
    stack.shutdown().await;
}
