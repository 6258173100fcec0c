//! The runs table's side of a contact's erasure: the `by_contact` index of
//! the runs a contact's events started, and the rewrite of one run's items
//! that keeps its ids, statuses and times and drops what it held about
//! people.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use hookflow_core::ports::{PortError, PortResult};
use hookflow_core::run::{RunPosition, ERASED};

use crate::dynamo::{delete_item, key_part, query_pages, s, unless_condition_failed, Item};
use crate::error::port_error;
use crate::resources::RUNS_BY_CONTACT;

/// The run record's sort key, the only item of a run the index lists.
const META: &str = "META";
const OP: &str = "erase_run_data";

/// The `by_contact` partition (`gsi6pk`) of a workspace's runs about one
/// contact. Both ids are free text (`#` included), so `%` and `#` are
/// escaped: no two (workspace, contact) pairs share a partition.
pub(crate) fn contact_runs_partition(workspace_id: &str, contact_id: &str) -> String {
    format!("CONTACT#{}#{}", key_part(workspace_id), key_part(contact_id))
}

/// Up to `page_size + 1` run record items of the partition, newest first,
/// after `after`: the extra one only says another page exists.
pub(crate) async fn contact_runs_lookahead(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    partition: String,
    after: Option<&RunPosition>,
    page_size: usize,
) -> PortResult<Vec<Item>> {
    let start_key = after.and_then(|after| {
        let run_id = after.run_id()?;
        Some(Item::from([
            ("pk".to_owned(), s(format!("RUN#{run_id}"))),
            ("sk".to_owned(), s(META)),
            ("gsi6pk".to_owned(), s(partition.clone())),
            ("gsi1sk".to_owned(), s(after.as_str())),
        ]))
    });
    let answer = client
        .query()
        .table_name(table)
        .index_name(RUNS_BY_CONTACT)
        .key_condition_expression("gsi6pk = :partition")
        .expression_attribute_values(":partition", s(partition))
        .scan_index_forward(false)
        .limit(i32::try_from(page_size + 1).unwrap_or(i32::MAX))
        .set_exclusive_start_key(start_key)
        .send()
        .await
        .map_err(|e| port_error("list_contact_runs", e))?;
    Ok(answer.items.unwrap_or_default())
}

/// What one item of a run's partition needs for its erasure.
enum Erasure {
    /// The run record: marked last.
    Record,
    /// A blob chunk: a start or resume point, a context, a large output.
    Delete,
    /// A recorded attempt still holding an output, a request or an error.
    Attempt { has_error: bool },
    /// Nothing left to erase: a hand-off note, a claim in progress (its
    /// delivery writes the record), an attempt erased before.
    Keep,
}

fn erasure_of(sk: &str, item: &Item) -> Erasure {
    if sk == META {
        return Erasure::Record;
    }
    if sk.starts_with("BLOB#") {
        return Erasure::Delete;
    }
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let is_claim = text("state").is_some_and(|state| state == crate::dynamo::IN_PROGRESS);
    if !sk.starts_with("STEP#") || is_claim {
        return Erasure::Keep;
    }
    let unerased_error = text("error").is_some_and(|error| error != ERASED);
    let holds_data = ["output", "output_ref", "request"]
        .iter()
        .any(|name| item.get(*name).is_some_and(|v| !v.is_null()));
    if holds_data || unerased_error {
        Erasure::Attempt {
            has_error: text("error").is_some(),
        }
    } else {
        Erasure::Keep
    }
}

/// Rewrites every item of the run (see `RunLog::erase_run_data`):
/// attempts stripped first (so none is left pointing at an output blob
/// already gone), then blob chunks deleted, then the run record marked,
/// last, so an erasure cut off half-way is seen unfinished and repeated.
pub(crate) async fn erase_run_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    at: DateTime<Utc>,
) -> PortResult<()> {
    let pk = format!("RUN#{run_id}");
    let items = run_items(client, table, &pk).await?;
    let mut record = None;
    let mut blobs = vec![];
    for (sk, item) in &items {
        match erasure_of(sk, item) {
            Erasure::Record => record = Some(item),
            Erasure::Delete => blobs.push(sk),
            Erasure::Attempt { has_error } => strip(client, table, &pk, sk, has_error).await?,
            Erasure::Keep => {}
        }
    }
    for sk in &blobs {
        delete_item(client, table, OP, pk.clone(), (*sk).clone()).await?;
    }
    match record {
        Some(record) => mark(client, table, pk, record, at).await,
        // No run record (expired, or never written): nothing to mark.
        None => Ok(()),
    }
}

/// Marks the run record erased (the first erasure's time) and erases its
/// error, unless an earlier erasure did both.
async fn mark(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    record: &Item,
    at: DateTime<Utc>,
) -> PortResult<()> {
    let error = record.get("error").and_then(|v| v.as_s().ok());
    if record.contains_key("erased_at") && error.is_none_or(|e| e == ERASED) {
        return Ok(());
    }
    let mut update = "SET erased_at = if_not_exists(erased_at, :at)".to_owned();
    if error.is_some() {
        update.push_str(", #error = :erased");
    }
    let mark = client
        .update_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(META))
        .update_expression(update)
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":at", s(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
    let mark = if error.is_some() {
        mark.expression_attribute_names("#error", "error")
            .expression_attribute_values(":erased", s(ERASED))
    } else {
        mark
    };
    // A condition failure: the record expired meanwhile.
    unless_condition_failed(OP, mark.send().await)?;
    Ok(())
}

/// Every item of the run's partition, by sort key, with what its erasure
/// looks at.
async fn run_items(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> PortResult<Vec<(String, Item)>> {
    let query = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(pk))
        .projection_expression("sk, #state, #output, #output_ref, #request, #error, erased_at")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#output", "output")
        .expression_attribute_names("#output_ref", "output_ref")
        .expression_attribute_names("#request", "request")
        .expression_attribute_names("#error", "error")
        .consistent_read(true);
    let mut items = vec![];
    query_pages(OP, query, |item| {
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| PortError::terminal(OP, "a run item without a sort key"))?;
        items.push((sk, item));
        Ok(true)
    })
    .await?;
    Ok(items)
}

/// Strips one attempt item of its output and request, and erases its
/// error if it has one, if the item is still there.
async fn strip(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, sk: &str, has_error: bool) -> PortResult<()> {
    // Every name goes through `#`: `request` is a reserved word.
    let mut update = "REMOVE #output, #output_ref, #request".to_owned();
    if has_error {
        update = format!("SET #error = :erased {update}");
    }
    let mut request = client
        .update_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .update_expression(update)
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#output", "output")
        .expression_attribute_names("#output_ref", "output_ref")
        .expression_attribute_names("#request", "request");
    if has_error {
        request = request
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":erased", AttributeValue::S(ERASED.to_owned()));
    }
    // A condition failure: the attempt expired meanwhile, nothing to erase.
    unless_condition_failed(OP, request.send().await)?;
    Ok(())
}
