//! The tables and queues, as code. `template.yaml` declares the same
//! resources for AWS; the local stack and the tests create them from here.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use hookflow_core::ports::PortError;

use crate::error::port_error;

/// The runs table's indexes, one per listing shape, each sorted by start
/// (`gsi1sk`, a [`hookflow_core::run::RunPosition`]): a workspace's runs, its
/// runs of one status, one workflow's runs, and one workflow's runs of one
/// status. Four indexes on one item, not four items in one overloaded
/// index: DynamoDB keeps an item's index entries in step with the item, so
/// a status change is one conditional `UpdateItem`, not a transaction
/// rewriting four copies (ARCHITECTURE.md, "Runs indexes").
pub const RUNS_BY_WORKSPACE: &str = "by_workspace";
pub const RUNS_BY_STATUS: &str = "by_status";
pub const RUNS_BY_WORKFLOW: &str = "by_workflow";
pub const RUNS_BY_WORKFLOW_STATUS: &str = "by_workflow_status";
/// Running runs by when their latest step message is due (`gsi5pk` =
/// `DUE#<shard>`, `gsi5sk` = zero-padded epoch seconds), for the reaper.
/// Sparse: a run leaves it when it ends. Sharded so one hot partition
/// never takes every run's writes.
pub const RUNS_BY_DUE: &str = "by_due";
/// A workspace's runs about one contact (`gsi6pk`, sorted like the
/// listings), for the contact's erasure. Sparse: only runs whose event named
/// a contact. Keys only.
pub const RUNS_BY_CONTACT: &str = "by_contact";
/// Items carrying this attribute (epoch seconds) expire.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Deliveries after which SQS moves a message to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// The steps queue's `MessageRetentionPeriod` in `template.yaml`: how long
/// a message may wait in a backlog before SQS drops it.
pub const STEPS_MESSAGE_RETENTION: std::time::Duration = std::time::Duration::from_secs(4 * 24 * 3600);

/// What a global secondary index copies of each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// The whole item: a listing is answered from the index alone, and
    /// every change of the item is written to the index too.
    All,
    /// Only the keys: written when an item enters or leaves the index, or
    /// moves in it; its readers fetch the items they need.
    KeysOnly,
}

impl Projection {
    /// The `ProjectionType` in `template.yaml` and the DynamoDB API.
    pub fn as_str(self) -> &'static str {
        match self {
            Projection::All => "ALL",
            Projection::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// One global secondary index of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
    pub projection: Projection,
}

const fn index(name: &'static str, hash_key: &'static str, range_key: &'static str) -> IndexSpec {
    IndexSpec {
        name,
        hash_key,
        range_key,
        projection: Projection::All,
    }
}

/// A table's keys, as both this module and `template.yaml` declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The logical id in `template.yaml`.
    pub logical_id: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
    pub indexes: &'static [IndexSpec],
    pub ttl_attribute: Option<&'static str>,
}

pub const WORKFLOWS_TABLE: TableSpec = TableSpec {
    logical_id: "WorkflowsTable",
    hash_key: "pk",
    range_key: "sk",
    indexes: &[],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

pub const RUNS_TABLE: TableSpec = TableSpec {
    logical_id: "RunsTable",
    hash_key: "pk",
    range_key: "sk",
    indexes: &[
        index(RUNS_BY_WORKSPACE, "gsi1pk", "gsi1sk"),
        index(RUNS_BY_STATUS, "gsi2pk", "gsi1sk"),
        index(RUNS_BY_WORKFLOW, "gsi3pk", "gsi1sk"),
        index(RUNS_BY_WORKFLOW_STATUS, "gsi4pk", "gsi1sk"),
        index(RUNS_BY_DUE, "gsi5pk", "gsi5sk"),
        // Keys only: a run is written to it once, when it is created; its
        // status changes cost nothing there.
        IndexSpec {
            projection: Projection::KeysOnly,
            ..index(RUNS_BY_CONTACT, "gsi6pk", "gsi1sk")
        },
    ],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    pub workflows_table: String,
    pub runs_table: String,
    pub triggers_queue: String,
    pub steps_queue: String,
}

impl ResourceNames {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            workflows_table: format!("{prefix}-workflows"),
            runs_table: format!("{prefix}-runs"),
            triggers_queue: format!("{prefix}-triggers"),
            steps_queue: format!("{prefix}-steps"),
        }
    }
}

/// Queue URLs of created queues.
#[derive(Debug, Clone)]
pub struct QueueUrls {
    pub triggers: String,
    pub steps: String,
    pub triggers_dlq: String,
    pub steps_dlq: String,
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, PortError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| PortError::terminal("create_table", e.to_string()))
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, PortError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| PortError::terminal("create_table", e.to_string()))
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, spec: &TableSpec) -> Result<(), PortError> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(spec.hash_key, KeyType::Hash)?)
        .key_schema(key(spec.range_key, KeyType::Range)?)
        .attribute_definitions(string_attribute(spec.hash_key)?)
        .attribute_definitions(string_attribute(spec.range_key)?);
    for index in spec.indexes {
        let projection = match index.projection {
            Projection::All => ProjectionType::All,
            Projection::KeysOnly => ProjectionType::KeysOnly,
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(index.hash_key, KeyType::Hash)?)
            .key_schema(key(index.range_key, KeyType::Range)?)
            .projection(
                aws_sdk_dynamodb::types::Projection::builder()
                    .projection_type(projection)
                    .build(),
            )
            .build()
            .map_err(|e| PortError::terminal("create_table", e.to_string()))?;
        request = request.global_secondary_indexes(gsi);
    }
    // Indexes share their sort key: each attribute is defined once.
    let mut index_keys: Vec<&str> = spec
        .indexes
        .iter()
        .flat_map(|index| [index.hash_key, index.range_key])
        .collect();
    index_keys.sort_unstable();
    index_keys.dedup();
    for attribute in index_keys {
        request = request.attribute_definitions(string_attribute(attribute)?);
    }
    match request.send().await {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => return Ok(()),
        Err(err) => return Err(port_error("create_table", err)),
    }
    if let Some(attribute) = spec.ttl_attribute {
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|e| PortError::terminal("update_time_to_live", e.to_string()))?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| port_error("update_time_to_live", e))?;
    }
    Ok(())
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout: Duration,
    dead_letters_arn: Option<&str>,
) -> Result<(String, String), PortError> {
    let mut attributes = HashMap::from([
        (
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout.as_secs().max(1).to_string(),
        ),
        // As in template.yaml: events up to a hook's 1 MiB body.
        (
            QueueAttributeName::MaximumMessageSize,
            hookflow_core::engine::MAX_TRIGGER_MESSAGE_BYTES.to_string(),
        ),
    ]);
    if let Some(arn) = dead_letters_arn {
        attributes.insert(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{MAX_RECEIVE_COUNT}"}}"#),
        );
    }
    let created = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| port_error("create_queue", e))?;
    let url = created.queue_url().unwrap_or_default().to_owned();
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| port_error("get_queue_attributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    Ok((url, arn))
}

/// Creates the tables (with the runs index and TTL) and both queues with
/// their dead-letter queues; existing tables are left as they are.
pub async fn create_resources(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    names: &ResourceNames,
    visibility_timeout: Duration,
) -> Result<QueueUrls, PortError> {
    create_table(dynamo, &names.workflows_table, &WORKFLOWS_TABLE).await?;
    create_table(dynamo, &names.runs_table, &RUNS_TABLE).await?;
    let (triggers_dlq, triggers_dlq_arn) =
        create_queue(sqs, &format!("{}-dlq", names.triggers_queue), visibility_timeout, None).await?;
    let (triggers, _) = create_queue(sqs, &names.triggers_queue, visibility_timeout, Some(&triggers_dlq_arn)).await?;
    let (steps_dlq, steps_dlq_arn) =
        create_queue(sqs, &format!("{}-dlq", names.steps_queue), visibility_timeout, None).await?;
    let (steps, _) = create_queue(sqs, &names.steps_queue, visibility_timeout, Some(&steps_dlq_arn)).await?;
    Ok(QueueUrls {
        triggers,
        steps,
        triggers_dlq,
        steps_dlq,
    })
}
