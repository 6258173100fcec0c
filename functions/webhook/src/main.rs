//! The `hookflow-webhook` Lambda function: see the library for what it does.

use function_webhook::wire;
use hookflow_lambda::{aws_config, init_tracing, required_env, RUNS_TABLE, TRIGGERS_QUEUE_URL, WORKFLOWS_TABLE};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let runs_table = required_env(RUNS_TABLE)?;
    let triggers_queue = required_env(TRIGGERS_QUEUE_URL)?;
    let workflows_table = required_env(WORKFLOWS_TABLE)?;
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    lambda_http::run(wire(
        dynamo,
        sqs,
        runs_table,
        workflows_table,
        triggers_queue,
        stage.as_deref(),
    ))
    .await
}
