//! The use cases: ingest an event, dispatch it to workflows, execute steps.
//! Each is a struct holding only the ports it uses (which maps onto the
//! least-privilege policy of the Lambda function that runs it).

mod dead_letters;
mod dispatch;
mod dry_run;
mod execute;
mod handoff;
mod ingest;
mod reaper;
mod recovery;

pub use dead_letters::{DeadLetters, LeftParked, ParkedRedrive, RedriveTo, MAX_PARKED_BATCH};
pub use dispatch::{DispatchReport, Dispatcher, DEFAULT_MAX_DEPTH};
pub use dry_run::{dry_run, DryRun, DryStatus, DryStep, RenderedRequest, MAX_DRY_RUN_STEPS};
pub use execute::{DeliveryInfo, DeliveryLimits, NextMove, StepExecutor, StepReport, MAX_QUEUE_DELAY};
pub use handoff::{MAX_INLINE_MESSAGE_BYTES, RESUME_KEY, START_KEY};
pub use ingest::{Ingest, IngestReceipt, DEDUPE_TTL, MAX_TRIGGER_MESSAGE_BYTES};
pub use reaper::{ReapReport, Reaper, MAX_REAPED_PER_PASS};
pub use recovery::{
    redrive, BulkReplay, BulkReplayReport, Recovery, RecoveryError, ReplayFrom, Replayed, Skipped, MAX_BULK_REPLAY,
};

use crate::ports::PortError;

/// Why handling a queue message failed. Retryable errors leave the message
/// on the queue to be delivered again (until the queue dead-letters it);
/// terminal ones will never succeed, so the message is parked as a dead
/// letter on the delivery that met it ([`crate::worker::settle`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("message body cannot be decoded: {0}")]
    Undecodable(String),
    /// The event's queue message would be over what the triggers queue takes.
    #[error("the event is {bytes} bytes as a queue message, over the limit of {limit}")]
    EventTooLarge { bytes: usize, limit: usize },
    #[error("workflow {workflow_id} version {version} does not exist in workspace {workspace_id}")]
    WorkflowVersionMissing {
        workspace_id: String,
        workflow_id: String,
        version: u32,
    },
    #[error("step {step_id} does not exist in workflow {workflow_id} version {version}")]
    StepMissing {
        workflow_id: String,
        version: u32,
        step_id: String,
    },
    #[error("run {0} does not exist")]
    RunMissing(String),
    #[error("run {run_id} is not reopened for replay {replay} yet")]
    ReplayPending { run_id: String, replay: u32 },
    #[error("the context of run {run_id} is missing from the run log (key {key})")]
    ContextMissing { run_id: String, key: String },
    /// Another delivery of the same step is executing it; this one comes back
    /// after the visibility timeout and replays the recorded outcome.
    #[error(
        "step {step_id} attempt {attempt} is in progress in another delivery (claim held by {owner} until {until})"
    )]
    StepInProgress {
        step_id: String,
        attempt: u32,
        owner: String,
        until: chrono::DateTime<chrono::Utc>,
    },
    /// Another delivery is making this webhook attempt; this one comes back
    /// after the visibility timeout.
    #[error("webhook message {message_id} attempt {attempt} is in progress in another delivery (until {until})")]
    DeliveryInProgress {
        message_id: String,
        attempt: u32,
        until: chrono::DateTime<chrono::Utc>,
    },
}

impl EngineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Port(err) => err.retryable,
            EngineError::StepInProgress { .. }
            | EngineError::ReplayPending { .. }
            | EngineError::DeliveryInProgress { .. } => true,
            _ => false,
        }
    }
}
