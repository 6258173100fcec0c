//! Parking dead letters (see [`crate::dead_letter`]) and sending them on
//! again. Parking a step message ends its run `failed`, with the message as
//! the resume point, so a run never stays `running` behind a message that
//! can no longer be delivered, however its invocations ended.

use crate::outbound::FanOut;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dead_letter::{ParkedBecause, ParkedMessage, QueueKind};
use crate::event::TriggerEvent;
use crate::metrics::{Counter, Metrics, Subject};
use crate::ports::{Clock, DeadLetterStore, Delivery, Queue, RunLog};
use crate::run::{RunStatus, StepMessage};

use super::handoff::save_resume_point;
use super::recovery::{Recovery, RecoveryError, ReplayFrom};
use super::EngineError;

/// The most parked messages one listing or redrive reads.
pub const MAX_PARKED_BATCH: usize = 1000;

/// Parks the dead letters of one queue.
pub struct DeadLetters {
    queue: QueueKind,
    parked: Arc<dyn DeadLetterStore>,
    runs: Arc<dyn RunLog>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    /// A parked step message's `Run.Failed` to the webhook endpoints.
    fan_out: FanOut,
}

/// What a parked message's body tells about it.
enum Identity {
    Trigger {
        workspace_id: String,
    },
    Step(Box<StepMessage>),
    /// A webhook delivery order (the steps queue's other kind of message).
    Delivery {
        workspace_id: String,
    },
    Undecodable,
}

impl DeadLetters {
    pub fn new(
        queue: QueueKind,
        parked: Arc<dyn DeadLetterStore>,
        runs: Arc<dyn RunLog>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
        fan_out: FanOut,
    ) -> Self {
        Self {
            queue,
            parked,
            runs,
            clock,
            metrics,
            fan_out,
        }
    }

    pub fn queue(&self) -> QueueKind {
        self.queue
    }

    /// Parks `delivery` (once, however often it comes) and, for a step
    /// message, ends its run `failed` with the message as its resume point.
    /// An error leaves the message where it is, to be parked again.
    pub async fn park(&self, delivery: &Delivery, because: ParkedBecause, cause: &str) -> Result<(), EngineError> {
        let identity = self.identify(&delivery.body);
        let (workspace_id, run_id) = match &identity {
            Identity::Trigger { workspace_id } => (Some(workspace_id.clone()), None),
            Identity::Step(message) => (Some(message.workspace_id.clone()), Some(message.run_id.clone())),
            Identity::Delivery { workspace_id } => (Some(workspace_id.clone()), None),
            Identity::Undecodable => (None, None),
        };
        let parked = ParkedMessage {
            queue: self.queue,
            id: ParkedMessage::id_of(self.queue, &delivery.body),
            body: delivery.body.clone(),
            because,
            reason: reason(because, cause, delivery.receive_count),
            receive_count: delivery.receive_count,
            parked_at: self.clock.now(),
            workspace_id,
            run_id,
        };
        let newly_parked = self.parked.park(&parked).await?;
        if let Identity::Step(message) = &identity {
            self.end_run(message, &parked.reason).await?;
        }
        if newly_parked {
            tracing::error!(queue = %self.queue, parked_id = %parked.id, because = ?because,
                receive_count = delivery.receive_count, run_id = parked.run_id.as_deref().unwrap_or(""),
                reason = %parked.reason, "message parked as a dead letter");
            self.metrics.count(
                Counter::DeadLetterMoves,
                &Subject {
                    workspace_id: parked.workspace_id.as_deref().unwrap_or(""),
                    workflow_id: "",
                    run_id: parked.run_id.as_deref().unwrap_or(""),
                },
            );
        }
        Ok(())
    }

    fn identify(&self, body: &str) -> Identity {
        match self.queue {
            QueueKind::Triggers => {
                serde_json::from_str::<TriggerEvent>(body).map_or(Identity::Undecodable, |event| Identity::Trigger {
                    workspace_id: event.workspaceid,
                })
            }
            QueueKind::Steps => match crate::outbound::DeliveryOrder::from_body(body) {
                Some(order) => Identity::Delivery {
                    workspace_id: order.webhook_delivery.workspace_id,
                },
                None => serde_json::from_str(body).map_or(Identity::Undecodable, |m| Identity::Step(Box::new(m))),
            },
        }
    }

    /// Ends the message's run unless it has ended, or the message is stale
    /// from before a replay (the replayed run is not its business). A
    /// duplicate of a step that already ran ends the run too: telling it
    /// from the one message that could still move the run on would take the
    /// workflow's walk, and a run wrongly ended is replayed, where one
    /// wrongly left running would wait for the reaper.
    async fn end_run(&self, message: &StepMessage, reason: &str) -> Result<(), EngineError> {
        let Some(run) = self.runs.get_run(&message.run_id).await? else {
            return Ok(());
        };
        if run.status != RunStatus::Running || message.replay < run.replays {
            return Ok(());
        }
        // The resume point first: a failed run always has one.
        save_resume_point(self.runs.as_ref(), message).await?;
        let reason = format!("step {} attempt {}: {reason}", message.step_id, message.attempt);
        self.fan_out.run_ending(&run, RunStatus::Failed, Some(&reason)).await?;
        let ended = self
            .runs
            .finish_run(&message.run_id, RunStatus::Failed, Some(reason), self.clock.now())
            .await?;
        if ended && !run.test {
            let subject = Subject {
                workspace_id: &message.workspace_id,
                workflow_id: &message.workflow_id,
                run_id: &message.run_id,
            };
            self.metrics.count(Counter::RunsFailed, &subject);
        }
        Ok(())
    }

    /// Up to [`MAX_PARKED_BATCH`] parked messages, oldest first.
    pub async fn list(&self) -> Result<Vec<ParkedMessage>, EngineError> {
        Ok(self.parked.list_parked(self.queue, MAX_PARKED_BATCH).await?)
    }
}

fn reason(because: ParkedBecause, cause: &str, receive_count: u32) -> String {
    match because {
        ParkedBecause::Terminal => format!("failed terminally on delivery {receive_count}: {cause}"),
        ParkedBecause::DeliveriesExhausted => format!(
            "moved to the dead-letter queue after {receive_count} deliveries: {cause} \
             (its handlers failed, or their invocations died: crash, timeout, out of memory)"
        ),
    }
}

/// Where a redrive sends parked messages: trigger events go back on the
/// triggers queue; a step message's run is replayed from the step it
/// stopped at (parking ended the run, so re-sending the message alone would
/// be ignored).
pub enum RedriveTo<'a> {
    Triggers(&'a dyn Queue),
    Steps(&'a Recovery),
}

/// A parked message a redrive left parked, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftParked {
    pub id: String,
    pub reason: String,
}

/// What one redrive of parked messages did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedRedrive {
    /// Parked messages sent on (and no longer parked).
    pub redriven: usize,
    pub left: Vec<LeftParked>,
}

impl DeadLetters {
    /// Sends up to `max` parked messages on, oldest first. Each is sent (or
    /// its run replayed) before it is unparked: a crash in between sends it
    /// twice, which the engine absorbs, and never loses it.
    pub async fn redrive(&self, to: RedriveTo<'_>, max: usize) -> Result<ParkedRedrive, RecoveryError> {
        let mut report = ParkedRedrive::default();
        for parked in self.parked.list_parked(self.queue, max.min(MAX_PARKED_BATCH)).await? {
            match self.send_on(&parked, &to).await? {
                None => {
                    self.parked.unpark(self.queue, &parked.id, parked.parked_at).await?;
                    report.redriven += 1;
                }
                Some(reason) => report.left.push(LeftParked { id: parked.id, reason }),
            }
        }
        Ok(report)
    }

    /// `None` when the message went on, else why it stays parked.
    async fn send_on(&self, parked: &ParkedMessage, to: &RedriveTo<'_>) -> Result<Option<String>, RecoveryError> {
        match (to, parked.workspace_id.as_deref(), parked.run_id.as_deref()) {
            (RedriveTo::Triggers(triggers), Some(_), _) => {
                triggers.send(parked.body.clone(), std::time::Duration::ZERO).await?;
                Ok(None)
            }
            (RedriveTo::Steps(recovery), Some(_), None) => {
                recovery.requeue_order(parked.body.clone()).await?;
                Ok(None)
            }
            (RedriveTo::Steps(recovery), Some(workspace_id), Some(run_id)) => {
                match recovery
                    .replay(workspace_id, run_id, ReplayFrom::FailedStep, None)
                    .await
                {
                    Ok(_) => Ok(None),
                    // Replayed or cancelled since: nothing is waiting on this message.
                    Err(RecoveryError::NotFailed { .. } | RecoveryError::RunNotFound(_)) => Ok(None),
                    Err(err) if err.is_retryable() => Err(err),
                    Err(err) => Ok(Some(err.to_string())),
                }
            }
            _ => Ok(Some(format!(
                "the body is not a {} message; nothing can handle it",
                self.queue.as_str().trim_end_matches('s')
            ))),
        }
    }
}
