//! What every Hookflow Lambda function shares. Functions stay thin: `main`
//! reads [`Config`], builds clients once, and hands events to a use case.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use hookflow_core::ports::Delivery;
use hookflow_core::worker::MessageHandler;
use tracing::Instrument;

pub mod emf;

pub use emf::EmfMetrics;

/// A missing or invalid environment variable, named, so a misconfigured
/// deploy fails at init, loudly.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} is {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: &'static str,
}

pub fn required_env(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        Ok(_) => Err(ConfigError { name, problem: "empty" }),
        Err(_) => Err(ConfigError {
            name,
            problem: "not set",
        }),
    }
}

pub const WORKFLOWS_TABLE: &str = "HOOKFLOW_WORKFLOWS_TABLE";
pub const RUNS_TABLE: &str = "HOOKFLOW_RUNS_TABLE";
pub const TRIGGERS_QUEUE_URL: &str = "HOOKFLOW_TRIGGERS_QUEUE_URL";
pub const STEPS_QUEUE_URL: &str = "HOOKFLOW_STEPS_QUEUE_URL";
/// `true` lets HTTP steps call private, loopback and link-local addresses;
/// anything else (or unset) keeps them denied. Optional; set by the template's
/// `AllowPrivateNetworks` parameter.
pub const ALLOW_PRIVATE_NETWORKS: &str = "ALLOW_PRIVATE_NETWORKS";

/// The Lambda context's deadline (milliseconds since the epoch) as a time;
/// `None` when it is unset or already past (a hand-made context).
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<DateTime<Utc>> {
    i64::try_from(context.deadline)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .filter(|deadline| *deadline > Utc::now())
}

/// The run-log retention (the template's `RunLogRetentionDays`), or an
/// error naming the variable.
pub fn run_retention() -> Result<Option<std::time::Duration>, ConfigError> {
    hookflow_aws::run_retention_from_env().map_err(|problem| ConfigError {
        name: hookflow_aws::RUN_RETENTION_DAYS,
        problem,
    })
}

/// The SDK configuration from the standard AWS environment (region,
/// credentials, `AWS_ENDPOINT_URL` for emulators).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The stack's stores on the tables the template names (every function gets
/// both tables, the retention and the stack's name from the template's
/// `Globals`), counting into CloudWatch through EMF log lines.
pub fn stores(config: &aws_config::SdkConfig) -> Result<hookflow_core::wiring::Stores, ConfigError> {
    let mut stores = hookflow_aws::dynamo_stores(
        aws_sdk_dynamodb::Client::new(config),
        &required_env(WORKFLOWS_TABLE)?,
        &required_env(RUNS_TABLE)?,
        run_retention()?,
    );
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "hookflow".into());
    stores.metrics = std::sync::Arc::new(EmfMetrics::new(required_env(emf::STACK_NAME)?, function));
    Ok(stores)
}

/// JSON logs for CloudWatch Logs Insights; level from `RUST_LOG`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .without_time()
        .with_env_filter(filter)
        .init();
}

/// Hands each record of an SQS batch to `handler` and reports the failed
/// ones, so one bad message never fails (or deletes) the other nine. The
/// records run concurrently: each gets the whole invocation, so one slow
/// receiver cannot starve the rest of the batch into a timeout (which would
/// return every record to the queue, handled or not).
/// `deadline` is the invocation's (from the Lambda context): claims taken
/// while handling expire then.
pub async fn handle_sqs_batch(
    handler: &dyn MessageHandler,
    event: SqsEvent,
    deadline: Option<DateTime<Utc>>,
) -> SqsBatchResponse {
    let outcomes = futures_util::future::join_all(event.records.into_iter().map(|record| {
        let message_id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("sqs_message", message_id = %message_id);
        async move {
            // Without the count the last delivery could not be told from the
            // first, and its run would never be ended: a record without it
            // fails (SQS always sends it; an event source that does not is
            // misconfigured, and says so in the log).
            let receive_count = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|count| count.parse::<u32>().ok())
                .filter(|count| *count > 0);
            let outcome = match (record.body, receive_count) {
                (_, None) => Err(hookflow_core::EngineError::Undecodable(
                    "SQS record has no ApproximateReceiveCount attribute".into(),
                )),
                (Some(body), Some(receive_count)) => {
                    let delivery = Delivery {
                        receipt: message_id.clone(),
                        body,
                        receive_count,
                    };
                    handler.handle(&delivery, deadline).await
                }
                (None, Some(_)) => Err(hookflow_core::EngineError::Undecodable("SQS record has no body".into())),
            };
            if let Err(err) = &outcome {
                tracing::warn!(error = %err, retryable = err.is_retryable(), "message failed; SQS will redeliver it");
            }
            (message_id, outcome.is_err())
        }
        .instrument(span)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (message_id, failed) in outcomes {
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use hookflow_core::EngineError;

    struct FailOn(&'static str);

    #[async_trait]
    impl MessageHandler for FailOn {
        async fn handle(&self, delivery: &Delivery, _deadline: Option<DateTime<Utc>>) -> Result<(), EngineError> {
            if delivery.body == self.0 {
                Err(EngineError::Undecodable("bad".into()))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn only_failed_records_are_reported() {
        let count = serde_json::json!({"ApproximateReceiveCount": "1"});
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m1", "body": "good", "attributes": count}, {"messageId": "m2", "body": "bad", "attributes": count},
            {"messageId": "m3", "body": "good", "attributes": count},
            // The last delivery cannot be recognised without the count: failed, not taken as the first.
            {"messageId": "m4", "body": "good", "attributes": {}},
            {"messageId": "m5", "body": "good", "attributes": {"ApproximateReceiveCount": "zero"}}
        ]}))
        .unwrap();
        let response = handle_sqs_batch(&FailOn("bad"), event, None).await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["m2", "m4", "m5"]);
    }

    #[test]
    fn missing_config_is_named() {
        let err = required_env("HOOKFLOW_SURELY_NOT_SET_ANYWHERE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable HOOKFLOW_SURELY_NOT_SET_ANYWHERE is not set"
        );
    }
}
