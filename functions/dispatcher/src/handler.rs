use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_lambda::{handle_sqs_batch, QueueConsumer};
use lambda_runtime::{Error, LambdaEvent};

/// One batch of the triggers queue, or of its dead-letter queue.
pub async fn handle(function: &QueueConsumer<'_>, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    Ok(handle_sqs_batch(function, event.payload, None).await)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use hookflow_core::dead_letter::QueueKind;
    use hookflow_core::memory::{MemoryBackend, QueueSettings};
    use hookflow_core::ports::{Queue, RunLog, RunQuery, SubscriptionIndex, SystemClock};
    use hookflow_core::subscription::Subscription;
    use hookflow_core::WorkflowDefinition;

    use super::*;

    #[tokio::test]
    async fn the_sample_batch_starts_runs_and_parks_the_poison_message() {
        let backend = MemoryBackend::new(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        });
        let workflow =
            WorkflowDefinition::from_json(include_str!("../../../examples/workflows/score_decision.json")).unwrap();
        backend
            .subscriptions
            .put(&Subscription::for_workflow(&workflow).unwrap())
            .await
            .unwrap();
        let stores = hookflow_core::wiring::Stores::memory(&backend, Arc::new(SystemClock));
        let dispatcher = crate::wire(&stores.dispatch(), backend.steps.clone());
        let dead_letters = stores.dead_letters(QueueKind::Triggers, backend.steps.clone());
        let function = QueueConsumer {
            handler: &dispatcher,
            dead_letters: &dead_letters,
            dead_letter_queue_arn: "arn:aws:sqs:us-east-1:123456789012:hookflow-triggers-dlq",
        };
        let event: SqsEvent = serde_json::from_str(include_str!("../../../events/lambda/sqs-triggers.json")).unwrap();
        let response = handle(&function, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        let parked = backend.dead_letters.parked(QueueKind::Triggers);
        assert_eq!(
            parked.len(),
            1,
            "the poison message is parked on its first delivery: {parked:?}"
        );
        let runs = backend
            .runs
            .list_runs("ws_demo", &RunQuery::default())
            .await
            .unwrap()
            .runs;
        assert_eq!(runs.len(), 1, "the two deliveries of one event start one run");
        assert_eq!(
            backend.steps.receive(10, Duration::ZERO).await.unwrap().len(),
            1,
            "the second delivery finds the hand-off note and sends nothing again"
        );
    }
}
