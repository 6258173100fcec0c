//! Steps queue → execute: one side-effecting step, then the pure steps after
//! it. `main` reads the environment and calls [`wire`];
//! the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;
use std::time::Duration;

use hookflow_aws::{DynamoRuns, DynamoWorkflows, SqsQueue, MAX_RECEIVE_COUNT};
use hookflow_core::engine::DeliveryLimits;
use hookflow_core::ports::SystemClock;
use hookflow_core::StepExecutor;
use hookflow_http_client::{NetworkPolicy, ReqwestHttpClient};

/// The steps queue's visibility timeout in `template.yaml`.
pub const STEPS_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(900);

/// The function as deployed: the steps queue's limits, and HTTP steps under
/// `policy` (private networks refused unless the stack allows them).
pub fn wire(
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    workflows_table: String,
    runs_table: String,
    steps_queue_url: String,
    run_retention: Option<Duration>,
    policy: NetworkPolicy,
) -> Result<StepExecutor, hookflow_core::ports::HttpError> {
    Ok(StepExecutor::new(
        Arc::new(DynamoWorkflows::new(dynamo.clone(), workflows_table)),
        Arc::new(DynamoRuns::new(dynamo, runs_table).with_retention(run_retention)),
        Arc::new(SqsQueue::new(sqs, steps_queue_url)),
        Arc::new(ReqwestHttpClient::with_policy(policy)?),
        Arc::new(SystemClock),
        DeliveryLimits::for_queue(STEPS_VISIBILITY_TIMEOUT, MAX_RECEIVE_COUNT),
    ))
}
