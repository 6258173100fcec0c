//! API Gateway (HTTP API, payload v2) → `POST /v1/events` (an `ingest` or `admin`
//! key) → ingest → triggers queue. `main` reads the environment and calls
//! [`wire`]; the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_api::Router;
use hookflow_aws::{DynamoAccess, DynamoRuns, SqsQueue};
use hookflow_core::access::Access;
use hookflow_core::ports::SystemClock;
use hookflow_core::Ingest;

/// The function as deployed: keys are looked up in the workflows table,
/// events are deduplicated in the runs table and sent to the triggers queue.
pub fn wire(
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    runs_table: String,
    workflows_table: String,
    triggers_queue_url: String,
    stage: Option<&str>,
) -> Router {
    let keys = Arc::new(DynamoAccess::new(dynamo.clone(), workflows_table));
    let access = Arc::new(Access::new(keys.clone(), keys, Arc::new(SystemClock)));
    let ingest = Ingest::new(
        Arc::new(DynamoRuns::new(dynamo, runs_table)),
        Arc::new(SqsQueue::new(sqs, triggers_queue_url)),
    );
    handler::router(access, Arc::new(ingest), stage)
}
