//! Ingest: accepted events go to the triggers queue, each at most once per
//! event identity (`source` and `id`) within the dedupe window.

use std::sync::Arc;
use std::time::Duration;

use crate::event::TriggerEvent;
use crate::ports::{EventDedupe, Queue};

use super::EngineError;

/// How long an event id is remembered (brief §4).
pub const DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The largest trigger message: the triggers queue's `MaximumMessageSize`
/// (SQS's maximum, set in `template.yaml` and `create_resources`).
pub const MAX_TRIGGER_MESSAGE_BYTES: usize = 1024 * 1024;

pub struct Ingest {
    dedupe: Arc<dyn EventDedupe>,
    triggers: Arc<dyn Queue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReceipt {
    pub event_id: String,
    /// True when the id was seen before and nothing was enqueued.
    pub duplicate: bool,
}

impl Ingest {
    pub fn new(dedupe: Arc<dyn EventDedupe>, triggers: Arc<dyn Queue>) -> Self {
        Self { dedupe, triggers }
    }

    /// Enqueues events that were validated already. The event is enqueued
    /// before its id is remembered: a crash in between makes the sender's
    /// retry enqueue it again, and the deterministic run id absorbs that
    /// duplicate. The other order would lose the event.
    pub async fn accept(&self, events: &[TriggerEvent]) -> Result<Vec<IngestReceipt>, EngineError> {
        // Every message is built before any is sent: one too large refuses
        // the request whole, with nothing enqueued.
        let bodies = events
            .iter()
            .map(|event| {
                let body = crate::ports::message_body(event).map_err(|e| EngineError::Undecodable(e.to_string()))?;
                if body.len() > MAX_TRIGGER_MESSAGE_BYTES {
                    return Err(EngineError::EventTooLarge {
                        bytes: body.len(),
                        limit: MAX_TRIGGER_MESSAGE_BYTES,
                    });
                }
                Ok(body)
            })
            .collect::<Result<Vec<String>, EngineError>>()?;
        let mut receipts = Vec::with_capacity(events.len());
        for (event, body) in events.iter().zip(bodies) {
            let identity = event.identity();
            let duplicate = self.dedupe.seen(&event.workspaceid, &identity).await?
                || events[..receipts.len()]
                    .iter()
                    .any(|e| e.workspaceid == event.workspaceid && e.identity() == identity);
            if !duplicate {
                self.triggers.send(body, Duration::ZERO).await?;
                self.dedupe.remember(&event.workspaceid, &identity, DEDUPE_TTL).await?;
                tracing::info!(event_id = %event.id, workspace_id = %event.workspaceid, event_type = %event.event_type, "event accepted");
            } else {
                tracing::info!(event_id = %event.id, workspace_id = %event.workspaceid, "duplicate event ignored");
            }
            receipts.push(IngestReceipt {
                event_id: event.id.clone(),
                duplicate,
            });
        }
        Ok(receipts)
    }
}

/// Emitted events go through ingest like any other; an error that is not
/// a store's (an event too large) will not pass on a second try either.
#[async_trait::async_trait]
impl crate::ports::EventSink for Ingest {
    async fn emit(&self, events: &[TriggerEvent]) -> crate::ports::PortResult<()> {
        match self.accept(events).await {
            Ok(_) => Ok(()),
            Err(EngineError::Port(err)) => Err(err),
            Err(other) => Err(crate::ports::PortError::terminal("emit", other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryDedupe, MemoryQueue, QueueSettings};
    use serde_json::json;

    fn twins() -> (Ingest, Arc<MemoryQueue>) {
        let settings = QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        };
        let queue = Arc::new(MemoryQueue::new("triggers", settings, None));
        (Ingest::new(Arc::new(MemoryDedupe::default()), queue.clone()), queue)
    }

    fn event(workspace: &str, id: &str) -> TriggerEvent {
        from_source(workspace, "t", id)
    }

    fn from_source(workspace: &str, source: &str, id: &str) -> TriggerEvent {
        serde_json::from_value(
            json!({"specversion": "1.0", "id": id, "source": source, "type": "Prize.Won", "workspaceid": workspace}),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn one_id_from_two_sources_is_two_events_and_separators_cannot_collide() {
        let (ingest, queue) = twins();
        let receipts = ingest
            .accept(&[
                from_source("ws", "crm", "e1"),
                from_source("ws", "shop", "e1"),
                from_source("ws", "crm", "e1"),
                from_source("ws", "a|b", "c"),
                from_source("ws", "a", "b|c"),
            ])
            .await
            .unwrap();
        let duplicates: Vec<bool> = receipts.iter().map(|r| r.duplicate).collect();
        assert_eq!(duplicates, vec![false, false, true, false, false]);
        assert_eq!(queue.len(), 4);
    }

    #[tokio::test]
    async fn duplicates_are_per_workspace_within_and_across_requests() {
        let (ingest, queue) = twins();
        let receipts = ingest
            .accept(&[event("ws1", "e1"), event("ws2", "e1"), event("ws1", "e1")])
            .await
            .unwrap();
        let duplicates: Vec<bool> = receipts.iter().map(|r| r.duplicate).collect();
        assert_eq!(duplicates, vec![false, false, true]);
        assert_eq!(queue.len(), 2);
        let again = ingest.accept(&[event("ws2", "e1")]).await.unwrap();
        assert!(again[0].duplicate);
        assert_eq!(queue.len(), 2);
    }
}
