//! The tables and queues, as code. `template.yaml` declares the same
//! resources for AWS; the local stack and the tests create them from here.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use hookflow_core::ports::PortError;

use crate::error::port_error;

/// The runs table's index for listing runs of a workspace, newest first.
pub const RUNS_GSI: &str = "by_workspace";
/// Items carrying this attribute (epoch seconds) expire.
pub const TTL_ATTRIBUTE: &str = "expires_at";

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

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, with_gsi: bool) -> Result<(), PortError> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("sk")?);
    if with_gsi {
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(RUNS_GSI)
            .key_schema(key("gsi1pk", KeyType::Hash)?)
            .key_schema(key("gsi1sk", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| PortError::terminal("create_table", e.to_string()))?;
        request = request
            .attribute_definitions(string_attribute("gsi1pk")?)
            .attribute_definitions(string_attribute("gsi1sk")?)
            .global_secondary_indexes(gsi);
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(()),
        Err(err) => Err(port_error("create_table", err)),
    }
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout: Duration,
    dead_letters_arn: Option<&str>,
) -> Result<(String, String), PortError> {
    let mut attributes = HashMap::from([(
        QueueAttributeName::VisibilityTimeout,
        visibility_timeout.as_secs().max(1).to_string(),
    )]);
    if let Some(arn) = dead_letters_arn {
        attributes.insert(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"5"}}"#),
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
    create_table(dynamo, &names.workflows_table, false).await?;
    create_table(dynamo, &names.runs_table, true).await?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(|e| PortError::terminal("update_time_to_live", e.to_string()))?;
    if let Err(err) = dynamo
        .update_time_to_live()
        .table_name(&names.runs_table)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        // Already enabled is fine; anything else is not.
        let text = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
        if !text.contains("already enabled") {
            return Err(port_error("update_time_to_live", err));
        }
    }
    let (_, triggers_dlq) =
        create_queue(sqs, &format!("{}-dlq", names.triggers_queue), visibility_timeout, None).await?;
    let (triggers, _) = create_queue(sqs, &names.triggers_queue, visibility_timeout, Some(&triggers_dlq)).await?;
    let (_, steps_dlq) = create_queue(sqs, &format!("{}-dlq", names.steps_queue), visibility_timeout, None).await?;
    let (steps, _) = create_queue(sqs, &names.steps_queue, visibility_timeout, Some(&steps_dlq)).await?;
    Ok(QueueUrls { triggers, steps })
}
