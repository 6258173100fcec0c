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
use hookflow_core::ports::{EventDedupe, SystemClock};
use hookflow_core::wiring::{DispatchStores, DoorStores, RunStores, StepStores, Stores};

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
    DynamoTables::new(dynamo, workflows_table, runs_table, run_retention).stores(services)
}

/// The stack's two tables, from which a function takes the stores it uses:
/// all of them ([`DynamoTables::stores`]) or only a part. A store never
/// built is not linked into the function.
#[derive(Clone)]
pub struct DynamoTables {
    dynamo: aws_sdk_dynamodb::Client,
    workflows_table: String,
    runs_table: String,
    run_retention: Option<Duration>,
}

impl DynamoTables {
    /// Run items are kept for `run_retention` (`None`: kept).
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        workflows_table: &str,
        runs_table: &str,
        run_retention: Option<Duration>,
    ) -> Self {
        Self {
            dynamo,
            workflows_table: workflows_table.to_owned(),
            runs_table: runs_table.to_owned(),
            run_retention,
        }
    }

    fn runs(&self) -> Arc<DynamoRuns> {
        Arc::new(DynamoRuns::new(
            self.dynamo.clone(),
            &self.runs_table,
            self.run_retention,
        ))
    }

    fn workflows(&self) -> Arc<DynamoWorkflows> {
        Arc::new(DynamoWorkflows::new(self.dynamo.clone(), &self.workflows_table))
    }

    fn outbound(&self) -> Arc<DynamoOutbound> {
        Arc::new(DynamoOutbound::new(
            self.dynamo.clone(),
            &self.workflows_table,
            &self.runs_table,
        ))
    }

    /// The event ids ingest remembers (in the runs table).
    pub fn dedupe(&self) -> Arc<dyn EventDedupe> {
        self.runs()
    }

    fn access(&self) -> Arc<DynamoAccess> {
        Arc::new(DynamoAccess::new(self.dynamo.clone(), &self.workflows_table))
    }

    fn hooks(&self) -> Arc<DynamoHooks> {
        Arc::new(DynamoHooks::new(self.dynamo.clone(), &self.workflows_table))
    }

    fn sites(&self) -> Arc<DynamoSites> {
        Arc::new(DynamoSites::new(self.dynamo.clone(), &self.workflows_table))
    }

    fn contacts(&self) -> Arc<DynamoContacts> {
        Arc::new(DynamoContacts::new(self.dynamo.clone(), &self.workflows_table))
    }

    fn connections(&self) -> Arc<DynamoConnections> {
        Arc::new(DynamoConnections::new(self.dynamo.clone(), &self.workflows_table))
    }

    /// What the public doors use.
    pub fn doors(&self) -> DoorStores {
        let access = self.access();
        DoorStores {
            dedupe: self.dedupe(),
            keys: access.clone(),
            audit: access,
            hooks: self.hooks(),
            sites: self.sites(),
            contacts: self.contacts(),
            clock: Arc::new(SystemClock),
        }
    }

    /// What a run's use cases share, from the `workflows` and `runs`
    /// adapters the caller also serves other ports with, counting into
    /// this process's metrics.
    fn run_stores(&self, workflows: Arc<DynamoWorkflows>, runs: Arc<DynamoRuns>) -> RunStores {
        RunStores {
            workflows,
            runs: runs.clone(),
            outbound: self.outbound(),
            dead_letters: runs,
            clock: Arc::new(SystemClock),
            metrics: Arc::new(hookflow_core::metrics::MemoryMetrics::default()),
        }
    }

    /// What dispatch uses.
    pub fn dispatch(&self) -> DispatchStores {
        let workflows = self.workflows();
        DispatchStores {
            subscriptions: workflows.clone(),
            run: self.run_stores(workflows, self.runs()),
        }
    }

    /// What the steps use, and the `services` outside the tables.
    pub fn steps(&self, services: StackServices) -> StepStores {
        let runs = self.runs();
        StepStores {
            run: self.run_stores(self.workflows(), runs.clone()),
            dedupe: runs,
            contacts: self.contacts(),
            connections: self.connections(),
            vault: services.vault,
            messaging: services.messaging,
        }
    }

    /// Every store, and the `services` outside the tables. Each table's
    /// adapter is built once and serves every port it implements (the
    /// workflows adapter caches versions).
    pub fn stores(&self, services: StackServices) -> Stores {
        let workflows = self.workflows();
        let runs = self.runs();
        let access = self.access();
        Stores {
            workflows: workflows.clone(),
            catalog: workflows.clone(),
            subscriptions: workflows,
            runs: runs.clone(),
            dedupe: runs.clone(),
            dead_letters: runs,
            keys: access.clone(),
            audit: access,
            hooks: self.hooks(),
            contacts: self.contacts(),
            sites: self.sites(),
            connections: self.connections(),
            vault: services.vault,
            outbound: self.outbound(),
            messaging: services.messaging,
            clock: Arc::new(SystemClock),
            // Counted in this process; Lambda functions write EMF instead
            // (`hookflow_lambda`).
            metrics: Arc::new(hookflow_core::metrics::MemoryMetrics::default()),
        }
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
