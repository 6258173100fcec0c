//! The `hookflow-step` Lambda function: see the library for what it does.

use function_step::{handler, wire};
use hookflow_http_client::NetworkPolicy;
use hookflow_lambda::{
    aws_config, init_tracing, required_env, run_retention, ALLOW_PRIVATE_NETWORKS, RUNS_TABLE, STEPS_QUEUE_URL,
    WORKFLOWS_TABLE,
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
    let executor = wire(
        dynamo,
        sqs,
        workflows_table,
        runs_table,
        steps_queue,
        run_retention()?,
        policy,
    )?;
    let executor = &executor;
    lambda_runtime::run(service_fn(move |event| handler::handle(executor, event))).await
}
