//! Dispatch: one subscription lookup per scope the event is in, one run per
//! matching workflow.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use serde_json::Value;

use crate::event::TriggerEvent;
use crate::metrics::{Counter, Metrics, Subject};
use crate::outbound::FanOut;
use crate::ports::{Clock, CreateRun, PortError, Queue, RunLog, SubscriptionIndex, WorkflowStore};
use crate::run::{filter_context, run_id_for, set_run, RunRecord, RunStatus, StepMessage};
use crate::subscription::Subscription;
use crate::workflow::{Scope, WorkflowDefinition};

use super::handoff::{hand_off, save_start_point, send_step};
use super::EngineError;

/// Events produced `depth` workflow hops deep start no run past this.
pub const DEFAULT_MAX_DEPTH: u32 = 8;

pub struct Dispatcher {
    subscriptions: Arc<dyn SubscriptionIndex>,
    runs: Arc<dyn RunLog>,
    steps: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    max_depth: u32,
    workflows: Arc<dyn WorkflowStore>,
    /// The event to the webhook endpoints that receive its type.
    fan_out: FanOut,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Runs this delivery created.
    pub started: Vec<String>,
    /// Runs an earlier delivery of the same event created.
    pub existing: Vec<String>,
    /// Set when the loop guard refused the event.
    pub refused: Option<String>,
    /// Webhook messages whose first attempt this delivery ordered.
    pub webhook_messages: usize,
}

impl Dispatcher {
    /// `workflows` lets a redelivered trigger resend the first step of a run
    /// that began on an older version of its workflow.
    pub fn new(
        subscriptions: Arc<dyn SubscriptionIndex>,
        workflows: Arc<dyn WorkflowStore>,
        runs: Arc<dyn RunLog>,
        steps: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
        fan_out: FanOut,
    ) -> Self {
        Self {
            subscriptions,
            runs,
            steps,
            clock,
            metrics,
            max_depth: DEFAULT_MAX_DEPTH,
            workflows,
            fan_out,
        }
    }

    /// The first step of the run's own workflow version, if it can be read.
    async fn start_of(&self, run: &RunRecord) -> Result<Option<String>, EngineError> {
        Ok(self
            .workflows
            .get_version(&run.workspace_id, &run.workflow_id, run.workflow_version)
            .await?
            .map(|workflow| workflow.start.clone()))
    }

    /// The subscriptions an event could start, read scope by scope (its
    /// workspace, site and card) at once, in workflow id order. The reads
    /// are separate: one overlapping a publish that moves a workflow
    /// between two of the event's scopes may see it in both (one run
    /// still: its id is the event's and the workflow's) or in neither, as
    /// an event a moment earlier or later would.
    async fn subscriptions_of(&self, event: &TriggerEvent) -> Result<Vec<Subscription>, EngineError> {
        let scopes = Scope::of_event(event.siteid.as_deref(), event.cardid.as_deref());
        let lookups = scopes
            .iter()
            .map(|scope| self.subscriptions.find(&event.workspaceid, &event.event_type, scope));
        let mut found: Vec<Subscription> = try_join_all(lookups).await?.into_iter().flatten().collect();
        found.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        found.dedup_by(|a, b| a.workflow_id == b.workflow_id);
        Ok(found)
    }

    /// A run of `event` on that workflow version, starting now.
    fn new_run(&self, run_id: &str, event: &TriggerEvent, workflow_id: &str, version: u32, test: bool) -> RunRecord {
        RunRecord {
            run_id: run_id.to_owned(),
            workspace_id: event.workspaceid.clone(),
            workflow_id: workflow_id.to_owned(),
            workflow_version: version,
            event_id: event.id.clone(),
            trigger_type: event.event_type.clone(),
            status: RunStatus::Running,
            started_at: self.clock.now(),
            ended_at: None,
            error: None,
            replays: 0,
            replay_of: None,
            // The first step is sent now.
            due_at: Some(self.clock.now()),
            test,
            contact_id: event.contactid.clone(),
            erased_at: None,
        }
    }

    /// A live test (`POST …/workflows/{id}/test` with `dry_run: false`): a
    /// new run of `workflow`, a stored version, on `event`, whatever its
    /// status, scope and filter. Each call starts a run of its own, marked
    /// `test`; the step executor runs it like any other.
    #[tracing::instrument(skip_all, fields(event_id = %event.id, workspace_id = %event.workspaceid, workflow_id = %workflow.id))]
    pub async fn start_test_run(
        &self,
        workflow: &WorkflowDefinition,
        event: &TriggerEvent,
    ) -> Result<String, EngineError> {
        let run_id = format!("run_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        let run = self.new_run(&run_id, event, &workflow.id, workflow.version, true);
        if let CreateRun::AlreadyExists(_) = self.runs.create_run(&run).await? {
            // A fresh ULID is never taken: this is a broken store.
            return Err(PortError::terminal("create_run", format!("test run id {run_id} already exists")).into());
        }
        let message = first_message(
            event,
            filter_context(event),
            &run_id,
            &workflow.id,
            workflow.version,
            workflow.start.clone(),
        );
        let message = save_start_point(self.runs.as_ref(), message).await?;
        // No trigger comes back for a test run: if its first step cannot be
        // sent, nothing would ever move it, so it ends here (the caller's
        // retry starts a new one).
        if let Err(err) = send_step(self.runs.as_ref(), self.steps.as_ref(), message, Duration::ZERO).await {
            let reason = format!("the first step could not be sent: {err}");
            if let Err(finish) = self
                .runs
                .finish_run(&run_id, RunStatus::Failed, Some(reason), self.clock.now())
                .await
            {
                tracing::error!(run_id = %run_id, error = %finish, "test run left running: its first step was not sent");
            }
            return Err(err);
        }
        tracing::info!(run_id = %run_id, version = workflow.version, "test run started");
        Ok(run_id)
    }

    pub async fn handle_message(&self, body: &str) -> Result<DispatchReport, EngineError> {
        let event: TriggerEvent = serde_json::from_str(body).map_err(|e| EngineError::Undecodable(e.to_string()))?;
        self.dispatch(&event).await
    }

    #[tracing::instrument(skip_all, fields(event_id = %event.id, workspace_id = %event.workspaceid, event_type = %event.event_type))]
    pub async fn dispatch(&self, event: &TriggerEvent) -> Result<DispatchReport, EngineError> {
        let mut report = self.start_runs(event).await?;
        report.webhook_messages = self.announce(event).await?;
        Ok(report)
    }

    /// The event to the webhook endpoints that receive its type, whatever
    /// its depth (the loop guard is about workflows starting workflows),
    /// after its runs started: a message that cannot be made never holds
    /// them back. A terminal failure is logged and the event goes on; a
    /// retryable one brings the event back (its runs exist once).
    async fn announce(&self, event: &TriggerEvent) -> Result<usize, EngineError> {
        match self.fan_out.event(event).await {
            Ok(sent) => Ok(sent),
            Err(err) if err.is_retryable() => Err(err),
            Err(err) => {
                tracing::error!(error = %err, "the event's webhook messages could not be made; none is sent");
                Ok(0)
            }
        }
    }

    async fn start_runs(&self, event: &TriggerEvent) -> Result<DispatchReport, EngineError> {
        let mut report = DispatchReport::default();
        if event.depth > self.max_depth {
            let reason = format!(
                "event depth {} exceeds the limit of {}; no run started (workflow loop?)",
                event.depth, self.max_depth
            );
            tracing::warn!(
                depth = event.depth,
                max_depth = self.max_depth,
                "loop guard refused event"
            );
            report.refused = Some(reason);
            return Ok(report);
        }
        let subscriptions = self.subscriptions_of(event).await?;
        let last = subscriptions.len().saturating_sub(1);
        // Built once, when a filter or a run first needs it; a run of the
        // last subscription in the list takes it rather than a copy.
        let mut event_context: Option<Value> = None;
        for (index, sub) in subscriptions.into_iter().enumerate() {
            if let Some(filter) = &sub.filter {
                if !filter.evaluate(event_context.get_or_insert_with(|| filter_context(event))) {
                    tracing::debug!(workflow_id = %sub.workflow_id, "trigger filter did not match");
                    continue;
                }
            }
            let run_id = run_id_for(event, &sub.workflow_id);
            let run = self.new_run(&run_id, event, &sub.workflow_id, sub.workflow_version, false);
            // (version, first step) the run executes: the subscription's for a
            // new run, the run's own for one an earlier delivery created.
            let (redelivered, version, start) = match self.runs.create_run(&run).await? {
                CreateRun::Created => {
                    report.started.push(run_id.clone());
                    let subject = Subject {
                        workspace_id: &event.workspaceid,
                        workflow_id: &sub.workflow_id,
                        run_id: &run_id,
                    };
                    self.metrics.count(Counter::RunsStarted, &subject);
                    (false, sub.workflow_version, sub.start.clone())
                }
                CreateRun::AlreadyExists(existing) => {
                    report.existing.push(run_id.clone());
                    if existing.status.is_terminal() {
                        continue;
                    }
                    // Still running: an earlier delivery may have died before
                    // sending the first step. Send it unless that delivery
                    // noted the hand-off; the step claim absorbs a duplicate.
                    if existing.workflow_version == sub.workflow_version {
                        (true, sub.workflow_version, sub.start.clone())
                    } else {
                        // A newer version was published since the run began;
                        // the run keeps its own version and that version's start.
                        match self.start_of(&existing).await? {
                            Some(start) => (true, existing.workflow_version, start),
                            None => {
                                tracing::warn!(run_id = %run_id, run_version = existing.workflow_version,
                                    subscribed_version = sub.workflow_version,
                                    "run started on a version that cannot be read; first step not re-sent");
                                continue;
                            }
                        }
                    }
                }
            };
            let context = if index == last {
                event_context.take().unwrap_or_else(|| filter_context(event))
            } else {
                event_context.get_or_insert_with(|| filter_context(event)).clone()
            };
            let message = first_message(event, context, &run_id, &sub.workflow_id, version, start);
            // Rewritten by a redelivery (the same text): the delivery that
            // created the run may have died before saving it.
            let message = save_start_point(self.runs.as_ref(), message).await?;
            hand_off(
                self.runs.as_ref(),
                self.steps.as_ref(),
                message,
                Duration::ZERO,
                redelivered,
            )
            .await?;
            tracing::info!(run_id = %run_id, workflow_id = %sub.workflow_id, "run started");
        }
        Ok(report)
    }
}

/// The message that starts `run_id` at `start` of that workflow version;
/// `event_context` is the event's [`filter_context`].
fn first_message(
    event: &TriggerEvent,
    mut event_context: Value,
    run_id: &str,
    workflow_id: &str,
    version: u32,
    start: String,
) -> StepMessage {
    set_run(&mut event_context, run_id, workflow_id, version);
    StepMessage {
        run_id: run_id.to_owned(),
        workspace_id: event.workspaceid.clone(),
        workflow_id: workflow_id.to_owned(),
        workflow_version: version,
        step_id: start,
        attempt: 1,
        context: event_context,
        context_ref: None,
        resume_at: None,
        replay: 0,
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::memory::{MemoryOutbound, MemoryRunLog, MemorySubscriptions, MemoryWorkflowStore};
    use crate::ports::{Delivery, PortResult, SystemClock};

    /// A steps queue that is down.
    struct DownQueue;

    #[async_trait]
    impl Queue for DownQueue {
        fn name(&self) -> &str {
            "steps"
        }
        async fn send(&self, _body: String, _delay: Duration) -> PortResult<()> {
            Err(PortError::retryable("send", "the queue is down"))
        }
        async fn receive(&self, _max: usize, _wait: Duration) -> PortResult<Vec<Delivery>> {
            Ok(vec![])
        }
        async fn ack(&self, _receipt: &str) -> PortResult<()> {
            Ok(())
        }
        async fn peek(&self, _max: usize) -> PortResult<Vec<String>> {
            Ok(vec![])
        }
    }

    #[tokio::test]
    async fn a_test_run_whose_first_step_cannot_be_sent_ends_failed_not_running() {
        let runs = Arc::new(MemoryRunLog::default());
        let dispatcher = Dispatcher::new(
            Arc::new(MemorySubscriptions::default()),
            Arc::new(MemoryWorkflowStore::default()),
            runs.clone(),
            Arc::new(DownQueue),
            Arc::new(SystemClock),
            Arc::new(crate::metrics::MemoryMetrics::default()),
            FanOut::new(
                Arc::new(MemoryOutbound::default()),
                Arc::new(DownQueue),
                Arc::new(SystemClock),
            ),
        );
        let workflow = WorkflowDefinition::from_value(json!({"id": "wf", "workspace_id": "ws", "name": "t",
            "status": "active", "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "s",
            "steps": {"s": {"action": {"type": "SetVariables", "values": {"a": 1}}}}}))
        .expect("workflow");
        let event: TriggerEvent = serde_json::from_value(
            json!({"specversion": "1.0", "id": "e", "source": "s", "type": "Prize.Won", "workspaceid": "ws"}),
        )
        .expect("event");
        let refused = dispatcher.start_test_run(&workflow, &event).await;
        assert!(refused.as_ref().is_err_and(EngineError::is_retryable), "{refused:?}");
        let listed = runs
            .list_runs(
                "ws",
                &crate::ports::RunQuery {
                    test: true,
                    ..Default::default()
                },
            )
            .await
            .expect("list")
            .runs;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, RunStatus::Failed, "{:?}", listed[0]);
    }
}
