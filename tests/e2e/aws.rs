//! The same pipeline on DynamoDB and SQS (moto): `hookflow dev --aws` must
//! process events exactly as the in-memory default does.

use hookflow_tests::{event, timeline, Stack};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn workflows(sink: &str) -> Vec<Value> {
    vec![
        json!({"id": "wf_route", "workspace_id": hookflow_tests::WS, "name": "route", "status": "active",
        "scope": {"card": "card_a"}, "trigger": {"type": "Gameplay.DataCapturedQualified",
        "filter": {"path": "form_fields.consent", "op": "eq", "value": true}},
        "start": "route",
        "steps": {
            "route": {"action": {"type": "Decision", "branches": [{"when": {"path": "gameplay.score", "op": "gte", "value": 100}, "next": "hot"}], "default": "cold"}},
            "hot": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/hot"),
                    "body": {"email": "{{ contact.email }}", "score": "{{ gameplay.score }}"}},
                    "retry": {"max_attempts": 3, "initial_interval_s": 0, "jitter": "none"}},
            "cold": {"action": {"type": "SetVariables", "values": {"tier": "cold"}}}
        }}),
        json!({"id": "wf_site", "workspace_id": hookflow_tests::WS, "name": "site", "status": "active",
            "scope": {"site": "site_1"}, "trigger": {"type": "Gameplay.DataCapturedQualified"}, "start": "post",
            "steps": {"post": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/site"), "body": {"e": "{{ event.id }}"}}}}}),
    ]
}

fn events() -> Vec<Value> {
    let lead = |id: &str, card: &str, score: i64, consent: bool| {
        event(
            id,
            "Gameplay.DataCapturedQualified",
            &[("siteid", "site_1"), ("cardid", card)],
            json!({"contact": {"email": format!("{id}@example.com")}, "gameplay": {"score": score}, "form_fields": {"consent": consent}}),
        )
    };
    vec![
        lead("hot", "card_a", 120, true),
        lead("cold", "card_a", 10, true),
        lead("other-card", "card_b", 500, true),
        lead("no-consent", "card_a", 500, false),
    ]
}

/// Each run as an [`Outcome`], sorted, so two backends can be compared.
pub(crate) fn outcomes(runs: &[Value]) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = runs
        .iter()
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap_or_default().to_owned();
            (text("workflow_id"), text("event_id"), text("status"), timeline(r))
        })
        .collect();
    outcomes.sort();
    outcomes
}

/// (workflow, status, timeline, run error).
type OutcomeWithError = (String, String, Vec<(String, String, u64)>, Option<String>);

/// What a run did, without ids and times: (workflow, event, status, timeline).
pub(crate) type Outcome = (String, String, String, Vec<(String, String, u64)>);

async fn run_through(stack: &Stack, expected_runs: usize) -> Vec<Outcome> {
    for e in events() {
        let (status, _) = stack.post_event(&e).await;
        assert_eq!(status, 202);
    }
    // A duplicate delivery is absorbed on both backends.
    stack.post_event(&events()[0]).await;
    let runs = stack.wait_for_finished_runs(expected_runs).await;
    outcomes(&runs)
}

pub(crate) async fn sink_bodies(sink: &MockServer) -> Vec<(String, Value)> {
    let mut bodies: Vec<(String, Value)> = sink
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| (r.url.path().to_owned(), r.body_json::<Value>().unwrap_or_default()))
        .collect();
    bodies.sort_by_key(|(p, b)| format!("{p}{b}"));
    bodies
}

#[tokio::test]
async fn dev_on_dynamodb_and_sqs_matches_the_in_memory_default() {
    let mut results = vec![];
    for aws in [false, true] {
        let sink = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hot"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&sink)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&sink)
            .await;
        let stack = if aws {
            Stack::start_aws(workflows(&sink.uri())).await
        } else {
            Stack::start(workflows(&sink.uri())).await
        };
        // hot, cold (wf_route); hot, cold, other-card, no-consent (wf_site).
        let outcomes = run_through(&stack, 6).await;
        let bodies = sink_bodies(&sink).await;
        stack.shutdown().await;
        results.push((outcomes, bodies));
    }
    let (memory, aws) = (&results[0], &results[1]);
    assert_eq!(memory.0.len(), 6);
    assert!(
        memory.0.iter().any(|o| o.1 == "hot" && o.3.len() == 3),
        "the hot lead retried once: {:?}",
        memory.0
    );
    assert_eq!(aws.0, memory.0, "same runs, statuses and step timelines");
    assert_eq!(aws.1, memory.1, "same requests at the sink");
}

/// The README walkthrough: the shipped example workflows and sample events,
/// with the built-in sink swapped for a wiremock server.
#[tokio::test]
async fn the_readme_walkthrough_runs_the_same_on_dynamodb_and_sqs() {
    let read = hookflow_tests::repository_file;
    let mut results = vec![];
    for aws in [false, true] {
        let sink = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
            .mount(&sink)
            .await;
        let workflows = hookflow_tests::example_workflows(
            &[
                "sponsor_lead_routing",
                "crm_push_hubspot",
                "winner_notification",
                "score_decision",
            ],
            &sink.uri(),
        );
        let mut stack = if aws {
            Stack::start_aws(workflows).await
        } else {
            Stack::start(workflows).await
        };
        stack.workspace = "ws_demo".to_owned();
        for sample in [
            "gameplay.data-captured-qualified",
            "gameplay.data-captured",
            "prize.won",
        ] {
            let event: Value =
                serde_json::from_str(&read(&format!("events/triggers/{sample}.json"))).expect("sample parses");
            let (status, _) = stack.post_event(&event).await;
            assert_eq!(status, 202);
        }
        let runs = stack.wait_for_finished_runs(4).await;
        let outcomes = outcomes(&runs);
        assert!(outcomes.iter().all(|o| o.2 == "succeeded"), "{outcomes:?}");
        let bodies = sink_bodies(&sink).await;
        stack.shutdown().await;
        results.push((outcomes, bodies));
    }
    assert_eq!(
        results[0].1.len(),
        4,
        "four requests reach the sink: {:?}",
        results[0].1
    );
    assert_eq!(
        results[1], results[0],
        "DynamoDB + SQS give the same runs, timelines and requests"
    );
}

/// Retry-After, exhausted retries with `on_failure`, a Delay and a missing
/// variable: the same outcome on DynamoDB and SQS as in memory.
#[tokio::test]
async fn retries_delays_and_failures_match_on_dynamodb_and_sqs() {
    let mut results = vec![];
    for aws in [false, true] {
        let sink = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/busy"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&sink)
            .await;
        Mock::given(method("POST"))
            .and(path("/down"))
            .respond_with(ResponseTemplate::new(503))
            .with_priority(1)
            .mount(&sink)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&sink)
            .await;
        let uri = sink.uri();
        let workflow = |id: &str, trigger: &str, steps: Value, start: &str| {
            json!({"id": id, "workspace_id": hookflow_tests::WS, "name": id, "status": "active", "scope": {"workspace": true},
                   "trigger": {"type": trigger}, "start": start, "steps": steps})
        };
        let post =
            |url: String| json!({"type": "HttpRequest", "method": "POST", "url": url, "body": {"e": "{{ event.id }}"}});
        let workflows = vec![
            workflow(
                "wf_busy",
                "Coupon.Redeemed",
                json!({"p": {"action": post(format!("{uri}/busy")),
                "retry": {"max_attempts": 3, "initial_interval_s": 0, "jitter": "none"}}}),
                "p",
            ),
            workflow(
                "wf_down",
                "Coupon.Issued",
                json!({
                "p": {"action": post(format!("{uri}/down")), "retry": {"max_attempts": 2, "initial_interval_s": 0, "jitter": "none"}, "on_failure": "alert"},
                "alert": {"action": post(format!("{uri}/alert"))}}),
                "p",
            ),
            workflow(
                "wf_delay",
                "Prize.Won",
                json!({
                "wait": {"action": {"type": "Delay", "seconds": 1}, "next": "p"},
                "p": {"action": post(format!("{uri}/after-delay"))}}),
                "wait",
            ),
            workflow(
                "wf_missing",
                "Card.Completed",
                json!({
                "p": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{uri}/never"), "body": {"x": "{{ nope.value }}"}}}}),
                "p",
            ),
        ];
        let stack = if aws {
            Stack::start_aws(workflows).await
        } else {
            Stack::start(workflows).await
        };
        for (id, trigger) in [
            ("busy", "Coupon.Redeemed"),
            ("down", "Coupon.Issued"),
            ("delay", "Prize.Won"),
            ("missing", "Card.Completed"),
        ] {
            let (status, _) = stack.post_event(&event(id, trigger, &[], json!({}))).await;
            assert_eq!(status, 202);
        }
        let runs = stack.wait_for_finished_runs(4).await;
        let mut outcomes: Vec<OutcomeWithError> = runs
            .iter()
            .map(|r| {
                (
                    r["workflow_id"].as_str().unwrap_or_default().to_owned(),
                    r["status"].as_str().unwrap_or_default().to_owned(),
                    timeline(r),
                    r["error"].as_str().map(str::to_owned),
                )
            })
            .collect();
        outcomes.sort();
        let bodies = sink_bodies(&sink).await;
        stack.shutdown().await;
        results.push((outcomes, bodies));
    }
    let memory = &results[0];
    let expected_timelines: Vec<(&str, &str, usize)> = vec![
        ("wf_busy", "succeeded", 2),
        ("wf_delay", "succeeded", 2),
        ("wf_down", "succeeded", 3),
        ("wf_missing", "failed", 1),
    ];
    let got: Vec<(&str, &str, usize)> = memory
        .0
        .iter()
        .map(|(w, s, t, _)| (w.as_str(), s.as_str(), t.len()))
        .collect();
    assert_eq!(got, expected_timelines, "{:?}", memory.0);
    assert!(
        memory.0[3].3.as_deref().is_some_and(|e| e.contains("nope.value")),
        "{:?}",
        memory.0[3]
    );
    assert_eq!(
        results[1], results[0],
        "DynamoDB + SQS give the same runs, timelines, errors and requests"
    );
}
