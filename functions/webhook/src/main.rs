//! API Gateway (HTTP API, payload v2) → `POST /v1/events` → ingest → triggers queue.

mod handler;

use std::sync::Arc;

use hookflow_aws::{DynamoRuns, SqsQueue};
use hookflow_core::Ingest;
use hookflow_lambda::{aws_config, init_tracing, required_env, RUNS_TABLE, TRIGGERS_QUEUE_URL};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let runs_table = required_env(RUNS_TABLE)?;
    let triggers_queue = required_env(TRIGGERS_QUEUE_URL)?;
    let config = aws_config().await;
    let ingest = Ingest::new(
        Arc::new(DynamoRuns::new(aws_sdk_dynamodb::Client::new(&config), runs_table)),
        Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&config), triggers_queue)),
    );
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    lambda_http::run(handler::router(Arc::new(ingest), stage.as_deref())).await
}
