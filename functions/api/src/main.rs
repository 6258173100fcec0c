//! The `hookflow-api` Lambda function: see the library for what it does.

use function_api::wire;
use hookflow_lambda::{aws_config, init_tracing, required_env, run_retention, RUNS_TABLE, WORKFLOWS_TABLE};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let runs_table = required_env(RUNS_TABLE)?;
    let workflows_table = required_env(WORKFLOWS_TABLE)?;
    let retention = run_retention()?;
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    lambda_http::run(wire(dynamo, runs_table, workflows_table, retention, stage.as_deref())).await
}
