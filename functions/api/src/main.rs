//! API Gateway (HTTP API, payload v2) → the runs read API (`GET …/runs`, `GET …/runs/{id}`).

mod handler;

use std::sync::Arc;

use hookflow_aws::DynamoRuns;

use hookflow_lambda::{aws_config, init_tracing, required_env, RUNS_TABLE};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let runs_table = required_env(RUNS_TABLE)?;
    let config = aws_config().await;
    let runs = DynamoRuns::new(aws_sdk_dynamodb::Client::new(&config), runs_table);
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    lambda_http::run(handler::router(Arc::new(runs), stage.as_deref())).await
}
