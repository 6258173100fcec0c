//! The memory one step-function invocation needs at its worst: a batch of
//! ten step messages whose peers each answer 1 MiB (the response cap), each
//! handed on to a next step that reads the answer. Prints the process's
//! peak resident set before and after the batch, against the function's
//! `MemorySize` in `template.yaml`. `make bench-memory` runs it (release).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use hookflow_core::dead_letter::QueueKind;
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::ports::{message_body, RunLog, SystemClock, WorkflowStore};
use hookflow_core::run::{RunRecord, RunStatus, StepMessage};
use hookflow_core::wiring::Stores;
use hookflow_core::WorkflowDefinition;
use hookflow_http_client::{NetworkPolicy, MAX_RESPONSE_BYTES};
use hookflow_lambda::{handle_sqs_batch, QueueConsumer};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The step function's `MemorySize` (the template's `Globals`).
const FUNCTION_MEMORY_MIB: u64 = 256;
const BATCH: usize = 10;

/// A field of `/proc/self/status` in MiB (`VmHWM`: peak resident set).
fn status_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024)
}

/// A JSON answer just under the response cap.
fn megabyte_answer() -> Vec<u8> {
    let filler = "x".repeat(MAX_RESPONSE_BYTES - 64);
    serde_json::to_vec(&json!({"id": "abc", "blob": filler})).unwrap_or_default()
}

fn workflow(peer: &str) -> Value {
    json!({"id": "wf_big", "workspace_id": "ws", "name": "big answers", "status": "active", "version": 1,
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "fetch",
        "steps": {
          "fetch": {"action": {"type": "HttpRequest", "method": "GET", "url": format!("{peer}/big")}, "next": "use"},
          "use": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{peer}/use"),
                  "body": {"id": "{{ steps.fetch.body.id }}"}}}}})
}

fn run(run_id: &str) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        workspace_id: "ws".into(),
        workflow_id: "wf_big".into(),
        workflow_version: 1,
        event_id: format!("evt-{run_id}"),
        trigger_type: "Prize.Won".into(),
        status: RunStatus::Running,
        started_at: chrono::Utc::now(),
        ended_at: None,
        error: None,
        replays: 0,
        test: false,
        replay_of: None,
        due_at: Some(chrono::Utc::now()),
        contact_id: None,
        erased_at: None,
    }
}

fn record(run_id: &str) -> Value {
    let message = StepMessage {
        run_id: run_id.into(),
        workspace_id: "ws".into(),
        workflow_id: "wf_big".into(),
        workflow_version: 1,
        step_id: "fetch".into(),
        attempt: 1,
        context: json!({"contact": {"email": "ana@example.com"}}),
        context_ref: None,
        resume_at: None,
        replay: 0,
    };
    json!({"messageId": run_id, "body": message_body(&message).unwrap_or_default(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:hookflow-steps"})
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let peer = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(megabyte_answer(), "application/json"))
        .mount(&peer)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&peer)
        .await;
    let backend = MemoryBackend::new(QueueSettings {
        visibility_timeout: Duration::from_secs(900),
        max_receive_count: 5,
    });
    backend
        .workflows
        .put_version(&WorkflowDefinition::from_value(workflow(&peer.uri()))?)
        .await?;
    let ids: Vec<String> = (0..BATCH).map(|i| format!("run_{i}")).collect();
    for id in &ids {
        backend.runs.create_run(&run(id)).await?;
    }
    let stores = Stores::memory(&backend, Arc::new(SystemClock));
    let executor = function_step::wire(
        &stores.steps(),
        backend.steps.clone(),
        backend.triggers.clone(),
        NetworkPolicy::allow_all(),
    )?;
    let dead_letters = stores.dead_letters(QueueKind::Steps, backend.steps.clone());
    let function = QueueConsumer {
        handler: &executor,
        dead_letters: &dead_letters,
        dead_letter_queue_arn: "arn:aws:sqs:us-east-1:123456789012:hookflow-steps-dlq",
    };
    let batch: SqsEvent =
        serde_json::from_value(json!({"Records": ids.iter().map(|id| record(id)).collect::<Vec<_>>()}))?;

    let before = status_mib("VmHWM:");
    let response = handle_sqs_batch(&function, batch, None).await;
    let after = status_mib("VmHWM:");
    anyhow::ensure!(response.batch_item_failures.is_empty(), "records failed: {response:?}");
    anyhow::ensure!(backend.steps.len() == BATCH, "every run was handed on");
    println!(
        "delivery memory: a batch of {BATCH} messages, each peer answering {} KiB: peak RSS {after} MiB \
         ({before} MiB before the batch, +{} MiB for it); the step function has {FUNCTION_MEMORY_MIB} MiB",
        MAX_RESPONSE_BYTES / 1024,
        after.saturating_sub(before)
    );
    anyhow::ensure!(
        after < FUNCTION_MEMORY_MIB / 2,
        "peak RSS {after} MiB is over half the function's memory"
    );
    Ok(())
}
