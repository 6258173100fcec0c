//! What every Hookflow Lambda function shares. Functions stay thin: `main`
//! reads [`Config`], builds clients once, and hands events to a use case.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use hookflow_core::engine::DeadLetters;
use hookflow_core::ports::Delivery;
use hookflow_core::worker::{settle, MessageHandler};
use hookflow_core::EngineError;
use tracing::Instrument;

pub mod emf;
mod sdk_config;

pub use emf::EmfMetrics;
pub use sdk_config::sdk_config;

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

/// The stack's tables as the template names them (every function gets both
/// tables and the retention from the template's `Globals`). A function takes
/// from them only the stores it uses, so that it links no other: the events
/// function its dedupe, the webhook function the doors' stores, the
/// dispatcher and the step function theirs.
pub fn tables(config: &aws_types::SdkConfig) -> Result<hookflow_aws::DynamoTables, ConfigError> {
    Ok(hookflow_aws::DynamoTables::new(
        aws_sdk_dynamodb::Client::new(config),
        &required_env(WORKFLOWS_TABLE)?,
        &required_env(RUNS_TABLE)?,
        run_retention()?,
    ))
}

/// CloudWatch metrics through EMF log lines, under the stack's name.
fn emf_metrics() -> Result<std::sync::Arc<EmfMetrics>, ConfigError> {
    let stack = required_env(emf::STACK_NAME)?;
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "hookflow".into());
    Ok(std::sync::Arc::new(EmfMetrics::new(stack, function)))
}

/// The dispatcher function's stores, counting through EMF.
pub fn dispatch_stores(config: &aws_types::SdkConfig) -> Result<hookflow_core::wiring::DispatchStores, ConfigError> {
    let mut stores = tables(config)?.dispatch();
    stores.run.metrics = emf_metrics()?;
    Ok(stores)
}

/// The stack's services outside the tables: the connections' vault in
/// Secrets Manager, SES and SNS. Only the step and api functions' roles are
/// granted them.
fn stack_services(config: &aws_types::SdkConfig) -> Result<hookflow_aws::StackServices, ConfigError> {
    let stack = required_env(emf::STACK_NAME)?;
    Ok(hookflow_aws::StackServices::from_config(
        config,
        &stack,
        hookflow_aws::messaging_policy_from_env(),
    ))
}

/// The step function's stores, with the stack's services, counting
/// through EMF.
pub fn step_stores(config: &aws_types::SdkConfig) -> Result<hookflow_core::wiring::StepStores, ConfigError> {
    let mut stores = tables(config)?.steps(stack_services(config)?);
    stores.run.metrics = emf_metrics()?;
    Ok(stores)
}

/// Every store, with the stack's services, counting through EMF: for the
/// api function.
pub fn stores(config: &aws_types::SdkConfig) -> Result<hookflow_core::wiring::Stores, ConfigError> {
    let mut stores = tables(config)?.stores(stack_services(config)?);
    stores.metrics = emf_metrics()?;
    Ok(stores)
}

/// JSON logs for CloudWatch Logs Insights; level from `RUST_LOG`.
pub fn init_tracing() {
    use tracing_subscriber::util::SubscriberInitExt;
    log_subscriber(std::env::var("RUST_LOG").ok().as_deref()).init();
}

/// `rust_log` is read as a level and levels per target (`debug`,
/// `info,hookflow_core=debug`; the template sets one of four levels), and
/// anything else as `info`. Not as an `EnvFilter`, whose span and field
/// filters compile regular expressions and would link a regex engine into
/// every function.
fn log_subscriber(rust_log: Option<&str>) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::layer::SubscriberExt;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .without_time()
        // The builder caps events at INFO unless told otherwise; `filter`
        // decides instead.
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .finish()
        .with(log_filter(rust_log))
}

fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    rust_log
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// The ARN of the dead-letter queue a queue function also consumes: its
/// records are parked ([`hookflow_core::engine::DeadLetters`]).
pub const DEAD_LETTER_QUEUE_ARN: &str = "HOOKFLOW_DEAD_LETTER_QUEUE_ARN";

/// A function consuming one queue and that queue's dead-letter queue (two
/// event source mappings): records are told apart by their source ARN.
pub struct QueueConsumer<'a> {
    pub handler: &'a dyn MessageHandler,
    pub dead_letters: &'a DeadLetters,
    pub dead_letter_queue_arn: &'a str,
}

/// Hands each record of an SQS batch to its handler and reports the ones
/// that must come back ([`settle`]), so one bad message never fails (or
/// deletes) the other nine. The records run concurrently: each gets the
/// whole invocation, so one slow receiver cannot starve the rest of the
/// batch into a timeout (which would return every record to the queue,
/// handled or not). `deadline` is the invocation's (from the Lambda
/// context): claims taken while handling expire then.
pub async fn handle_sqs_batch(
    consumer: &QueueConsumer<'_>,
    event: SqsEvent,
    deadline: Option<DateTime<Utc>>,
) -> SqsBatchResponse {
    let outcomes = futures_util::future::join_all(event.records.into_iter().map(|record| {
        let message_id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("sqs_message", message_id = %message_id);
        async move {
            let dead_letter = record.event_source_arn.as_deref() == Some(consumer.dead_letter_queue_arn);
            let handler: &dyn MessageHandler = if dead_letter {
                consumer.dead_letters
            } else {
                consumer.handler
            };
            let outcome = match delivery_of(record, &message_id) {
                Ok(delivery) => settle(handler, consumer.dead_letters, &delivery, deadline).await,
                Err(err) => Err(err),
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

/// The delivery an SQS record carries. Without its receive count the last
/// delivery could not be told from the first: such a record fails (SQS
/// always sends the count; an event source that does not is misconfigured,
/// and says so in the log).
fn delivery_of(record: SqsMessage, message_id: &str) -> Result<Delivery, EngineError> {
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse::<u32>().ok())
        .filter(|count| *count > 0)
        .ok_or_else(|| EngineError::Undecodable("SQS record has no ApproximateReceiveCount attribute".into()))?;
    let body = record
        .body
        .ok_or_else(|| EngineError::Undecodable("SQS record has no body".into()))?;
    Ok(Delivery {
        receipt: message_id.to_owned(),
        body,
        receive_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_sets_the_level_and_levels_per_target() {
        use tracing::Level;
        let logs = |rust_log, target, level| log_filter(rust_log).would_enable(target, &level);
        assert!(logs(Some("debug"), "hookflow_core", Level::DEBUG));
        assert!(!logs(Some("warn"), "hookflow_core", Level::INFO));
        assert!(!logs(None, "hookflow_core", Level::DEBUG) && logs(None, "hookflow_core", Level::INFO));
        let per_target = Some("info,hookflow_core=debug");
        assert!(logs(per_target, "hookflow_core", Level::DEBUG));
        assert!(!logs(per_target, "lambda_runtime", Level::DEBUG) && logs(per_target, "lambda_runtime", Level::INFO));
        let unreadable = Some("hookflow_core[span{field=1}]=debug");
        assert!(!logs(unreadable, "hookflow_core", Level::DEBUG) && logs(unreadable, "hookflow_core", Level::INFO));
    }

    /// The subscriber itself lets through what the filter allows: the fmt
    /// builder's own cap would otherwise stop debug events.
    #[test]
    fn the_templates_debug_level_logs_debug_events() {
        let debug_logged = |rust_log| {
            tracing::subscriber::with_default(log_subscriber(rust_log), || tracing::enabled!(tracing::Level::DEBUG))
        };
        assert!(debug_logged(Some("debug")));
        assert!(!debug_logged(Some("info")));
    }
    use async_trait::async_trait;
    use hookflow_core::dead_letter::{ParkedBecause, QueueKind};
    use hookflow_core::memory::{MemoryBackend, QueueSettings};
    use hookflow_core::ports::{DeadLetterStore, PortError, SystemClock};
    use hookflow_core::EngineError;

    /// Fails "retry" retryably and "poison" terminally.
    struct Picky;

    #[async_trait]
    impl MessageHandler for Picky {
        async fn handle(&self, delivery: &Delivery, _deadline: Option<DateTime<Utc>>) -> Result<(), EngineError> {
            match delivery.body.as_str() {
                "retry" => Err(PortError::retryable("test", "throttled").into()),
                "poison" => Err(EngineError::Undecodable("bad".into())),
                _ => Ok(()),
            }
        }
    }

    const DLQ_ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:hookflow-triggers-dlq";

    #[tokio::test]
    async fn retryable_failures_come_back_and_terminal_ones_and_dead_letters_are_parked() {
        let backend = MemoryBackend::new(QueueSettings {
            visibility_timeout: std::time::Duration::from_secs(30),
            max_receive_count: 5,
        });
        let stores = hookflow_core::wiring::Stores::memory(&backend, std::sync::Arc::new(SystemClock));
        let dead_letters = stores.dead_letters(QueueKind::Triggers, backend.steps.clone());
        let consumer = QueueConsumer {
            handler: &Picky,
            dead_letters: &dead_letters,
            dead_letter_queue_arn: DLQ_ARN,
        };
        let count = serde_json::json!({"ApproximateReceiveCount": "1"});
        let source = "arn:aws:sqs:eu-west-1:123456789012:hookflow-triggers";
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m1", "body": "good", "attributes": count, "eventSourceARN": source},
            {"messageId": "m2", "body": "retry", "attributes": count, "eventSourceARN": source},
            {"messageId": "m3", "body": "poison", "attributes": count, "eventSourceARN": source},
            // The last delivery cannot be recognised without the count: failed, not taken as the first.
            {"messageId": "m4", "body": "good", "attributes": {}, "eventSourceARN": source},
            {"messageId": "m5", "body": "good", "attributes": {"ApproximateReceiveCount": "zero"}, "eventSourceARN": source},
            // Whatever its body, a dead letter is parked, not handled.
            {"messageId": "m6", "body": "retry", "attributes": {"ApproximateReceiveCount": "2"}, "eventSourceARN": DLQ_ARN}
        ]}))
        .unwrap();
        let response = handle_sqs_batch(&consumer, event, None).await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["m2", "m4", "m5"]);
        let parked = backend.dead_letters.list_parked(QueueKind::Triggers, 10).await.unwrap();
        let parked: Vec<_> = parked.iter().map(|m| (m.body.as_str(), m.because)).collect();
        assert_eq!(parked.len(), 2);
        assert!(parked.contains(&("poison", ParkedBecause::Terminal)));
        assert!(parked.contains(&("retry", ParkedBecause::DeliveriesExhausted)));
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
