//! DynamoDB adapters. Keys follow brief §5 and start with the workspace
//! where they can, so `dynamodb:LeadingKeys` can fence tenants.
//!
//! | table | pk | sk | item |
//! |---|---|---|---|
//! | workflows | `WS#<ws>` | `WF#<id>#V#<version>` | an immutable workflow version |
//! | workflows | `SUB#<ws>#<trigger type>` | `<scope kind>#<scope id>#<id>` (`workspace#*#…`, `site#<site>#…`, `card#<card>#…`) | one subscription per active workflow, kept by its scope so that an event reads only its workspace's, site's and card's |
//! | runs | `RUN#<run id>` | `META` | the run record, in four indexes sorted by start + run id (`gsi1sk`): `by_workspace` (`gsi1pk` = `WS#<ws>`, or `TEST#<ws>` for live tests' runs), `by_status` (`gsi2pk` = `WS#<ws>#S#<status>`), `by_workflow` (`gsi3pk` = `WS#<ws>#WF#<workflow>`), `by_workflow_status` (`gsi4pk` = `WS#<ws>#WF#<workflow>#S#<status>`) |
//! | runs | `RUN#<run id>` | `STEP#<step id>#<attempt>` | one step attempt: a claim (`state` = `in_progress`) until its record replaces it |
//! | runs | `RUN#<run id>` | `HANDOFF#<step id>#<attempt>` | the message moving the run on to that attempt was sent |
//! | runs | `RUN#<run id>` | `BLOB#<key>#<chunk>` | a large value (claim-checked context, resume point) in chunks under the item size limit |
//! | workflows | `KEY#<key id>` | `KEY` | an API key's hash and role, looked up by the key's id |
//! | workflows | `WS#<ws>` | `KEY#<key id>` | the same key, listed by workspace |
//! | workflows | `HOOK#<hook id>` | `HOOK` | a hook, looked up by the public route (`hooks.rs`) |
//! | workflows | `WS#<ws>` | `HOOK#<hook id>` | the same hook, listed by workspace |
//! | workflows | `AUDIT#<ws>` | `<time µs>\|<entry id>` | one management write |
//! | runs | `EVT#<ws>#<source>\|<event id>` | `META` | ingest dedupe of an event's identity, TTL `expires_at` |
//! | runs | `DLQ#<queue>` | `<parked id>` | a parked dead letter (`hookflow dlq`), TTL `expires_at` |

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use hookflow_core::dead_letter::{ParkedMessage, QueueKind};
use hookflow_core::lifecycle::{Commit, HeadChange, HeadWrite, WorkflowCatalog, WorkflowHead};
use hookflow_core::ports::*;
use hookflow_core::run::{RunPosition, RunRecord, RunStatus, StepRecord, StepStatus};
use hookflow_core::subscription::Subscription;
use hookflow_core::workflow::Scope;
use hookflow_core::WorkflowDefinition;
use serde::{Deserialize, Serialize};

use crate::error::{decode_error, port_error};
use crate::resources::{
    RUNS_BY_DUE, RUNS_BY_STATUS, RUNS_BY_WORKFLOW, RUNS_BY_WORKFLOW_STATUS, RUNS_BY_WORKSPACE, TTL_ATTRIBUTE,
};
use crate::run_erasure::{contact_runs_lookahead, contact_runs_partition, erase_run_items};

pub(crate) type Item = HashMap<String, AttributeValue>;
/// (workspace, workflow id, version).
type VersionKey = (String, String, u32);

pub(crate) const NOT_EXISTS: &str = "attribute_not_exists(pk)";

/// Free text (an id) made safe as one `#`-separated part of a key: `%`
/// and `#` are percent-escaped, so no two texts make the same key and no
/// text's key is a prefix of another's.
pub(crate) fn key_part(text: &str) -> String {
    text.replace('%', "%25").replace('#', "%23")
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn to_item<T: Serialize>(operation: &'static str, value: &T) -> Result<Item, PortError> {
    serde_dynamo::to_item(value).map_err(|e| PortError::terminal(operation, e.to_string()))
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(operation: &'static str, item: Item) -> Result<T, PortError> {
    serde_dynamo::from_item(item).map_err(|e| decode_error(operation, e))
}

/// Runs a Query page by page, handing each item to `on_item` until it
/// returns false or the pages end. A page is DynamoDB's (up to 1 MB), so a
/// small result is one request.
pub(crate) async fn query_pages(
    operation: &'static str,
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    mut on_item: impl FnMut(Item) -> Result<bool, PortError>,
) -> PortResult<()> {
    let mut start_key: Option<Item> = None;
    loop {
        let page = query
            .clone()
            .set_exclusive_start_key(start_key.take())
            .send()
            .await
            .map_err(|e| port_error(operation, e))?;
        for item in page.items.unwrap_or_default() {
            if !on_item(item)? {
                return Ok(());
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start_key = Some(key),
            _ => return Ok(()),
        }
    }
}

/// Every item of a workspace's partition (`WS#<ws>`) whose sort key starts
/// with `prefix` (`KEY#`, `HOOK#`), read consistently and decoded.
pub(crate) async fn workspace_items<T>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    operation: &'static str,
    workspace_id: &str,
    prefix: &str,
    decode: impl Fn(Item) -> PortResult<T>,
) -> PortResult<Vec<T>> {
    let query = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", s(format!("WS#{workspace_id}")))
        .expression_attribute_values(":prefix", s(prefix))
        .consistent_read(true);
    let mut items = vec![];
    query_pages(operation, query, |item| {
        items.push(decode(item)?);
        Ok(true)
    })
    .await?;
    Ok(items)
}

/// Runs `writes` as one transaction: false when one of their conditions
/// failed (nothing was written), an error for anything else.
pub(crate) async fn transact_if(
    client: &aws_sdk_dynamodb::Client,
    operation: &'static str,
    writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
) -> PortResult<bool> {
    transact(client, operation, writes, &["ConditionalCheckFailed"]).await
}

/// [`transact_if`] for writes that are read again and retried when they
/// lose: a `TransactionConflict` (another transaction on the same items at
/// that moment) is a lost race too, not an error.
pub(crate) async fn transact_racing(
    client: &aws_sdk_dynamodb::Client,
    operation: &'static str,
    writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
) -> PortResult<bool> {
    transact(
        client,
        operation,
        writes,
        &["ConditionalCheckFailed", "TransactionConflict"],
    )
    .await
}

/// One transaction: false when it was cancelled for one of `lost_reasons`.
async fn transact(
    client: &aws_sdk_dynamodb::Client,
    operation: &'static str,
    writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    lost_reasons: &[&str],
) -> PortResult<bool> {
    let sent = client
        .transact_write_items()
        .set_transact_items(Some(writes))
        .send()
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| lost_reasons.iter().any(|reason| cancellation_mentions(e, reason))) =>
        {
            Ok(false)
        }
        Err(err) => Err(port_error(operation, err)),
    }
}

/// Writes an item unless its key exists: true if written, false if an earlier
/// write holds the key (the caller reads that one and follows it).
async fn put_if_absent(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    operation: &'static str,
    item: Item,
) -> PortResult<bool> {
    let put = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(NOT_EXISTS);
    put_if(operation, put).await
}

/// Reads one item by key, strongly consistent.
pub(crate) async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    operation: &'static str,
    pk: String,
    sk: String,
) -> PortResult<Option<Item>> {
    let got = client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| port_error(operation, e))?;
    Ok(got.item)
}

/// Deletes one item by key (deleting a missing item is not an error).
pub(crate) async fn delete_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    operation: &'static str,
    pk: String,
    sk: String,
) -> PortResult<()> {
    client
        .delete_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .send()
        .await
        .map_err(|e| port_error(operation, e))?;
    Ok(())
}

/// A conditional write's outcome: `Some(output)` if written, `None` if its
/// condition failed (not an error: the caller's precondition no longer holds).
pub(crate) fn unless_condition_failed<O, E, R>(
    operation: &'static str,
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> PortResult<Option<O>>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(err)
            if err
                .as_service_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(err) => Err(port_error(operation, err)),
    }
}

/// Sends a conditional put: true if written, false if the condition failed.
pub(crate) async fn put_if(
    operation: &'static str,
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
) -> PortResult<bool> {
    Ok(unless_condition_failed(operation, put.send().await)?.is_some())
}

/// Workflow versions and subscriptions (the `workflows` table).
#[derive(Clone)]
pub struct DynamoWorkflows {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Versions are immutable, so a warm function never reads one twice.
    cache: Arc<std::sync::Mutex<HashMap<VersionKey, Arc<WorkflowDefinition>>>>,
}

impl DynamoWorkflows {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            cache: Arc::default(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct VersionItem {
    pk: String,
    sk: String,
    /// The stored format (brief §10).
    #[serde(default = "first_format")]
    format: u32,
    workflow_id: String,
    version: u32,
    /// The public JSON document, stored as written.
    definition: String,
}

/// 2: kept by scope (`<scope kind>#<scope id>#<id>`), where 1 kept one per
/// workflow (`WF#<id>`). No stack ran format 1 (brief §10).
const SUBSCRIPTION_FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct SubscriptionItem {
    pk: String,
    sk: String,
    #[serde(default = "first_format")]
    format: u32,
    subscription: String,
}

fn first_format() -> u32 {
    1
}

/// Version sort keys are zero-padded so they sort by number (`V#000010`
/// after `V#000002`); six digits hold a version a day for 2,700 years.
fn version_key(workspace_id: &str, workflow_id: &str, version: u32) -> (String, String) {
    (format!("WS#{workspace_id}"), format!("WF#{workflow_id}#V#{version:06}"))
}

fn head_key(workspace_id: &str, workflow_id: &str) -> (String, String) {
    (format!("WS#{workspace_id}"), format!("HEAD#{workflow_id}"))
}

#[derive(Serialize, Deserialize)]
struct HeadItem {
    pk: String,
    sk: String,
    /// Copied out of `head` so that a commit can be conditional on it.
    revision: u64,
    format: u32,
    /// The head as JSON text: a draft may nest deeper than DynamoDB's 32 levels.
    head: String,
}

fn subscription_pk(workspace_id: &str, trigger_type: &str) -> String {
    format!("SUB#{workspace_id}#{trigger_type}")
}

/// Where a scope's subscriptions begin in their partition (brief §5:
/// `<scope kind>#<scope id>#<workflow id>`): a lookup reads one scope's
/// with `begins_with`. A site or card id may hold `#`, so the prefix of
/// card `c1` also covers card `c1#x`'s: what a lookup reads is checked
/// against its scope. Keys stay unique, as workflow ids hold no `#`.
fn scope_prefix(scope: &Scope) -> String {
    match scope {
        // Matches no event (publishing refuses it): an item apart from the
        // enabled scope's, so a key is the same exactly when `replaced_by`.
        Scope::Workspace(false) => "workspace#off#".to_owned(),
        _ => format!("{}#{}#", scope.kind(), scope.id()),
    }
}

fn subscription_key(subscription: &Subscription) -> (String, String) {
    (
        subscription_pk(&subscription.workspace_id, &subscription.trigger_type),
        format!("{}{}", scope_prefix(&subscription.scope), subscription.workflow_id),
    )
}

fn version_item(operation: &'static str, workflow: &WorkflowDefinition) -> PortResult<Item> {
    let (pk, sk) = version_key(&workflow.workspace_id, &workflow.id, workflow.version);
    let definition = serde_json::to_string(workflow).map_err(|e| PortError::terminal(operation, e.to_string()))?;
    to_item(
        operation,
        &VersionItem {
            pk,
            sk,
            format: 1,
            workflow_id: workflow.id.clone(),
            version: workflow.version,
            definition,
        },
    )
}

fn subscription_item(operation: &'static str, subscription: &Subscription) -> PortResult<Item> {
    let json = serde_json::to_string(subscription).map_err(|e| PortError::terminal(operation, e.to_string()))?;
    let (pk, sk) = subscription_key(subscription);
    to_item(
        operation,
        &SubscriptionItem {
            pk,
            sk,
            format: SUBSCRIPTION_FORMAT,
            subscription: json,
        },
    )
}

#[async_trait]
impl WorkflowStore for DynamoWorkflows {
    async fn put_version(&self, workflow: &WorkflowDefinition) -> PortResult<()> {
        let item = version_item("put_version", workflow)?;
        if put_if_absent(&self.client, &self.table, "put_version", item).await? {
            return Ok(());
        }
        let existing = self
            .get_version(&workflow.workspace_id, &workflow.id, workflow.version)
            .await?;
        if existing.is_some_and(|e| *e == *workflow) {
            Ok(())
        } else {
            Err(PortError::terminal(
                "put_version",
                format!(
                    "version {} of workflow {} exists with other content; versions are immutable",
                    workflow.version, workflow.id
                ),
            ))
        }
    }

    async fn get_version(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        version: u32,
    ) -> PortResult<Option<Arc<WorkflowDefinition>>> {
        let cache_key = (workspace_id.to_owned(), workflow_id.to_owned(), version);
        if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&cache_key) {
            return Ok(Some(hit.clone()));
        }
        let (pk, sk) = version_key(workspace_id, workflow_id, version);
        let Some(item) = get_item(&self.client, &self.table, "get_version", pk, sk).await? else {
            return Ok(None);
        };
        let stored: VersionItem = from_item("get_version", item)?;
        let workflow = WorkflowDefinition::from_json(&stored.definition).map_err(|e| decode_error("get_version", e))?;
        let workflow = Arc::new(workflow);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cache_key, workflow.clone());
        Ok(Some(workflow))
    }
}

#[async_trait]
impl SubscriptionIndex for DynamoWorkflows {
    async fn put(&self, subscription: &Subscription) -> PortResult<()> {
        let item = subscription_item("put_subscription", subscription)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_error("put_subscription", e))?;
        Ok(())
    }

    async fn remove(&self, subscription: &Subscription) -> PortResult<()> {
        let (pk, sk) = subscription_key(subscription);
        delete_item(&self.client, &self.table, "remove_subscription", pk, sk).await
    }

    /// One Query per scope; further pages only past DynamoDB's 1 MB page.
    async fn find(&self, workspace_id: &str, trigger_type: &str, scope: &Scope) -> PortResult<Vec<Subscription>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :scope)")
            .expression_attribute_values(":pk", s(subscription_pk(workspace_id, trigger_type)))
            .expression_attribute_values(":scope", s(scope_prefix(scope)));
        let found = self.subscriptions_from("find_subscriptions", query).await?;
        Ok(found.into_iter().filter(|sub| sub.scope == *scope).collect())
    }

    async fn list(&self, workspace_id: &str, trigger_type: &str) -> PortResult<Vec<Subscription>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(subscription_pk(workspace_id, trigger_type)));
        self.subscriptions_from("list_subscriptions", query).await
    }
}

impl DynamoWorkflows {
    async fn subscriptions_from(
        &self,
        operation: &'static str,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> PortResult<Vec<Subscription>> {
        let mut found = vec![];
        query_pages(operation, query, |item| {
            let stored: SubscriptionItem = from_item(operation, item)?;
            found.push(serde_json::from_str(&stored.subscription).map_err(|e| decode_error(operation, e))?);
            Ok(true)
        })
        .await?;
        Ok(found)
    }
}

/// The lifecycle's heads, versions and subscriptions: one
/// `TransactWriteItems` per change, conditional on the head's revision.
#[async_trait]
impl WorkflowCatalog for DynamoWorkflows {
    async fn get_head(&self, workspace_id: &str, workflow_id: &str) -> PortResult<Option<WorkflowHead>> {
        let (pk, sk) = head_key(workspace_id, workflow_id);
        get_item(&self.client, &self.table, "get_head", pk, sk)
            .await?
            .map(|item| decode_head("get_head", item))
            .transpose()
    }

    async fn list_heads(&self, workspace_id: &str) -> PortResult<Vec<WorkflowHead>> {
        let mut heads = vec![];
        let query = self.by_prefix(workspace_id, "HEAD#".to_owned());
        query_pages("list_heads", query, |item| {
            heads.push(decode_head("list_heads", item)?);
            Ok(true)
        })
        .await?;
        Ok(heads)
    }

    async fn list_versions(&self, workspace_id: &str, workflow_id: &str) -> PortResult<Vec<Arc<WorkflowDefinition>>> {
        let mut versions = vec![];
        let query = self.by_prefix(workspace_id, format!("WF#{workflow_id}#V#"));
        query_pages("list_versions", query, |item| {
            let stored: VersionItem = from_item("list_versions", item)?;
            let workflow =
                WorkflowDefinition::from_json(&stored.definition).map_err(|e| decode_error("list_versions", e))?;
            versions.push(Arc::new(workflow));
            Ok(true)
        })
        .await?;
        Ok(versions)
    }

    async fn commit(&self, change: &HeadChange) -> PortResult<Commit> {
        let items = self.transaction(change)?;
        // One token per commit, reused by the SDK's retries: a retry of a
        // transaction that was applied is answered as applied, not refused
        // by its own revision condition. (Racing commits get different
        // tokens, so they still race.)
        let token = ulid::Ulid::new().to_string();
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await
        {
            Ok(_) => Ok(Commit::Applied),
            Err(err) => {
                // A failed condition (the head moved, or the version number
                // is taken) and a concurrent transaction on the same items
                // both mean another change won the race.
                let lost_race = err.as_service_error().is_some_and(|e| {
                    cancellation_mentions(e, "ConditionalCheckFailed")
                        || cancellation_mentions(e, "TransactionConflict")
                });
                if lost_race {
                    Ok(Commit::Conflict)
                } else {
                    Err(port_error("commit_workflow", err))
                }
            }
        }
    }
}

/// True when one of a cancelled transaction's reasons has this code.
pub(crate) fn cancellation_mentions(
    err: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    code: &str,
) -> bool {
    match err {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
            e.cancellation_reasons()
                .iter()
                .any(|reason| reason.code() == Some(code))
        }
        _ => false,
    }
}

fn decode_head(operation: &'static str, item: Item) -> PortResult<WorkflowHead> {
    let stored: HeadItem = from_item(operation, item)?;
    serde_json::from_str(&stored.head).map_err(|e| decode_error(operation, e))
}

impl DynamoWorkflows {
    fn by_prefix(
        &self,
        workspace_id: &str,
        prefix: String,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(format!("WS#{workspace_id}")))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
    }

    /// The items of one lifecycle change. The head's write carries the
    /// revision condition; a new version must not exist; the subscription
    /// delete is left out when the put replaces the same item (a
    /// transaction may touch an item once).
    fn transaction(&self, change: &HeadChange) -> PortResult<Vec<TransactWriteItem>> {
        const OP: &str = "commit_workflow";
        let build = |e: aws_sdk_dynamodb::error::BuildError| PortError::terminal(OP, e.to_string());
        let (pk, sk) = head_key(&change.workspace_id, &change.workflow_id);
        let (condition, revision) = match change.expected_revision {
            None => (NOT_EXISTS, None),
            Some(r) => ("revision = :revision", Some(r)),
        };
        let head_write = match &change.head {
            HeadWrite::Put(head) => {
                let text = serde_json::to_string(head).map_err(|e| PortError::terminal(OP, e.to_string()))?;
                let item = to_item(
                    OP,
                    &HeadItem {
                        pk,
                        sk,
                        revision: head.revision,
                        format: head.format,
                        head: text,
                    },
                )?;
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .set_expression_attribute_values(revision.map(revision_value));
                TransactWriteItem::builder().put(put.build().map_err(build)?).build()
            }
            HeadWrite::Delete => {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .condition_expression(condition)
                    .set_expression_attribute_values(revision.map(revision_value));
                TransactWriteItem::builder()
                    .delete(delete.build().map_err(build)?)
                    .build()
            }
        };
        let mut items = vec![head_write];
        if let Some(version) = &change.new_version {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(version_item(OP, version)?))
                .condition_expression(NOT_EXISTS);
            items.push(TransactWriteItem::builder().put(put.build().map_err(build)?).build());
        }
        // A transaction may not name an item twice: a put that replaces the
        // removed subscription is the whole change.
        let replaced = |old: &&Subscription| change.subscribe.as_ref().is_some_and(|new| old.replaced_by(new));
        if let Some(old) = change.unsubscribe.as_ref().filter(|old| !replaced(old)) {
            let (pk, sk) = subscription_key(old);
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk));
            items.push(
                TransactWriteItem::builder()
                    .delete(delete.build().map_err(build)?)
                    .build(),
            );
        }
        if let Some(subscription) = &change.subscribe {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(subscription_item(OP, subscription)?));
            items.push(TransactWriteItem::builder().put(put.build().map_err(build)?).build());
        }
        Ok(items)
    }
}

fn revision_value(revision: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([(":revision".to_owned(), AttributeValue::N(revision.to_string()))])
}

/// Runs, step records and ingest dedupe (the `runs` table).
#[derive(Clone)]
pub struct DynamoRuns {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// How long run items are kept after they are written (TTL `expires_at`).
    retention: Option<Duration>,
}

/// The variable carrying the template's `RunLogRetentionDays`.
pub const RUN_RETENTION_DAYS: &str = "HOOKFLOW_RUN_RETENTION_DAYS";

/// The run-log retention from [`RUN_RETENTION_DAYS`]: `None` when unset (runs
/// are kept), `Err` naming the problem when it is not a positive whole number
/// of days.
pub fn run_retention_from_env() -> Result<Option<Duration>, &'static str> {
    match std::env::var(RUN_RETENTION_DAYS) {
        Err(_) => Ok(None),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(days) if days > 0 => Ok(Some(Duration::from_secs(days * 24 * 3600))),
            _ => Err("not a positive whole number of days"),
        },
    }
}

impl DynamoRuns {
    /// With a `retention`, run items expire this long after they were
    /// written: steps, claims, blobs and hand-off notes from their write, the
    /// run record from its end (a running run never expires). `None` keeps
    /// them.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, retention: Option<Duration>) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    /// The TTL attribute value for an item written at `at`, if runs expire.
    fn expiry(&self, at: DateTime<Utc>) -> Option<AttributeValue> {
        let retention = chrono::Duration::from_std(self.retention?).ok()?;
        Some(AttributeValue::N((at + retention).timestamp().to_string()))
    }

    fn with_expiry(&self, mut item: Item, at: DateTime<Utc>) -> Item {
        if let Some(expires_at) = self.expiry(at) {
            item.insert(TTL_ATTRIBUTE.into(), expires_at);
        }
        item
    }

    /// Keeps every item of a running run, due at `due_at`, from expiring
    /// before it can end: items expire a retention after their write, so a
    /// run that outlives the retention (a long Delay, a late replay) would
    /// lose its records, notes and claim-checked contexts. When `due_at`
    /// comes within half a retention of the run's `keep_until` (from `meta`,
    /// else a retention after its start), every item is kept a retention
    /// past `due_at`; about once per half retention of a run's life.
    async fn retain_items(&self, run_id: &str, due_at: DateTime<Utc>, meta: Option<&Item>) -> PortResult<()> {
        let (Some(retention), Some(meta)) = (self.retention.and_then(|r| chrono::Duration::from_std(r).ok()), meta)
        else {
            return Ok(());
        };
        let number = |name: &str| {
            meta.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        let started = meta
            .get("started_at")
            .and_then(|v| v.as_s().ok())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let keep_until = number("keep_until").or(started.map(|t| (t + retention).timestamp()));
        if keep_until.is_some_and(|keep| (due_at + retention / 2).timestamp() < keep) {
            return Ok(());
        }
        let target = (due_at + retention).timestamp();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("RUN#{run_id}")))
            .projection_expression("pk, sk, #ttl")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE);
        let mut short_lived = vec![];
        query_pages("retain_items", query, |item| {
            let expires = item
                .get(TTL_ATTRIBUTE)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok());
            if expires.is_some_and(|at| at < target) {
                short_lived.push(item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default());
            }
            Ok(true)
        })
        .await?;
        for sk in short_lived.into_iter().chain([META.to_owned()]) {
            let (attribute, value) = if sk == META {
                ("keep_until", target)
            } else {
                (TTL_ATTRIBUTE, target)
            };
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("RUN#{run_id}")))
                .key("sk", s(sk))
                .update_expression("SET #attribute = :value")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#attribute", attribute)
                .expression_attribute_values(":value", AttributeValue::N(value.to_string()));
            // A condition failure: deleted meanwhile (a blob's stale chunk), nothing to keep.
            unless_condition_failed("retain_items", update.send().await)?;
        }
        tracing::info!(
            run_id,
            keep_until = target,
            "run items kept past the retention while the run goes on"
        );
        Ok(())
    }

    /// Writes (or replaces) an item that expires a retention from now.
    async fn put_expiring(&self, operation: &'static str, item: Item) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.with_expiry(item, Utc::now())))
            .send()
            .await
            .map_err(|e| port_error(operation, e))?;
        Ok(())
    }
}

/// The runs index that serves a listing, its partition key attribute and
/// the partition's value. Live tests' runs have partitions of their own, so
/// production listings never read them.
fn runs_index(
    workspace_id: &str,
    workflow_id: Option<&str>,
    status: Option<RunStatus>,
    test: bool,
) -> (&'static str, &'static str, String) {
    let stem = if test {
        format!("TEST#{workspace_id}")
    } else {
        format!("WS#{workspace_id}")
    };
    match (workflow_id, status) {
        (None, None) => (RUNS_BY_WORKSPACE, "gsi1pk", stem),
        (None, Some(status)) => (RUNS_BY_STATUS, "gsi2pk", format!("{stem}#S#{}", status.as_str())),
        (Some(workflow), None) => (RUNS_BY_WORKFLOW, "gsi3pk", format!("{stem}#WF#{workflow}")),
        (Some(workflow), Some(status)) => (
            RUNS_BY_WORKFLOW_STATUS,
            "gsi4pk",
            format!("{stem}#WF#{workflow}#S#{}", status.as_str()),
        ),
    }
}

/// The partitions of the two indexes keyed by status, for `run` in `status`.
fn status_partitions(run: &RunRecord, status: RunStatus) -> (String, String) {
    let by_status = runs_index(&run.workspace_id, None, Some(status), run.test).2;
    let by_workflow_status = runs_index(&run.workspace_id, Some(&run.workflow_id), Some(status), run.test).2;
    (by_status, by_workflow_status)
}

#[derive(Serialize, Deserialize)]
struct RunItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi3pk: String,
    gsi4pk: String,
    /// In `by_due` while running ([`due_keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi5pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi5sk: Option<String>,
    /// In `by_contact` when its event was about a contact
    /// ([`crate::run_erasure::contact_runs_partition`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi6pk: Option<String>,
    #[serde(flatten)]
    run: RunRecord,
}

/// Shards of the `by_due` index: the reaper queries each.
const DUE_SHARDS: u32 = 8;

/// The `by_due` keys of a run due at `due_at`: its shard, and epoch seconds
/// padded so text order is time order.
fn due_keys(run_id: &str, due_at: DateTime<Utc>) -> (String, String) {
    let shard = run_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % DUE_SHARDS;
    (format!("DUE#{shard}"), due_sort_key(due_at))
}

fn due_sort_key(due_at: DateTime<Utc>) -> String {
    format!("{:012}", due_at.timestamp().max(0))
}

fn rfc3339(at: DateTime<Utc>) -> AttributeValue {
    s(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

impl RunItem {
    fn new(run: &RunRecord) -> Self {
        let (gsi2pk, gsi4pk) = status_partitions(run, run.status);
        let due = run
            .due_at
            .filter(|_| run.status == RunStatus::Running)
            .map(|due_at| due_keys(&run.run_id, due_at));
        Self {
            pk: format!("RUN#{}", run.run_id),
            sk: META.into(),
            gsi1pk: runs_index(&run.workspace_id, None, None, run.test).2,
            gsi1sk: RunPosition::of(run).as_str().to_owned(),
            gsi2pk,
            gsi3pk: runs_index(&run.workspace_id, Some(&run.workflow_id), None, run.test).2,
            gsi4pk,
            gsi5pk: due.as_ref().map(|(pk, _)| pk.clone()),
            gsi5sk: due.map(|(_, sk)| sk),
            gsi6pk: run
                .contact_id
                .as_deref()
                .map(|contact_id| contact_runs_partition(&run.workspace_id, contact_id)),
            run: run.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StepItem {
    pk: String,
    sk: String,
    run_id: String,
    step_id: String,
    action: hookflow_core::actions::ActionKind,
    status: StepStatus,
    attempt: u32,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    /// JSON text: outputs are arbitrary JSON (deeper than DynamoDB's 32 levels).
    output: Option<String>,
    /// Set instead of `output` when the output is too large for the item: the blob holding it.
    #[serde(default)]
    output_ref: Option<String>,
    error: Option<String>,
    next: Option<String>,
    retryable: bool,
    retry_after_s: Option<f64>,
    /// JSON text of the request an HTTP attempt sent (already bounded).
    #[serde(default)]
    request: Option<String>,
}

/// Outputs larger than this go to a blob: a step item must stay under
/// DynamoDB's 400 KB, or the record could never be written and the step
/// would run again on every delivery.
const MAX_INLINE_OUTPUT_BYTES: usize = 300_000;

/// `state` of a step item that is a claim, not yet a record.
pub(crate) const IN_PROGRESS: &str = "in_progress";
/// Blob chunks stay well under DynamoDB's 400 KB item limit.
const BLOB_CHUNK_BYTES: usize = 350_000;

fn is_claim(item: &Item) -> bool {
    item.get("state")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|s| s == IN_PROGRESS)
}

fn millis_attribute(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp_millis().to_string())
}

fn blob_prefix(key: &str) -> String {
    format!("BLOB#{key}#")
}

/// Splits at char boundaries into pieces of at most `max` bytes.
fn chunks(value: &str, max: usize) -> Vec<&str> {
    let mut pieces = vec![];
    let mut rest = value;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    if pieces.is_empty() {
        pieces.push("");
    }
    pieces
}

impl StepItem {
    fn from_record(record: &StepRecord) -> Result<Self, PortError> {
        Ok(Self {
            pk: format!("RUN#{}", record.run_id),
            sk: step_sk(&record.step_id, record.attempt),
            run_id: record.run_id.clone(),
            step_id: record.step_id.clone(),
            action: record.action,
            status: record.status,
            attempt: record.attempt,
            started_at: record.started_at,
            ended_at: record.ended_at,
            output: record
                .output
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| PortError::terminal("put_step", e.to_string()))?,
            output_ref: None,
            error: record.error.clone(),
            next: record.next.clone(),
            retryable: record.retryable,
            retry_after_s: record.retry_after_s,
            request: record.request.as_ref().map(serde_json::Value::to_string),
        })
    }

    fn into_record(self) -> Result<StepRecord, PortError> {
        Ok(StepRecord {
            output: self
                .output
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| decode_error("get_step", e))?,
            run_id: self.run_id,
            step_id: self.step_id,
            action: self.action,
            status: self.status,
            attempt: self.attempt,
            started_at: self.started_at,
            ended_at: self.ended_at,
            error: self.error,
            next: self.next,
            retryable: self.retryable,
            retry_after_s: self.retry_after_s,
            request: self
                .request
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| decode_error("get_step", e))?,
        })
    }
}

fn step_sk(step_id: &str, attempt: u32) -> String {
    format!("STEP#{step_id}#{attempt:05}")
}

const META: &str = "META";

impl DynamoRuns {
    /// The sort keys of a blob's chunks, in order (only exact `<prefix><4 digits>` keys:
    /// a key may itself contain `#`).
    async fn blob_chunks(&self, operation: &'static str, run_id: &str, key: &str) -> PortResult<Vec<Item>> {
        let prefix = blob_prefix(key);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(format!("RUN#{run_id}")))
            .expression_attribute_values(":prefix", s(prefix.clone()))
            .consistent_read(true);
        let mut items = vec![];
        query_pages(operation, query, |item| {
            let exact = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.strip_prefix(&prefix))
                .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()));
            if exact {
                items.push(item);
            }
            Ok(true)
        })
        .await?;
        Ok(items)
    }

    /// The record of a step item, with an output kept in a blob read back.
    async fn load_record(&self, operation: &'static str, item: StepItem) -> PortResult<StepRecord> {
        let output_ref = item.output_ref.clone();
        let mut record = item.into_record()?;
        if let Some(key) = output_ref {
            let text = self
                .get_blob(&record.run_id, &key)
                .await?
                .ok_or_else(|| PortError::retryable(operation, format!("step output {key} cannot be read yet")))?;
            record.output = Some(serde_json::from_str(&text).map_err(|e| decode_error(operation, e))?);
        }
        Ok(record)
    }

    /// Sends a status change conditioned on the current status: its output
    /// if it applied, `None` if the run is in another status, an error if the
    /// run is missing.
    async fn change_status(
        &self,
        operation: &'static str,
        run_id: &str,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> PortResult<Option<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput>> {
        match update.send().await {
            Ok(output) => Ok(Some(output)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                match self.get_run(run_id).await? {
                    Some(_) => Ok(None),
                    None => Err(PortError::terminal(operation, format!("run {run_id} does not exist"))),
                }
            }
            Err(err) => Err(port_error(operation, err)),
        }
    }

    async fn get(&self, operation: &'static str, pk: String, sk: String) -> PortResult<Option<Item>> {
        get_item(&self.client, &self.table, operation, pk, sk).await
    }

    /// The recorded attempts of a run, by time; `resolve` loads outputs kept
    /// in blobs, else they read `OUTPUT_STORED_APART`.
    async fn steps_of(&self, run_id: &str, resolve: bool) -> PortResult<Vec<StepRecord>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :step)")
            .expression_attribute_values(":pk", s(format!("RUN#{run_id}")))
            .expression_attribute_values(":step", s("STEP#"))
            .consistent_read(true);
        let mut items = vec![];
        query_pages("list_steps", query, |item| {
            if !is_claim(&item) {
                items.push(from_item::<StepItem>("list_steps", item)?);
            }
            Ok(true)
        })
        .await?;
        let mut steps = Vec::with_capacity(items.len());
        for item in items {
            let record = if resolve {
                self.load_record("list_steps", item).await?
            } else {
                let apart = item.output_ref.is_some();
                let mut record = item.into_record()?;
                if apart {
                    record.output = Some(serde_json::Value::String(OUTPUT_STORED_APART.into()));
                }
                record
            };
            steps.push(record);
        }
        // Keys sort by step id; the timeline is by time.
        steps.sort_by(|a, b| {
            a.started_at
                .cmp(&b.started_at)
                .then(a.ended_at.cmp(&b.ended_at))
                .then(a.attempt.cmp(&b.attempt))
        });
        Ok(steps)
    }

    /// The run before a status change: its workspace, workflow and test flag
    /// (which never change) name the index partitions the change moves it to.
    async fn existing_run(&self, operation: &'static str, run_id: &str) -> PortResult<RunRecord> {
        self.get_run(run_id)
            .await?
            .ok_or_else(|| PortError::terminal(operation, format!("run {run_id} does not exist")))
    }
}

#[async_trait]
impl RunLog for DynamoRuns {
    async fn create_run(&self, run: &RunRecord) -> PortResult<CreateRun> {
        let item = to_item("create_run", &RunItem::new(run))?;
        // No TTL while running (a Delay may outlast the retention): the run
        // record gets one when it ends.
        if put_if_absent(&self.client, &self.table, "create_run", item).await? {
            return Ok(CreateRun::Created);
        }
        let existing = self
            .get_run(&run.run_id)
            .await?
            .ok_or_else(|| PortError::retryable("create_run", "run exists but cannot be read yet"))?;
        Ok(CreateRun::AlreadyExists(Box::new(existing)))
    }

    async fn get_run(&self, run_id: &str) -> PortResult<Option<RunRecord>> {
        match self.get("get_run", format!("RUN#{run_id}"), META.into()).await? {
            Some(item) => Ok(Some(from_item::<RunItem>("get_run", item)?.run)),
            None => Ok(None),
        }
    }

    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<String>,
        ended_at: DateTime<Utc>,
    ) -> PortResult<bool> {
        let status_text = serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let error_value = error.map_or(AttributeValue::Null(true), AttributeValue::S);
        let run = self.existing_run("finish_run", run_id).await?;
        let (by_status, by_workflow_status) = status_partitions(&run, status);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RUN#{run_id}")))
            .key("sk", s(META))
            .expression_attribute_values(":by_status", s(by_status))
            .expression_attribute_values(":by_workflow_status", s(by_workflow_status));
        let set = "SET #status = :status, #error = :error, ended_at = :ended, \
                   gsi2pk = :by_status, gsi4pk = :by_workflow_status";
        // An ended run leaves the reaper's index.
        let remove = "REMOVE gsi5pk, gsi5sk, due_at";
        update = match self.expiry(ended_at) {
            Some(expires_at) => update
                .update_expression(format!("{set}, #ttl = :expires {remove}"))
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":expires", expires_at),
            None => update.update_expression(format!("{set} {remove}")),
        };
        let update = update
            .condition_expression("attribute_exists(pk) AND #status = :running")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":status", s(status_text))
            .expression_attribute_values(":error", error_value)
            .expression_attribute_values(":ended", rfc3339(ended_at))
            .expression_attribute_values(":running", s("running"));
        Ok(self.change_status("finish_run", run_id, update).await?.is_some())
    }

    async fn list_runs(&self, workspace_id: &str, query: &RunQuery) -> PortResult<RunPage> {
        let (index, partition_attribute, partition) =
            runs_index(workspace_id, query.workflow_id.as_deref(), query.status, query.test);
        // Text bounds around every position: `0` sorts before any year, `~`
        // after any position.
        let from = query
            .since
            .map_or("0".to_owned(), |t| RunPosition::at(&t).as_str().to_owned());
        let to = query
            .until
            .map_or("~".to_owned(), |t| RunPosition::at(&t).as_str().to_owned());
        // A cursor from before the window ends the listing; one from after
        // it starts at the window's top (DynamoDB refuses a start key
        // outside the key condition).
        let after = query.after.as_ref().filter(|after| after.as_str() < to.as_str());
        if after.is_some_and(|after| after.as_str() < from.as_str()) {
            return Ok(RunPage::default());
        }
        let start_key = after.and_then(|after| {
            let run_id = after.run_id()?;
            Some(Item::from([
                ("pk".to_owned(), s(format!("RUN#{run_id}"))),
                ("sk".to_owned(), s(META)),
                (partition_attribute.to_owned(), s(partition.clone())),
                ("gsi1sk".to_owned(), s(after.as_str())),
            ]))
        });
        let page_size = query.page_size();
        // One Query per page: one run more than the page tells whether
        // another page follows.
        let answer = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#partition = :partition AND gsi1sk BETWEEN :from AND :to")
            .expression_attribute_names("#partition", partition_attribute)
            .expression_attribute_values(":partition", s(partition))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
            .scan_index_forward(false)
            .limit(i32::try_from(page_size + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| port_error("list_runs", e))?;
        let runs = answer
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| Ok(from_item::<RunItem>("list_runs", item)?.run))
            .collect::<PortResult<Vec<_>>>()?;
        Ok(RunPage::from_lookahead(runs, page_size))
    }

    async fn put_step(&self, record: &StepRecord) -> PortResult<PutStep> {
        let mut step_item = StepItem::from_record(record)?;
        if step_item
            .output
            .as_ref()
            .is_some_and(|o| o.len() > MAX_INLINE_OUTPUT_BYTES)
        {
            // Deterministic key: a rival delivery writes the same key, and the
            // record that wins names it.
            let key = format!("out#{}#{}", record.step_id, record.attempt);
            if let Some(output) = step_item.output.take() {
                self.put_blob(&record.run_id, &key, &output).await?;
            }
            step_item.output_ref = Some(key);
        }
        let item = self.with_expiry(to_item("put_step", &step_item)?, record.ended_at);
        // The record replaces this attempt's claim, never another record.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #state = :in_progress")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS));
        if put_if("put_step", put).await? {
            return Ok(PutStep::Recorded);
        }
        let existing = self
            .get_step(&record.run_id, &record.step_id, record.attempt)
            .await?
            .ok_or_else(|| PortError::retryable("put_step", "step record exists but cannot be read yet"))?;
        Ok(PutStep::AlreadyRecorded(Box::new(existing)))
    }

    async fn get_step(&self, run_id: &str, step_id: &str, attempt: u32) -> PortResult<Option<StepRecord>> {
        match self
            .get("get_step", format!("RUN#{run_id}"), step_sk(step_id, attempt))
            .await?
        {
            Some(item) if !is_claim(&item) => Ok(Some(
                self.load_record("get_step", from_item::<StepItem>("get_step", item)?)
                    .await?,
            )),
            _ => Ok(None),
        }
    }

    async fn list_steps(&self, run_id: &str) -> PortResult<Vec<StepRecord>> {
        self.steps_of(run_id, true).await
    }

    async fn list_step_outlines(&self, run_id: &str) -> PortResult<Vec<StepRecord>> {
        self.steps_of(run_id, false).await
    }

    async fn claim_step(&self, claim: &StepClaim, now: DateTime<Utc>) -> PortResult<ClaimOutcome> {
        let item = Item::from([
            ("pk".to_owned(), s(format!("RUN#{}", claim.run_id))),
            ("sk".to_owned(), s(step_sk(&claim.step_id, claim.attempt))),
            ("state".to_owned(), s(IN_PROGRESS)),
            ("owner".to_owned(), s(claim.owner.clone())),
            ("claim_expires_at".to_owned(), millis_attribute(claim.expires_at)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.with_expiry(item, now)))
            .condition_expression("attribute_not_exists(pk) OR (#state = :in_progress AND claim_expires_at < :now)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":now", millis_attribute(now));
        if put_if("claim_step", put).await? {
            return Ok(ClaimOutcome::Acquired);
        }
        let item = self
            .get(
                "claim_step",
                format!("RUN#{}", claim.run_id),
                step_sk(&claim.step_id, claim.attempt),
            )
            .await?
            .ok_or_else(|| PortError::retryable("claim_step", "claim refused but no item found; try again"))?;
        if !is_claim(&item) {
            let recorded = self
                .load_record("claim_step", from_item::<StepItem>("claim_step", item)?)
                .await?;
            return Ok(ClaimOutcome::Completed(Box::new(recorded)));
        }
        let owner = item
            .get("owner")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let expires_at = item
            .get("claim_expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(now);
        Ok(ClaimOutcome::InProgress { owner, expires_at })
    }

    async fn put_blob(&self, run_id: &str, key: &str, value: &str) -> PortResult<()> {
        let pieces = chunks(value, BLOB_CHUNK_BYTES);
        let prefix = blob_prefix(key);
        if let [piece] = pieces.as_slice() {
            // One chunk over nothing, or over one chunk, leaves no stale chunk
            // behind: one PutItem (the usual case: a start or resume point).
            let item = Item::from([
                ("pk".to_owned(), s(format!("RUN#{run_id}"))),
                ("sk".to_owned(), s(format!("{prefix}0000"))),
                ("chunk".to_owned(), s(*piece)),
                ("chunks".to_owned(), AttributeValue::N("1".into())),
            ]);
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(self.with_expiry(item, Utc::now())))
                .condition_expression("attribute_not_exists(pk) OR chunks = :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()));
            if put_if("put_blob", put).await? {
                return Ok(());
            }
        }
        let old = self.blob_chunks("put_blob", run_id, key).await?.len();
        if old > 0 {
            // An overwrite: chunk 0 goes first, so a reader never joins old and
            // new chunks (it sees "being written" until chunk 0 is back).
            delete_item(
                &self.client,
                &self.table,
                "put_blob",
                format!("RUN#{run_id}"),
                format!("{prefix}0000"),
            )
            .await?;
        }
        // Chunk 0 last: it carries the count, so a reader never trusts a half-written blob.
        for (index, piece) in pieces.iter().enumerate().rev() {
            let mut item = Item::from([
                ("pk".to_owned(), s(format!("RUN#{run_id}"))),
                ("sk".to_owned(), s(format!("{prefix}{index:04}"))),
                ("chunk".to_owned(), s(*piece)),
            ]);
            if index == 0 {
                item.insert("chunks".into(), AttributeValue::N(pieces.len().to_string()));
            }
            self.put_expiring("put_blob", item).await?;
        }
        for index in pieces.len()..old {
            let sk = format!("{prefix}{index:04}");
            delete_item(&self.client, &self.table, "put_blob", format!("RUN#{run_id}"), sk).await?;
        }
        Ok(())
    }

    async fn get_blob(&self, run_id: &str, key: &str) -> PortResult<Option<String>> {
        let items = self.blob_chunks("get_blob", run_id, key).await?;
        let Some(first) = items.first() else {
            return Ok(None);
        };
        // Chunk 0 is written last and carries the count: without it the blob
        // is still being written.
        let expected = first
            .get("chunks")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| PortError::retryable("get_blob", format!("blob {key} is being written")))?;
        if items.len() < expected {
            return Err(PortError::retryable("get_blob", format!("blob {key} is being written")));
        }
        let mut value = String::new();
        for item in items.iter().take(expected) {
            let piece = item
                .get("chunk")
                .and_then(|v| v.as_s().ok())
                .ok_or_else(|| PortError::terminal("get_blob", format!("blob {key} has a chunk without text")))?;
            value.push_str(piece);
        }
        Ok(Some(value))
    }

    async fn reopen_run(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<Option<u32>> {
        let run = self.existing_run("reopen_run", run_id).await?;
        let (by_status, by_workflow_status) = status_partitions(&run, RunStatus::Running);
        let (due_pk, due_sk) = due_keys(run_id, due_at);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RUN#{run_id}")))
            .key("sk", s(META))
            .update_expression(
                "SET #status = :running, replays = if_not_exists(replays, :zero) + :one, \
                 gsi2pk = :by_status, gsi4pk = :by_workflow_status, \
                 due_at = :due_at, gsi5pk = :due_pk, gsi5sk = :due_sk REMOVE #error, ended_at, #ttl",
            )
            .expression_attribute_values(":due_at", rfc3339(due_at))
            .expression_attribute_values(":due_pk", s(due_pk))
            .expression_attribute_values(":due_sk", s(due_sk))
            .expression_attribute_values(":by_status", s(by_status))
            .expression_attribute_values(":by_workflow_status", s(by_workflow_status))
            // An erased run stays ended: a replay that read it before the
            // erasure must not bring it back with the context it read.
            .condition_expression("attribute_exists(pk) AND #status = :failed AND attribute_not_exists(erased_at)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let Some(updated) = self.change_status("reopen_run", run_id, update).await? else {
            return Ok(None);
        };
        // Replayed late in its retention: what the replay reads must outlive it.
        self.retain_items(run_id, due_at, updated.attributes.as_ref()).await?;
        let replays = updated
            .attributes
            .as_ref()
            .and_then(|a| a.get("replays"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| PortError::terminal("reopen_run", "the update returned no replay count"))?;
        Ok(Some(replays))
    }

    async fn extend_due(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<()> {
        let (due_pk, due_sk) = due_keys(run_id, due_at);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RUN#{run_id}")))
            .key("sk", s(META))
            .update_expression("SET due_at = :due_at, gsi5pk = :due_pk, gsi5sk = :due_sk")
            .condition_expression(
                "attribute_exists(pk) AND #status = :running AND (attribute_not_exists(gsi5sk) OR gsi5sk < :due_sk)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":due_at", rfc3339(due_at))
            .expression_attribute_values(":due_pk", s(due_pk))
            .expression_attribute_values(":due_sk", s(due_sk))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        match unless_condition_failed("extend_due", update.send().await)? {
            Some(updated) => self.retain_items(run_id, due_at, updated.attributes.as_ref()).await,
            // Ended, or due later already: nothing to move.
            None => Ok(()),
        }
    }

    async fn list_overdue(&self, cutoff: DateTime<Utc>, limit: usize) -> PortResult<Vec<String>> {
        let mut overdue: Vec<(String, String)> = vec![];
        for shard in 0..DUE_SHARDS {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(RUNS_BY_DUE)
                .key_condition_expression("gsi5pk = :shard AND gsi5sk < :cutoff")
                .expression_attribute_values(":shard", s(format!("DUE#{shard}")))
                .expression_attribute_values(":cutoff", s(due_sort_key(cutoff)))
                .limit(limit.clamp(1, 1000) as i32);
            let mut taken = 0;
            query_pages("list_overdue", query, |item| {
                let due = item
                    .get("gsi5sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if let Some(run_id) = item.get("run_id").and_then(|v| v.as_s().ok()) {
                    overdue.push((due, run_id.clone()));
                }
                taken += 1;
                Ok(taken < limit)
            })
            .await?;
        }
        overdue.sort();
        Ok(overdue.into_iter().take(limit).map(|(_, run_id)| run_id).collect())
    }

    async fn has_live_claim(&self, run_id: &str, now: DateTime<Utc>) -> PortResult<bool> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :step)")
            .filter_expression("#state = :in_progress AND claim_expires_at > :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pk", s(format!("RUN#{run_id}")))
            .expression_attribute_values(":step", s("STEP#"))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":now", millis_attribute(now))
            .projection_expression("pk")
            .consistent_read(true);
        let mut live = false;
        query_pages("has_live_claim", query, |_| {
            live = true;
            Ok(false)
        })
        .await?;
        Ok(live)
    }

    async fn mark_handed_off(&self, run_id: &str, key: &str) -> PortResult<()> {
        let item = Item::from([
            ("pk".to_owned(), s(format!("RUN#{run_id}"))),
            ("sk".to_owned(), s(format!("HANDOFF#{key}"))),
        ]);
        self.put_expiring("mark_handed_off", item).await
    }

    async fn list_contact_runs(
        &self,
        workspace_id: &str,
        contact_id: &str,
        after: Option<&RunPosition>,
        page_size: usize,
    ) -> PortResult<RunPage> {
        let partition = contact_runs_partition(workspace_id, contact_id);
        let items = contact_runs_lookahead(&self.client, &self.table, partition, after, page_size).await?;
        let more = items.len() > page_size;
        let mut runs = Vec::with_capacity(page_size);
        // The index holds keys only: each record is read (an erasure's
        // page, not a listing anyone waits on). One that expired since is
        // gone, with nothing left to erase.
        for item in items.iter().take(page_size) {
            let run_id = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix("RUN#"))
                .ok_or_else(|| PortError::terminal("list_contact_runs", "an index entry without a run key"))?;
            runs.extend(self.get_run(run_id).await?);
        }
        // From the index, not the records read: a page whose runs all
        // expired still leads on to the next.
        let next = items
            .get(page_size.saturating_sub(1))
            .filter(|_| more)
            .and_then(|item| item.get("gsi1sk")?.as_s().ok())
            .and_then(|key| RunPosition::from_sort_key(key));
        Ok(RunPage { runs, next })
    }

    async fn erase_run_data(&self, run_id: &str, at: DateTime<Utc>) -> PortResult<()> {
        erase_run_items(&self.client, &self.table, run_id, at).await
    }

    async fn handed_off(&self, run_id: &str, key: &str) -> PortResult<bool> {
        Ok(self
            .get("handed_off", format!("RUN#{run_id}"), format!("HANDOFF#{key}"))
            .await?
            .is_some())
    }
}

#[async_trait]
impl EventDedupe for DynamoRuns {
    async fn seen(&self, workspace_id: &str, identity: &str) -> PortResult<bool> {
        let Some(item) = self
            .get("dedupe_seen", format!("EVT#{workspace_id}#{identity}"), META.into())
            .await?
        else {
            return Ok(false);
        };
        // DynamoDB deletes expired items lazily (up to days later): check the time.
        let expires_at = item
            .get(TTL_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        Ok(expires_at > Utc::now().timestamp())
    }

    async fn remember(&self, workspace_id: &str, identity: &str, ttl: Duration) -> PortResult<()> {
        let expires_at = Utc::now().timestamp() + ttl.as_secs().max(1) as i64;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("EVT#{workspace_id}#{identity}")))
            .item("sk", s(META))
            .item(TTL_ATTRIBUTE, AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .map_err(|e| port_error("dedupe_remember", e))?;
        Ok(())
    }
}

/// A parked dead letter in the runs table: `DLQ#<queue>` / `<id>`.
#[derive(Serialize, Deserialize)]
struct ParkedItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    message: ParkedMessage,
    /// A body too large for the item (a trigger event takes up to 1 MiB)
    /// is a blob of the pseudo-run [`parked_blobs`], under the parked id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_ref: Option<String>,
}

/// Bodies larger than this are kept apart from their parked item.
const MAX_PARKED_INLINE_BYTES: usize = 300_000;

/// The pseudo-run whose blobs hold large parked bodies (no run id has this form).
fn parked_blobs(queue: QueueKind) -> String {
    format!("parked_{}", queue.as_str())
}

fn parked_pk(queue: QueueKind) -> String {
    format!("DLQ#{}", queue.as_str())
}

/// How many parked messages a listing reads at most before it sorts them.
const MAX_PARKED_READ: usize = 10_000;

#[async_trait]
impl DeadLetterStore for DynamoRuns {
    async fn park(&self, message: &ParkedMessage) -> PortResult<bool> {
        let mut item = ParkedItem {
            pk: parked_pk(message.queue),
            sk: message.id.clone(),
            message: message.clone(),
            body_ref: None,
        };
        if message.body.len() > MAX_PARKED_INLINE_BYTES {
            // The blob first: an item never names a body that is not there.
            self.put_blob(&parked_blobs(message.queue), &message.id, &message.body)
                .await?;
            item.message.body.clear();
            item.body_ref = Some(message.id.clone());
        }
        let item = self.with_expiry(to_item("park", &item)?, Utc::now());
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(NOT_EXISTS);
        if put_if("park", put).await? {
            return Ok(true);
        }
        // Parked before: it came back, so a redrive listing the old one must leave it.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(parked_pk(message.queue)))
            .key("sk", s(message.id.clone()))
            .update_expression("SET #at = :at, #reason = :reason, #because = :because, #count = :count")
            .expression_attribute_names("#at", "parked_at")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_names("#because", "because")
            .expression_attribute_names("#count", "receive_count")
            .expression_attribute_values(":at", parked_time(message.parked_at)?)
            .expression_attribute_values(":reason", s(message.reason.clone()))
            .expression_attribute_values(
                ":because",
                serde_dynamo::to_attribute_value(message.because)
                    .map_err(|e| PortError::terminal("park", e.to_string()))?,
            )
            .expression_attribute_values(":count", AttributeValue::N(message.receive_count.to_string()))
            .send()
            .await
            .map_err(|e| port_error("park", e))?;
        Ok(false)
    }

    async fn list_parked(&self, queue: QueueKind, limit: usize) -> PortResult<Vec<ParkedMessage>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(parked_pk(queue)));
        let mut items = vec![];
        query_pages("list_parked", query, |item| {
            items.push(from_item::<ParkedItem>("list_parked", item)?);
            Ok(items.len() < MAX_PARKED_READ)
        })
        .await?;
        items.sort_by(|a, b| (a.message.parked_at, &a.message.id).cmp(&(b.message.parked_at, &b.message.id)));
        items.truncate(limit);
        let mut parked = Vec::with_capacity(items.len());
        for mut item in items {
            if let Some(key) = &item.body_ref {
                item.message.body = self.get_blob(&parked_blobs(queue), key).await?.ok_or_else(|| {
                    PortError::retryable("list_parked", format!("parked body {key} is not readable yet"))
                })?;
            }
            parked.push(item.message);
        }
        Ok(parked)
    }

    async fn unpark(&self, queue: QueueKind, id: &str, parked_at: DateTime<Utc>) -> PortResult<()> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(parked_pk(queue)))
            .key("sk", s(id))
            .condition_expression("attribute_not_exists(pk) OR #at = :at")
            .expression_attribute_names("#at", "parked_at")
            .expression_attribute_values(":at", parked_time(parked_at)?);
        // A condition failure: parked again since it was listed, so it stays.
        unless_condition_failed("unpark", delete.send().await)?;
        Ok(())
    }
}

/// A parked message's time as its item stores it (serde's form, so the
/// conditions compare like with like).
fn parked_time(at: DateTime<Utc>) -> PortResult<AttributeValue> {
    serde_dynamo::to_attribute_value(at).map_err(|e| PortError::terminal("park", e.to_string()))
}
