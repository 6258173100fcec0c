use hookflow_tests::{event, Stack};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::post_workflow;

async fn paths_received(sink: &MockServer) -> Vec<String> {
    let mut paths: Vec<String> = sink
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn card_site_and_workspace_scopes_match_only_their_events() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let url = |p: &str| format!("{}/{p}", sink.uri());
    let stack = Stack::start(vec![
        post_workflow(
            "wf_card",
            "Gameplay.Ended",
            json!({"card": "card_a"}),
            &url("card"),
            json!({"e": "{{ event.id }}"}),
        ),
        post_workflow(
            "wf_site",
            "Gameplay.Ended",
            json!({"site": "site_1"}),
            &url("site"),
            json!({"e": "{{ event.id }}"}),
        ),
        post_workflow(
            "wf_ws",
            "Gameplay.Ended",
            json!({"workspace": true}),
            &url("ws"),
            json!({"e": "{{ event.id }}"}),
        ),
        post_workflow(
            "wf_other_type",
            "Prize.Won",
            json!({"workspace": true}),
            &url("prize"),
            json!({}),
        ),
    ])
    .await;

    // (event id, scope attributes, sink paths that must receive it)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "e1",
            vec![("siteid", "site_1"), ("cardid", "card_a")],
            vec!["/card", "/site", "/ws"],
        ),
        (
            "e2",
            vec![("siteid", "site_1"), ("cardid", "card_b")],
            vec!["/site", "/ws"],
        ),
        ("e3", vec![("siteid", "site_2"), ("cardid", "card_c")], vec!["/ws"]),
        ("e4", vec![], vec!["/ws"]),
    ];
    let mut expected_runs = 0;
    for (id, scope, expected_paths) in cases {
        sink.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&sink)
            .await;
        let (status, body) = stack.post_event(&event(id, "Gameplay.Ended", &scope, json!({}))).await;
        assert_eq!((status, body), (202, json!({"event_id": id})));
        expected_runs += expected_paths.len();
        let runs = stack.wait_for_finished_runs(expected_runs).await;
        assert_eq!(paths_received(&sink).await, expected_paths, "event {id}");
        let mut workflows: Vec<&str> = runs
            .iter()
            .filter(|r| r["event_id"] == id)
            .map(|r| r["workflow_id"].as_str().unwrap_or_default())
            .collect();
        workflows.sort();
        let mut expected_workflows: Vec<String> = expected_paths.iter().map(|p| format!("wf_{}", &p[1..])).collect();
        expected_workflows.sort();
        assert_eq!(workflows, expected_workflows, "event {id}");
        assert!(runs.iter().all(|r| r["status"] == "succeeded"));
    }
    // A workflow of another workspace never sees these events.
    let (status, body) = stack.get("/v1/workspaces/ws_other/runs").await;
    assert_eq!((status, body), (200, json!({"runs": []})));
    stack.shutdown().await;
}

#[tokio::test]
async fn trigger_filter_decides_whether_a_run_starts() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/leads"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&sink)
        .await;
    let mut workflow = post_workflow(
        "wf_consent",
        "Gameplay.DataCapturedQualified",
        json!({"workspace": true}),
        &format!("{}/leads", sink.uri()),
        json!({"email": "{{ contact.email }}"}),
    );
    workflow["trigger"]["filter"] = json!({"all": [
        {"path": "form_fields.consent", "op": "eq", "value": true},
        {"path": "contact.email", "op": "ends_with", "value": "@example.com"}
    ]});
    let stack = Stack::start(vec![workflow]).await;
    let data = |consent: bool, email: &str| json!({"form_fields": {"consent": consent}, "contact": {"email": email}});
    for (id, d) in [
        ("no-consent", data(false, "a@example.com")),
        ("other-domain", data(true, "a@else.org")),
        ("yes", data(true, "b@example.com")),
    ] {
        let (status, _) = stack
            .post_event(&event(id, "Gameplay.DataCapturedQualified", &[], d))
            .await;
        assert_eq!(status, 202);
    }
    stack.wait_until_idle().await;
    let runs = stack.wait_for_finished_runs(1).await;
    assert_eq!(runs[0]["event_id"], "yes");
    let received: Vec<Value> = sink
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.body_json::<Value>().unwrap_or_default())
        .collect();
    assert_eq!(received, vec![json!({"email": "b@example.com"})]);
    stack.shutdown().await;
}
