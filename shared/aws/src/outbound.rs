//! Outbound webhooks: endpoints in the workflows table (`WS#<ws>`,
//! `EP#<id>`, read with the workspace's other items), and in the runs table,
//! under TTL, each endpoint's messages (`OUTMSG#<ws>#<ep>`, `MSG#<id>`), its
//! failed index (`OUTFAIL#<ws>#<ep>`, `<created µs>#<id>`) and its attempt
//! log (`OUTLOG#<ws>#<ep>`, `<at µs>#<id>#<attempt>`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use hookflow_core::outbound::{
    attempt_position, AttemptPage, DeliveryAttempt, Endpoint, OutboundMessage, OutboundStore, MESSAGE_RETENTION,
};
use hookflow_core::ports::{PortError, PortResult};

use crate::dynamo::{
    delete_item, get_item, put_if, query_pages, s, unless_condition_failed, workspace_items, Item, NOT_EXISTS,
};
use crate::error::{decode_error, port_error};
use crate::TTL_ATTRIBUTE;

#[derive(Clone)]
pub struct DynamoOutbound {
    client: aws_sdk_dynamodb::Client,
    workflows_table: String,
    runs_table: String,
}

impl DynamoOutbound {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        workflows_table: impl Into<String>,
        runs_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            workflows_table: workflows_table.into(),
            runs_table: runs_table.into(),
        }
    }
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn encode<T: serde::Serialize>(operation: &'static str, value: &T) -> PortResult<AttributeValue> {
    serde_json::to_string(value)
        .map(s)
        .map_err(|e| PortError::terminal(operation, e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(operation: &'static str, item: &Item, attribute: &str) -> PortResult<T> {
    let text = item
        .get(attribute)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| decode_error(operation, format!("the item has no `{attribute}`")))?;
    serde_json::from_str(text).map_err(|e| decode_error(operation, e))
}

/// The TTL: retention past `from`, in epoch seconds.
fn expiry(from: DateTime<Utc>) -> AttributeValue {
    let at = from.timestamp().max(0).unsigned_abs() + MESSAGE_RETENTION.as_secs();
    n(at)
}

fn endpoint_key(workspace_id: &str, endpoint_id: &str) -> (String, String) {
    (format!("WS#{workspace_id}"), format!("EP#{endpoint_id}"))
}

fn endpoint_item(operation: &'static str, endpoint: &Endpoint) -> PortResult<Item> {
    let (pk, sk) = endpoint_key(&endpoint.workspace_id, &endpoint.id);
    Ok(Item::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("revision".to_owned(), n(endpoint.revision)),
        ("endpoint".to_owned(), encode(operation, endpoint)?),
    ]))
}

fn partition(kind: &str, workspace_id: &str, endpoint_id: &str) -> String {
    format!("{kind}#{workspace_id}#{endpoint_id}")
}

/// The message's fields but its payload, as JSON text: what a state change
/// rewrites. The payload is an attribute of its own, written once and kept
/// as sent (not escaped into JSON a second time).
fn message_state(operation: &'static str, message: &OutboundMessage) -> PortResult<AttributeValue> {
    let state = OutboundMessage {
        payload: String::new(),
        ..message.clone()
    };
    encode(operation, &state)
}

fn decode_message(operation: &'static str, item: &Item) -> PortResult<OutboundMessage> {
    let mut message: OutboundMessage = decode(operation, item, "message")?;
    message.payload = item
        .get("payload")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| decode_error(operation, "the message item has no payload"))?;
    Ok(message)
}

fn message_item(operation: &'static str, message: &OutboundMessage) -> PortResult<Item> {
    Ok(Item::from([
        (
            "pk".to_owned(),
            s(partition("OUTMSG", &message.workspace_id, &message.endpoint_id)),
        ),
        ("sk".to_owned(), s(format!("MSG#{}", message.id))),
        ("version".to_owned(), n(message.version)),
        ("message".to_owned(), message_state(operation, message)?),
        ("payload".to_owned(), s(message.payload.clone())),
        (TTL_ATTRIBUTE.to_owned(), expiry(message.created_at)),
    ]))
}

fn failed_position(created_at: DateTime<Utc>, message_id: &str) -> String {
    format!("{:020}#{message_id}", created_at.timestamp_micros().max(0))
}

#[async_trait]
impl OutboundStore for DynamoOutbound {
    async fn create_endpoint(&self, endpoint: &Endpoint) -> PortResult<bool> {
        const OP: &str = "create_webhook_endpoint";
        let put = self
            .client
            .put_item()
            .table_name(&self.workflows_table)
            .set_item(Some(endpoint_item(OP, endpoint)?))
            .condition_expression(NOT_EXISTS);
        put_if(OP, put).await
    }

    async fn replace_endpoint(&self, endpoint: &Endpoint, read_revision: u64) -> PortResult<bool> {
        const OP: &str = "replace_webhook_endpoint";
        let put = self
            .client
            .put_item()
            .table_name(&self.workflows_table)
            .set_item(Some(endpoint_item(OP, endpoint)?))
            .condition_expression("revision = :read")
            .expression_attribute_values(":read", n(read_revision));
        put_if(OP, put).await
    }

    async fn get_endpoint(&self, workspace_id: &str, endpoint_id: &str) -> PortResult<Option<Endpoint>> {
        const OP: &str = "get_webhook_endpoint";
        let (pk, sk) = endpoint_key(workspace_id, endpoint_id);
        get_item(&self.client, &self.workflows_table, OP, pk, sk)
            .await?
            .map(|item| decode(OP, &item, "endpoint"))
            .transpose()
    }

    async fn list_endpoints(&self, workspace_id: &str) -> PortResult<Vec<Endpoint>> {
        const OP: &str = "list_webhook_endpoints";
        // Not cut at MAX_ENDPOINTS: two creates racing past it both land,
        // and both must receive their events.
        workspace_items(&self.client, &self.workflows_table, OP, workspace_id, "EP#", |item| {
            decode(OP, &item, "endpoint")
        })
        .await
    }

    async fn delete_endpoint(&self, workspace_id: &str, endpoint_id: &str) -> PortResult<()> {
        const OP: &str = "delete_webhook_endpoint";
        let (pk, sk) = endpoint_key(workspace_id, endpoint_id);
        delete_item(&self.client, &self.workflows_table, OP, pk, sk).await
    }

    async fn create_message(&self, message: &OutboundMessage) -> PortResult<Option<OutboundMessage>> {
        const OP: &str = "create_webhook_message";
        let put = self
            .client
            .put_item()
            .table_name(&self.runs_table)
            .set_item(Some(message_item(OP, message)?))
            .condition_expression(NOT_EXISTS);
        if put_if(OP, put).await? {
            return Ok(None);
        }
        self.get_message(&message.workspace_id, &message.endpoint_id, &message.id)
            .await?
            .map(Some)
            .ok_or_else(|| PortError::retryable(OP, "the message existed, then did not"))
    }

    async fn get_message(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        message_id: &str,
    ) -> PortResult<Option<OutboundMessage>> {
        const OP: &str = "get_webhook_message";
        let pk = partition("OUTMSG", workspace_id, endpoint_id);
        get_item(&self.client, &self.runs_table, OP, pk, format!("MSG#{message_id}"))
            .await?
            .map(|item| decode_message(OP, &item))
            .transpose()
    }

    async fn replace_message(&self, message: &OutboundMessage, read_version: u64) -> PortResult<bool> {
        const OP: &str = "replace_webhook_message";
        let update = self
            .client
            .update_item()
            .table_name(&self.runs_table)
            .key(
                "pk",
                s(partition("OUTMSG", &message.workspace_id, &message.endpoint_id)),
            )
            .key("sk", s(format!("MSG#{}", message.id)))
            .update_expression("SET #message = :message, version = :version")
            .condition_expression("version = :read")
            .expression_attribute_names("#message", "message")
            .expression_attribute_values(":message", message_state(OP, message)?)
            .expression_attribute_values(":version", n(message.version))
            .expression_attribute_values(":read", n(read_version))
            .send()
            .await;
        Ok(unless_condition_failed(OP, update)?.is_some())
    }

    async fn index_failed(&self, message: &OutboundMessage, failed: bool) -> PortResult<()> {
        const OP: &str = "index_failed_webhook_message";
        let pk = partition("OUTFAIL", &message.workspace_id, &message.endpoint_id);
        let sk = failed_position(message.created_at, &message.id);
        if !failed {
            return delete_item(&self.client, &self.runs_table, OP, pk, sk).await;
        }
        self.client
            .put_item()
            .table_name(&self.runs_table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("message_id", s(message.id.clone()))
            .item(TTL_ATTRIBUTE, expiry(message.created_at))
            .send()
            .await
            .map_err(|e| port_error(OP, e))?;
        Ok(())
    }

    async fn failed_since(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<String>> {
        const OP: &str = "list_failed_webhook_messages";
        let query = self
            .client
            .query()
            .table_name(&self.runs_table)
            .key_condition_expression("pk = :pk AND sk >= :since")
            .expression_attribute_values(":pk", s(partition("OUTFAIL", workspace_id, endpoint_id)))
            .expression_attribute_values(":since", s(format!("{:020}", since.timestamp_micros().max(0))))
            .consistent_read(true);
        let mut ids = vec![];
        query_pages(OP, query, |item| {
            if let Some(id) = item.get("message_id").and_then(|v| v.as_s().ok()) {
                ids.push(id.clone());
            }
            Ok(ids.len() < limit)
        })
        .await?;
        Ok(ids)
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> PortResult<()> {
        const OP: &str = "record_webhook_attempt";
        self.client
            .put_item()
            .table_name(&self.runs_table)
            .item(
                "pk",
                s(partition("OUTLOG", &attempt.workspace_id, &attempt.endpoint_id)),
            )
            .item("sk", s(attempt_position(attempt)))
            .item("attempt", encode(OP, attempt)?)
            .item(TTL_ATTRIBUTE, expiry(attempt.at))
            .send()
            .await
            .map_err(|e| port_error(OP, e))?;
        Ok(())
    }

    async fn list_attempts(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> PortResult<AttemptPage> {
        const OP: &str = "list_webhook_attempts";
        let pk = partition("OUTLOG", workspace_id, endpoint_id);
        let mut query = self
            .client
            .query()
            .table_name(&self.runs_table)
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .expression_attribute_values(":pk", s(pk));
        query = match before {
            Some(position) => query
                .key_condition_expression("pk = :pk AND sk < :before")
                .expression_attribute_values(":before", s(position)),
            None => query.key_condition_expression("pk = :pk"),
        };
        let mut attempts: Vec<DeliveryAttempt> = vec![];
        let mut more = false;
        query_pages(OP, query, |item| {
            if attempts.len() == limit {
                more = true;
                return Ok(false);
            }
            attempts.push(decode(OP, &item, "attempt")?);
            Ok(true)
        })
        .await?;
        let next = more.then(|| attempts.last().map(attempt_position)).flatten();
        Ok(AttemptPage { attempts, next })
    }
}
