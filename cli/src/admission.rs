//! `hookflow dev`'s door on the in-memory backend: ingest waits while the
//! pipeline holds more than a bound of messages, so a sender faster than
//! the workers is slowed at the door (its `202` comes later) instead of
//! filling memory with a backlog. SQS never makes a send wait; this bounds
//! a local stand-in, not the deployed stack.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookflow_core::memory::MemoryQueue;
use hookflow_core::ports::{Delivery, PortResult, Queue};

/// Messages the in-memory pipeline may hold (both queues) before ingest waits:
/// enough to keep every worker busy, and a few MiB at most.
pub const MAX_PENDING: usize = 1000;

/// The triggers queue as ingest sees it in `hookflow dev`.
pub struct Admission {
    triggers: Arc<MemoryQueue>,
    /// Every queue whose messages count against the bound.
    pipeline: Vec<Arc<MemoryQueue>>,
    max_pending: usize,
}

impl Admission {
    pub fn new(triggers: Arc<MemoryQueue>, pipeline: Vec<Arc<MemoryQueue>>, max_pending: usize) -> Self {
        Self {
            triggers,
            pipeline,
            max_pending,
        }
    }

    fn pending(&self) -> usize {
        self.pipeline.iter().map(|queue| queue.len()).sum()
    }
}

#[async_trait]
impl Queue for Admission {
    fn name(&self) -> &str {
        self.triggers.name()
    }

    async fn send(&self, body: String, delay: Duration) -> PortResult<()> {
        while self.pending() >= self.max_pending {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.triggers.send(body, delay).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        self.triggers.receive(max, wait).await
    }

    async fn ack(&self, receipt: &str) -> PortResult<()> {
        self.triggers.ack(receipt).await
    }

    async fn peek(&self, max: usize) -> PortResult<Vec<String>> {
        self.triggers.peek(max).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hookflow_core::memory::QueueSettings;

    #[tokio::test]
    async fn a_send_waits_while_the_pipeline_is_full_and_goes_once_it_drains() {
        let settings = QueueSettings {
            visibility_timeout: Duration::from_secs(60),
            max_receive_count: 5,
        };
        let triggers = Arc::new(MemoryQueue::new("triggers", settings, None));
        let steps = Arc::new(MemoryQueue::new("steps", settings, None));
        let door = Arc::new(Admission::new(
            triggers.clone(),
            vec![triggers.clone(), steps.clone()],
            2,
        ));
        door.send("one".into(), Duration::ZERO).await.unwrap();
        steps.send("busy".into(), Duration::ZERO).await.unwrap();
        let waiting = tokio::spawn({
            let door = door.clone();
            async move { door.send("two".into(), Duration::ZERO).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the pipeline holds 2 messages: the send waits");
        let busy = steps.receive(1, Duration::ZERO).await.unwrap();
        steps.ack(&busy[0].receipt).await.unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(triggers.len(), 2);
    }
}
