//! The reaper: the last guard of "every run ends". SQS cannot be asked what
//! it holds, so each run records when its latest step message is due
//! ([`RunRecord::due_at`](crate::run::RunRecord::due_at)); a running run
//! past that by the queue's redelivery horizon, with no live claim, has no
//! message left that could move it (one was lost, or its invocations died
//! in a way the dead-letter queue never saw). The reaper ends such runs
//! `failed`, naming itself; they replay like any failed run.

use crate::outbound::FanOut;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::{Counter, Metrics, Subject};
use crate::ports::{Clock, RunLog};
use crate::run::{RunRecord, RunStatus, DUE_SLACK};

use super::handoff::{RESUME_KEY, START_KEY};
use super::EngineError;

/// The most runs one pass looks at; the next pass takes the rest.
pub const MAX_REAPED_PER_PASS: usize = 500;

pub struct Reaper {
    runs: Arc<dyn RunLog>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    /// The steps queue's redelivery horizon (visibility timeout ×
    /// `maxReceiveCount`).
    redelivery_horizon: Duration,
    /// `Run.Failed` to the webhook endpoints that receive it.
    fan_out: FanOut,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapReport {
    /// Runs ended by this pass.
    pub reaped: Vec<String>,
    /// Overdue runs left running: a claim is live, or they moved on since
    /// the index was read.
    pub spared: Vec<String>,
}

impl Reaper {
    pub fn new(
        runs: Arc<dyn RunLog>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
        redelivery_horizon: Duration,
        fan_out: FanOut,
    ) -> Self {
        Self {
            runs,
            clock,
            metrics,
            redelivery_horizon,
            fan_out,
        }
    }

    /// Runs whose latest message was due before this are stuck.
    fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let wait = chrono::Duration::from_std(self.redelivery_horizon + DUE_SLACK).unwrap_or(chrono::Duration::MAX);
        now.checked_sub_signed(wait).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// One pass over the overdue runs (at most [`MAX_REAPED_PER_PASS`]).
    pub async fn reap(&self) -> Result<ReapReport, EngineError> {
        let now = self.clock.now();
        let cutoff = self.cutoff(now);
        let mut report = ReapReport::default();
        for run_id in self.runs.list_overdue(cutoff, MAX_REAPED_PER_PASS).await? {
            // The index may lag the run: read the run itself.
            let Some(run) = self.runs.get_run(&run_id).await? else {
                continue;
            };
            let overdue = run.status == RunStatus::Running && run.due_at.is_some_and(|due| due < cutoff);
            if !overdue || self.runs.has_live_claim(&run_id, now).await? {
                report.spared.push(run_id);
                continue;
            }
            if self.end(&run, now).await? {
                report.reaped.push(run_id);
            }
        }
        if !report.reaped.is_empty() {
            tracing::warn!(
                reaped = report.reaped.len(),
                spared = report.spared.len(),
                "reaper ended stuck runs"
            );
        }
        Ok(report)
    }

    /// A reaped run replays like any failed run: without a resume point of
    /// its own, it resumes from its start point, and the replay walks its
    /// recorded steps (replayed, not acted again) to where it stopped.
    async fn keep_resumable(&self, run: &RunRecord) -> Result<(), EngineError> {
        if self.runs.get_blob(&run.run_id, RESUME_KEY).await?.is_some() {
            return Ok(());
        }
        if let Some(start) = self.runs.get_blob(&run.run_id, START_KEY).await? {
            self.runs.put_blob(&run.run_id, RESUME_KEY, &start).await?;
        }
        Ok(())
    }

    async fn end(&self, run: &RunRecord, now: DateTime<Utc>) -> Result<bool, EngineError> {
        self.keep_resumable(run).await?;
        let due = run.due_at.map_or_else(|| "?".to_owned(), |due| due.to_rfc3339());
        let reason = format!(
            "ended by the reaper: no step message could still be delivered (the latest was due at {due}; \
             a message may wait and be redelivered for {}s after that), so one was lost or its invocations \
             died unseen. Replay the run to go on",
            self.redelivery_horizon.as_secs()
        );
        self.fan_out.run_ending(run, RunStatus::Failed, Some(&reason)).await?;
        let ended = self
            .runs
            .finish_run(&run.run_id, RunStatus::Failed, Some(reason), now)
            .await?;
        if ended {
            tracing::error!(run_id = %run.run_id, workflow_id = %run.workflow_id, due = %due, "reaper ended a stuck run");
            let subject = Subject {
                workspace_id: &run.workspace_id,
                workflow_id: &run.workflow_id,
                run_id: &run.run_id,
            };
            self.metrics.count(Counter::RunsReaped, &subject);
            if !run.test {
                self.metrics.count(Counter::RunsFailed, &subject);
            }
        }
        Ok(ended)
    }
}
