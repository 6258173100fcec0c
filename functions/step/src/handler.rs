use aws_lambda_events::event::sqs::SqsEvent;
use hookflow_core::engine::Reaper;
use hookflow_lambda::{handle_sqs_batch, QueueConsumer};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;

/// What invokes the step function.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum StepEvent {
    /// The reaper's schedule (`{"reap": {}}` in `template.yaml`). First:
    /// an SQS event has no `reap`, while a reap input would pass for an
    /// SQS event without records.
    Reap { reap: ReapInput },
    /// A batch of the steps queue or of its dead-letter queue.
    Queue(SqsEvent),
}

/// The schedule's input; nothing to set yet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReapInput {}

/// The function's use cases.
pub struct StepFunction<'a> {
    pub queue: QueueConsumer<'a>,
    pub reaper: &'a Reaper,
}

/// One invocation: a queue batch (answered with its failed records) or a
/// reaper pass (answered with what it ended).
pub async fn handle(function: &StepFunction<'_>, event: LambdaEvent<StepEvent>) -> Result<serde_json::Value, Error> {
    match event.payload {
        StepEvent::Queue(batch) => {
            let deadline = hookflow_lambda::deadline_of(&event.context);
            Ok(serde_json::to_value(
                handle_sqs_batch(&function.queue, batch, deadline).await,
            )?)
        }
        StepEvent::Reap { reap: ReapInput {} } => Ok(serde_json::to_value(function.reaper.reap().await?)?),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use aws_lambda_events::event::sqs::SqsBatchResponse;
    use hookflow_core::memory::{MemoryBackend, QueueSettings};
    use hookflow_core::ports::*;
    use hookflow_core::run::{RunRecord, RunStatus};
    use hookflow_core::WorkflowDefinition;

    use super::*;

    /// Answers 200 to everything and counts calls.
    #[derive(Default)]
    struct CountingHttp(std::sync::Mutex<Vec<HttpCall>>);

    #[async_trait]
    impl HttpClient for CountingHttp {
        async fn send(&self, call: HttpCall) -> Result<HttpReply, HttpError> {
            self.0.lock().unwrap().push(call);
            Ok(HttpReply {
                status: 200,
                headers: vec![],
                body: b"{}".to_vec(),
            })
        }
    }

    #[tokio::test]
    async fn sample_batches_execute_each_step_once_and_park_the_poison_message() {
        let backend = MemoryBackend::new(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        });
        let workflow =
            WorkflowDefinition::from_json(include_str!("../../../examples/workflows/score_decision.json")).unwrap();
        backend.workflows.put_version(&workflow).await.unwrap();
        let run = RunRecord {
            run_id: "run_sample".into(),
            workspace_id: "ws_demo".into(),
            workflow_id: workflow.id.clone(),
            workflow_version: 1,
            event_id: "evt-sample".into(),
            trigger_type: workflow.trigger.trigger_type.clone(),
            status: RunStatus::Running,
            started_at: chrono_now(),
            ended_at: None,
            error: None,
            replays: 0,
            test: false,
            replay_of: None,
            due_at: None,
            contact_id: None,
            erased_at: None,
        };
        backend.runs.create_run(&run).await.unwrap();
        let http = Arc::new(CountingHttp::default());
        // As `wire` builds it, with a counting HTTP client in place of the real one.
        let executor = hookflow_core::wiring::Stores::memory(&backend, Arc::new(SystemClock)).step_executor(
            backend.steps.clone(),
            backend.triggers.clone(),
            http.clone(),
            hookflow_core::engine::DeliveryLimits::for_queue(
                crate::STEPS_VISIBILITY_TIMEOUT,
                hookflow_aws::MAX_RECEIVE_COUNT,
            ),
        );
        let stores = hookflow_core::wiring::Stores::memory(&backend, Arc::new(SystemClock));
        let dead_letters = stores.dead_letters(hookflow_core::dead_letter::QueueKind::Steps, backend.steps.clone());
        let reaper = stores.reaper(crate::steps_limits(), backend.steps.clone());
        let function = step_function(&executor, &dead_letters, &reaper);
        let event: StepEvent = serde_json::from_str(include_str!("../../../events/lambda/sqs-steps.json")).unwrap();
        let response = batch_response(handle(&function, LambdaEvent::new(event, Default::default())).await);
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        let parked = backend
            .dead_letters
            .parked(hookflow_core::dead_letter::QueueKind::Steps);
        assert_eq!(
            parked.len(),
            1,
            "the poison message is parked on its first delivery: {parked:?}"
        );
        // The Decision ran once (the duplicate replayed its record) and handed
        // the run on to the HTTP step once: the duplicate found the hand-off note.
        assert_eq!(backend.runs.list_steps("run_sample").await.unwrap().len(), 1);
        assert_eq!(http.0.lock().unwrap().len(), 0);
        let next = backend.steps.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(next.len(), 1);
        // SQS may still deliver that message twice.
        let records: Vec<serde_json::Value> = (0..2)
            .map(|i| {
                serde_json::json!({"messageId": format!("hot-{i}"), "body": next[0].body,
                    "attributes": {"ApproximateReceiveCount": (i + 1).to_string()}})
            })
            .collect();
        let batch: StepEvent = serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        let response = batch_response(handle(&function, LambdaEvent::new(batch, Default::default())).await);
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            http.0.lock().unwrap().len(),
            1,
            "two deliveries of the HTTP step, one request"
        );
        let finished = backend.runs.get_run("run_sample").await.unwrap().unwrap();
        assert_eq!(finished.status, RunStatus::Succeeded);
    }

    /// The function as `main` wires it, around these use cases.
    fn step_function<'a>(
        executor: &'a hookflow_core::StepExecutor,
        dead_letters: &'a hookflow_core::engine::DeadLetters,
        reaper: &'a Reaper,
    ) -> StepFunction<'a> {
        StepFunction {
            queue: QueueConsumer {
                handler: executor,
                dead_letters,
                dead_letter_queue_arn: "arn:aws:sqs:us-east-1:123456789012:hookflow-steps-dlq",
            },
            reaper,
        }
    }

    fn batch_response(answer: Result<serde_json::Value, Error>) -> SqsBatchResponse {
        serde_json::from_value(answer.expect("the handler answers")).expect("a batch response")
    }

    #[tokio::test]
    async fn the_schedule_reaps_a_stuck_run_and_spares_a_live_one() {
        let backend = MemoryBackend::new(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        });
        // Past the steps queue's retention: nothing could still deliver it.
        let long_ago = chrono_now() - chrono::Duration::days(5);
        for (run_id, due_at) in [("run_stuck", long_ago), ("run_live", chrono_now())] {
            let run = RunRecord {
                run_id: run_id.into(),
                workspace_id: "ws_demo".into(),
                workflow_id: "wf_hot_leads".into(),
                workflow_version: 1,
                event_id: format!("evt-{run_id}"),
                trigger_type: "Gameplay.DataCaptured".into(),
                status: RunStatus::Running,
                started_at: long_ago,
                ended_at: None,
                error: None,
                replays: 0,
                test: false,
                replay_of: None,
                due_at: Some(due_at),
                contact_id: None,
                erased_at: None,
            };
            backend.runs.create_run(&run).await.unwrap();
        }
        let stores = hookflow_core::wiring::Stores::memory(&backend, Arc::new(SystemClock));
        let executor = stores.step_executor(
            backend.steps.clone(),
            backend.triggers.clone(),
            Arc::new(CountingHttp::default()),
            crate::steps_limits(),
        );
        let dead_letters = stores.dead_letters(hookflow_core::dead_letter::QueueKind::Steps, backend.steps.clone());
        let reaper = stores.reaper(crate::steps_limits(), backend.steps.clone());
        let function = step_function(&executor, &dead_letters, &reaper);
        let event: StepEvent = serde_json::from_str(include_str!("../../../events/lambda/schedule-reap.json")).unwrap();
        let report = handle(&function, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        assert_eq!(report["reaped"], serde_json::json!(["run_stuck"]), "{report}");
        let stuck = backend.runs.get_run("run_stuck").await.unwrap().unwrap();
        assert_eq!(stuck.status, RunStatus::Failed);
        assert!(stuck.error.unwrap_or_default().starts_with("ended by the reaper"));
        assert!(
            backend
                .runs
                .get_blob("run_stuck", hookflow_core::engine::RESUME_KEY)
                .await
                .unwrap()
                .is_none(),
            "no start point was stored for this hand-made run, so there is nothing to resume from"
        );
        let live = backend.runs.get_run("run_live").await.unwrap().unwrap();
        assert_eq!(live.status, RunStatus::Running, "a run due now is not stuck");
        assert!(
            serde_json::from_value::<StepEvent>(serde_json::json!({"reap": {"everything": true}})).is_err(),
            "an input the function does not understand is refused"
        );
    }

    fn chrono_now() -> chrono::DateTime<chrono::Utc> {
        SystemClock.now()
    }
}
