#![allow(clippy::unwrap_used)] // test support code: a panic is the failure report
//! Counts the AWS requests Hookflow makes, per service and operation, with an
//! SDK interceptor, against the emulator `make test` starts. This is what a
//! lookup costs; the requests of a whole run are held to a budget in
//! `bench/tests/request_budget.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use hookflow_aws::request_count::{RequestCounter, Tallies};
use hookflow_aws::{create_resources, dynamo_stores, sqs_queue, ResourceNames};
use hookflow_core::ports::*;
use hookflow_core::subscription::Subscription;
use hookflow_core::workflow::Scope;
use hookflow_core::TriggerEvent;
use serde_json::json;

struct Clients {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    counter: RequestCounter,
}

async fn clients() -> Clients {
    let endpoint = std::env::var("HOOKFLOW_TEST_AWS_ENDPOINT")
        .expect("HOOKFLOW_TEST_AWS_ENDPOINT is not set: run the tests with `make test`, which starts moto");
    let config = hookflow_aws::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "hookflow-tests"))
        .load()
        .await;
    let counter = RequestCounter::default();
    let (dynamo, sqs) = counter.clients(&config);
    Clients { dynamo, sqs, counter }
}

fn print_table(title: &str, tallies: &Tallies) {
    let counts = requests(tallies);
    println!("{title}");
    println!("  {:<10} {:<22} {:>8}", "service", "operation", "requests");
    for ((service, operation), n) in &counts {
        println!("  {service:<10} {operation:<22} {n:>8}");
    }
    println!("  {:<33} {:>8}", "total", counts.values().sum::<usize>());
}

/// Requests per (service, operation).
fn requests(tallies: &Tallies) -> BTreeMap<(String, String), usize> {
    tallies
        .iter()
        .map(|(key, tally)| (key.clone(), tally.requests))
        .collect()
}

fn reads(tallies: &Tallies) -> usize {
    let counts = requests(tallies);
    counts
        .iter()
        .filter(|((service, op), _)| {
            service.eq_ignore_ascii_case("dynamodb")
                && matches!(op.as_str(), "Query" | "GetItem" | "Scan" | "BatchGetItem")
        })
        .map(|(_, n)| n)
        .sum()
}

fn event(id: &str) -> TriggerEvent {
    serde_json::from_value(
        json!({"specversion": "1.0", "id": id, "source": "tests", "type": "Prize.Won",
        "workspaceid": "ws_count", "cardid": "card_1", "data": {"contact": {"email": "a@example.com"}}}),
    )
    .unwrap()
}

fn subscription(workflow_id: &str) -> Subscription {
    Subscription {
        scope: Scope::Workspace(true),
        ..in_card(workflow_id, "card_1")
    }
}

fn in_card(workflow_id: &str, card: &str) -> Subscription {
    Subscription {
        workspace_id: "ws_count".into(),
        trigger_type: "Prize.Won".into(),
        workflow_id: workflow_id.into(),
        workflow_version: 1,
        scope: Scope::Card(card.into()),
        filter: None,
        start: "s".into(),
    }
}

#[tokio::test]
async fn the_dispatcher_reads_dynamodb_once_per_scope_of_the_event_whatever_the_number_of_workflows() {
    let c = clients().await;
    let names = ResourceNames::with_prefix(&format!("count-dispatch-{}", std::process::id()));
    let urls = create_resources(&c.dynamo, &c.sqs, &names, Duration::from_secs(30))
        .await
        .unwrap();
    let stores = dynamo_stores(
        c.dynamo.clone(),
        hookflow_aws::StackServices::twins(),
        &names.workflows_table,
        &names.runs_table,
        None,
    );
    let index = stores.subscriptions.clone();
    let dispatcher = stores.dispatcher(sqs_queue(&c.sqs, urls.steps));
    index.put(&subscription("wf_0000")).await.unwrap();
    // The first event of a process also lists the workspace's webhook
    // endpoints, kept for 30 s: the reads counted are a warm process's.
    dispatcher.dispatch(&event("warm")).await.unwrap();
    c.counter.take();
    let report = dispatcher.dispatch(&event("one")).await.unwrap();
    let counts = c.counter.take();
    print_table("dispatch of one event, 1 active workflow:", &counts);
    assert_eq!(report.started.len(), 1);
    // The event names a card: its workspace's subscriptions and its card's.
    assert_eq!(reads(&counts), 2, "{counts:?}");

    // 999 more, a third in the event's card and the rest in another.
    for i in 1..1000 {
        let id = format!("wf_{i:04}");
        let sub = match i % 3 {
            0 => subscription(&id),
            1 => in_card(&id, "card_1"),
            _ => in_card(&id, "card_2"),
        };
        index.put(&sub).await.unwrap();
    }
    c.counter.take();
    let report = dispatcher.dispatch(&event("thousand")).await.unwrap();
    let counts = c.counter.take();
    print_table("dispatch of one event, 1,000 active workflows:", &counts);
    assert_eq!(report.started.len(), 667, "the workspace's and card_1's, not card_2's");
    // Starting 667 runs on moto may outlast the 30 s the endpoint listing
    // is kept, so this event may list them again: still a constant.
    assert!(
        reads(&counts) <= 3,
        "one Query per scope (and at most one endpoint listing): {counts:?}"
    );
}

#[tokio::test]
async fn a_page_of_runs_is_one_query_whatever_the_workspace_history() {
    use chrono::TimeZone;
    use hookflow_core::run::{RunRecord, RunStatus};
    let c = clients().await;
    let names = ResourceNames::with_prefix(&format!("count-list-{}", std::process::id()));
    create_resources(&c.dynamo, &c.sqs, &names, Duration::from_secs(30))
        .await
        .unwrap();
    let stores = dynamo_stores(
        c.dynamo.clone(),
        hookflow_aws::StackServices::twins(),
        &names.workflows_table,
        &names.runs_table,
        None,
    );
    let start = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
    // 300 runs, one in twenty failed: a failed-runs page must not read the
    // succeeded ones in between.
    for n in 0..300i64 {
        let run = RunRecord {
            run_id: format!("run_h{n:03}"),
            workspace_id: "ws_hist".into(),
            workflow_id: format!("wf_{}", n % 3),
            workflow_version: 1,
            event_id: format!("e{n}"),
            trigger_type: "Prize.Won".into(),
            status: RunStatus::Running,
            started_at: start + chrono::Duration::minutes(n),
            ended_at: None,
            error: None,
            replays: 0,
            test: false,
            replay_of: None,
            due_at: None,
            contact_id: None,
            erased_at: None,
        };
        stores.runs.create_run(&run).await.unwrap();
        let status = if n % 20 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        stores
            .runs
            .finish_run(&run.run_id, status, None, run.started_at)
            .await
            .unwrap();
    }
    for query in [
        RunQuery {
            status: Some(RunStatus::Failed),
            limit: 5,
            ..RunQuery::default()
        },
        RunQuery {
            workflow_id: Some("wf_0".into()),
            status: Some(RunStatus::Failed),
            limit: 2,
            ..RunQuery::default()
        },
        RunQuery {
            limit: 100,
            ..RunQuery::default()
        },
    ] {
        let mut query = query;
        let mut pages = 0;
        let mut listed = 0;
        c.counter.take();
        loop {
            let page = stores.runs.list_runs("ws_hist", &query).await.unwrap();
            pages += 1;
            listed += page.runs.len();
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        let tallies = c.counter.take();
        print_table(&format!("{listed} runs listed in {pages} pages:"), &tallies);
        let counts = requests(&tallies);
        let queries: usize = counts
            .iter()
            .filter(|((service, op), _)| service.eq_ignore_ascii_case("dynamodb") && op == "Query")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(queries, pages, "one Query per page: {counts:?}");
        assert_eq!(
            counts.values().sum::<usize>(),
            pages,
            "nothing but those Queries: {counts:?}"
        );
        let expected = match (query.workflow_id.is_some(), query.status.is_some()) {
            (false, true) => 15,
            (true, true) => 5,
            _ => 300,
        };
        assert_eq!(listed, expected);
    }
}
