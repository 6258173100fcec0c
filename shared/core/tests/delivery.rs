//! Delivery edge cases of the step executor:
//! - claims: a second delivery while the first executes does not run the
//!   action again; a claim whose holder died is taken over once it expires;
//! - poison: a step message that can never succeed is parked on its first
//!   delivery, and its run ends `failed` with the reason (no run stays
//!   `running`); a replay after the cause is fixed finishes the run;
//! - crashes: a message whose invocation dies on every delivery reaches the
//!   dead-letter queue, whose consumer parks it and ends its run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hookflow_core::dead_letter::{ParkedBecause, ParkedMessage, QueueKind};
use hookflow_core::engine::{DeliveryLimits, NextMove};
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::ports::*;
use hookflow_core::run::{RunRecord, RunStatus, StepMessage};
use hookflow_core::wiring::Stores;
use hookflow_core::worker::{consume, ConsumerSettings, MessageHandler};
use hookflow_core::{StepExecutor, WorkflowDefinition};
use serde_json::json;
use tokio::sync::watch;

struct Ok200;

/// Answers 200 after a pause, counting requests.
#[derive(Default)]
struct SlowCounting(std::sync::atomic::AtomicU32);

#[async_trait]
impl HttpClient for SlowCounting {
    async fn send(&self, _call: HttpCall) -> Result<HttpReply, HttpError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(HttpReply {
            status: 200,
            headers: vec![],
            body: b"{}".to_vec(),
        })
    }
}

#[async_trait]
impl HttpClient for Ok200 {
    async fn send(&self, _call: HttpCall) -> Result<HttpReply, HttpError> {
        Ok(HttpReply {
            status: 200,
            headers: vec![],
            body: b"{}".to_vec(),
        })
    }
}

fn workflow(version: u32) -> WorkflowDefinition {
    WorkflowDefinition::from_value(
        json!({"id": "wf", "workspace_id": "ws", "name": "wf", "status": "active",
        "version": version, "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "call",
        "steps": {"call": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://example.com/hook"}}}}),
    )
    .expect("workflow decodes")
}

/// Answers every request with a large JSON body and records request bodies.
#[derive(Default)]
struct BigReplies(std::sync::Mutex<Vec<Vec<u8>>>);

#[async_trait]
impl HttpClient for BigReplies {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, HttpError> {
        self.0.lock().expect("lock").push(call.body.unwrap_or_default());
        Ok(HttpReply {
            status: 200,
            headers: vec![],
            body: serde_json::to_vec(&json!({"blob": "x".repeat(300_000), "id": "abc"})).expect("encode"),
        })
    }
}

#[tokio::test]
async fn a_context_over_64_kib_travels_by_reference_and_arrives_whole() {
    let backend = twins(Duration::from_secs(30));
    let two_calls = WorkflowDefinition::from_value(json!({"id": "wf", "workspace_id": "ws", "name": "wf",
        "status": "active", "version": 1, "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"},
        "start": "call", "steps": {
            "call": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://example.com/a"}, "next": "use"},
            "use": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://example.com/b",
                     "body": {"id": "{{ steps.call.body.id }}", "blob": "{{ steps.call.body.blob }}"}}}}}))
    .expect("workflow decodes");
    backend.workflows.put_version(&two_calls).await.expect("store");
    backend
        .runs
        .create_run(&run_record("run_big", 1))
        .await
        .expect("create");
    let http = Arc::new(BigReplies::default());
    let executor = step_executor(&backend, http.clone());
    executor
        .handle_message(&step_message("run_big", 1))
        .await
        .expect("first hop");
    let next = backend.steps.receive(10, Duration::ZERO).await.expect("receive");
    assert_eq!(next.len(), 1);
    assert!(
        next[0].body.len() <= hookflow_core::engine::MAX_INLINE_MESSAGE_BYTES,
        "the message stays one 64 KiB request: {} bytes",
        next[0].body.len()
    );
    let message: StepMessage = serde_json::from_str(&next[0].body).expect("decode");
    assert!(message.context_ref.is_some() && message.context.is_null());
    executor.handle_message(&next[0].body).await.expect("second hop");
    let sent = http.0.lock().expect("lock").clone();
    let second: serde_json::Value = serde_json::from_slice(&sent[1]).expect("json body");
    assert_eq!(second["id"], "abc");
    assert_eq!(
        second["blob"].as_str().map(str::len),
        Some(300_000),
        "the whole context arrived"
    );
    let finished = backend.runs.get_run("run_big").await.expect("get").expect("run");
    assert_eq!(finished.status, RunStatus::Succeeded);
}

/// The in-memory twins, with queues that redeliver after `visibility_timeout`
/// and dead-letter after 5 deliveries.
fn twins(visibility_timeout: Duration) -> MemoryBackend {
    MemoryBackend::new(QueueSettings {
        visibility_timeout,
        max_receive_count: 5,
    })
}

fn step_executor(backend: &MemoryBackend, http: Arc<dyn HttpClient>) -> StepExecutor {
    Stores::memory(backend, Arc::new(SystemClock)).step_executor(
        backend.steps.clone(),
        backend.triggers.clone(),
        http,
        // Lambda's longest timeout: these tests name their deadlines.
        DeliveryLimits::for_queue(Duration::from_secs(901), 5),
    )
}

fn run_record(run_id: &str, version: u32) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        workspace_id: "ws".into(),
        workflow_id: "wf".into(),
        workflow_version: version,
        event_id: "evt".into(),
        trigger_type: "Prize.Won".into(),
        status: RunStatus::Running,
        started_at: Utc::now(),
        ended_at: None,
        error: None,
        replays: 0,
        test: false,
        replay_of: None,
        due_at: None,
        contact_id: None,
        erased_at: None,
    }
}

fn step_message(run_id: &str, version: u32) -> String {
    serde_json::to_string(&StepMessage {
        run_id: run_id.into(),
        workspace_id: "ws".into(),
        workflow_id: "wf".into(),
        workflow_version: version,
        step_id: "call".into(),
        attempt: 1,
        context: json!({"vars": {}, "steps": {}}),
        context_ref: None,
        resume_at: None,
        replay: 0,
    })
    .expect("encode")
}

#[tokio::test]
async fn a_claimed_step_runs_once_and_a_dead_holders_claim_is_taken_over() {
    let backend = twins(Duration::from_secs(30));
    backend.workflows.put_version(&workflow(1)).await.expect("store");
    backend.runs.create_run(&run_record("run_a", 1)).await.expect("create");
    let http = Arc::new(SlowCounting::default());
    let executor = step_executor(&backend, http.clone());
    let body = step_message("run_a", 1);
    let (first, second) = tokio::join!(executor.handle_message(&body), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        executor.handle_message(&body).await
    });
    first.expect("the first delivery executes");
    let err = second.expect_err("the concurrent delivery backs off");
    assert!(
        matches!(err, hookflow_core::EngineError::StepInProgress { .. }),
        "{err}"
    );
    assert!(err.is_retryable(), "it comes back after the visibility timeout");
    assert_eq!(http.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    let again = executor
        .handle_message(&body)
        .await
        .expect("a late redelivery is absorbed");
    assert!(again.executed.is_empty());
    assert_eq!(again.next, NextMove::Finished(RunStatus::Succeeded));
    assert_eq!(http.0.load(std::sync::atomic::Ordering::SeqCst), 1, "still one request");

    // A worker claimed run_b's step and died: its claim blocks until it expires.
    backend.runs.create_run(&run_record("run_b", 1)).await.expect("create");
    let now = Utc::now();
    let dead = StepClaim {
        run_id: "run_b".into(),
        step_id: "call".into(),
        attempt: 1,
        owner: "crashed-worker".into(),
        expires_at: now + chrono::Duration::milliseconds(300),
    };
    assert_eq!(
        backend.runs.claim_step(&dead, now).await.expect("claim"),
        ClaimOutcome::Acquired
    );
    let body = step_message("run_b", 1);
    assert!(matches!(
        executor.handle_message(&body).await,
        Err(hookflow_core::EngineError::StepInProgress { ref owner, .. }) if owner == "crashed-worker"
    ));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let report = executor
        .handle_message(&body)
        .await
        .expect("the expired claim is taken over");
    assert_eq!(report.executed, vec!["call".to_owned()]);
    let finished = backend.runs.get_run("run_b").await.expect("get").expect("run");
    assert_eq!(finished.status, RunStatus::Succeeded);
}

/// Runs consumers of the steps queue (with `handler`) and of its dead-letter
/// queue until `done` holds or a minute passes.
async fn consume_until(
    backend: &MemoryBackend,
    handler: Arc<dyn MessageHandler>,
    done: impl Fn(&MemoryBackend) -> bool,
) {
    let stores = Stores::memory(backend, Arc::new(SystemClock));
    let letters = Arc::new(stores.dead_letters(QueueKind::Steps, backend.steps.clone()));
    let settings = ConsumerSettings {
        batch_size: 10,
        wait: Duration::from_millis(20),
    };
    let (stop, stop_rx) = watch::channel(false);
    let steps: Arc<dyn Queue> = backend.steps.clone();
    let dlq: Arc<dyn Queue> = backend.steps_dlq.clone();
    let workers = [
        tokio::spawn(consume(steps, handler, letters.clone(), settings, stop_rx.clone())),
        tokio::spawn(consume(dlq, letters.clone(), letters, settings, stop_rx)),
    ];
    // Seconds here; the bound only fails a stuck pipeline (3× margin at half speed and more).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done(backend) {
        assert!(std::time::Instant::now() < deadline, "the consumers did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    for worker in workers {
        worker.await.expect("worker stops");
    }
}

fn parked_now(backend: &MemoryBackend) -> Vec<ParkedMessage> {
    backend.dead_letters.parked(QueueKind::Steps)
}

#[tokio::test]
async fn terminal_errors_are_parked_on_the_first_delivery_and_their_run_fails_then_replays() {
    let backend = twins(Duration::from_millis(50));
    backend
        .runs
        .create_run(&run_record("run_poison", 2))
        .await
        .expect("create run");
    // Version 2 was never stored (a deleted version): this can never succeed.
    let steps: Arc<dyn Queue> = backend.steps.clone();
    steps
        .send(step_message("run_poison", 2), Duration::ZERO)
        .await
        .expect("send");
    steps.send("{not json".into(), Duration::ZERO).await.expect("send");

    let executor = Arc::new(step_executor(&backend, Arc::new(Ok200)));
    consume_until(&backend, executor, |b| parked_now(b).len() == 2).await;

    assert!(
        backend.steps.is_empty() && backend.steps_dlq.is_empty(),
        "nothing left on the queues"
    );
    let parked = parked_now(&backend);
    assert!(
        parked
            .iter()
            .all(|m| m.receive_count == 1 && m.because == ParkedBecause::Terminal),
        "parked on the first delivery, not after five: {parked:?}"
    );
    assert!(parked.iter().any(|m| m.body == "{not json" && m.run_id.is_none()));
    let failed = backend.runs.get_run("run_poison").await.expect("get").expect("run");
    assert_eq!(failed.status, RunStatus::Failed, "the run does not stay running");
    let reason = failed.error.unwrap_or_default();
    assert!(
        reason.contains("failed terminally on delivery 1") && reason.contains("version 2 does not exist"),
        "{reason}"
    );

    // The operator restores the version and replays: the run finishes.
    backend
        .workflows
        .put_version(&workflow(2))
        .await
        .expect("restore version");
    let replayed = Stores::memory(&backend, Arc::new(SystemClock))
        .recovery(steps.clone())
        .replay("ws", "run_poison", hookflow_core::engine::ReplayFrom::FailedStep, None)
        .await
        .expect("replay");
    assert_eq!((replayed.step_id.as_str(), replayed.attempt), ("call", 2));
    let executor = step_executor(&backend, Arc::new(Ok200));
    let delivery = steps.receive(1, Duration::from_secs(5)).await.expect("receive");
    executor
        .handle_message(&delivery[0].body)
        .await
        .expect("replayed step runs");
    let finished = backend.runs.get_run("run_poison").await.expect("get").expect("run");
    assert_eq!(finished.status, RunStatus::Succeeded);
}

/// An invocation that dies handling one message: it never answers, so
/// only the queue's receive count and dead-letter queue know.
struct DiesOn(&'static str);

#[async_trait]
impl MessageHandler for DiesOn {
    async fn handle(
        &self,
        delivery: &Delivery,
        _deadline: Option<chrono::DateTime<Utc>>,
    ) -> Result<(), hookflow_core::EngineError> {
        if delivery.body.contains(self.0) {
            panic!("out of memory (simulated)");
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_message_whose_invocation_dies_every_time_is_parked_by_the_dead_letter_consumer_and_its_run_fails() {
    let backend = twins(Duration::from_millis(50));
    backend.workflows.put_version(&workflow(1)).await.expect("store");
    backend
        .runs
        .create_run(&run_record("run_crash", 1))
        .await
        .expect("create run");
    let steps: Arc<dyn Queue> = backend.steps.clone();
    steps
        .send(step_message("run_crash", 1), Duration::ZERO)
        .await
        .expect("send");
    consume_until(&backend, Arc::new(DiesOn("run_crash")), |b| parked_now(b).len() == 1).await;

    let parked = &parked_now(&backend)[0];
    assert_eq!(parked.because, ParkedBecause::DeliveriesExhausted);
    assert_eq!(parked.run_id.as_deref(), Some("run_crash"));
    let failed = backend.runs.get_run("run_crash").await.expect("get").expect("run");
    assert_eq!(failed.status, RunStatus::Failed, "the run does not stay running");
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("moved to the dead-letter queue"),
        "{:?}",
        failed.error
    );
    assert!(
        backend
            .runs
            .get_blob("run_crash", hookflow_core::engine::RESUME_KEY)
            .await
            .expect("get")
            .is_some(),
        "the run can be replayed from the parked message"
    );
    assert_eq!(
        backend
            .metrics
            .prometheus()
            .lines()
            .find(|l| l.starts_with("hookflow_dead_letter_moves_total")),
        Some("hookflow_dead_letter_moves_total 1")
    );
}

#[tokio::test]
async fn a_redelivered_trigger_resends_the_first_step_of_the_runs_own_version() {
    use hookflow_core::run::run_id_for;
    use hookflow_core::subscription::Subscription;
    use hookflow_core::TriggerEvent;

    let backend = twins(Duration::from_secs(30));
    let v1 = workflow(1);
    let mut v2_doc = serde_json::to_value(&v1).expect("encode");
    v2_doc["version"] = json!(2);
    v2_doc["start"] = json!("first_of_v2");
    v2_doc["steps"]["first_of_v2"] = json!({"action": {"type": "SetVariables", "values": {"a": 1}}, "next": "call"});
    let v2 = WorkflowDefinition::from_value(v2_doc).expect("v2 decodes");
    backend.workflows.put_version(&v1).await.expect("store v1");
    backend.workflows.put_version(&v2).await.expect("store v2");
    backend
        .subscriptions
        .put(&Subscription::for_workflow(&v2).expect("active"))
        .await
        .expect("subscribe v2");
    // An earlier delivery created the run on v1, then died before sending its first step.
    let event: TriggerEvent = serde_json::from_value(json!({"specversion": "1.0", "id": "evt-v1", "source": "s",
        "type": "Prize.Won", "workspaceid": "ws", "data": {}}))
    .expect("event decodes");
    let run_id = run_id_for(&event, "wf");
    backend.runs.create_run(&run_record(&run_id, 1)).await.expect("create");

    let dispatcher = Stores::memory(&backend, Arc::new(SystemClock)).dispatcher(backend.steps.clone());
    let report = dispatcher.dispatch(&event).await.expect("dispatch");
    assert_eq!(report.existing, vec![run_id.clone()]);
    let sent = backend.steps.receive(10, Duration::ZERO).await.expect("receive");
    assert_eq!(sent.len(), 1, "the first step is sent again");
    let message: StepMessage = serde_json::from_str(&sent[0].body).expect("decode");
    assert_eq!(
        (message.workflow_version, message.step_id.as_str()),
        (1, "call"),
        "the run's own version and start, not the subscription's"
    );
    backend.steps.ack(&sent[0].receipt).await.expect("ack");
    dispatcher.dispatch(&event).await.expect("dispatch again");
    assert!(
        backend
            .steps
            .receive(10, Duration::ZERO)
            .await
            .expect("receive")
            .is_empty(),
        "a later redelivery finds the hand-off note"
    );
}

#[tokio::test]
async fn a_stale_message_from_before_a_replay_is_ignored_handled_or_parked() {
    let backend = twins(Duration::from_secs(30));
    backend.workflows.put_version(&workflow(1)).await.expect("store");
    backend
        .runs
        .create_run(&run_record("run_stale", 1))
        .await
        .expect("create");
    let http = Arc::new(SlowCounting::default());
    let executor = step_executor(&backend, http.clone());
    // The run failed and was replayed; a copy of its original first message
    // (replay 0) comes back late.
    backend
        .runs
        .finish_run("run_stale", RunStatus::Failed, Some("boom".into()), Utc::now())
        .await
        .expect("fail");
    assert_eq!(
        backend.runs.reopen_run("run_stale", Utc::now()).await.expect("reopen"),
        Some(1)
    );
    let stale = executor
        .handle_message(&step_message("run_stale", 1))
        .await
        .expect("absorbed");
    assert!(stale.executed.is_empty() && stale.replayed.is_empty());
    assert_eq!(
        http.0.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the stale copy acts on nothing"
    );
    // Dead-lettered (its invocation died every time), it ends nothing either.
    let stale = Delivery {
        receipt: "stale".into(),
        body: step_message("run_stale", 1),
        receive_count: 5,
    };
    Stores::memory(&backend, Arc::new(SystemClock))
        .dead_letters(QueueKind::Steps, backend.steps.clone())
        .park(&stale, ParkedBecause::DeliveriesExhausted, "test")
        .await
        .expect("park");
    let running = backend.runs.get_run("run_stale").await.expect("get").expect("run");
    assert_eq!(
        running.status,
        RunStatus::Running,
        "the replayed run is left to its replay"
    );
}

/// Counts requests per path and answers 200.
#[derive(Default)]
struct CountingPaths(std::sync::Mutex<Vec<String>>);

#[async_trait]
impl HttpClient for CountingPaths {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, HttpError> {
        self.0.lock().expect("lock").push(call.url);
        Ok(HttpReply {
            status: 200,
            headers: vec![],
            body: b"{}".to_vec(),
        })
    }
}

#[tokio::test]
async fn a_run_ended_by_a_parked_duplicate_replays_on_from_its_recorded_step_without_acting_again() {
    let backend = twins(Duration::from_secs(30));
    let two_calls = WorkflowDefinition::from_value(json!({"id": "wf", "workspace_id": "ws", "name": "wf",
        "status": "active", "version": 1, "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"},
        "start": "call", "steps": {
            "call": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://example.com/a"}, "next": "then"},
            "then": {"action": {"type": "HttpRequest", "method": "POST", "url": "https://example.com/b"}}}}))
    .expect("workflow decodes");
    backend.workflows.put_version(&two_calls).await.expect("store");
    backend
        .runs
        .create_run(&run_record("run_dup", 1))
        .await
        .expect("create");
    let http = Arc::new(CountingPaths::default());
    let executor = step_executor(&backend, http.clone());
    let first = step_message("run_dup", 1);
    executor.handle_message(&first).await.expect("call runs and hands off");
    // A duplicate of the first message dead-letters while the run moves on:
    // parking it ends the run.
    let stores = Stores::memory(&backend, Arc::new(SystemClock));
    let duplicate = Delivery {
        receipt: "dup".into(),
        body: first,
        receive_count: 5,
    };
    stores
        .dead_letters(QueueKind::Steps, backend.steps.clone())
        .park(&duplicate, ParkedBecause::DeliveriesExhausted, "test")
        .await
        .expect("park");
    let ended = backend.runs.get_run("run_dup").await.expect("get").expect("run");
    assert_eq!(ended.status, RunStatus::Failed);

    let replayed = stores
        .recovery(backend.steps.clone())
        .replay("ws", "run_dup", hookflow_core::engine::ReplayFrom::FailedStep, None)
        .await
        .expect("replay");
    assert_eq!(
        (replayed.step_id.as_str(), replayed.attempt),
        ("call", 1),
        "the recorded attempt"
    );
    // The hand-off from before the ending is stale now (ignored); the replay's own goes on.
    for _ in 0..5 {
        for delivery in backend
            .steps
            .receive(10, Duration::from_secs(5))
            .await
            .expect("receive")
        {
            executor.handle_message(&delivery.body).await.expect("handled");
            backend.steps.ack(&delivery.receipt).await.expect("ack");
        }
        if backend.steps.is_empty() {
            break;
        }
    }
    let finished = backend.runs.get_run("run_dup").await.expect("get").expect("run");
    assert_eq!(finished.status, RunStatus::Succeeded);
    let sent = http.0.lock().expect("lock").clone();
    assert_eq!(
        sent,
        vec!["https://example.com/a".to_owned(), "https://example.com/b".to_owned()],
        "each step acted once"
    );
}
