use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_core::StepExecutor;
use hookflow_lambda::handle_sqs_batch;
use lambda_runtime::{Error, LambdaEvent};

pub async fn handle(executor: &StepExecutor, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let deadline = hookflow_lambda::deadline_of(&event.context);
    Ok(handle_sqs_batch(executor, event.payload, deadline).await)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
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
    async fn sample_batches_execute_each_step_once_and_report_the_poison_message() {
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
        };
        backend.runs.create_run(&run).await.unwrap();
        let http = Arc::new(CountingHttp::default());
        // As `wire` builds it, with a counting HTTP client in place of the real one.
        let executor = hookflow_core::wiring::Stores::memory(&backend, Arc::new(SystemClock)).step_executor(
            backend.steps.clone(),
            http.clone(),
            hookflow_core::engine::DeliveryLimits::for_queue(
                crate::STEPS_VISIBILITY_TIMEOUT,
                hookflow_aws::MAX_RECEIVE_COUNT,
            ),
        );
        let event: SqsEvent = serde_json::from_str(include_str!("../../../events/lambda/sqs-steps.json")).unwrap();
        let response = handle(&executor, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["step-poison"]);
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
        let batch: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        let response = handle(&executor, LambdaEvent::new(batch, Default::default()))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            http.0.lock().unwrap().len(),
            1,
            "two deliveries of the HTTP step, one request"
        );
        let finished = backend.runs.get_run("run_sample").await.unwrap().unwrap();
        assert_eq!(finished.status, RunStatus::Succeeded);
    }

    fn chrono_now() -> chrono::DateTime<chrono::Utc> {
        SystemClock.now()
    }
}
