//! The use cases: ingest an event, dispatch it to workflows, execute steps.
//! Each is a struct holding only the ports it uses (which maps onto the
//! least-privilege policy of the Lambda function that runs it).

mod dispatch;
mod execute;
mod ingest;

pub use dispatch::{DispatchReport, Dispatcher, DEFAULT_MAX_DEPTH};
pub use execute::{NextMove, StepExecutor, StepReport, MAX_QUEUE_DELAY};
pub use ingest::{Ingest, IngestReceipt, DEDUPE_TTL};

use crate::ports::PortError;

/// Why handling a queue message failed. Retryable errors leave the message
/// on the queue to be delivered again; terminal ones will never succeed and
/// reach the dead-letter queue after `maxReceiveCount` deliveries.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("message body cannot be decoded: {0}")]
    Undecodable(String),
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
}

impl EngineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Port(err) => err.retryable,
            _ => false,
        }
    }
}
