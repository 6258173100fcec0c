//! The runs table's side of a contact's erasure: the `by_contact` index of
//! the runs a contact's events started, and the rewrite of one run's items
//! that keeps its ids, statuses and times and drops what it held about
//! people.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use hookflow_core::ports::{PortError, PortResult};
use hookflow_core::run::{RunPosition, ERASED};

use crate::dynamo::{delete_item, query_pages, s, unless_condition_failed, Item};
use crate::error::port_error;
use crate::resources::RUNS_BY_CONTACT;

/// The run record's sort key, the only item of a run the index lists.
const META: &str = "META";

/// The `by_contact` partition (`gsi6pk`) of a workspace's runs about one
/// contact. Both ids are free text (`#` included), so `%` and `#` are
/// escaped: no two (workspace, contact) pairs share a partition.
pub(crate) fn contact_runs_partition(workspace_id: &str, contact_id: &str) -> String {
    let escape = |part: &str| part.replace('%', "%25").replace('#', "%23");
    format!("CONTACT#{}#{}", escape(workspace_id), escape(contact_id))
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
    /// A blob chunk: a start or resume point, a context, a large output.
    Delete,
    /// A recorded attempt still holding an output, a request or an error.
    Attempt { has_error: bool },
    /// Nothing left to erase: a hand-off note, a claim in progress (its
    /// delivery writes the record), an attempt erased before.
    Keep,
}

fn erasure_of(sk: &str, item: &Item) -> Erasure {
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

/// Rewrites every item of the run (see `RunLog::erase_run_data`): blob
/// chunks deleted, attempts stripped, then the run record marked, last, so
/// an erasure cut off half-way is seen unfinished and repeated whole.
pub(crate) async fn erase_run_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    run_id: &str,
    at: DateTime<Utc>,
) -> PortResult<()> {
    const OP: &str = "erase_run_data";
    let pk = format!("RUN#{run_id}");
    let query = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(pk.clone()))
        .projection_expression("sk, #state, #output, #output_ref, #request, #error")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#output", "output")
        .expression_attribute_names("#output_ref", "output_ref")
        .expression_attribute_names("#request", "request")
        .expression_attribute_names("#error", "error")
        .consistent_read(true);
    let mut items = vec![];
    query_pages(OP, query, |item| {
        items.push(item);
        Ok(true)
    })
    .await?;
    let mut record_has_error = false;
    for item in &items {
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| PortError::terminal(OP, "a run item without a sort key"))?;
        if sk == META {
            record_has_error = item.get("error").is_some_and(|v| !v.is_null());
            continue;
        }
        match erasure_of(sk, item) {
            Erasure::Delete => delete_item(client, table, OP, pk.clone(), sk.clone()).await?,
            Erasure::Attempt { has_error } => {
                // Every name goes through `#`: `request` is a reserved word.
                let mut update = "REMOVE #output, #output_ref, #request".to_owned();
                if has_error {
                    update = format!("SET #error = :erased {update}");
                }
                strip(client, table, &pk, sk, &update).await?;
            }
            Erasure::Keep => {}
        }
    }
    let mut update = "SET erased_at = if_not_exists(erased_at, :at)".to_owned();
    if record_has_error {
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
    let mark = if record_has_error {
        mark.expression_attribute_names("#error", "error")
            .expression_attribute_values(":erased", s(ERASED))
    } else {
        mark
    };
    // A condition failure: no run record (expired, or never written).
    unless_condition_failed(OP, mark.send().await)?;
    Ok(())
}

/// Applies `update` to one attempt item, if it is still there.
async fn strip(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, sk: &str, update: &str) -> PortResult<()> {
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
    if update.contains(":erased") {
        request = request
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":erased", AttributeValue::S(ERASED.to_owned()));
    }
    // A condition failure: the attempt expired meanwhile, nothing to erase.
    unless_condition_failed("erase_run_data", request.send().await)?;
    Ok(())
}
