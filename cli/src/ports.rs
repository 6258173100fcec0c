//! The ports a local stack runs on, and where they come from: the in-memory
//! twins, or DynamoDB and SQS named by the environment the functions read.
//! `hookflow dev`, the operator commands and the tests share them.

use std::sync::Arc;
use std::time::Duration;

use hookflow_aws::{create_resources, dynamo_stores, sqs_queue, QueueUrls, ResourceNames, StackServices};
use hookflow_core::memory::MemoryBackend;
use hookflow_core::ports::{Queue, SystemClock};
use hookflow_core::wiring::Stores;

/// The ports the local stack runs on: the in-memory twins by default, or
/// DynamoDB and SQS (`hookflow dev --aws`). Use cases are built from them by
/// [`Stores`]' constructors, as in the Lambda functions.
#[derive(Clone)]
pub struct Ports {
    pub stores: Stores,
    pub triggers: Arc<dyn Queue>,
    pub steps: Arc<dyn Queue>,
    /// Where `triggers` messages go after `max_receive_count` deliveries.
    pub triggers_dlq: Arc<dyn Queue>,
    /// Where `steps` messages go after `max_receive_count` deliveries.
    pub steps_dlq: Arc<dyn Queue>,
}

impl Ports {
    pub fn memory(backend: &MemoryBackend) -> Self {
        Self {
            stores: Stores::memory(backend, Arc::new(SystemClock)),
            triggers: backend.triggers.clone(),
            steps: backend.steps.clone(),
            triggers_dlq: backend.triggers_dlq.clone(),
            steps_dlq: backend.steps_dlq.clone(),
        }
    }

    /// DynamoDB and SQS from the standard AWS environment (`AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, credentials); names from the variables the functions read.
    /// With `create`, missing tables and queues are created (for emulators).
    pub async fn aws(create: bool, visibility_timeout: Duration) -> anyhow::Result<Self> {
        let config = hookflow_aws::sdk_config_loader().load().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let services = StackServices::from_config(
            &config,
            &std::env::var("HOOKFLOW_STACK_NAME").unwrap_or_else(|_| "hookflow".to_owned()),
            hookflow_aws::messaging_policy_from_env(),
        );
        let env_or = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let names = ResourceNames {
            workflows_table: env_or("HOOKFLOW_WORKFLOWS_TABLE", "hookflow-workflows"),
            runs_table: env_or("HOOKFLOW_RUNS_TABLE", "hookflow-runs"),
            triggers_queue: env_or("HOOKFLOW_TRIGGERS_QUEUE", "hookflow-triggers"),
            steps_queue: env_or("HOOKFLOW_STEPS_QUEUE", "hookflow-steps"),
        };
        let urls = if create {
            create_resources(&dynamo, &sqs, &names, visibility_timeout).await?
        } else {
            let required = |name: &'static str| {
                std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set (or pass --create-resources)"))
            };
            QueueUrls {
                triggers: required("HOOKFLOW_TRIGGERS_QUEUE_URL")?,
                steps: required("HOOKFLOW_STEPS_QUEUE_URL")?,
                triggers_dlq: required("HOOKFLOW_TRIGGERS_DLQ_URL")?,
                steps_dlq: required("HOOKFLOW_STEPS_DLQ_URL")?,
            }
        };
        let retention = hookflow_aws::run_retention_from_env()
            .map_err(|problem| anyhow::anyhow!("{} is {problem}", hookflow_aws::RUN_RETENTION_DAYS))?;
        Ok(Self::on_aws(dynamo, sqs, services, &names, urls, retention))
    }

    /// The DynamoDB and SQS adapters on these tables and queues.
    pub fn on_aws(
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        services: StackServices,
        names: &ResourceNames,
        urls: QueueUrls,
        run_retention: Option<Duration>,
    ) -> Self {
        let queue = |url: String| sqs_queue(&sqs, url);
        Self {
            stores: dynamo_stores(
                dynamo,
                services,
                &names.workflows_table,
                &names.runs_table,
                run_retention,
            ),
            triggers: queue(urls.triggers),
            steps: queue(urls.steps),
            triggers_dlq: queue(urls.triggers_dlq),
            steps_dlq: queue(urls.steps_dlq),
        }
    }
}
