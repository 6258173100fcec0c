//! The port conformance suite against a real AWS-protocol server (moto's
//! server mode, started by `scripts/test.sh`). These tests never skip: with
//! no emulator they fail and say how to start one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use hookflow_aws::{create_resources, DynamoRuns, DynamoWorkflows, ResourceNames, SqsQueue};
use hookflow_core::conformance;

const ENDPOINT_VAR: &str = "HOOKFLOW_TEST_AWS_ENDPOINT";

async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: run the tests with `make test` (scripts/test.sh starts moto on loopback)")
    });
    assert!(
        endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
        "{ENDPOINT_VAR} must be a loopback address, got {endpoint}"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "hookflow-tests"))
        .load()
        .await
}

/// Fresh resources per test, so tests run in parallel on one emulator.
async fn resources(
    test: &str,
) -> (
    aws_sdk_dynamodb::Client,
    aws_sdk_sqs::Client,
    ResourceNames,
    hookflow_aws::QueueUrls,
) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let config = config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let prefix = format!(
        "conf-{test}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let names = ResourceNames::with_prefix(&prefix);
    let urls = create_resources(&dynamo, &sqs, &names, Duration::from_secs(1))
        .await
        .expect("create resources on the emulator");
    (dynamo, sqs, names, urls)
}

#[tokio::test]
async fn workflow_store_conforms() {
    let (dynamo, _, names, _) = resources("wfs").await;
    conformance::workflow_store(Arc::new(DynamoWorkflows::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn subscription_index_conforms() {
    let (dynamo, _, names, _) = resources("subs").await;
    conformance::subscription_index(Arc::new(DynamoWorkflows::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn run_log_conforms() {
    let (dynamo, _, names, _) = resources("runs").await;
    conformance::run_log(Arc::new(DynamoRuns::new(dynamo, names.runs_table))).await;
}

#[tokio::test]
async fn event_dedupe_conforms() {
    let (dynamo, _, names, _) = resources("dedupe").await;
    conformance::event_dedupe(Arc::new(DynamoRuns::new(dynamo, names.runs_table))).await;
}

#[tokio::test]
async fn queue_conforms() {
    let (_, sqs, _, urls) = resources("queue").await;
    conformance::queue(Arc::new(SqsQueue::new(sqs, urls.steps))).await;
}
