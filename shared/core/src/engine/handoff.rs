//! Handing a run from one invocation to the next: the step message, with its
//! context claim-checked into the run log when it would make the message
//! larger than one SQS request should carry.

use std::time::Duration;

use serde_json::Value;

use crate::ports::{Queue, RunLog};
use crate::run::StepMessage;

use super::EngineError;

/// A message whose JSON is larger than this carries a reference to its
/// context instead of the context: one 64 KiB SQS request, whatever the
/// steps returned (SQS bills each 64 KiB chunk as a request; 256 KiB is its
/// hard limit).
pub const MAX_INLINE_MESSAGE_BYTES: usize = 64 * 1024;

/// The run-log key of a failed run's resume point (`hookflow runs replay`).
pub const RESUME_KEY: &str = "resume";
/// The run-log key of a run's first step message: the trigger event the run
/// started from (run detail) and where a replay from the start begins.
pub const START_KEY: &str = "start";

fn context_key(step_id: &str, attempt: u32) -> String {
    format!("ctx#{step_id}#{attempt}")
}

pub(crate) fn encode(message: &StepMessage) -> Result<String, EngineError> {
    crate::ports::message_body(message).map_err(|e| EngineError::Undecodable(e.to_string()))
}

/// A step message with its queue body, encoded once for every write of it:
/// a run's start point and its first send are the same text, unless the
/// message is over [`MAX_INLINE_MESSAGE_BYTES`] (the send then carries a
/// reference to its context, the start point the context itself).
pub(crate) struct Encoded {
    message: StepMessage,
    body: String,
}

impl Encoded {
    pub(crate) fn new(message: StepMessage) -> Result<Self, EngineError> {
        let body = encode(&message)?;
        Ok(Self { message, body })
    }
}

/// Sends the message, moving its context into the run log first if needed.
pub(crate) async fn send_step(
    runs: &dyn RunLog,
    steps: &dyn Queue,
    encoded: Encoded,
    delay: Duration,
) -> Result<(), EngineError> {
    let Encoded { mut message, mut body } = encoded;
    if body.len() > MAX_INLINE_MESSAGE_BYTES {
        let key = context_key(&message.step_id, message.attempt);
        let context = serde_json::to_string(&message.context).map_err(|e| EngineError::Undecodable(e.to_string()))?;
        // Deterministic key: a redelivery rewrites the same value.
        runs.put_blob(&message.run_id, &key, &context).await?;
        message.context = Value::Null;
        message.context_ref = Some(key);
        body = encode(&message)?;
        tracing::debug!(run_id = %message.run_id, bytes = context.len(), "context claim-checked into the run log");
    }
    steps.send(body, delay).await?;
    Ok(())
}

/// Which move of the run a message makes: to a (step, attempt), or, for a
/// `Delay`, into its wait (the message that started the wait targets the
/// same step and attempt and must not be mistaken for it), in which replay
/// of the run: a replay walks again past moves an earlier pass made, and
/// the earlier pass's notes must not stop it.
fn handoff_key(message: &StepMessage) -> String {
    let wait = if message.resume_at.is_some() { "#wait" } else { "" };
    format!("{}#{}#r{}{wait}", message.step_id, message.attempt, message.replay)
}

/// Sends the message that moves a run on to a new (step, attempt) once:
/// when `check_first` (the caller only replayed recorded steps, so it is a
/// redelivery) and an earlier delivery noted the same hand-off, nothing is
/// sent. The note is written after the send: a crash between the two sends
/// a duplicate later, never loses the message.
pub(crate) async fn hand_off(
    runs: &dyn RunLog,
    steps: &dyn Queue,
    encoded: Encoded,
    delay: Duration,
    check_first: bool,
) -> Result<(), EngineError> {
    let key = handoff_key(&encoded.message);
    let run_id = encoded.message.run_id.clone();
    if check_first && runs.handed_off(&run_id, &key).await? {
        tracing::debug!(run_id = %run_id, handoff = %key, "hand-off already sent by an earlier delivery");
        return Ok(());
    }
    send_step(runs, steps, encoded, delay).await?;
    runs.mark_handed_off(&run_id, &key).await?;
    Ok(())
}

/// Puts a claim-checked context back into the message.
pub(crate) async fn resolve_context(runs: &dyn RunLog, message: &mut StepMessage) -> Result<(), EngineError> {
    if let Some(key) = message.context_ref.take() {
        let text = runs
            .get_blob(&message.run_id, &key)
            .await?
            .ok_or_else(|| EngineError::ContextMissing {
                run_id: message.run_id.clone(),
                key: key.clone(),
            })?;
        message.context = serde_json::from_str(&text).map_err(|e| EngineError::Undecodable(e.to_string()))?;
    }
    Ok(())
}

/// Saves where a failing run stopped, so a replay can continue from there.
pub(crate) async fn save_resume_point(runs: &dyn RunLog, message: &StepMessage) -> Result<(), EngineError> {
    runs.put_blob(&message.run_id, RESUME_KEY, &encode(message)?).await?;
    Ok(())
}

/// Saves the message that starts a run (see [`START_KEY`]), and gives it
/// back encoded, for its send.
pub(crate) async fn save_start_point(runs: &dyn RunLog, message: StepMessage) -> Result<Encoded, EngineError> {
    let encoded = Encoded::new(message)?;
    runs.put_blob(&encoded.message.run_id, START_KEY, &encoded.body).await?;
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryQueue, MemoryRunLog, QueueSettings};

    fn encoded(replay: u32) -> Encoded {
        Encoded::new(message(replay)).expect("encodes")
    }

    fn message(replay: u32) -> StepMessage {
        StepMessage {
            run_id: "run_h".into(),
            workspace_id: "ws".into(),
            workflow_id: "wf".into(),
            workflow_version: 1,
            step_id: "notify".into(),
            attempt: 1,
            context: serde_json::json!({}),
            context_ref: None,
            resume_at: None,
            replay,
        }
    }

    #[tokio::test]
    async fn a_note_from_before_a_replay_does_not_stop_the_replayed_run() {
        let runs = MemoryRunLog::default();
        let settings = QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        };
        let steps = MemoryQueue::new("steps", settings, None);
        hand_off(&runs, &steps, encoded(0), Duration::ZERO, false)
            .await
            .expect("first pass");
        hand_off(&runs, &steps, encoded(0), Duration::ZERO, true)
            .await
            .expect("its duplicate");
        assert_eq!(steps.len(), 1, "a redelivery of the same pass sends nothing again");
        hand_off(&runs, &steps, encoded(1), Duration::ZERO, true)
            .await
            .expect("the replay");
        assert_eq!(steps.len(), 2, "the replay moves on past the first pass's note");
    }
}
