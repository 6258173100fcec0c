//! DynamoDB and SQS adapters behind `hookflow-core`'s ports. Each adapter
//! keeps the same promises as its in-memory twin; `hookflow_core::conformance`
//! checks both.

mod access;
mod connections;
mod contacts;
mod dynamo;
mod error;
mod hooks;
mod lazy_client;
mod messaging;
mod not_granted;
mod outbound;
pub mod request_count;
mod resources;
mod run_erasure;
mod sdk_http;
mod sites;
mod sqs;

pub use access::DynamoAccess;
pub use connections::{DynamoConnections, SecretsManagerVault};
pub use contacts::DynamoContacts;
pub use dynamo::{run_retention_from_env, DynamoRuns, DynamoWorkflows, RUN_RETENTION_DAYS};
pub use hooks::DynamoHooks;
pub use lazy_client::LazyClient;
pub use messaging::{aws_messaging, messaging_policy_from_env, EMAIL_SENDERS, SMS_COUNTRIES};
pub use outbound::DynamoOutbound;
pub use resources::{
    create_resources, IndexSpec, Projection, QueueUrls, ResourceNames, TableSpec, MAX_RECEIVE_COUNT, RUNS_BY_DUE,
    RUNS_TABLE, STEPS_MESSAGE_RETENTION, TTL_ATTRIBUTE, WORKFLOWS_TABLE,
};
pub use sdk_http::{sdk_config_loader, sdk_http_client};
pub use sites::DynamoSites;
pub use sqs::SqsQueue;

use std::sync::Arc;
use std::time::Duration;

use hookflow_core::connections::SecretVault;
use hookflow_core::messaging::Messaging;
use hookflow_core::ports::SystemClock;
use hookflow_core::wiring::Stores;

/// The stack's stores on DynamoDB: the workflows table (workflows,
/// subscriptions, keys, hooks, contacts and the audit trail) and the runs table (runs and
/// event ids), with run items kept for `run_retention` (`None`: kept), and
/// the `services` outside the tables.
pub fn dynamo_stores(
    dynamo: aws_sdk_dynamodb::Client,
    services: StackServices,
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
    let outbound = Arc::new(DynamoOutbound::new(dynamo.clone(), workflows_table, runs_table));
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
        vault: services.vault,
        outbound,
        messaging: services.messaging,
        clock: Arc::new(SystemClock),
        // Counted in this process; Lambda functions write EMF instead
        // (`hookflow_lambda::stores`).
        metrics: Arc::new(hookflow_core::metrics::MemoryMetrics::default()),
    }
}

/// The stack's credentials vault: Secrets Manager, under `hookflow/<stack>/`.
pub fn secrets_vault(
    client: impl Into<LazyClient<aws_sdk_secretsmanager::Client>>,
    stack_name: &str,
) -> Arc<dyn SecretVault> {
    Arc::new(SecretsManagerVault::new(
        client,
        SecretsManagerVault::stack_prefix(stack_name),
    ))
}

/// What a stack reaches besides its tables and queues: the connections'
/// vault, and email and SMS.
#[derive(Clone)]
pub struct StackServices {
    pub vault: Arc<dyn SecretVault>,
    pub messaging: Messaging,
}

impl StackServices {
    /// Secrets Manager under the stack's prefix, SES v2 and SNS (reaching
    /// whom `policy` allows), all from one SDK configuration. Each client is
    /// built on its first call ([`LazyClient`]).
    pub fn from_config(
        config: &aws_config::SdkConfig,
        stack_name: &str,
        policy: hookflow_core::messaging::MessagingPolicy,
    ) -> Self {
        Self {
            vault: secrets_vault(
                LazyClient::from_config(config, aws_sdk_secretsmanager::Client::new),
                stack_name,
            ),
            messaging: aws_messaging(
                LazyClient::from_config(config, aws_sdk_sesv2::Client::new),
                LazyClient::from_config(config, aws_sdk_sns::Client::new),
                policy,
            ),
        }
    }

    /// No vault, email or SMS: for the functions whose role is not granted
    /// them; each call fails terminally, saying so.
    pub fn not_granted() -> Self {
        let not_granted = Arc::new(not_granted::NotGranted);
        Self {
            vault: not_granted.clone(),
            messaging: hookflow_core::messaging::Messaging {
                mailer: not_granted.clone(),
                texts: not_granted,
                policy: Arc::new(hookflow_core::messaging::MessagingPolicy::default()),
            },
        }
    }

    /// The in-memory twins, for measurements whose runs use neither.
    pub fn twins() -> Self {
        Self {
            vault: Arc::new(hookflow_core::memory::MemoryVault::default()),
            messaging: Arc::new(hookflow_core::messaging::MemoryOutbox::default()).messaging(),
        }
    }
}

/// A queue of the stack, by URL.
pub fn sqs_queue(sqs: &aws_sdk_sqs::Client, url: impl Into<String>) -> Arc<dyn hookflow_core::ports::Queue> {
    Arc::new(SqsQueue::new(sqs.clone(), url.into()))
}
