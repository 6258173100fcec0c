//! On-call tools: move dead letters back to their queue; replay a failed
//! run from the step where it stopped or from the start, one run or many by
//! filter; cancel a running run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::{Counter, Metrics, Subject};
use crate::ports::{collect_runs, ClaimOutcome, Clock, CreateRun, PortError, Queue, RunLog, RunQuery, StepClaim};
use crate::run::{digest_id, RunRecord, RunStatus, StepMessage, StepRecord, StepStatus};

use super::handoff::{hand_off, resolve_context, save_start_point, send_step, Encoded, RESUME_KEY, START_KEY};
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
    NotFailed { run_id: String, status: RunStatus },
    #[error("run {run_id} is {status}; only running runs can be cancelled")]
    NotRunning { run_id: String, status: RunStatus },
    #[error("run {0} has no resume point (it failed before resume points were recorded)")]
    NoResumePoint(String),
    #[error("run {0} has no start point (it started before start points were recorded)")]
    NoStartPoint(String),
    #[error("run {0} cannot be replayed: its data was erased with its contact")]
    Erased(String),
    #[error("run {run_id} was already replayed from the start under this request: run {replay_id}")]
    AlreadyReplayed { run_id: String, replay_id: String },
    #[error("a bulk replay with this idempotency key is still in progress; try again after {0}")]
    BulkInProgress(DateTime<Utc>),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl RecoveryError {
    /// Whether the same request may succeed later unchanged.
    pub fn is_retryable(&self) -> bool {
        match self {
            RecoveryError::BulkInProgress(_) => true,
            RecoveryError::Engine(err) => err.is_retryable(),
            RecoveryError::Port(err) => err.retryable,
            _ => false,
        }
    }
}

/// Where a replay starts again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayFrom {
    /// The same run, from the step where it failed, with the context that
    /// step had.
    #[default]
    FailedStep,
    /// A new run (`replay_of` names the failed one) from the first step, on
    /// the trigger event the failed run started from.
    Start,
}

/// What a replay sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The run that goes on: the failed run itself, or the new run of a
    /// replay from the start.
    pub run_id: String,
    pub step_id: String,
    /// A fresh attempt number, so the failed attempts stay in the run log;
    /// or, when the step had succeeded, that attempt (replayed, not run again).
    pub attempt: u32,
    /// A replay from the start: the failed run it replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

/// The most runs one bulk replay touches.
pub const MAX_BULK_REPLAY: usize = 1000;

/// A bulk replay: which runs (a workflow, a status, a window) and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkReplay {
    pub workspace_id: String,
    pub workflow_id: Option<String>,
    pub status: RunStatus,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub from: ReplayFrom,
    /// At most this many runs (1 to [`MAX_BULK_REPLAY`]).
    pub limit: usize,
    /// The caller's `Idempotency-Key`: the same key replays nothing more
    /// and answers the first call's report again.
    pub idempotency_key: String,
}

/// A run a bulk replay left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub run_id: String,
    pub reason: String,
}

/// What a bulk replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkReplayReport {
    pub replayed: Vec<Replayed>,
    pub skipped: Vec<Skipped>,
    /// More runs matched than the limit: call again with another key.
    pub truncated: bool,
    /// This answer is the stored report of an earlier call with the same key.
    #[serde(default)]
    pub repeated: bool,
}

/// A bulk replay's idempotency record lives in the run log like a step
/// attempt (claim, then record) of a run of its own that no real run id
/// can name: the same conditional writes that keep steps once keep it once.
const BULK_STEP: &str = "bulk_replay";
/// How long a bulk replay may hold its key before another call may redo it:
/// past the api function's 30 s timeout. A call cut off by the timeout is
/// finished by the next call with the key: the runs it replayed are no
/// longer failed, so the filter no longer matches them.
const BULK_CLAIM: chrono::Duration = chrono::Duration::minutes(2);
/// How long a replay's message waits before delivery: time for the reopen
/// that follows the send to land.
const REPLAY_HOLD: Duration = Duration::from_secs(1);
/// Replays in flight at once within a bulk replay.
const BULK_CONCURRENCY: usize = 16;

fn bulk_record_id(workspace_id: &str, key: &str) -> String {
    format!("bulk_{}", digest_id(&[workspace_id, key]))
}

pub struct Recovery {
    runs: Arc<dyn RunLog>,
    steps: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
}

impl Recovery {
    /// Puts a webhook delivery order back on the steps queue as it was
    /// (a redrive: the deliverer skips what was done since).
    pub async fn requeue_order(&self, body: String) -> Result<(), RecoveryError> {
        self.steps.send(body, std::time::Duration::ZERO).await?;
        Ok(())
    }

    pub fn new(runs: Arc<dyn RunLog>, steps: Arc<dyn Queue>, clock: Arc<dyn Clock>, metrics: Arc<dyn Metrics>) -> Self {
        Self {
            runs,
            steps,
            clock,
            metrics,
        }
    }

    async fn run_of(&self, workspace_id: &str, run_id: &str) -> Result<RunRecord, RecoveryError> {
        self.runs
            .get_run(run_id)
            .await?
            // Another workspace's run is reported missing, not forbidden.
            .filter(|run| run.workspace_id == workspace_id)
            .ok_or_else(|| RecoveryError::RunNotFound(run_id.to_owned()))
    }

    /// Replays a failed run of `workspace_id`. From the start, the caller's
    /// `idempotency_key` names the new run: the same key starts it once.
    pub async fn replay(
        &self,
        workspace_id: &str,
        run_id: &str,
        from: ReplayFrom,
        idempotency_key: Option<&str>,
    ) -> Result<Replayed, RecoveryError> {
        let run = self.run_of(workspace_id, run_id).await?;
        let token = idempotency_key.map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned);
        self.replay_run(run, from, &token).await
    }

    /// Replays `run` from where `from` says; from the start, `token` names
    /// the new run. A run whose data was erased has nothing to replay with.
    async fn replay_run(&self, run: RunRecord, from: ReplayFrom, token: &str) -> Result<Replayed, RecoveryError> {
        if run.erased_at.is_some() {
            return Err(RecoveryError::Erased(run.run_id));
        }
        match from {
            ReplayFrom::FailedStep => self.replay_failed_step(run).await,
            ReplayFrom::Start => self.replay_from_start(run, token).await,
        }
    }

    /// Re-executes a failed run from its failed step, with the context the
    /// step had when it failed.
    async fn replay_failed_step(&self, run: RunRecord) -> Result<Replayed, RecoveryError> {
        let run_id = run.run_id.as_str();
        if run.status != RunStatus::Failed {
            return Err(RecoveryError::NotFailed {
                run_id: run_id.to_owned(),
                status: run.status,
            });
        }
        let resume = self
            .runs
            .get_blob(run_id, RESUME_KEY)
            .await?
            .ok_or_else(|| RecoveryError::NoResumePoint(run_id.to_owned()))?;
        let mut message = decode_message(&resume)?;
        let attempts = self.runs.list_step_outlines(run_id).await?;
        let attempts: Vec<&StepRecord> = attempts.iter().filter(|s| s.step_id == message.step_id).collect();
        message.attempt = match attempts.iter().find(|s| s.status == StepStatus::Succeeded) {
            // The step had succeeded (its run was ended by a parked
            // duplicate, or its hand-off never went out): the replay walks
            // on from its record instead of acting again.
            Some(succeeded) => succeeded.attempt,
            None => {
                message
                    .attempt
                    .max(attempts.iter().map(|s| s.attempt).max().unwrap_or(0))
                    + 1
            }
        };
        message.resume_at = None;
        // The message goes first, marked with the replay it belongs to and
        // held back a moment; the reopen follows. Until the reopen lands the
        // executor answers it `ReplayPending` (redelivered), so a replay cut
        // off in between leaves the run failed with a message that dead-letters,
        // never a running run with nothing queued.
        message.replay = run.replays + 1;
        let replayed = Replayed {
            run_id: run_id.to_owned(),
            step_id: message.step_id.clone(),
            attempt: message.attempt,
            replay_of: None,
        };
        send_step(
            self.runs.as_ref(),
            self.steps.as_ref(),
            Encoded::new(message.clone())?,
            REPLAY_HOLD,
        )
        .await?;
        let due_at = self.clock.now() + chrono::Duration::from_std(REPLAY_HOLD).unwrap_or_default();
        let Some(replays) = self.runs.reopen_run(run_id, due_at).await? else {
            // Someone else reopened it: their message carries the same
            // attempt and replay, and the step claim absorbs ours. Or the
            // contact was erased since our read: the message sent finds the
            // run erased and is ignored.
            let now = self.runs.get_run(run_id).await?;
            if now.as_ref().is_some_and(|r| r.erased_at.is_some()) {
                return Err(RecoveryError::Erased(run_id.to_owned()));
            }
            let status = now.map_or(RunStatus::Running, |r| r.status);
            return Err(RecoveryError::NotFailed {
                run_id: run_id.to_owned(),
                status,
            });
        };
        if replays != message.replay {
            // Replayed and failed again between our read and our reopen: the
            // message sent is stale for this replay; send it again as this one.
            message.replay = replays;
            send_step(
                self.runs.as_ref(),
                self.steps.as_ref(),
                Encoded::new(message)?,
                Duration::ZERO,
            )
            .await?;
        }
        tracing::info!(run_id, step_id = %replayed.step_id, attempt = replayed.attempt, "run replayed");
        Ok(replayed)
    }

    /// Starts a new run on the failed (or cancelled) run's trigger event and
    /// version. Its id is a function of the failed run and `token`, so the
    /// same token (a bulk replay's idempotency key) never starts two.
    async fn replay_from_start(&self, run: RunRecord, token: &str) -> Result<Replayed, RecoveryError> {
        if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(RecoveryError::NotFailed {
                run_id: run.run_id.clone(),
                status: run.status,
            });
        }
        let start = self
            .runs
            .get_blob(&run.run_id, START_KEY)
            .await?
            .ok_or_else(|| RecoveryError::NoStartPoint(run.run_id.clone()))?;
        let mut message = decode_message(&start)?;
        // The context may sit in the failed run's log; the new run stores its own.
        resolve_context(self.runs.as_ref(), &mut message).await?;
        let replay_id = format!("run_{}", digest_id(&["replay", &run.run_id, token]));
        let replay = RunRecord {
            run_id: replay_id.clone(),
            status: RunStatus::Running,
            started_at: self.clock.now(),
            ended_at: None,
            error: None,
            replays: 0,
            replay_of: Some(run.run_id.clone()),
            due_at: Some(self.clock.now()),
            ..run.clone()
        };
        message.run_id = replay_id.clone();
        message.attempt = 1;
        message.replay = 0;
        message.resume_at = None;
        if let Some(run_context) = message.context.get_mut("run").and_then(Value::as_object_mut) {
            run_context.insert("id".into(), Value::String(replay_id.clone()));
        }
        let replayed = Replayed {
            run_id: replay_id.clone(),
            step_id: message.step_id.clone(),
            attempt: 1,
            replay_of: Some(run.run_id.clone()),
        };
        if let CreateRun::AlreadyExists(existing) = self.runs.create_run(&replay).await? {
            // The same token again. If the call that created the run was cut
            // off before its first step went out, this one sends it (once:
            // the hand-off note says whether it was sent).
            if existing.status == RunStatus::Running {
                let message = save_start_point(self.runs.as_ref(), message).await?;
                hand_off(self.runs.as_ref(), self.steps.as_ref(), message, Duration::ZERO, true).await?;
            }
            return Err(RecoveryError::AlreadyReplayed {
                run_id: run.run_id,
                replay_id,
            });
        }
        if !replay.test {
            let subject = Subject {
                workspace_id: &replay.workspace_id,
                workflow_id: &replay.workflow_id,
                run_id: &replay_id,
            };
            self.metrics.count(Counter::RunsStarted, &subject);
        }
        let message = save_start_point(self.runs.as_ref(), message).await?;
        if let Err(err) = hand_off(self.runs.as_ref(), self.steps.as_ref(), message, Duration::ZERO, false).await {
            // Nothing moves a run whose first step was never sent: end it.
            let reason = format!("the first step could not be sent: {err}");
            if let Err(finish) = self
                .runs
                .finish_run(&replay_id, RunStatus::Failed, Some(reason), self.clock.now())
                .await
            {
                tracing::error!(run_id = %replay_id, error = %finish, "replay left running: its first step was not sent");
            }
            return Err(err.into());
        }
        tracing::info!(run_id = %replay_id, replay_of = %run.run_id, "run replayed from the start");
        Ok(replayed)
    }

    /// Cancels a running run (also one waiting in a `Delay`): its next
    /// message sees `cancelled` and is acknowledged without running anything.
    pub async fn cancel(&self, workspace_id: &str, run_id: &str) -> Result<RunRecord, RecoveryError> {
        let run = self.run_of(workspace_id, run_id).await?;
        let not_running = |status| RecoveryError::NotRunning {
            run_id: run_id.to_owned(),
            status,
        };
        if run.status != RunStatus::Running {
            return Err(not_running(run.status));
        }
        let reason = Some("cancelled by an operator".to_owned());
        if !self
            .runs
            .finish_run(run_id, RunStatus::Cancelled, reason, self.clock.now())
            .await?
        {
            let status = self.runs.get_run(run_id).await?.map_or(run.status, |r| r.status);
            return Err(not_running(status));
        }
        tracing::info!(run_id, "run cancelled");
        if !run.test {
            let subject = Subject {
                workspace_id: &run.workspace_id,
                workflow_id: &run.workflow_id,
                run_id,
            };
            self.metrics.count(Counter::RunsCancelled, &subject);
        }
        self.run_of(workspace_id, run_id).await
    }

    /// Replays every run that matches, up to the limit, once per
    /// idempotency key: a second call with the key answers the first call's
    /// report and replays nothing more.
    pub async fn bulk_replay(&self, request: &BulkReplay) -> Result<BulkReplayReport, RecoveryError> {
        let record_id = bulk_record_id(&request.workspace_id, &request.idempotency_key);
        let now = self.clock.now();
        let claim = StepClaim {
            run_id: record_id.clone(),
            step_id: BULK_STEP.into(),
            attempt: 1,
            owner: ulid::Ulid::new().to_string(),
            expires_at: now + BULK_CLAIM,
        };
        match self.runs.claim_step(&claim, now).await? {
            ClaimOutcome::Acquired => {}
            ClaimOutcome::InProgress { expires_at, .. } => return Err(RecoveryError::BulkInProgress(expires_at)),
            ClaimOutcome::Completed(record) => {
                let mut report: BulkReplayReport = record
                    .output
                    .and_then(|output| serde_json::from_value(output).ok())
                    .ok_or_else(|| EngineError::Undecodable("a stored bulk replay report".into()))?;
                report.repeated = true;
                return Ok(report);
            }
        }
        let report = self.replay_matching(request).await?;
        let output = serde_json::to_value(&report).map_err(|e| EngineError::Undecodable(e.to_string()))?;
        self.runs
            .put_step(&StepRecord {
                run_id: record_id,
                step_id: BULK_STEP.into(),
                action: crate::actions::ActionKind::BulkReplay,
                status: StepStatus::Succeeded,
                attempt: 1,
                started_at: now,
                ended_at: self.clock.now(),
                output: Some(output),
                error: None,
                next: None,
                retryable: false,
                retry_after_s: None,
                request: None,
            })
            .await?;
        tracing::info!(
            replayed = report.replayed.len(),
            skipped = report.skipped.len(),
            "bulk replay done"
        );
        Ok(report)
    }

    async fn replay_matching(&self, request: &BulkReplay) -> Result<BulkReplayReport, RecoveryError> {
        let limit = request.limit.clamp(1, MAX_BULK_REPLAY);
        let query = RunQuery {
            workflow_id: request.workflow_id.clone(),
            status: Some(request.status),
            since: request.since,
            until: request.until,
            ..RunQuery::default()
        };
        // One run more than the limit tells whether the limit cut the list.
        let mut matching = collect_runs(self.runs.as_ref(), &request.workspace_id, &query, limit + 1).await?;
        let truncated = matching.len() > limit;
        matching.truncate(limit);
        let mut report = BulkReplayReport {
            truncated,
            ..BulkReplayReport::default()
        };
        // A few at a time: a thousand replays one after another would outlast
        // the API's 30 s, and each is a handful of small writes.
        let outcomes: Vec<(String, Result<Replayed, RecoveryError>)> = futures_util::stream::iter(matching)
            .map(|run| async move {
                let run_id = run.run_id.clone();
                let outcome = self.replay_run(run, request.from, &request.idempotency_key).await;
                (run_id, outcome)
            })
            .buffered(BULK_CONCURRENCY)
            .collect()
            .await;
        for (run_id, outcome) in outcomes {
            match outcome {
                Ok(replayed) => report.replayed.push(replayed),
                Err(err) if err.is_retryable() => return Err(err),
                Err(err) => report.skipped.push(Skipped {
                    run_id,
                    reason: err.to_string(),
                }),
            }
        }
        Ok(report)
    }
}

fn decode_message(text: &str) -> Result<StepMessage, EngineError> {
    serde_json::from_str(text).map_err(|e| EngineError::Undecodable(e.to_string()))
}
