//! Ingest: accepted events go to the triggers queue, each at most once per
//! event id within the dedupe window.

use std::sync::Arc;
use std::time::Duration;

use crate::event::TriggerEvent;
use crate::ports::{EventDedupe, Queue};

use super::EngineError;

/// How long an event id is remembered (brief §4).
pub const DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);

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
        let mut receipts = Vec::with_capacity(events.len());
        for event in events {
            let duplicate = self.dedupe.seen(&event.workspaceid, &event.id).await?
                || receipts.iter().any(|r: &IngestReceipt| r.event_id == event.id);
            if !duplicate {
                let body = serde_json::to_string(event).map_err(|e| EngineError::Undecodable(e.to_string()))?;
                self.triggers.send(body, Duration::ZERO).await?;
                self.dedupe.remember(&event.workspaceid, &event.id, DEDUPE_TTL).await?;
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
