//! EventBridge → ingest → triggers queue. `detail-type` is the trigger type;
//! `detail` holds the scope ids (`workspaceid`, `siteid`, `cardid`,
//! `contactid`, `depth`) and the event's `data`. `main` reads the environment
//! and calls [`wire`]; the tests call the same `wire`.

pub mod handler;

use std::sync::Arc;

use hookflow_aws::{DynamoRuns, SqsQueue};
use hookflow_core::Ingest;

/// The function as deployed.
pub fn wire(
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    runs_table: String,
    triggers_queue_url: String,
) -> Ingest {
    Ingest::new(
        Arc::new(DynamoRuns::new(dynamo, runs_table)),
        Arc::new(SqsQueue::new(sqs, triggers_queue_url)),
    )
}
