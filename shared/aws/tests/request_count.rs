#![allow(clippy::unwrap_used)] // test support code: a panic is the failure report
//! Counts the AWS requests Hookflow makes, per service and operation, with an
//! SDK interceptor, against the emulator `make test` starts. This is what a
//! run costs in AWS requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookflow_aws::{create_resources, dynamo_stores, sqs_queue, ResourceNames};
use hookflow_core::engine::DeliveryLimits;
use hookflow_core::ports::*;
use hookflow_core::subscription::Subscription;
use hookflow_core::{TriggerEvent, WorkflowDefinition};
use serde_json::json;

/// (service, operation) → requests made.
#[derive(Debug, Clone, Default)]
struct RequestCounter(Arc<Mutex<BTreeMap<(String, String), usize>>>);

impl RequestCounter {
    fn take(&self) -> BTreeMap<(String, String), usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    /// Once per request sent (retries included), when the operation's
    /// metadata is in the config bag.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = config.load::<Metadata>() {
            let key = (metadata.service().to_owned(), metadata.name().to_owned());
            *self.0.lock().unwrap().entry(key).or_default() += 1;
        }
        Ok(())
    }
}

struct Clients {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    counter: RequestCounter,
}

async fn clients() -> Clients {
    let endpoint = std::env::var("HOOKFLOW_TEST_AWS_ENDPOINT")
        .expect("HOOKFLOW_TEST_AWS_ENDPOINT is not set: run the tests with `make test`, which starts moto");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "hookflow-tests"))
        .load()
        .await;
    let counter = RequestCounter::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    );
    Clients { dynamo, sqs, counter }
}

fn print_table(title: &str, counts: &BTreeMap<(String, String), usize>) {
    println!("{title}");
    println!("  {:<10} {:<22} {:>8}", "service", "operation", "requests");
    for ((service, operation), n) in counts {
        println!("  {service:<10} {operation:<22} {n:>8}");
    }
    println!("  {:<33} {:>8}", "total", counts.values().sum::<usize>());
}

fn reads(counts: &BTreeMap<(String, String), usize>) -> usize {
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
        workspace_id: "ws_count".into(),
        trigger_type: "Prize.Won".into(),
        workflow_id: workflow_id.into(),
        workflow_version: 1,
        scope: hookflow_core::workflow::Scope::Workspace(true),
        filter: None,
        start: "s".into(),
    }
}

#[tokio::test]
async fn the_dispatcher_reads_dynamodb_once_per_event_whatever_the_number_of_workflows() {
    let c = clients().await;
    let names = ResourceNames::with_prefix(&format!("count-dispatch-{}", std::process::id()));
    let urls = create_resources(&c.dynamo, &c.sqs, &names, Duration::from_secs(30))
        .await
        .unwrap();
    let stores = dynamo_stores(c.dynamo.clone(), &names.workflows_table, &names.runs_table, None);
    let index = stores.subscriptions.clone();
    let dispatcher = stores.dispatcher(sqs_queue(&c.sqs, urls.steps));
    index.put(&subscription("wf_0000")).await.unwrap();
    c.counter.take();
    let report = dispatcher.dispatch(&event("one")).await.unwrap();
    let counts = c.counter.take();
    print_table("dispatch of one event, 1 active workflow:", &counts);
    assert_eq!(report.started.len(), 1);
    assert_eq!(reads(&counts), 1, "{counts:?}");

    for i in 1..1000 {
        index.put(&subscription(&format!("wf_{i:04}"))).await.unwrap();
    }
    c.counter.take();
    let report = dispatcher.dispatch(&event("thousand")).await.unwrap();
    let counts = c.counter.take();
    print_table("dispatch of one event, 1,000 active workflows:", &counts);
    assert_eq!(report.started.len(), 1000);
    assert_eq!(reads(&counts), 1, "one Query for 1,000 subscriptions: {counts:?}");
}

struct Ok200;

#[async_trait]
impl HttpClient for Ok200 {
    async fn send(&self, _call: HttpCall) -> Result<HttpReply, HttpError> {
        Ok(HttpReply {
            status: 200,
            headers: vec![],
            body: b"{\"ok\":true}".to_vec(),
        })
    }
}

#[tokio::test]
async fn requests_of_one_event_through_a_three_step_run() {
    let c = clients().await;
    let names = ResourceNames::with_prefix(&format!("count-run-{}", std::process::id()));
    let urls = create_resources(&c.dynamo, &c.sqs, &names, Duration::from_secs(30))
        .await
        .unwrap();
    let stores = dynamo_stores(c.dynamo.clone(), &names.workflows_table, &names.runs_table, None);
    let triggers = sqs_queue(&c.sqs, urls.triggers);
    let steps = sqs_queue(&c.sqs, urls.steps);
    let workflow = WorkflowDefinition::from_value(json!({"id": "wf_three", "workspace_id": "ws_count", "name": "three",
        "status": "active", "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "s",
        "steps": {
            "s": {"action": {"type": "SetVariables", "values": {"email": "{{ contact.email }}"}}, "next": "crm"},
            "crm": {"action": {"type": "HttpRequest", "method": "POST", "url": "http://127.0.0.1:9/crm", "body": {"e": "{{ vars.email }}"}}, "next": "notify"},
            "notify": {"action": {"type": "HttpRequest", "method": "POST", "url": "http://127.0.0.1:9/notify", "body": {}}}
        }}))
    .unwrap();
    stores.workflows.put_version(&workflow).await.unwrap();
    stores
        .subscriptions
        .put(&Subscription::for_workflow(&workflow).unwrap())
        .await
        .unwrap();

    let ingest = stores.ingest(triggers.clone());
    let dispatcher = stores.dispatcher(steps.clone());
    let executor = stores.step_executor(
        steps.clone(),
        Arc::new(Ok200),
        DeliveryLimits::for_queue(Duration::from_secs(900), hookflow_aws::MAX_RECEIVE_COUNT),
    );
    c.counter.take();

    // What the Lambda functions do, by hand: receive, handle, delete.
    ingest.accept(&[event("run-1")]).await.unwrap();
    let ingest_counts = c.counter.take();
    let deliveries = triggers.receive(10, Duration::from_secs(1)).await.unwrap();
    for d in &deliveries {
        dispatcher.handle_message(&d.body).await.unwrap();
        triggers.ack(&d.receipt).await.unwrap();
    }
    let dispatch_counts = c.counter.take();
    let mut finished = false;
    for _ in 0..10 {
        for d in steps.receive(10, Duration::from_secs(1)).await.unwrap() {
            if let hookflow_core::engine::NextMove::Finished(_) = executor.handle_message(&d.body).await.unwrap().next {
                finished = true;
            }
            steps.ack(&d.receipt).await.unwrap();
        }
        if finished {
            break;
        }
    }
    let step_counts = c.counter.take();
    assert!(finished, "the run finished");
    print_table("ingest (webhook fn):", &ingest_counts);
    print_table(
        "dispatch (dispatcher fn, incl. its SQS receive/delete):",
        &dispatch_counts,
    );
    print_table("steps (step fn, incl. SQS receive/delete):", &step_counts);
    let run_id = hookflow_core::run::run_id_of("ws_count", "tests", "run-1", "wf_three");
    let run = stores.runs.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(run.status, hookflow_core::run::RunStatus::Succeeded);
    assert_eq!(stores.runs.list_steps(&run_id).await.unwrap().len(), 3);
    assert_eq!(reads(&dispatch_counts), 1);
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
    let stores = dynamo_stores(c.dynamo.clone(), &names.workflows_table, &names.runs_table, None);
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
        let counts = c.counter.take();
        print_table(&format!("{listed} runs listed in {pages} pages:"), &counts);
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
