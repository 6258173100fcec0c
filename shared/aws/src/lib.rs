//! DynamoDB and SQS adapters behind `hookflow-core`'s ports. Each adapter
//! keeps the same promises as its in-memory twin; `hookflow_core::conformance`
//! checks both.

mod access;
mod dynamo;
mod error;
mod resources;
mod sqs;

pub use access::DynamoAccess;
pub use dynamo::{run_retention_from_env, DynamoRuns, DynamoWorkflows, RUN_RETENTION_DAYS};
pub use resources::{
    create_resources, QueueUrls, ResourceNames, TableSpec, MAX_RECEIVE_COUNT, RUNS_GSI, RUNS_TABLE, TTL_ATTRIBUTE,
    WORKFLOWS_TABLE,
};
pub use sqs::SqsQueue;
