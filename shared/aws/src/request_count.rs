//! Counts the AWS requests a client makes, per service and operation, with
//! an SDK interceptor, and estimates the DynamoDB capacity units they use
//! from their sizes. The request-count tests hold Hookflow to a per-run
//! budget with it, and `make bench` prices a run from it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// What one (service, operation) cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub requests: usize,
    /// Estimated DynamoDB write capacity units (0 for other services).
    pub write_units: f64,
    /// Estimated DynamoDB read capacity units (0 for other services).
    pub read_units: f64,
    /// Items DynamoDB returned (its `Count`, or 1 for a `GetItem` hit).
    pub items_read: usize,
}

/// (service, operation) → tally.
pub type Tallies = BTreeMap<(String, String), Tally>;

/// An interceptor to install on the DynamoDB and SQS clients of a test or
/// bench; clones share their counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<Tallies>>);

impl RequestCounter {
    /// The counts so far, leaving zero behind.
    pub fn take(&self) -> Tallies {
        std::mem::take(&mut *self.tallies())
    }

    fn tallies(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// DynamoDB and SQS clients on `config` that count into this counter.
    pub fn clients(&self, config: &aws_config::SdkConfig) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
        let dynamo = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(self.clone())
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(config)
            .interceptor(self.clone())
            .build();
        (
            aws_sdk_dynamodb::Client::from_conf(dynamo),
            aws_sdk_sqs::Client::from_conf(sqs),
        )
    }
}

fn operation(config: &ConfigBag) -> Option<(String, String)> {
    let metadata = config.load::<Metadata>()?;
    Some((metadata.service().to_owned(), metadata.name().to_owned()))
}

fn is_dynamodb(service: &str) -> bool {
    service.eq_ignore_ascii_case("dynamodb")
}

/// Write units of one write request, from its JSON body: a unit per KiB of
/// each item written (its wire size stands for its stored size), once for
/// the table and once more for every index key it carries (the indexes of
/// Hookflow's tables project the whole item, but for `by_contact`, whose
/// key only a run's creation carries); twice over in a transaction.
pub fn write_units(operation: &str, body: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(body);
    let kib = (body.len() as f64 / 1024.0).ceil().max(1.0);
    let indexes = (1..=9).filter(|n| text.contains(&format!("gsi{n}pk"))).count() as f64;
    match operation {
        "PutItem" | "UpdateItem" | "DeleteItem" => kib * (1.0 + indexes),
        "TransactWriteItems" => 2.0 * kib * (1.0 + indexes),
        "BatchWriteItem" => kib * (1.0 + indexes),
        _ => 0.0,
    }
}

/// Read units of one read, from the size of its answer: a unit per 4 KiB,
/// halved for an eventually consistent read.
pub fn read_units(request_body: &[u8], response_len: usize) -> f64 {
    let consistent = String::from_utf8_lossy(request_body).contains("\"ConsistentRead\":true");
    let units = (response_len as f64 / 4096.0).ceil().max(1.0);
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// Items in a read's answer: its `Count`, or one for an `Item`.
fn items_in(answer: &[u8]) -> usize {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(answer) else {
        return 0;
    };
    match value.get("Count").and_then(serde_json::Value::as_u64) {
        Some(count) => usize::try_from(count).unwrap_or(usize::MAX),
        None => usize::from(value.get("Item").is_some()),
    }
}

fn is_read(operation: &str) -> bool {
    matches!(operation, "GetItem" | "Query" | "Scan" | "BatchGetItem")
}

/// The request body of the operation in flight, kept between the two hooks.
#[derive(Debug, Clone)]
struct SentBody(Vec<u8>);

impl aws_smithy_types::config_bag::Storable for SentBody {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    /// Once per request sent, retries included.
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(key) = operation(config) else {
            return Ok(());
        };
        let body = context.request().body().bytes().unwrap_or_default().to_vec();
        let units = if is_dynamodb(&key.0) {
            write_units(&key.1, &body)
        } else {
            0.0
        };
        let mut tallies = self.tallies();
        let tally = tallies.entry(key).or_default();
        tally.requests += 1;
        tally.write_units += units;
        drop(tallies);
        config.interceptor_state().store_put(SentBody(body));
        Ok(())
    }

    /// After deserialization, when the answer's body has been read into memory.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(key) = operation(config).filter(|(service, op)| is_dynamodb(service) && is_read(op)) else {
            return Ok(());
        };
        let sent = config.load::<SentBody>().map(|b| b.0.clone()).unwrap_or_default();
        let answer = context.response().body().bytes().unwrap_or_default();
        let mut tallies = self.tallies();
        let tally = tallies.entry(key).or_default();
        tally.read_units += read_units(&sent, answer.len());
        tally.items_read += items_in(answer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_carrying_two_index_keys_writes_three_times() {
        let body = br#"{"TableName":"t","Item":{"pk":{"S":"RUN#1"},"gsi1pk":{"S":"a"},"gsi2pk":{"S":"b"}}}"#;
        assert_eq!(write_units("PutItem", body), 3.0);
        assert_eq!(write_units("TransactWriteItems", body), 6.0);
        assert_eq!(write_units("Query", body), 0.0);
        let big = vec![b'x'; 2049];
        assert_eq!(write_units("PutItem", &big), 3.0, "a unit per started KiB");
    }

    #[test]
    fn reads_cost_half_a_unit_per_4_kib_unless_consistent() {
        assert_eq!(read_units(b"{}", 100), 0.5);
        assert_eq!(read_units(b"{}", 4097), 1.0);
        assert_eq!(read_units(br#"{"ConsistentRead":true}"#, 100), 1.0);
    }
}
