//! Triggers queue → dispatch: one run per matching workflow. `main` reads the environment and calls [`wire`]; the tests
//! call the same `wire`.

pub mod handler;

use std::sync::Arc;
use std::time::Duration;

use hookflow_aws::{DynamoRuns, DynamoWorkflows, SqsQueue};
use hookflow_core::ports::SystemClock;
use hookflow_core::Dispatcher;

/// The function as deployed.
pub fn wire(
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    workflows_table: String,
    runs_table: String,
    steps_queue_url: String,
    run_retention: Option<Duration>,
) -> Dispatcher {
    let workflows = Arc::new(DynamoWorkflows::new(dynamo.clone(), workflows_table));
    Dispatcher::new(
        workflows.clone(),
        workflows,
        Arc::new(DynamoRuns::new(dynamo, runs_table).with_retention(run_retention)),
        Arc::new(SqsQueue::new(sqs, steps_queue_url)),
        Arc::new(SystemClock),
    )
}
