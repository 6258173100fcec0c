//! DynamoDB and SQS adapters behind `hookflow-core`'s ports. Each adapter
//! keeps the same promises as its in-memory twin; `hookflow_core::conformance`
//! checks both.

mod access;
mod connections;
mod contacts;
mod dynamo;
mod error;
mod hooks;
pub mod request_count;
mod resources;
mod sites;
mod sqs;

pub use access::DynamoAccess;
pub use connections::{DynamoConnections, SecretsManagerVault};
pub use contacts::DynamoContacts;
pub use dynamo::{run_retention_from_env, DynamoRuns, DynamoWorkflows, RUN_RETENTION_DAYS};
pub use hooks::DynamoHooks;
pub use resources::{
    create_resources, QueueUrls, ResourceNames, TableSpec, MAX_RECEIVE_COUNT, RUNS_BY_DUE, RUNS_TABLE,
    STEPS_MESSAGE_RETENTION, TTL_ATTRIBUTE, WORKFLOWS_TABLE,
};
pub use sites::DynamoSites;
pub use sqs::SqsQueue;

use std::sync::Arc;
use std::time::Duration;

use hookflow_core::connections::SecretVault;
use hookflow_core::ports::SystemClock;
use hookflow_core::wiring::Stores;

/// The stack's stores on DynamoDB: the workflows table (workflows,
/// subscriptions, keys, hooks, contacts and the audit trail) and the runs table (runs and
/// event ids), with run items kept for `run_retention` (`None`: kept), and
/// connections' credentials in `vault`.
pub fn dynamo_stores(
    dynamo: aws_sdk_dynamodb::Client,
    vault: Arc<dyn SecretVault>,
    workflows_table: &str,
    runs_table: &str,
    run_retention: Option<Duration>,
) -> Stores {
    let workflows = Arc::new(DynamoWorkflows::new(dynamo.clone(), workflows_table));
    let access = Arc::new(DynamoAccess::new(dynamo.clone(), workflows_table));
    let hooks = Arc::new(DynamoHooks::new(dynamo.clone(), workflows_table));
    let contacts = Arc::new(DynamoContacts::new(dynamo.clone(), workflows_table));
    let sites = Arc::new(DynamoSites::new(dynamo.clone(), workflows_table));
    let connections = Arc::new(DynamoConnections::new(dynamo.clone(), workflows_table));
    let runs = Arc::new(DynamoRuns::new(dynamo, runs_table, run_retention));
    Stores {
        workflows: workflows.clone(),
        catalog: workflows.clone(),
        subscriptions: workflows,
        runs: runs.clone(),
        dedupe: runs.clone(),
        dead_letters: runs,
        keys: access.clone(),
        audit: access,
        hooks,
        contacts,
        sites,
        connections,
        vault,
        clock: Arc::new(SystemClock),
        // Counted in this process; Lambda functions write EMF instead
        // (`hookflow_lambda::stores`).
        metrics: Arc::new(hookflow_core::metrics::MemoryMetrics::default()),
    }
}

/// The stack's credentials vault: Secrets Manager, under `hookflow/<stack>/`.
pub fn secrets_vault(client: aws_sdk_secretsmanager::Client, stack_name: &str) -> Arc<dyn SecretVault> {
    Arc::new(SecretsManagerVault::new(
        client,
        SecretsManagerVault::stack_prefix(stack_name),
    ))
}

/// A queue of the stack, by URL.
pub fn sqs_queue(sqs: &aws_sdk_sqs::Client, url: impl Into<String>) -> Arc<dyn hookflow_core::ports::Queue> {
    Arc::new(SqsQueue::new(sqs.clone(), url.into()))
}
