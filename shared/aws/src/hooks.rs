//! Hooks, in the workflows table. Like a key, a hook is written twice in one
//! transaction: under its id (`HOOK#<id>`, the only hook item the webhook
//! function may read) for the public route's lookup, and under its workspace
//! (`WS#<ws>`, `HOOK#<id>`) for listing. Both items carry the revision and
//! the workspace, so a change or a delete is conditional on them.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use hookflow_core::hooks::{Hook, HookStore};
use hookflow_core::ports::{PortError, PortResult};
use serde::{Deserialize, Serialize};

use crate::dynamo::{from_item, get_item, s, to_item, transact_if, workspace_items, Item, NOT_EXISTS};
use crate::error::decode_error;

#[derive(Clone)]
pub struct DynamoHooks {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoHooks {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct HookItem {
    pk: String,
    sk: String,
    workspace_id: String,
    revision: u64,
    hook: String,
}

fn lookup_key(hook_id: &str) -> (String, String) {
    (format!("HOOK#{hook_id}"), "HOOK".to_owned())
}

fn listing_key(workspace_id: &str, hook_id: &str) -> (String, String) {
    (format!("WS#{workspace_id}"), format!("HOOK#{hook_id}"))
}

fn decode(operation: &'static str, item: Item) -> PortResult<Hook> {
    let stored: HookItem = from_item(operation, item)?;
    serde_json::from_str(&stored.hook).map_err(|e| decode_error(operation, e))
}

/// The condition of a change: the stored item is still of this workspace
/// and at this revision.
fn unchanged(expected_revision: u64, workspace_id: &str) -> (String, [(String, AttributeValue); 2]) {
    (
        "workspace_id = :ws AND revision = :revision".to_owned(),
        [
            (":ws".to_owned(), s(workspace_id)),
            (":revision".to_owned(), AttributeValue::N(expected_revision.to_string())),
        ],
    )
}

impl DynamoHooks {
    /// Both items of `hook`, each written only if `condition` holds.
    async fn write(
        &self,
        operation: &'static str,
        hook: &Hook,
        condition: &str,
        values: &[(String, AttributeValue)],
    ) -> PortResult<bool> {
        let json = serde_json::to_string(hook).map_err(|e| PortError::terminal(operation, e.to_string()))?;
        let build = |e: aws_sdk_dynamodb::error::BuildError| PortError::terminal(operation, e.to_string());
        let mut writes = vec![];
        for (pk, sk) in [lookup_key(&hook.id), listing_key(&hook.workspace_id, &hook.id)] {
            let item = HookItem {
                pk,
                sk,
                workspace_id: hook.workspace_id.clone(),
                revision: hook.revision,
                hook: json.clone(),
            };
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(operation, &item)?))
                .condition_expression(condition);
            for (name, value) in values {
                put = put.expression_attribute_values(name, value.clone());
            }
            writes.push(TransactWriteItem::builder().put(put.build().map_err(build)?).build());
        }
        transact_if(&self.client, operation, writes).await
    }
}

#[async_trait]
impl HookStore for DynamoHooks {
    async fn create_hook(&self, hook: &Hook) -> PortResult<()> {
        if self.write("create_hook", hook, NOT_EXISTS, &[]).await? {
            Ok(())
        } else {
            Err(PortError::terminal(
                "create_hook",
                format!("hook {} exists already", hook.id),
            ))
        }
    }

    async fn get_hook(&self, hook_id: &str) -> PortResult<Option<Hook>> {
        let (pk, sk) = lookup_key(hook_id);
        get_item(&self.client, &self.table, "get_hook", pk, sk)
            .await?
            .map(|item| decode("get_hook", item))
            .transpose()
    }

    async fn list_hooks(&self, workspace_id: &str) -> PortResult<Vec<Hook>> {
        let mut hooks = workspace_items(&self.client, &self.table, "list_hooks", workspace_id, "HOOK#", |item| {
            decode("list_hooks", item)
        })
        .await?;
        hooks.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(hooks)
    }

    async fn replace_hook(&self, hook: &Hook, expected_revision: u64) -> PortResult<bool> {
        let (condition, values) = unchanged(expected_revision, &hook.workspace_id);
        self.write("replace_hook", hook, &condition, &values).await
    }

    async fn delete_hook(&self, workspace_id: &str, hook_id: &str) -> PortResult<bool> {
        const OP: &str = "delete_hook";
        let build = |e: aws_sdk_dynamodb::error::BuildError| PortError::terminal(OP, e.to_string());
        let mut writes = vec![];
        for (pk, sk) in [lookup_key(hook_id), listing_key(workspace_id, hook_id)] {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .condition_expression("workspace_id = :ws")
                .expression_attribute_values(":ws", s(workspace_id))
                .build()
                .map_err(build)?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        transact_if(&self.client, OP, writes).await
    }
}
