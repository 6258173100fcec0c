//! Dead letters: queue messages no delivery could handle, parked in the run
//! log where operators list and redrive them (`hookflow dlq`).
//!
//! A message is parked when its handler fails terminally (on its first
//! delivery: it would fail the same way every time) and when the queue moved
//! it to its dead-letter queue (the invocations handling it kept failing or
//! dying). The dead-letter queues have consumers of their own, so their
//! depth says nothing: what operators see is the parked messages and the
//! dead-letter counter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::run::digest_id;

/// A queue with a dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// Trigger events waiting for the dispatcher.
    Triggers,
    /// Step messages carrying runs.
    Steps,
}

impl QueueKind {
    pub const ALL: [QueueKind; 2] = [QueueKind::Triggers, QueueKind::Steps];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Triggers => "triggers",
            QueueKind::Steps => "steps",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for QueueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message was parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkedBecause {
    /// Its handler failed with an error no redelivery can fix.
    Terminal,
    /// The queue moved it to the dead-letter queue after its deliveries ran
    /// out: handlers kept failing, or their invocations died (crash,
    /// timeout, out of memory) before they could answer.
    DeliveriesExhausted,
}

/// One parked message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedMessage {
    pub queue: QueueKind,
    /// A digest of the body: a message parked again (a redelivery, a
    /// duplicate send) is parked once.
    pub id: String,
    pub body: String,
    pub because: ParkedBecause,
    /// What went wrong, for people.
    pub reason: String,
    pub receive_count: u32,
    pub parked_at: DateTime<Utc>,
    /// Read from the body when it decodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl ParkedMessage {
    /// The id a message with this body is parked under.
    pub fn id_of(queue: QueueKind, body: &str) -> String {
        format!("dl_{}", digest_id(&[queue.as_str(), body]))
    }
}
