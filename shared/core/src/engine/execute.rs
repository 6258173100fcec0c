//! Step execution: run one side-effecting step, then every pure step after
//! it inline, record each attempt once, and hand the run on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::actions::{ActionCall, ActionPorts, FailureClass, Outcome, Performed};
use crate::metrics::{Counter, Metrics, Subject};
use crate::outbound::FanOut;
use crate::ports::{ClaimOutcome, Clock, PutStep, Queue, RunLog, StepClaim, WorkflowStore};
use crate::redact::Secrets;
use crate::retry::RetryPolicy;
use crate::run::{jitter_seed, RunRecord, RunStatus, StepMessage, StepRecord, StepStatus, DUE_SLACK};
use crate::workflow::{Step, WorkflowDefinition};

use super::handoff::{hand_off, resolve_context, save_resume_point, send_step, Encoded};
use super::EngineError;

/// SQS's longest `DelaySeconds`; longer waits hop through the queue.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

/// What the executor must know of the steps queue it consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLimits {
    /// How long a claim on a step lasts when a delivery names no deadline:
    /// under the queue's visibility timeout, so a redelivery after a crash
    /// finds the claim expired.
    pub claim_lease: Duration,
    /// How long after a message is due its last delivery can still begin:
    /// the visibility timeout times `maxReceiveCount`. A run with nothing
    /// due within it, and no live claim, can make no more progress.
    pub redelivery_horizon: Duration,
}

impl DeliveryLimits {
    /// The limits of a queue with this visibility timeout and
    /// `maxReceiveCount`: claims end a second before a message comes back.
    pub fn for_queue(visibility_timeout: Duration, max_receive_count: u32) -> Self {
        Self {
            claim_lease: visibility_timeout.saturating_sub(Duration::from_secs(1)),
            redelivery_horizon: visibility_timeout * max_receive_count.max(1),
        }
    }

    /// The same limits for a queue where a message may also wait up to
    /// `retention` for its first delivery (a backlog: SQS counts no receive
    /// while a message waits): the horizon grows to cover it, so the reaper
    /// never ends a run whose message is still queued.
    pub fn with_backlog_up_to(self, retention: Duration) -> Self {
        Self {
            redelivery_horizon: self.redelivery_horizon.max(retention),
            ..self
        }
    }
}

pub struct StepExecutor {
    workflows: Arc<dyn WorkflowStore>,
    runs: Arc<dyn RunLog>,
    steps: Arc<dyn Queue>,
    ports: ActionPorts,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    claim_lease: Duration,
    /// `Run.Succeeded` and `Run.Failed` to the webhook endpoints that receive them.
    fan_out: FanOut,
}

/// What the queue tells about one delivery of a step message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// 1 for the first delivery.
    pub receive_count: u32,
    /// When this invocation will be cut off (Lambda's deadline); a claim
    /// taken now expires then, so a crashed worker's step is taken over.
    pub lease_until: Option<DateTime<Utc>>,
}

impl DeliveryInfo {
    pub fn first() -> Self {
        Self {
            receive_count: 1,
            lease_until: None,
        }
    }
}

/// What one delivery of a step message did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Steps whose action ran in this invocation, in order.
    pub executed: Vec<String>,
    /// Steps whose recorded outcome was replayed instead of running again.
    pub replayed: Vec<String>,
    pub next: NextMove,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NextMove {
    /// A message for this step was sent.
    Enqueued {
        step_id: String,
        attempt: u32,
        delay: Duration,
    },
    /// The run reached a terminal status (now or before).
    Finished(RunStatus),
}

/// The outcome of running one action, before it is recorded.
struct Attempt {
    status: StepStatus,
    output: Option<Value>,
    error: Option<String>,
    next: Option<String>,
    retryable: bool,
    retry_after_s: Option<f64>,
    /// An HTTP attempt's request as sent, for the run log.
    request: Option<Value>,
    /// What must not reach the run log from this attempt.
    secrets: Secrets,
}

impl Attempt {
    /// The attempt an action's outcome makes; `policy` decides whether a
    /// retryable failure is retried. An interrupted action records nothing:
    /// its delivery is tried again (or parked, if its store's error is
    /// terminal). Only a step without side effects may wait.
    fn of(performed: Performed, secrets: Secrets, policy: &RetryPolicy) -> Result<Self, EngineError> {
        let attempt = match performed.outcome {
            Outcome::Succeeded { output, next } => Self {
                status: StepStatus::Succeeded,
                output: Some(output),
                error: None,
                next,
                retryable: false,
                retry_after_s: None,
                request: performed.request,
                secrets,
            },
            Outcome::Failed(failure) => Self {
                status: StepStatus::Failed,
                output: failure.output,
                error: Some(failure.message),
                next: None,
                retryable: match failure.class {
                    FailureClass::Retryable(class) => policy.retry_on.contains(&class),
                    FailureClass::Terminal => false,
                },
                retry_after_s: failure.retry_after_s,
                request: performed.request,
                secrets,
            },
            Outcome::Interrupted(err) => return Err(EngineError::Port(err)),
            Outcome::WaitUntil(_) => {
                return Err(EngineError::Port(crate::ports::PortError::terminal(
                    "perform",
                    "a side-effecting step cannot wait",
                )))
            }
        };
        Ok(attempt)
    }
}

/// Where the executor is in the run while it walks pure steps inline.
struct Cursor {
    step_id: String,
    attempt: u32,
    resume_at: Option<DateTime<Utc>>,
    context: Value,
    /// The run's `due_at` as this delivery read it.
    run_due_at: Option<DateTime<Utc>>,
}

impl StepExecutor {
    // Each argument is a port or a limit; `Stores::step_executor` is the
    // one caller, and a parameter struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workflows: Arc<dyn WorkflowStore>,
        runs: Arc<dyn RunLog>,
        steps: Arc<dyn Queue>,
        ports: ActionPorts,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
        limits: DeliveryLimits,
        fan_out: FanOut,
    ) -> Self {
        Self {
            workflows,
            runs,
            steps,
            ports,
            clock,
            metrics,
            claim_lease: limits.claim_lease,
            fan_out,
        }
    }

    pub async fn handle_message(&self, body: &str) -> Result<StepReport, EngineError> {
        self.handle_delivery(body, DeliveryInfo::first()).await
    }

    /// Executes one delivery. A terminal error parks the message on its
    /// first delivery ([`crate::worker::settle`]); a retryable one comes
    /// back until the queue dead-letters it, and the dead-letter consumer
    /// parks it then. Either way parking ends the run `failed`.
    pub async fn handle_delivery(&self, body: &str, delivery: DeliveryInfo) -> Result<StepReport, EngineError> {
        let message: StepMessage =
            serde_json::from_str(body).map_err(|err| EngineError::Undecodable(err.to_string()))?;
        self.execute_delivery(message, delivery).await
    }

    pub async fn execute(&self, message: StepMessage) -> Result<StepReport, EngineError> {
        self.execute_delivery(message, DeliveryInfo::first()).await
    }

    #[tracing::instrument(skip_all, fields(run_id = %message.run_id, workflow_id = %message.workflow_id, step_id = %message.step_id, attempt = message.attempt))]
    async fn execute_delivery(
        &self,
        mut message: StepMessage,
        delivery: DeliveryInfo,
    ) -> Result<StepReport, EngineError> {
        let workflow = self
            .workflows
            .get_version(&message.workspace_id, &message.workflow_id, message.workflow_version)
            .await?
            .ok_or_else(|| EngineError::WorkflowVersionMissing {
                workspace_id: message.workspace_id.clone(),
                workflow_id: message.workflow_id.clone(),
                version: message.workflow_version,
            })?;
        let run = self
            .runs
            .get_run(&message.run_id)
            .await?
            .ok_or_else(|| EngineError::RunMissing(message.run_id.clone()))?;
        let mut report = StepReport {
            executed: vec![],
            replayed: vec![],
            next: NextMove::Finished(run.status),
        };
        if run.erased_at.is_some() {
            // Erased with its contact (a replay's message included, whose
            // reopen the erasure refused): nothing of it may run again.
            tracing::info!("run erased; message ignored");
            return Ok(report);
        }
        if run.status == RunStatus::Failed && message.replay > run.replays {
            // A replay's message that arrived before the replay reopened the
            // run: try again later (if the reopen never comes, the message
            // dead-letters and the run stays failed).
            return Err(EngineError::ReplayPending {
                run_id: message.run_id.clone(),
                replay: message.replay,
            });
        }
        if run.status.is_terminal() {
            tracing::info!("run already ended; message ignored");
            return Ok(report);
        }
        if message.replay < run.replays {
            tracing::info!(
                message_replay = message.replay,
                run_replays = run.replays,
                "message from before the run was replayed; ignored"
            );
            return Ok(report);
        }
        if let Err(err) = resolve_context(self.runs.as_ref(), &mut message).await {
            return self.unless_ended_since(&message.run_id, err, report).await;
        }

        let mut cursor = Cursor {
            step_id: message.step_id.clone(),
            attempt: message.attempt,
            resume_at: message.resume_at,
            context: with_workflow_vars(std::mem::take(&mut message.context), &workflow),
            run_due_at: run.due_at,
        };
        let now = self.clock.now();
        if let Some(resume_at) = cursor.resume_at.filter(|t| *t > now) {
            // A wait longer than the queue's maximum delay: hop again.
            report.next = self.enqueue(&message, cursor, resume_at, None).await?;
            return Ok(report);
        }

        let mut first = true;
        loop {
            let step = step_of(&workflow, &cursor.step_id)?;
            let mut record = match self
                .runs
                .get_step(&message.run_id, &cursor.step_id, cursor.attempt)
                .await?
            {
                Some(recorded) => {
                    report.replayed.push(cursor.step_id.clone());
                    recorded
                }
                None => {
                    if !first && step.action.has_side_effects() {
                        let now = self.clock.now();
                        report.next = self.enqueue(&message, cursor, now, Some(&report)).await?;
                        return Ok(report);
                    }
                    if step.action.has_side_effects() {
                        if let Some(recorded) = self.claim(&message.run_id, &cursor, delivery).await? {
                            report.replayed.push(cursor.step_id.clone());
                            recorded
                        } else {
                            let started_at = self.clock.now();
                            let (performed, secrets) = self.perform(&message, &cursor, step).await;
                            let attempt = Attempt::of(performed, secrets, &step.retry_policy())?;
                            report.executed.push(cursor.step_id.clone());
                            self.record(&message, &cursor, step, started_at, attempt).await?
                        }
                    } else {
                        let started_at = self.clock.now();
                        let (performed, secrets) = self.perform(&message, &cursor, step).await;
                        if let Outcome::WaitUntil(due) = performed.outcome {
                            cursor.resume_at = Some(due);
                            report.next = self.enqueue(&message, cursor, due, Some(&report)).await?;
                            return Ok(report);
                        }
                        let attempt = Attempt::of(performed, secrets, &step.retry_policy())?;
                        report.executed.push(cursor.step_id.clone());
                        self.record(&message, &cursor, step, started_at, attempt).await?
                    }
                }
            };
            first = false;
            cursor.resume_at = None;

            match record.status {
                StepStatus::Succeeded => {
                    // The record's values may be redacted; variables are
                    // re-rendered (deterministically) for the steps after.
                    let vars = step.action.plugin().variables(&cursor.context);
                    let output = vars.clone().map(Value::Object);
                    apply_output(
                        &mut cursor.context,
                        &cursor.step_id,
                        output.or_else(|| record.output.take()).unwrap_or(Value::Null),
                        vars,
                    );
                    match record.next {
                        Some(next) => {
                            cursor.step_id = next;
                            cursor.attempt = 1;
                        }
                        None => {
                            report.next = self.finish(&message, &run, RunStatus::Succeeded, None).await?;
                            return Ok(report);
                        }
                    }
                }
                StepStatus::Failed => {
                    let policy = step.retry_policy();
                    let error = record.error.clone().unwrap_or_else(|| "step failed".into());
                    if record.retryable && policy.allows_another_attempt(cursor.attempt) {
                        let delay = policy.delay_after(
                            cursor.attempt,
                            record.retry_after_s,
                            jitter_seed(&message.run_id, &cursor.step_id, cursor.attempt),
                        );
                        cursor.attempt += 1;
                        let due = self.clock.now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                        report.next = self.enqueue(&message, cursor, due, Some(&report)).await?;
                        return Ok(report);
                    }
                    match &step.on_failure {
                        Some(on_failure) => {
                            if let Value::Object(ctx) = &mut cursor.context {
                                ctx.insert(
                                    "error".into(),
                                    json!({"step_id": cursor.step_id, "message": error, "attempts": cursor.attempt}),
                                );
                            }
                            cursor.step_id = on_failure.clone();
                            cursor.attempt = 1;
                        }
                        None => {
                            let reason = format!(
                                "step {} failed after {} attempt(s): {error}",
                                cursor.step_id, cursor.attempt
                            );
                            // Where a replay starts: this step, with the context it had.
                            let resume = self.message_at(&message, cursor, None);
                            save_resume_point(self.runs.as_ref(), &resume).await?;
                            report.next = self.finish(&message, &run, RunStatus::Failed, Some(reason)).await?;
                            return Ok(report);
                        }
                    }
                }
            }
        }
    }

    /// A message whose claim-checked context is gone: if its run ended or
    /// was erased since it was read (an erasure deletes contexts), the
    /// message is stale and acknowledged; otherwise `err` stands.
    async fn unless_ended_since(
        &self,
        run_id: &str,
        err: EngineError,
        report: StepReport,
    ) -> Result<StepReport, EngineError> {
        let ended = self
            .runs
            .get_run(run_id)
            .await?
            .is_some_and(|run| run.status.is_terminal() || run.erased_at.is_some());
        if ended {
            tracing::info!("run ended or erased while its message was read; message ignored");
            return Ok(report);
        }
        Err(err)
    }

    /// Runs the step's action once; the secrets are what its record must
    /// not show.
    async fn perform(&self, message: &StepMessage, cursor: &Cursor, step: &Step) -> (Performed, Secrets) {
        let mut secrets = Secrets::of_context(&cursor.context);
        let call = ActionCall {
            workspace_id: &message.workspace_id,
            run_id: &message.run_id,
            step_id: &cursor.step_id,
            attempt: cursor.attempt,
            context: &cursor.context,
            next: step.next.as_deref(),
            now: self.clock.now(),
            resume_at: cursor.resume_at,
            ports: &self.ports,
            secrets: &mut secrets,
        };
        let performed = step.action.plugin().perform(call).await;
        (performed, secrets)
    }

    async fn record(
        &self,
        message: &StepMessage,
        cursor: &Cursor,
        step: &Step,
        started_at: DateTime<Utc>,
        mut attempt: Attempt,
    ) -> Result<StepRecord, EngineError> {
        if let Some(output) = attempt.output.as_mut() {
            attempt.secrets.scrub_value(output);
        }
        attempt.error = attempt.error.map(|e| attempt.secrets.scrub_text(&e));
        let record = StepRecord {
            run_id: message.run_id.clone(),
            step_id: cursor.step_id.clone(),
            action: step.action.kind(),
            status: attempt.status,
            attempt: cursor.attempt,
            started_at,
            ended_at: self.clock.now(),
            output: attempt.output,
            error: attempt.error,
            next: attempt.next,
            retryable: attempt.retryable,
            retry_after_s: attempt.retry_after_s,
            request: attempt.request,
        };
        tracing::info!(step_id = %record.step_id, attempt = record.attempt, action = %record.action, status = ?record.status,
            error = record.error.as_deref().unwrap_or(""), "step attempt recorded");
        Ok(match self.runs.put_step(&record).await? {
            PutStep::Recorded => {
                let took = (record.ended_at - record.started_at).to_std().unwrap_or_default();
                self.metrics
                    .step_duration(record.action.name(), record.status, took, &subject(message));
                if record.attempt > 1 {
                    self.metrics.count(Counter::StepRetries, &subject(message));
                }
                record
            }
            // A concurrent delivery got there first: follow its outcome so
            // both deliveries agree on where the run goes.
            PutStep::AlreadyRecorded(existing) => *existing,
        })
    }

    /// Sends the message that continues the run at the cursor, due at `due`.
    /// `progress` is this delivery's report when the message hands the run
    /// on to a new (step, attempt); a delivery that only replayed recorded
    /// steps skips the send if an earlier delivery already made it, so
    /// duplicates do not multiply down the run.
    async fn enqueue(
        &self,
        message: &StepMessage,
        cursor: Cursor,
        due: DateTime<Utc>,
        progress: Option<&StepReport>,
    ) -> Result<NextMove, EngineError> {
        let now = self.clock.now();
        let wait = (due - now).to_std().unwrap_or(Duration::ZERO);
        let delay = wait.min(MAX_QUEUE_DELAY);
        // Delay steps always carry their due time; other waits only when they
        // outlast one queue delay and must hop.
        let resume_at = if cursor.resume_at.is_some() || wait > MAX_QUEUE_DELAY {
            Some(due)
        } else {
            None
        };
        let (step_id, attempt, run_due_at) = (cursor.step_id.clone(), cursor.attempt, cursor.run_due_at);
        let next = self.message_at(message, cursor, resume_at);
        // Before the send: a crash in between leaves the run due later than
        // needed (the reaper waits longer), never earlier.
        let visible_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        if run_due_at.is_none_or(|recorded| visible_at > recorded + DUE_SLACK) {
            self.runs.extend_due(&message.run_id, visible_at).await?;
        }
        match progress {
            Some(report) => {
                let replay_only = report.executed.is_empty();
                hand_off(
                    self.runs.as_ref(),
                    self.steps.as_ref(),
                    Encoded::new(next)?,
                    delay,
                    replay_only,
                )
                .await?;
            }
            None => send_step(self.runs.as_ref(), self.steps.as_ref(), Encoded::new(next)?, delay).await?,
        }
        tracing::debug!(next_step = %step_id, attempt, delay_ms = delay.as_millis() as u64, "step enqueued");
        Ok(NextMove::Enqueued {
            step_id,
            attempt,
            delay,
        })
    }

    /// The message that continues `message`'s run at the cursor (which it
    /// takes: the context, step outputs and all, moves, never copied).
    fn message_at(&self, message: &StepMessage, cursor: Cursor, resume_at: Option<DateTime<Utc>>) -> StepMessage {
        StepMessage {
            run_id: message.run_id.clone(),
            workspace_id: message.workspace_id.clone(),
            workflow_id: message.workflow_id.clone(),
            workflow_version: message.workflow_version,
            step_id: cursor.step_id,
            attempt: cursor.attempt,
            context: cursor.context,
            context_ref: None,
            resume_at,
            replay: message.replay,
        }
    }

    /// Claims the cursor's attempt before its side effect. `Some(record)`
    /// when an earlier delivery completed it (replay that), an error while
    /// another delivery holds the claim.
    async fn claim(
        &self,
        run_id: &str,
        cursor: &Cursor,
        delivery: DeliveryInfo,
    ) -> Result<Option<StepRecord>, EngineError> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.claim_lease).unwrap_or(chrono::Duration::MAX);
        let claim = StepClaim {
            run_id: run_id.to_owned(),
            step_id: cursor.step_id.clone(),
            attempt: cursor.attempt,
            owner: ulid::Ulid::new().to_string(),
            expires_at: delivery.lease_until.unwrap_or_else(|| now + lease),
        };
        match self.runs.claim_step(&claim, now).await? {
            ClaimOutcome::Acquired => Ok(None),
            ClaimOutcome::Completed(record) => Ok(Some(*record)),
            ClaimOutcome::InProgress { owner, expires_at } => {
                tracing::info!(owner = %owner, until = %expires_at, "step in progress in another delivery; backing off");
                Err(EngineError::StepInProgress {
                    step_id: cursor.step_id.clone(),
                    attempt: cursor.attempt,
                    owner,
                    until: expires_at,
                })
            }
        }
    }

    /// Ends the run; only the delivery whose write ended it counts it, and
    /// live tests' runs are never counted with production runs. Its `Run.*`
    /// webhook messages are made first ([`FanOut::run_ending`]).
    async fn finish(
        &self,
        message: &StepMessage,
        run: &RunRecord,
        status: RunStatus,
        error: Option<String>,
    ) -> Result<NextMove, EngineError> {
        let test = run.test;
        self.fan_out.run_ending(run, status, error.as_deref()).await?;
        if self
            .runs
            .finish_run(&message.run_id, status, error.clone(), self.clock.now())
            .await?
        {
            tracing::info!(status = ?status, error = error.as_deref().unwrap_or(""), "run finished");
            if let Some(counter) = Counter::run_ended(status).filter(|_| !test) {
                self.metrics.count(counter, &subject(message));
            }
        }
        Ok(NextMove::Finished(status))
    }
}

/// Whom a step message's measurements are about.
fn subject(message: &StepMessage) -> Subject<'_> {
    Subject {
        workspace_id: &message.workspace_id,
        workflow_id: &message.workflow_id,
        run_id: &message.run_id,
    }
}

fn step_of<'a>(workflow: &'a WorkflowDefinition, step_id: &str) -> Result<&'a Step, EngineError> {
    workflow.steps.get(step_id).ok_or_else(|| EngineError::StepMissing {
        workflow_id: workflow.id.clone(),
        version: workflow.version,
        step_id: step_id.to_owned(),
    })
}

/// The workflow's constant `vars` under whatever steps have set.
pub(super) fn with_workflow_vars(mut context: Value, workflow: &WorkflowDefinition) -> Value {
    if workflow.vars.is_empty() {
        return context;
    }
    if let Value::Object(ctx) = &mut context {
        let vars = ctx.entry("vars").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(vars) = vars {
            for (k, v) in &workflow.vars {
                vars.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    context
}

/// Makes a finished step visible to the steps after it: its output, and
/// the variables it set.
pub(super) fn apply_output(context: &mut Value, step_id: &str, output: Value, set: Option<Map<String, Value>>) {
    let Value::Object(ctx) = context else { return };
    if let Some(values) = set {
        if let Value::Object(vars) = ctx.entry("vars").or_insert_with(|| Value::Object(Map::new())) {
            vars.extend(values);
        }
    }
    if let Value::Object(steps) = ctx.entry("steps").or_insert_with(|| Value::Object(Map::new())) {
        steps.insert(step_id.to_owned(), output);
    }
}
