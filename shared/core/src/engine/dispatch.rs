//! Dispatch: one subscription lookup per event, one run per matching workflow.

use std::sync::Arc;
use std::time::Duration;

use crate::event::TriggerEvent;
use crate::ports::{Clock, CreateRun, Queue, RunLog, SubscriptionIndex};
use crate::run::{filter_context, initial_context, run_id_for, RunRecord, RunStatus, StepMessage};

use super::handoff::hand_off;
use super::EngineError;

/// Events produced `depth` workflow hops deep start no run past this.
pub const DEFAULT_MAX_DEPTH: u32 = 8;

pub struct Dispatcher {
    subscriptions: Arc<dyn SubscriptionIndex>,
    runs: Arc<dyn RunLog>,
    steps: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    max_depth: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Runs this delivery created.
    pub started: Vec<String>,
    /// Runs an earlier delivery of the same event created.
    pub existing: Vec<String>,
    /// Set when the loop guard refused the event.
    pub refused: Option<String>,
}

impl Dispatcher {
    pub fn new(
        subscriptions: Arc<dyn SubscriptionIndex>,
        runs: Arc<dyn RunLog>,
        steps: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            subscriptions,
            runs,
            steps,
            clock,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    pub async fn handle_message(&self, body: &str) -> Result<DispatchReport, EngineError> {
        let event: TriggerEvent = serde_json::from_str(body).map_err(|e| EngineError::Undecodable(e.to_string()))?;
        self.dispatch(&event).await
    }

    #[tracing::instrument(skip_all, fields(event_id = %event.id, workspace_id = %event.workspaceid, event_type = %event.event_type))]
    pub async fn dispatch(&self, event: &TriggerEvent) -> Result<DispatchReport, EngineError> {
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
        let subscriptions = self.subscriptions.find(&event.workspaceid, &event.event_type).await?;
        let filter_ctx = filter_context(event);
        for sub in subscriptions {
            if !sub.scope.matches(event.siteid.as_deref(), event.cardid.as_deref()) {
                continue;
            }
            if sub.filter.as_ref().is_some_and(|f| !f.evaluate(&filter_ctx)) {
                tracing::debug!(workflow_id = %sub.workflow_id, "trigger filter did not match");
                continue;
            }
            let run_id = run_id_for(&event.workspaceid, &event.id, &sub.workflow_id);
            let run = RunRecord {
                run_id: run_id.clone(),
                workspace_id: event.workspaceid.clone(),
                workflow_id: sub.workflow_id.clone(),
                workflow_version: sub.workflow_version,
                event_id: event.id.clone(),
                trigger_type: event.event_type.clone(),
                status: RunStatus::Running,
                started_at: self.clock.now(),
                ended_at: None,
                error: None,
            };
            let redelivered = match self.runs.create_run(&run).await? {
                CreateRun::Created => {
                    report.started.push(run_id.clone());
                    false
                }
                CreateRun::AlreadyExists(existing) => {
                    report.existing.push(run_id.clone());
                    if existing.status.is_terminal() {
                        continue;
                    }
                    if existing.workflow_version != sub.workflow_version {
                        // A newer version was published since the run began; the
                        // run keeps its own version, whose first step we cannot
                        // re-send from this subscription.
                        tracing::warn!(run_id = %run_id, run_version = existing.workflow_version,
                            subscribed_version = sub.workflow_version, "run started on an older version; first step not re-sent");
                        continue;
                    }
                    // Still running: an earlier delivery may have died before
                    // sending the first step. Send it unless that delivery
                    // noted the hand-off; the step claim absorbs a duplicate.
                    true
                }
            };
            let message = StepMessage {
                run_id: run_id.clone(),
                workspace_id: event.workspaceid.clone(),
                workflow_id: sub.workflow_id.clone(),
                workflow_version: sub.workflow_version,
                step_id: sub.start.clone(),
                attempt: 1,
                context: initial_context(event, &run_id, &sub.workflow_id, sub.workflow_version),
                context_ref: None,
                resume_at: None,
            };
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
