//! Operator's tools: move dead letters back to their queue, and replay a
//! failed run from the step where it stopped.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::ports::{PortError, Queue, RunLog};
use crate::run::{RunStatus, StepMessage};

use super::handoff::{send_step, RESUME_KEY};
use super::EngineError;

/// Moves up to `max` messages from `dead_letters` back to `source`; returns
/// how many moved. Each is sent before it is deleted, so a crash in between
/// duplicates a message (absorbed downstream) and never loses one.
pub async fn redrive(dead_letters: &dyn Queue, source: &dyn Queue, max: usize) -> Result<usize, PortError> {
    let mut moved = 0;
    while moved < max {
        let batch = dead_letters.receive((max - moved).min(10), Duration::ZERO).await?;
        if batch.is_empty() {
            break;
        }
        for delivery in batch {
            source.send(delivery.body, Duration::ZERO).await?;
            dead_letters.ack(&delivery.receipt).await?;
            moved += 1;
        }
    }
    Ok(moved)
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("run {0} does not exist")]
    RunNotFound(String),
    #[error("run {run_id} is {status}; only failed runs can be replayed")]
    NotFailed { run_id: String, status: String },
    #[error("run {0} has no resume point (it failed before resume points were recorded)")]
    NoResumePoint(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What a replay sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub run_id: String,
    pub step_id: String,
    /// A fresh attempt number, so the failed attempts stay in the run log.
    pub attempt: u32,
}

pub struct Recovery {
    runs: Arc<dyn RunLog>,
    steps: Arc<dyn Queue>,
}

impl Recovery {
    pub fn new(runs: Arc<dyn RunLog>, steps: Arc<dyn Queue>) -> Self {
        Self { runs, steps }
    }

    /// Re-executes a failed run from its failed step, with the context the
    /// step had when it failed.
    pub async fn replay(&self, run_id: &str) -> Result<Replayed, RecoveryError> {
        let run = self
            .runs
            .get_run(run_id)
            .await?
            .ok_or_else(|| RecoveryError::RunNotFound(run_id.to_owned()))?;
        if run.status != RunStatus::Failed {
            return Err(RecoveryError::NotFailed {
                run_id: run_id.to_owned(),
                status: format!("{:?}", run.status).to_lowercase(),
            });
        }
        let resume = self
            .runs
            .get_blob(run_id, RESUME_KEY)
            .await?
            .ok_or_else(|| RecoveryError::NoResumePoint(run_id.to_owned()))?;
        let mut message: StepMessage =
            serde_json::from_str(&resume).map_err(|e| EngineError::Undecodable(e.to_string()))?;
        let attempts_so_far = self
            .runs
            .list_steps(run_id)
            .await?
            .iter()
            .filter(|s| s.step_id == message.step_id)
            .map(|s| s.attempt)
            .max()
            .unwrap_or(0);
        message.attempt = message.attempt.max(attempts_so_far) + 1;
        message.resume_at = None;
        let Some(replays) = self.runs.reopen_run(run_id).await? else {
            // Someone else reopened (or it was never failed): do not send twice.
            let status = self.runs.get_run(run_id).await?.map(|r| r.status);
            return Err(RecoveryError::NotFailed {
                run_id: run_id.to_owned(),
                status: format!("{status:?}").to_lowercase(),
            });
        };
        // Messages of the earlier attempts still in flight are now stale.
        message.replay = replays;
        let replayed = Replayed {
            run_id: run_id.to_owned(),
            step_id: message.step_id.clone(),
            attempt: message.attempt,
        };
        if let Err(err) = send_step(self.runs.as_ref(), self.steps.as_ref(), message, Duration::ZERO).await {
            // Nothing was sent: put the run back as it was, so it can be replayed again.
            let restored = self
                .runs
                .finish_run(
                    run_id,
                    RunStatus::Failed,
                    run.error.clone(),
                    run.ended_at.unwrap_or_else(Utc::now),
                )
                .await;
            if let Err(restore) = restored {
                tracing::error!(run_id, error = %restore, "replay could not send and could not restore the failed run");
            }
            return Err(err.into());
        }
        tracing::info!(run_id, step_id = %replayed.step_id, attempt = replayed.attempt, "run replayed");
        Ok(replayed)
    }
}
