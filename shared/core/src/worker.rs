//! Queue consumers for long-running processes (`hookflow dev`, `--aws`).
//! Lambda needs none of this: there the SQS event source polls for us and
//! each record goes to the same [`MessageHandler`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::dead_letter::ParkedBecause;
use crate::engine::{DeadLetters, DeliveryInfo, Dispatcher, EngineError, StepExecutor};
use crate::outbound::{DeliveryOrder, WebhookDeliverer};
use crate::ports::{Delivery, Queue};

#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// `deadline`: when the invocation will be cut off, if the host knows.
    async fn handle(&self, delivery: &Delivery, deadline: Option<DateTime<Utc>>) -> Result<(), EngineError>;
}

#[async_trait]
impl MessageHandler for Dispatcher {
    async fn handle(&self, delivery: &Delivery, _deadline: Option<DateTime<Utc>>) -> Result<(), EngineError> {
        self.handle_message(&delivery.body).await.map(|_| ())
    }
}

#[async_trait]
impl MessageHandler for StepExecutor {
    async fn handle(&self, delivery: &Delivery, deadline: Option<DateTime<Utc>>) -> Result<(), EngineError> {
        let info = DeliveryInfo {
            receive_count: delivery.receive_count,
            lease_until: deadline,
        };
        self.handle_delivery(&delivery.body, info).await.map(|_| ())
    }
}

/// The steps queue's consumer: step messages go to the executor, webhook
/// delivery orders (the queue's other kind of message) to the deliverer.
pub struct StepsWork {
    pub executor: StepExecutor,
    pub deliverer: WebhookDeliverer,
}

#[async_trait]
impl MessageHandler for StepsWork {
    async fn handle(&self, delivery: &Delivery, deadline: Option<DateTime<Utc>>) -> Result<(), EngineError> {
        if !DeliveryOrder::is_order(&delivery.body) {
            return self.executor.handle(delivery, deadline).await;
        }
        let order: DeliveryOrder =
            serde_json::from_str(&delivery.body).map_err(|e| EngineError::Undecodable(e.to_string()))?;
        self.deliverer.deliver(&order.webhook_delivery).await.map(|_| ())
    }
}

/// The consumer of a dead-letter queue: every message in it is parked.
#[async_trait]
impl MessageHandler for DeadLetters {
    async fn handle(&self, delivery: &Delivery, _deadline: Option<DateTime<Utc>>) -> Result<(), EngineError> {
        let cause = format!("the {} queue's deliveries ran out", self.queue());
        self.park(delivery, ParkedBecause::DeliveriesExhausted, &cause).await
    }
}

/// Handles one delivery and decides its fate: `Ok` when the message is
/// done with (handled, or parked because no delivery could ever handle it:
/// the caller deletes it), `Err` when it must come back (a retryable error,
/// or parking failed).
pub async fn settle(
    handler: &dyn MessageHandler,
    dead_letters: &DeadLetters,
    delivery: &Delivery,
    deadline: Option<DateTime<Utc>>,
) -> Result<(), EngineError> {
    match handler.handle(delivery, deadline).await {
        Ok(()) => Ok(()),
        Err(err) if err.is_retryable() => Err(err),
        Err(err) => {
            tracing::warn!(queue = %dead_letters.queue(), receive_count = delivery.receive_count, error = %err,
                "terminal error; the message is parked instead of being delivered again");
            dead_letters
                .park(delivery, ParkedBecause::Terminal, &err.to_string())
                .await
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings {
    pub batch_size: usize,
    /// Long-poll wait; also how quickly a shutdown is noticed when idle.
    pub wait: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            wait: Duration::from_millis(500),
        }
    }
}

/// Receives and handles batches until `shutdown` turns true. A batch in
/// flight is always finished (drained) before the consumer returns. A
/// message is acknowledged once [`settle`]d; otherwise it stays on the
/// queue and is delivered again after the visibility timeout.
pub async fn consume(
    queue: Arc<dyn Queue>,
    handler: Arc<dyn MessageHandler>,
    dead_letters: Arc<DeadLetters>,
    settings: ConsumerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        let batch = tokio::select! {
            batch = queue.receive(settings.batch_size, settings.wait) => batch,
            _ = shutdown.changed() => break,
        };
        let deliveries = match batch {
            Ok(deliveries) => deliveries,
            Err(err) => {
                tracing::warn!(queue = queue.name(), error = %err, "receive failed; backing off");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut in_flight = JoinSet::new();
        for delivery in deliveries {
            let queue = queue.clone();
            let handler = handler.clone();
            let dead_letters = dead_letters.clone();
            in_flight.spawn(async move {
                match settle(handler.as_ref(), &dead_letters, &delivery, None).await {
                    Ok(()) => {
                        if let Err(err) = queue.ack(&delivery.receipt).await {
                            tracing::warn!(queue = queue.name(), error = %err, "ack failed; message will be delivered again");
                        }
                    }
                    Err(err) => tracing::warn!(
                        queue = queue.name(),
                        receive_count = delivery.receive_count,
                        retryable = err.is_retryable(),
                        error = %err,
                        "message handling failed; it will be delivered again"
                    ),
                }
            });
        }
        while let Some(joined) = in_flight.join_next().await {
            if let Err(err) = joined {
                tracing::error!(queue = queue.name(), error = %err, "message handler panicked; message will be delivered again");
            }
        }
    }
}
