//! Steps queue → execute: one side-effecting step, then the pure steps after it.

mod handler;

use std::sync::Arc;

use hookflow_aws::{DynamoRuns, DynamoWorkflows, SqsQueue};
use hookflow_core::ports::SystemClock;
use hookflow_core::StepExecutor;
use hookflow_http_client::{NetworkPolicy, ReqwestHttpClient};
use hookflow_lambda::{
    aws_config, init_tracing, required_env, ALLOW_PRIVATE_NETWORKS, RUNS_TABLE, STEPS_QUEUE_URL, WORKFLOWS_TABLE,
};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let workflows_table = required_env(WORKFLOWS_TABLE)?;
    let runs_table = required_env(RUNS_TABLE)?;
    let steps_queue = required_env(STEPS_QUEUE_URL)?;
    let policy = if std::env::var(ALLOW_PRIVATE_NETWORKS).is_ok_and(|v| v == "true") {
        tracing::warn!("{ALLOW_PRIVATE_NETWORKS}=true: HTTP steps may call private networks");
        NetworkPolicy::allow_all()
    } else {
        NetworkPolicy::deny_private()
    };
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let executor = StepExecutor::new(
        Arc::new(DynamoWorkflows::new(dynamo.clone(), workflows_table)),
        Arc::new(DynamoRuns::new(dynamo, runs_table).with_retention(hookflow_lambda::run_retention()?)),
        Arc::new(SqsQueue::new(sqs, steps_queue)),
        Arc::new(ReqwestHttpClient::with_policy(policy)?),
        Arc::new(SystemClock),
    );
    let executor = &executor;
    lambda_runtime::run(service_fn(move |event| handler::handle(executor, event))).await
}
