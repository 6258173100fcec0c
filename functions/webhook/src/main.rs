//! API Gateway (HTTP API, payload v2) → `POST /v1/events` (an `ingest` or `admin`
//! key) → ingest → triggers queue.

mod handler;

use std::sync::Arc;

use hookflow_aws::{DynamoAccess, DynamoRuns, SqsQueue};
use hookflow_core::access::Access;
use hookflow_core::ports::SystemClock;
use hookflow_core::Ingest;
use hookflow_lambda::{aws_config, init_tracing, required_env, RUNS_TABLE, TRIGGERS_QUEUE_URL, WORKFLOWS_TABLE};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let runs_table = required_env(RUNS_TABLE)?;
    let triggers_queue = required_env(TRIGGERS_QUEUE_URL)?;
    // Keys are looked up in the workflows table.
    let keys_table = required_env(WORKFLOWS_TABLE)?;
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let keys = Arc::new(DynamoAccess::new(dynamo.clone(), keys_table));
    let access = Arc::new(Access::new(keys.clone(), keys, Arc::new(SystemClock)));
    let ingest = Ingest::new(
        Arc::new(DynamoRuns::new(dynamo, runs_table)),
        Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&config), triggers_queue)),
    );
    let stage = std::env::var("HOOKFLOW_API_STAGE").ok();
    lambda_http::run(handler::router(access, Arc::new(ingest), stage.as_deref())).await
}
