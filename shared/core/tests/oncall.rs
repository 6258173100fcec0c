//! The on-call actions on the in-memory twins: cancel (a delayed run's later
//! delivery is a no-op), replay from the start (a new run on the same
//! event), bulk replay (bounded, reported, once per idempotency key); an
//! erased run stays ended whatever message or replay comes for it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookflow_core::engine::{BulkReplay, DeliveryLimits, RecoveryError, ReplayFrom, START_KEY};
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::ports::*;
use hookflow_core::run::RunStatus;
use hookflow_core::subscription::Subscription;
use hookflow_core::wiring::Stores;
use hookflow_core::{StepExecutor, TriggerEvent, WorkflowDefinition};
use serde_json::json;

/// Answers 400 (a terminal failure) until `healthy`, then 200; counts calls.
#[derive(Default)]
struct Peer {
    healthy: AtomicBool,
    calls: AtomicU32,
}

#[async_trait]
impl HttpClient for Peer {
    async fn send(&self, _call: HttpCall) -> Result<HttpReply, HttpError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let status = if self.healthy.load(Ordering::SeqCst) { 200 } else { 400 };
        Ok(HttpReply {
            status,
            headers: vec![],
            body: b"{\"peer\":\"answer\"}".to_vec(),
        })
    }
}

struct Stack {
    backend: MemoryBackend,
    stores: Stores,
    executor: StepExecutor,
    peer: Arc<Peer>,
}

async fn stack(steps: serde_json::Value, start: &str) -> Stack {
    let backend = MemoryBackend::new(QueueSettings {
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: 5,
    });
    let stores = Stores::memory(&backend, Arc::new(SystemClock));
    let peer = Arc::new(Peer::default());
    let executor = stores.step_executor(
        backend.steps.clone(),
        backend.triggers.clone(),
        peer.clone(),
        DeliveryLimits::for_queue(Duration::from_secs(901), 5),
    );
    let workflow = WorkflowDefinition::from_value(json!({"id": "wf", "workspace_id": "ws", "name": "wf",
        "status": "active", "version": 1, "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"},
        "start": start, "steps": steps}))
    .expect("workflow decodes");
    backend.workflows.put_version(&workflow).await.expect("store");
    backend
        .subscriptions
        .put(&Subscription::for_workflow(&workflow).expect("active"))
        .await
        .expect("subscribe");
    Stack {
        backend,
        stores,
        executor,
        peer,
    }
}

impl Stack {
    /// Starts one run per event id; returns their run ids.
    async fn trigger(&self, ids: &[String]) -> Vec<String> {
        let dispatcher = self.stores.dispatcher(self.backend.steps.clone());
        let mut started = vec![];
        for id in ids {
            let event: TriggerEvent = serde_json::from_value(json!({"specversion": "1.0", "id": id, "source": "tests",
                "type": "Prize.Won", "workspaceid": "ws", "contactid": "ct_1",
                "data": {"contact": {"email": "a@example.com"}}}))
            .expect("event");
            started.extend(dispatcher.dispatch(&event).await.expect("dispatch").started);
        }
        started
    }

    /// Delivers every visible step message once and acknowledges it.
    async fn drain(&self) -> usize {
        let mut handled = 0;
        loop {
            let batch = self.backend.steps.receive(10, Duration::ZERO).await.expect("receive");
            if batch.is_empty() {
                return handled;
            }
            for delivery in batch {
                self.executor.handle_message(&delivery.body).await.expect("step");
                self.backend.steps.ack(&delivery.receipt).await.expect("ack");
                handled += 1;
            }
        }
    }

    /// One run of `event_id` that failed: its id (in a list, like
    /// `trigger`'s), the peer's calls so far, and the run's resume point.
    async fn failed_run(&self, event_id: &str) -> (Vec<String>, u32, String) {
        let runs = self.trigger(&[event_id.into()]).await;
        self.drain().await;
        assert_eq!(self.status(&runs[0]).await, RunStatus::Failed);
        let resume = self
            .backend
            .runs
            .get_blob(&runs[0], hookflow_core::engine::RESUME_KEY)
            .await
            .expect("blob")
            .expect("a resume point");
        (runs, self.peer.calls.load(Ordering::SeqCst), resume)
    }

    async fn status(&self, run_id: &str) -> RunStatus {
        self.backend
            .runs
            .get_run(run_id)
            .await
            .expect("get")
            .expect("run")
            .status
    }
}

fn call_peer() -> serde_json::Value {
    json!({"action": {"type": "HttpRequest", "method": "POST", "url": "https://crm.example/leads"}})
}

#[tokio::test]
async fn a_cancelled_delayed_run_does_nothing_when_its_message_arrives() {
    let stack = stack(
        json!({"wait": {"action": {"type": "Delay", "seconds": 1}, "next": "call"}, "call": call_peer()}),
        "wait",
    )
    .await;
    stack.peer.healthy.store(true, Ordering::SeqCst);
    let runs = stack.trigger(&["evt-delay".into()]).await;
    assert_eq!(stack.drain().await, 1, "the Delay step ran and parked its message");
    assert_eq!(stack.status(&runs[0]).await, RunStatus::Running);

    let recovery = stack.stores.recovery(stack.backend.steps.clone());
    let cancelled = recovery.cancel("ws", &runs[0]).await.expect("cancel");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(
        matches!(
            recovery.cancel("ws", &runs[0]).await,
            Err(RecoveryError::NotRunning { .. })
        ),
        "a run is cancelled once"
    );
    assert!(
        matches!(
            recovery.cancel("other_ws", &runs[0]).await,
            Err(RecoveryError::RunNotFound(_))
        ),
        "another workspace's run is not found"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        stack.drain().await,
        1,
        "the delayed message arrives and is acknowledged"
    );
    assert_eq!(
        stack.peer.calls.load(Ordering::SeqCst),
        0,
        "the step after the Delay never ran"
    );
    assert_eq!(stack.status(&runs[0]).await, RunStatus::Cancelled);
    assert!(stack.backend.steps.is_empty());
}

#[tokio::test]
async fn a_replay_from_the_start_is_a_new_run_on_the_same_event() {
    let stack = stack(json!({"call": call_peer()}), "call").await;
    let runs = stack.trigger(&["evt-start".into()]).await;
    stack.drain().await;
    assert_eq!(stack.status(&runs[0]).await, RunStatus::Failed);
    assert!(stack
        .backend
        .runs
        .get_blob(&runs[0], START_KEY)
        .await
        .expect("blob")
        .is_some());

    stack.peer.healthy.store(true, Ordering::SeqCst);
    let recovery = stack.stores.recovery(stack.backend.steps.clone());
    let replayed = recovery
        .replay("ws", &runs[0], ReplayFrom::Start, None)
        .await
        .expect("replay");
    assert_ne!(replayed.run_id, runs[0]);
    assert_eq!(replayed.replay_of.as_deref(), Some(runs[0].as_str()));
    stack.drain().await;
    let replay = stack
        .backend
        .runs
        .get_run(&replayed.run_id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(
        (replay.status, replay.replay_of.as_deref()),
        (RunStatus::Succeeded, Some(runs[0].as_str()))
    );
    assert_eq!(replay.event_id, "evt-start");
    assert_eq!(
        stack.status(&runs[0]).await,
        RunStatus::Failed,
        "the failed run stays as it was"
    );
    assert_eq!(stack.peer.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_bulk_replay_is_bounded_reported_and_done_once_per_key() {
    let stack = stack(json!({"call": call_peer()}), "call").await;
    let ids: Vec<String> = (0..5).map(|n| format!("evt-bulk-{n}")).collect();
    let runs = stack.trigger(&ids).await;
    stack.drain().await;
    for run in &runs {
        assert_eq!(stack.status(run).await, RunStatus::Failed);
    }
    let recovery = stack.stores.recovery(stack.backend.steps.clone());
    // One run was replayed by hand already: the bulk replay skips it.
    recovery
        .replay("ws", &runs[0], ReplayFrom::FailedStep, None)
        .await
        .expect("replay one");
    let request = BulkReplay {
        workspace_id: "ws".into(),
        workflow_id: Some("wf".into()),
        status: RunStatus::Failed,
        since: None,
        until: None,
        from: ReplayFrom::FailedStep,
        limit: 3,
        idempotency_key: "key-1".into(),
    };
    let report = recovery.bulk_replay(&request).await.expect("bulk");
    assert_eq!(report.replayed.len(), 3, "{report:?}");
    assert!(report.truncated, "four failed runs matched a limit of three");
    assert!(!report.repeated);
    let queued = stack.backend.steps.len();
    assert_eq!(queued, 4, "one hand replay and three bulk replays");

    let again = recovery.bulk_replay(&request).await.expect("bulk again");
    assert!(again.repeated);
    assert_eq!(again.replayed, report.replayed, "the first report, again");
    assert_eq!(stack.backend.steps.len(), queued, "the same key replays nothing more");

    // A failed run with no resume point is skipped, with the reason.
    let orphan = hookflow_core::run::RunRecord {
        run_id: "run_orphan".into(),
        workspace_id: "ws".into(),
        workflow_id: "wf".into(),
        workflow_version: 1,
        event_id: "evt-orphan".into(),
        trigger_type: "Prize.Won".into(),
        status: RunStatus::Running,
        started_at: chrono::Utc::now(),
        ended_at: None,
        error: None,
        replays: 0,
        test: false,
        replay_of: None,
        due_at: None,
        contact_id: None,
        erased_at: None,
    };
    stack.backend.runs.create_run(&orphan).await.expect("create");
    stack
        .backend
        .runs
        .finish_run("run_orphan", RunStatus::Failed, None, chrono::Utc::now())
        .await
        .expect("fail");

    // With a new key, the one failed run left is replayed; runs no longer
    // failed are not matched.
    let rest = recovery
        .bulk_replay(&BulkReplay {
            idempotency_key: "key-2".into(),
            limit: 1000,
            ..request.clone()
        })
        .await
        .expect("bulk rest");
    assert_eq!((rest.replayed.len(), rest.truncated), (1, false), "{rest:?}");
    assert_eq!(rest.skipped.len(), 1, "{rest:?}");
    assert_eq!(rest.skipped[0].run_id, "run_orphan");
    assert!(rest.skipped[0].reason.contains("no resume point"), "{rest:?}");
    stack.peer.healthy.store(true, Ordering::SeqCst);
    // Failed-step replays hold their message back a second (until the reopen).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stack.drain().await;
    for run in &runs {
        assert_eq!(stack.status(run).await, RunStatus::Succeeded, "{run}");
    }
}

#[tokio::test]
async fn a_replay_message_that_outruns_its_reopen_waits_and_runs_nothing() {
    let stack = stack(json!({"call": call_peer()}), "call").await;
    let (runs, calls, resume) = stack.failed_run("evt-early").await;
    // The message a replay sends before it reopens the run.
    let mut early: serde_json::Value = serde_json::from_str(&resume).expect("message");
    early["replay"] = json!(1);
    early["attempt"] = json!(2);
    let refused = stack.executor.handle_message(&early.to_string()).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.is_retryable()),
        "redelivered until the reopen lands: {refused:?}"
    );
    assert_eq!(stack.peer.calls.load(Ordering::SeqCst), calls, "nothing ran");
    assert_eq!(stack.status(&runs[0]).await, RunStatus::Failed, "the run stays failed");
}

#[tokio::test]
async fn an_erased_run_is_never_replayed_nor_run_by_a_late_message() {
    let stack = stack(json!({"call": call_peer()}), "call").await;
    let (runs, calls, resume) = stack.failed_run("evt-erased").await;

    let erased = stack.stores.contacts().erase("ws", "ct_1").await;
    assert!(
        matches!(erased, Err(hookflow_core::contacts::ContactError::NotFound(_))),
        "no contact was stored, its runs are erased all the same: {erased:?}"
    );
    let run = stack.backend.runs.get_run(&runs[0]).await.expect("get").expect("kept");
    assert!(
        run.erased_at.is_some() && run.contact_id.as_deref() == Some("ct_1"),
        "{run:?}"
    );
    let recovery = stack.stores.recovery(stack.backend.steps.clone());
    for from in [ReplayFrom::FailedStep, ReplayFrom::Start] {
        assert!(
            matches!(
                recovery.replay("ws", &runs[0], from, None).await,
                Err(RecoveryError::Erased(_))
            ),
            "{from:?}"
        );
    }
    // The message of a replay that read the run before the erasure: its
    // reopen was refused, and it is acknowledged, not redelivered.
    let mut late: serde_json::Value = serde_json::from_str(&resume).expect("message");
    late["replay"] = json!(1);
    late["attempt"] = json!(2);
    late["context"] = serde_json::Value::Null;
    late["context_ref"] = json!("ctx#call#2");
    let outcome = stack.executor.handle_message(&late.to_string()).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(stack.peer.calls.load(Ordering::SeqCst), calls, "nothing ran");
    assert_eq!(stack.status(&runs[0]).await, RunStatus::Failed);
    assert_eq!(
        stack.backend.runs.list_steps(&runs[0]).await.expect("steps").len(),
        1,
        "nothing recorded"
    );
}
