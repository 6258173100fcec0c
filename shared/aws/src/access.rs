//! API keys and the audit trail, in the workflows table (see `dynamo.rs`'s
//! key table). A key is written twice in one transaction: under its id for
//! the lookup every request makes, and under its workspace for `keys list`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use hookflow_core::access::{ApiKey, AuditEntry, AuditLog, AuditPage, KeyStore};
use hookflow_core::ports::{PortError, PortResult};
use serde::{Deserialize, Serialize};

use crate::dynamo::{from_item, get_item, query_pages, s, to_item, transact_if, workspace_items, Item, NOT_EXISTS};
use crate::error::{decode_error, port_error};

/// API keys and the audit trail (the `workflows` table).
#[derive(Clone)]
pub struct DynamoAccess {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoAccess {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyItem {
    pk: String,
    sk: String,
    /// Copied out of `key` so that revoking can be conditional on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    key: String,
}

fn lookup_key(key_id: &str) -> (String, String) {
    (format!("KEY#{key_id}"), "KEY".to_owned())
}

fn listing_key(workspace_id: &str, key_id: &str) -> (String, String) {
    (format!("WS#{workspace_id}"), format!("KEY#{key_id}"))
}

fn key_items(operation: &'static str, key: &ApiKey) -> PortResult<[Item; 2]> {
    let json = serde_json::to_string(key).map_err(|e| PortError::terminal(operation, e.to_string()))?;
    let item = |(pk, sk): (String, String)| {
        to_item(
            operation,
            &KeyItem {
                pk,
                sk,
                revoked_at: key.revoked_at.map(|at| at.to_rfc3339()),
                key: json.clone(),
            },
        )
    };
    Ok([
        item(lookup_key(&key.id))?,
        item(listing_key(&key.workspace_id, &key.id))?,
    ])
}

fn decode_key(operation: &'static str, item: Item) -> PortResult<ApiKey> {
    let stored: KeyItem = from_item(operation, item)?;
    serde_json::from_str(&stored.key).map_err(|e| decode_error(operation, e))
}

impl DynamoAccess {
    /// Writes both items of a key, each under `condition`; false when a
    /// condition failed.
    async fn write_key(&self, operation: &'static str, key: &ApiKey, condition: &str) -> PortResult<bool> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| PortError::terminal(operation, e.to_string());
        let mut writes = vec![];
        for item in key_items(operation, key)? {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .build()
                .map_err(build)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        transact_if(&self.client, operation, writes).await
    }
}

#[async_trait]
impl KeyStore for DynamoAccess {
    async fn put_key(&self, key: &ApiKey) -> PortResult<()> {
        if self.write_key("put_key", key, NOT_EXISTS).await? {
            Ok(())
        } else {
            Err(PortError::terminal("put_key", format!("key {} exists already", key.id)))
        }
    }

    async fn get_key(&self, key_id: &str) -> PortResult<Option<ApiKey>> {
        let (pk, sk) = lookup_key(key_id);
        get_item(&self.client, &self.table, "get_key", pk, sk)
            .await?
            .map(|item| decode_key("get_key", item))
            .transpose()
    }

    async fn list_keys(&self, workspace_id: &str) -> PortResult<Vec<ApiKey>> {
        let mut keys = workspace_items(&self.client, &self.table, "list_keys", workspace_id, "KEY#", |item| {
            decode_key("list_keys", item)
        })
        .await?;
        keys.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, workspace_id: &str, key_id: &str, at: DateTime<Utc>) -> PortResult<Option<ApiKey>> {
        let Some(key) = self.get_key(key_id).await? else {
            return Ok(None);
        };
        if key.workspace_id != workspace_id {
            return Ok(None);
        }
        if key.revoked_at.is_some() {
            return Ok(Some(key));
        }
        let revoked = ApiKey {
            revoked_at: Some(at),
            ..key
        };
        let condition = "attribute_exists(pk) AND attribute_not_exists(revoked_at)";
        if self.write_key("revoke_key", &revoked, condition).await? {
            Ok(Some(revoked))
        } else {
            // Revoked meanwhile: the first revocation stands.
            self.get_key(key_id).await
        }
    }
}

#[derive(Serialize, Deserialize)]
struct AuditItem {
    pk: String,
    sk: String,
    entry: String,
}

#[async_trait]
impl AuditLog for DynamoAccess {
    async fn record(&self, entry: &AuditEntry) -> PortResult<()> {
        const OP: &str = "record_audit";
        let item = AuditItem {
            pk: format!("AUDIT#{}", entry.workspace_id),
            sk: entry.list_position(),
            entry: serde_json::to_string(entry).map_err(|e| PortError::terminal(OP, e.to_string()))?,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(OP, &item)?))
            .send()
            .await
            .map_err(|e| port_error(OP, e))?;
        Ok(())
    }

    async fn list(&self, workspace_id: &str, limit: usize, cursor: Option<&str>) -> PortResult<AuditPage> {
        const OP: &str = "list_audit";
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(format!("AUDIT#{workspace_id}")))
            .scan_index_forward(false);
        query = match cursor {
            Some(cursor) => query
                .key_condition_expression("pk = :pk AND sk < :cursor")
                .expression_attribute_values(":cursor", AttributeValue::S(cursor.to_owned())),
            None => query.key_condition_expression("pk = :pk"),
        };
        let mut entries: Vec<AuditEntry> = vec![];
        query_pages(OP, query, |item| {
            let stored: AuditItem = from_item(OP, item)?;
            entries.push(serde_json::from_str(&stored.entry).map_err(|e| decode_error(OP, e))?);
            Ok(entries.len() <= limit)
        })
        .await?;
        let next_cursor = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(AuditEntry::list_position)
        } else {
            None
        };
        Ok(AuditPage { entries, next_cursor })
    }
}
