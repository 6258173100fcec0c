//! Triggers queue → dispatch: one run per matching workflow.

mod handler;

use std::sync::Arc;

use hookflow_aws::{DynamoRuns, DynamoWorkflows, SqsQueue};
use hookflow_core::ports::SystemClock;
use hookflow_core::Dispatcher;
use hookflow_lambda::{aws_config, init_tracing, required_env, RUNS_TABLE, STEPS_QUEUE_URL, WORKFLOWS_TABLE};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let workflows_table = required_env(WORKFLOWS_TABLE)?;
    let runs_table = required_env(RUNS_TABLE)?;
    let steps_queue = required_env(STEPS_QUEUE_URL)?;
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let workflows = Arc::new(DynamoWorkflows::new(dynamo.clone(), workflows_table));
    let dispatcher = Dispatcher::new(
        workflows.clone(),
        workflows,
        Arc::new(DynamoRuns::new(dynamo, runs_table).with_retention(hookflow_lambda::run_retention()?)),
        Arc::new(SqsQueue::new(sqs, steps_queue)),
        Arc::new(SystemClock),
    );
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event| handler::handle(dispatcher, event))).await
}
