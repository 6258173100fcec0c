//! The README walkthrough through the Lambda functions' own code on DynamoDB
//! and SQS (moto), driven by Lambda-shaped events.
//!
//! The functions are binaries, so this test wires the same library code
//! their `main.rs` and `handler.rs` wire:
//! - webhook: an API Gateway (HTTP API, payload v2) event, converted to a
//!   request by `lambda_http`'s own conversion, served by the ingest router;
//! - dispatcher and step: SQS events built from what the queues hold, exactly
//!   as an event source mapping with `ReportBatchItemFailures` hands them
//!   over, through `hookflow_lambda::handle_sqs_batch`. Only the records not
//!   reported failed are deleted;
//! - api: API Gateway GET events, served by the runs router.
//!
//! The outcome must be the one `aws.rs` expects for the walkthrough: the same
//! runs, step timelines and sink requests as the in-memory `hookflow dev`.

use std::time::{Duration, Instant};

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use hookflow_api::Router;
use hookflow_aws::{create_resources, dynamo_stores, sqs_queue, ResourceNames};
use hookflow_core::access::Role;
use hookflow_core::dead_letter::{ParkedBecause, QueueKind};
use hookflow_core::run::{RunRecord, RunStatus, StepMessage};
use hookflow_core::WorkflowDefinition;
use hookflow_http_client::NetworkPolicy;
use hookflow_lambda::QueueConsumer;
use hookflow_tests::{step, Stack};
use http::Method;
use lambda_http::request::LambdaRequest;
use serde_json::{json, Value};
use tower::ServiceExt;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The workspace of the example workflows and sample events.
use super::aws::{outcomes, sink_bodies, Outcome};

const WS: &str = "ws_demo";
/// The API Gateway event every HTTP request of this test starts from.
/// The key in the API Gateway samples (events/README.md).
const SAMPLE_KEY: &str = "hfk_5a3f0c0ffee0d00d_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
const APIGW_EVENT: &str = include_str!("../../events/lambda/apigw-post-event.json");
/// `HOOKFLOW_API_STAGE` as the fixture's stage names it (`$default`: no prefix).
const STAGE: Option<&str> = Some("$default");
/// The template's default `RunLogRetentionDays` (30).
const TEMPLATE_RUN_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The event source mappings' `BatchSize` in `template.yaml`.
const BATCH_SIZE: i32 = 10;
/// The step function's `Timeout` in `template.yaml`: the deadline its handler
/// reads from the Lambda context.
const STEP_TIMEOUT_S: i64 = 150;
/// A record no handler can decode.
const POISON: &str = "not json";

const WORKFLOWS: [&str; 4] = [
    "sponsor_lead_routing",
    "crm_push_hubspot",
    "winner_notification",
    "score_decision",
];
const SAMPLES: [&str; 3] = [
    "gameplay.data-captured-qualified",
    "gameplay.data-captured",
    "prize.won",
];

/// The example workflows with the built-in sink swapped for `sink`.
fn walkthrough_workflows(sink: &str) -> Vec<Value> {
    hookflow_tests::example_workflows(&WORKFLOWS, sink)
}

async fn start_sink() -> MockServer {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
        .mount(&sink)
        .await;
    sink
}

/// The API Gateway fixture as another request: its method, route, path and
/// body replaced, a fresh request id; then `lambda_http`'s own conversion
/// (`LambdaRequest::ApiGatewayV2` → `http::Request`), the one the runtime
/// applies to every invocation.
fn apigw_request(method: Method, route: &str, path: &str, body: Option<String>) -> lambda_http::Request {
    let mut event: ApiGatewayV2httpRequest =
        serde_json::from_str(APIGW_EVENT).expect("the API Gateway fixture decodes");
    let route_key = format!("{method} {route}");
    event.route_key = Some(route_key.clone());
    event.raw_path = Some(path.to_owned());
    event.body = body;
    if event.body.is_none() {
        event.headers.remove(http::header::CONTENT_TYPE);
    }
    event.request_context.route_key = Some(route_key);
    event.request_context.request_id = Some(ulid::Ulid::new().to_string());
    event.request_context.http.method = method;
    event.request_context.http.path = Some(path.to_owned());
    LambdaRequest::ApiGatewayV2(event).into()
}

/// One invocation of an HTTP function: the status and the JSON body.
async fn invoke_http(router: &Router, request: lambda_http::Request) -> (u16, Value) {
    let response = router.clone().oneshot(request).await.expect("the router never fails");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the response body is readable");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn list_runs(api: &Router) -> Vec<Value> {
    let request = apigw_request(
        Method::GET,
        "/v1/workspaces/{workspace_id}/runs",
        &format!("/v1/workspaces/{WS}/runs"),
        None,
    );
    let (status, body) = invoke_http(api, request).await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().cloned().unwrap_or_default()
}

async fn get_run(api: &Router, run_id: &str) -> Value {
    let request = apigw_request(
        Method::GET,
        "/v1/workspaces/{workspace_id}/runs/{run_id}",
        &format!("/v1/workspaces/{WS}/runs/{run_id}"),
        None,
    );
    let (status, body) = invoke_http(api, request).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// One SQS event source mapping with `ReportBatchItemFailures`: receive a
/// batch, hand it to the function as an `SqsEvent`, delete what succeeded.
struct EventSource {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

/// One invocation: the records handed over, as (message id, body), and the
/// ids the function reported failed.
#[derive(Debug, Default)]
struct Invocation {
    records: Vec<(String, String)>,
    failed: Vec<String>,
}

impl EventSource {
    async fn new(sqs: &aws_sdk_sqs::Client, url: &str) -> Self {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("get_queue_attributes")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .expect("the queue has an ARN");
        Self {
            sqs: sqs.clone(),
            url: url.to_owned(),
            arn,
        }
    }

    async fn poll(&self, function: &QueueConsumer<'_>, deadline: Option<DateTime<Utc>>, wait_s: i32) -> Invocation {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(BATCH_SIZE)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive_message");
        let messages = received.messages();
        if messages.is_empty() {
            return Invocation::default();
        }
        // The record shape Lambda delivers (see events/lambda/sqs-*.json).
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
                            .collect::<serde_json::Map<String, Value>>()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
        let response = hookflow_lambda::handle_sqs_batch(function, event, deadline).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        for message in messages {
            let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            if !failed.iter().any(|f| f == id) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete_message");
            }
        }
        Invocation {
            records: messages
                .iter()
                .map(|m| {
                    (
                        m.message_id().unwrap_or_default().to_owned(),
                        m.body().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            failed,
        }
    }

    /// (visible, in flight, delayed).
    async fn counts(&self) -> (usize, usize, usize) {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("get_queue_attributes");
        let count = |name: QueueAttributeName| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_default()
        };
        (
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        )
    }
}

/// The walkthrough on the in-memory `hookflow dev`: the baseline `aws.rs`
/// compares against.
async fn in_memory_baseline() -> (Vec<Outcome>, Vec<(String, Value)>) {
    let sink = start_sink().await;
    let mut stack = Stack::start(walkthrough_workflows(&sink.uri())).await;
    stack.workspace = WS.to_owned();
    for sample in SAMPLES {
        let event: Value = serde_json::from_str(&hookflow_tests::repository_file(&format!(
            "events/triggers/{sample}.json"
        )))
        .expect("sample parses");
        let (status, _) = stack.post_event(&event).await;
        assert_eq!(status, 202);
    }
    let runs = stack.wait_for_finished_runs(4).await;
    let outcomes = outcomes(&runs);
    let bodies = sink_bodies(&sink).await;
    stack.shutdown().await;
    (outcomes, bodies)
}

#[tokio::test]
async fn the_readme_walkthrough_runs_through_the_lambda_handlers_on_dynamodb_and_sqs() {
    let (memory_outcomes, memory_bodies) = in_memory_baseline().await;

    // The deployment: fresh tables and queues on the emulator.
    let config = hookflow_tests::emulator_config(hookflow_tests::SHARED_EMULATOR).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let names = ResourceNames::with_prefix(&format!(
        "lambda-{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    let urls = create_resources(&dynamo, &sqs, &names, Duration::from_secs(30))
        .await
        .expect("create resources on the emulator");

    // The workflows, loaded through the lifecycle as `hookflow dev` loads them.
    let sink = start_sink().await;
    let stores = dynamo_stores(
        dynamo.clone(),
        hookflow_tests::emulator_services(&config, &names),
        &names.workflows_table,
        &names.runs_table,
        Some(TEMPLATE_RUN_RETENTION),
    );
    let lifecycle = stores.workflows();
    for doc in walkthrough_workflows(&sink.uri()) {
        let workflow = WorkflowDefinition::from_value(doc).expect("example decodes");
        let id = workflow.id.clone();
        let head = lifecycle.apply_file(workflow).await.expect("the examples load");
        assert_eq!(head.published_version, Some(1), "{id} is published");
    }

    // The samples carry the sample key (events/README.md): an admin key
    // here, so it both sends events and reads runs.
    let access = stores.access();
    access
        .import_key("ws_demo", Role::Admin, None, SAMPLE_KEY)
        .await
        .expect("import the sample key");

    // Each function wired by the same `wire` its main.rs calls. The sink
    // is on loopback, so HTTP steps may call private networks here.
    let webhook = function_webhook::wire(&stores.doors(), sqs_queue(&sqs, urls.triggers.clone()), STAGE);
    let dispatcher = function_dispatcher::wire(&stores.dispatch(), sqs_queue(&sqs, urls.steps.clone()));
    let executor = function_step::wire(
        &stores.steps(),
        sqs_queue(&sqs, urls.steps.clone()),
        sqs_queue(&sqs, urls.triggers.clone()),
        NetworkPolicy::allow_all(),
    )
    .expect("HTTP client");
    let api = function_api::wire(&stores, sqs_queue(&sqs, urls.steps.clone()), STAGE);
    let triggers = EventSource::new(&sqs, &urls.triggers).await;
    let steps = EventSource::new(&sqs, &urls.steps).await;
    // Each queue function also consumes its queue's dead-letter queue.
    let steps_dlq = EventSource::new(&sqs, &urls.steps_dlq).await;
    let triggers_dlq_arn = EventSource::new(&sqs, &urls.triggers_dlq).await.arn;
    let (trigger_letters, step_letters) = (
        stores.dead_letters(QueueKind::Triggers, sqs_queue(&sqs, urls.steps.clone())),
        stores.dead_letters(QueueKind::Steps, sqs_queue(&sqs, urls.steps.clone())),
    );
    let dispatcher = QueueConsumer {
        handler: &dispatcher,
        dead_letters: &trigger_letters,
        dead_letter_queue_arn: &triggers_dlq_arn,
    };
    let executor = QueueConsumer {
        handler: &executor,
        dead_letters: &step_letters,
        dead_letter_queue_arn: &steps_dlq.arn,
    };

    // Webhook: each sample event in the fixture's API Gateway envelope.
    for sample in SAMPLES {
        let body = hookflow_tests::repository_file(&format!("events/triggers/{sample}.json"));
        let id = serde_json::from_str::<Value>(&body).expect("sample parses")["id"].clone();
        let (status, reply) = invoke_http(
            &webhook,
            apigw_request(Method::POST, "/v1/events", "/v1/events", Some(body)),
        )
        .await;
        assert_eq!((status, &reply["event_id"]), (202, &id), "{reply}");
    }
    // Sent again: the same 202 and id, and no second run.
    let again = hookflow_tests::repository_file("events/triggers/gameplay.data-captured-qualified.json");
    let (status, reply) = invoke_http(
        &webhook,
        apigw_request(Method::POST, "/v1/events", "/v1/events", Some(again)),
    )
    .await;
    assert_eq!(
        (status, reply["event_id"].as_str()),
        (202, Some("evt-sample-gameplay.data-captured-qualified"))
    );

    // The event source mappings, until every run has ended.
    let deadline = Instant::now() + 3 * hookflow_tests::PIPELINE_WAIT;
    let mut trigger_records = 0;
    let mut poison_sent = false;
    let mut step_invocations: Vec<Invocation> = vec![];
    let runs = loop {
        let dispatched = triggers.poll(&dispatcher, None, 0).await;
        assert!(dispatched.failed.is_empty(), "every trigger dispatches: {dispatched:?}");
        trigger_records += dispatched.records.len();
        if !poison_sent && trigger_records >= SAMPLES.len() {
            // Lands in the steps queue next to the first steps of the four runs.
            sqs.send_message()
                .queue_url(&urls.steps)
                .message_body(POISON)
                .send()
                .await
                .expect("send the poison record");
            poison_sent = true;
        }
        let step_deadline = Utc::now() + chrono::Duration::seconds(STEP_TIMEOUT_S);
        let executed = steps.poll(&executor, Some(step_deadline), 1).await;
        if !executed.records.is_empty() {
            step_invocations.push(executed);
        }
        let runs = list_runs(&api).await;
        if poison_sent && runs.len() >= 4 && runs.iter().all(|r| r["status"] != "running") {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for 4 finished runs; have {runs:#?}; step invocations {step_invocations:#?}"
        );
    };
    // The sponsor workflow's UpdateContact emits two events of its own
    // (Contact.Created, Contact.PropertyUpdated for `company`), once each.
    assert_eq!(
        trigger_records,
        SAMPLES.len() + 2,
        "the duplicate POST enqueued nothing"
    );

    // The poison record is terminal: parked on its first delivery, never
    // reported failed (which would bring it back four more times).
    assert!(
        step_invocations.iter().all(|i| i.failed.is_empty()),
        "no record is reported failed: {step_invocations:#?}"
    );
    assert!(
        step_invocations
            .iter()
            .any(|i| i.records.len() > 1 && i.records.iter().any(|(_, body)| body == POISON)),
        "the poison record shared a batch with good records: {step_invocations:#?}"
    );
    let parked = stores
        .dead_letters
        .list_parked(QueueKind::Steps, 10)
        .await
        .expect("list parked");
    assert_eq!(parked.len(), 1, "{parked:#?}");
    assert_eq!(
        (parked[0].body.as_str(), parked[0].because),
        (POISON, ParkedBecause::Terminal)
    );
    // Everything was deleted: what succeeded and what was parked.
    assert_eq!(
        triggers.counts().await,
        (0, 0, 0),
        "triggers queue (visible, in flight, delayed)"
    );
    assert_eq!(
        steps.counts().await,
        (0, 0, 0),
        "steps queue (visible, in flight, delayed)"
    );

    // The api function: the list, then each run's timeline.
    assert_eq!(runs.len(), 4, "{runs:#?}");
    let mut detailed = vec![];
    for run in &runs {
        detailed.push(get_run(&api, run["run_id"].as_str().unwrap_or_default()).await);
    }
    let outcomes = outcomes(&detailed);
    let expected: Vec<Outcome> = vec![
        (
            "wf_crm_push".into(),
            "evt-sample-gameplay.data-captured".into(),
            "succeeded".into(),
            vec![step("push", "succeeded", 1)],
        ),
        (
            "wf_hot_leads".into(),
            "evt-sample-gameplay.data-captured-qualified".into(),
            "succeeded".into(),
            vec![step("route", "succeeded", 1), step("hot", "succeeded", 1)],
        ),
        (
            "wf_sponsor_a_leads".into(),
            "evt-sample-gameplay.data-captured-qualified".into(),
            "succeeded".into(),
            vec![step("tag", "succeeded", 1), step("forward", "succeeded", 1)],
        ),
        (
            "wf_winner_notice".into(),
            "evt-sample-prize.won".into(),
            "succeeded".into(),
            vec![step("wait", "succeeded", 1), step("notify", "succeeded", 1)],
        ),
    ];
    assert_eq!(outcomes, expected);
    assert_eq!(outcomes, memory_outcomes, "the same runs and timelines as in memory");

    let bodies = sink_bodies(&sink).await;
    let paths: Vec<&str> = bodies.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/crm/leads",
            "/hubspot/crm/v3/objects/contacts",
            "/notify/sms",
            "/sponsor-a/leads"
        ],
        "four requests reach the sink: {bodies:#?}"
    );
    assert_eq!(
        bodies[0].1,
        json!({"email": "ana@example.com", "source": "Komo - Sponsor A Trivia", "score": 120})
    );
    assert_eq!(bodies, memory_bodies, "the same requests at the sink as in memory");

    // A message whose invocations died on every delivery: SQS moves it to
    // the dead-letter queue, whose consumer (the step function in its
    // dead-letter mode) parks it and ends its run.
    let stranded = stranded_run(&stores, "run_stranded").await;
    sqs.send_message()
        .queue_url(&urls.steps_dlq)
        .message_body(hookflow_core::ports::message_body(&stranded).expect("encode"))
        .send()
        .await
        .expect("dead-letter the message");
    let consumed = steps_dlq.poll(&executor, None, 1).await;
    assert_eq!((consumed.records.len(), consumed.failed.len()), (1, 0), "{consumed:?}");
    assert_eq!(steps_dlq.counts().await, (0, 0, 0), "the dead letter was taken");
    let run = stores.runs.get_run("run_stranded").await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap_or_default().contains("moved to the dead-letter queue"));
    let parked = stores
        .dead_letters
        .list_parked(QueueKind::Steps, 10)
        .await
        .expect("list parked");
    assert!(
        parked
            .iter()
            .any(|m| m.run_id.as_deref() == Some("run_stranded") && m.because == ParkedBecause::DeliveriesExhausted),
        "{parked:#?}"
    );
}

/// A running run of the hot-leads workflow and the message that carries it.
async fn stranded_run(stores: &hookflow_core::wiring::Stores, run_id: &str) -> StepMessage {
    let run = RunRecord {
        run_id: run_id.into(),
        workspace_id: WS.into(),
        workflow_id: "wf_hot_leads".into(),
        workflow_version: 1,
        event_id: "evt-stranded".into(),
        trigger_type: "Gameplay.DataCaptured".into(),
        status: RunStatus::Running,
        started_at: Utc::now(),
        ended_at: None,
        error: None,
        replays: 0,
        test: false,
        replay_of: None,
        due_at: None,
        contact_id: None,
        erased_at: None,
    };
    stores.runs.create_run(&run).await.expect("create run");
    StepMessage {
        run_id: run_id.into(),
        workspace_id: WS.into(),
        workflow_id: "wf_hot_leads".into(),
        workflow_version: 1,
        step_id: "route".into(),
        attempt: 1,
        context: json!({}),
        context_ref: None,
        resume_at: None,
        replay: 0,
    }
}
