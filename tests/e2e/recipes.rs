//! The seed's loyalty recipe from the shipped examples, on both backends:
//! points awarded on `Gameplay.Ended` emit `Loyalty.PointsAwarded`, whose
//! workflow adds the gold tier once the balance reaches 100.

use hookflow_tests::{example_workflows, repository_file, Stack};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn loyalty_recipe(aws: bool) -> (Vec<(String, String)>, Vec<Value>, Value) {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    let workflows = example_workflows(&["loyalty_points", "loyalty_gold_tier"], &sink.uri());
    let mut stack = if aws {
        Stack::start_aws(workflows).await
    } else {
        Stack::start(workflows).await
    };
    stack.workspace = "ws_demo".to_owned();
    let sample: Value = serde_json::from_str(&repository_file("events/triggers/gameplay.ended.json")).expect("sample");
    for game in ["game-1", "game-2"] {
        let mut event = sample.clone();
        event["id"] = json!(game);
        let (status, body) = stack.post_event(&event).await;
        assert_eq!(status, 202, "{body}");
        // One game at a time: the second award must see the first's balance.
        stack.wait_for_finished_runs(if game == "game-1" { 1 } else { 3 }).await;
    }
    let runs = stack.wait_for_finished_runs(3).await;
    let outcomes = runs
        .iter()
        .map(|r| {
            (
                r["workflow_id"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let announced: Vec<Value> = sink
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect();
    let (status, contact) = stack.get("/v1/workspaces/ws_demo/contacts/ct_1001").await;
    assert_eq!(status, 200, "{contact}");
    stack.shutdown().await;
    (outcomes, announced, contact)
}

#[tokio::test]
async fn points_on_gameplay_ended_reach_the_gold_tier_on_both_backends() {
    for aws in [false, true] {
        let (outcomes, announced, contact) = loyalty_recipe(aws).await;
        let succeeded = |id: &str| (id.to_owned(), "succeeded".to_owned());
        assert_eq!(
            outcomes,
            vec![
                succeeded("wf_loyalty_points"),
                succeeded("wf_loyalty_points"),
                succeeded("wf_loyalty_gold")
            ],
            "aws: {aws}"
        );
        assert_eq!(
            announced,
            vec![json!({"contact": "ct_1001", "tier": "gold", "balance": 100})]
        );
        assert_eq!(contact["loyalty"], json!({"main": {"points": 100, "tiers": ["gold"]}}));
        assert_eq!(
            contact["email"],
            json!("ana@example.com"),
            "created from the event's contact"
        );
    }
}
