//! The chaos harness: the whole pipeline on any ports, with a fault injected
//! at every cut point of a handler, and checks of the global invariants only.
//!
//! Faults are decided by a hash of (seed, cut point, message identity), not
//! by the order tasks happen to run in, so a seed reproduces the same faults.
//! Each cut point fails a given message at most once. On top of those, some
//! messages are doomed: their invocation dies on every delivery until the
//! queue dead-letters them, and the dead-letter consumer ends their run.
//! On-call then cures the cause and replays the failed runs.
//!
//! The queues are consumed the way Lambda consumes them: a batch handed to
//! the functions' own handler (`hookflow_lambda::handle_sqs_batch`), the
//! records it did not report deleted, unless the invocation dies first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use hookflow_cli::dev::Ports;
use hookflow_core::actions::ActionKind;
use hookflow_core::dead_letter::QueueKind;
use hookflow_core::engine::{DeadLetters, DeliveryLimits, Reaper, ReplayFrom};
use hookflow_core::ports::*;
use hookflow_core::run::{run_id_for, RunRecord, RunStatus, StepMessage, StepRecord, StepStatus};
use hookflow_core::subscription::Subscription;
use hookflow_core::wiring::Stores;
use hookflow_core::worker::MessageHandler;
use hookflow_core::{TriggerEvent, WorkflowDefinition};
use hookflow_http_client::{NetworkPolicy, ReqwestHttpClient};
use hookflow_lambda::{handle_sqs_batch, QueueConsumer};
use serde_json::json;
use tokio::sync::watch;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CutPoint {
    /// The claim is taken, the action has not run.
    BeforeAction,
    /// The action ran, its record is not written.
    AfterActionBeforeRecord,
    /// The record is written, the next message is not sent.
    AfterRecordBeforeSend,
    /// The handler finished, the message is not acknowledged.
    BeforeAck,
    /// The whole invocation died after its handler ran (a timeout, a
    /// crash): nothing of the batch is deleted.
    InvocationDies,
    /// One record blew the invocation's memory: the records before it were
    /// handled, none is deleted.
    MemoryBlowup,
}

const CUT_POINTS: [CutPoint; 6] = [
    CutPoint::BeforeAction,
    CutPoint::AfterActionBeforeRecord,
    CutPoint::AfterRecordBeforeSend,
    CutPoint::BeforeAck,
    CutPoint::InvocationDies,
    CutPoint::MemoryBlowup,
];

/// Decides and counts the faults.
pub struct Faults {
    seed: u64,
    /// Per mille of first encounters that crash.
    crash_per_mille: u64,
    seen: Mutex<BTreeSet<(CutPoint, u64)>>,
    pub crashes: Mutex<BTreeMap<CutPoint, u64>>,
    pub duplicate_sends: AtomicU64,
    /// Invocations killed by a doomed message.
    pub doomed_deaths: AtomicU64,
    /// Set once on-call has cured what killed the doomed messages (their
    /// step's memory, say), before replaying their runs.
    cured: AtomicBool,
    /// Redeliveries and duplicates the engine recognised and absorbed.
    pub absorbed: AtomicU64,
    /// The harness's own view of progress, kept in memory so that waiting
    /// for the end costs the backend nothing.
    pub progress: Progress,
}

/// What the engine finished and consumed, as seen through the faulty ports.
#[derive(Default)]
pub struct Progress {
    /// run id → every status `finish_run` accepted for it, in order.
    finished: Mutex<BTreeMap<String, Vec<RunStatus>>>,
    /// Messages acknowledged on either queue.
    acks: AtomicU64,
}

impl Progress {
    /// (runs finished, messages acknowledged): a change means progress.
    fn mark(&self) -> (usize, u64) {
        (
            self.finished.lock().expect("lock").len(),
            self.acks.load(Ordering::Relaxed),
        )
    }
}

impl Faults {
    pub fn new(seed: u64, crash_per_mille: u64) -> Arc<Self> {
        Arc::new(Self {
            seed,
            crash_per_mille,
            seen: Mutex::default(),
            crashes: Mutex::default(),
            duplicate_sends: AtomicU64::new(0),
            doomed_deaths: AtomicU64::new(0),
            cured: AtomicBool::new(false),
            absorbed: AtomicU64::new(0),
            progress: Progress::default(),
        })
    }

    fn crash(&self, point: CutPoint, identity: &str) -> Result<(), PortError> {
        if self.strikes(point, identity, self.crash_per_mille) {
            return Err(PortError::retryable("chaos", format!("injected crash {point:?}")));
        }
        Ok(())
    }

    /// A run of `wf_all` for an event whose `n` is 13 has a doomed `small`
    /// step: until the cure, its invocation dies on every delivery (as one
    /// that always runs out of memory would) and takes its batch with it,
    /// until the queue dead-letters it.
    fn doomed(&self, body: &str) -> bool {
        !self.cured.load(Ordering::Relaxed)
            && serde_json::from_str::<StepMessage>(body)
                .is_ok_and(|m| m.step_id == "small" && m.context["n"] == json!(13))
    }

    fn absorbed(&self) {
        self.absorbed.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a fault at `point` strikes `identity`: on its first
    /// encounter there, `per_mille` of the time (counted when it does).
    fn strikes(&self, point: CutPoint, identity: &str, per_mille: u64) -> bool {
        let key = fnv(&[identity.as_bytes()]);
        let first = self.seen.lock().expect("lock").insert((point, key));
        let roll = fnv(&[
            &self.seed.to_be_bytes(),
            format!("{point:?}").as_bytes(),
            identity.as_bytes(),
        ]) % 1000;
        let struck = first && roll < per_mille;
        if struck {
            *self.crashes.lock().expect("lock").entry(point).or_default() += 1;
        }
        struck
    }

    pub fn total_crashes(&self) -> u64 {
        self.crashes.lock().expect("lock").values().sum()
    }
}

/// A run log that crashes around the action and counts absorbed duplicates.
pub struct FaultyRunLog {
    inner: Arc<dyn RunLog>,
    faults: Arc<Faults>,
}

fn attempt_identity(run_id: &str, step_id: &str, attempt: u32) -> String {
    format!("{run_id}/{step_id}/{attempt}")
}

#[async_trait]
impl RunLog for FaultyRunLog {
    async fn create_run(&self, run: &RunRecord) -> PortResult<CreateRun> {
        let created = self.inner.create_run(run).await?;
        if matches!(created, CreateRun::AlreadyExists(_)) {
            self.faults.absorbed();
        }
        Ok(created)
    }
    async fn get_run(&self, run_id: &str) -> PortResult<Option<RunRecord>> {
        self.inner.get_run(run_id).await
    }
    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<String>,
        ended_at: DateTime<Utc>,
    ) -> PortResult<bool> {
        let moved = self.inner.finish_run(run_id, status, error, ended_at).await?;
        if moved {
            let mut finished = self.faults.progress.finished.lock().expect("lock");
            finished.entry(run_id.to_owned()).or_default().push(status);
        }
        Ok(moved)
    }
    async fn list_runs(&self, workspace_id: &str, query: &RunQuery) -> PortResult<RunPage> {
        self.inner.list_runs(workspace_id, query).await
    }
    async fn put_step(&self, record: &StepRecord) -> PortResult<PutStep> {
        // The window no claim closes, for the steps that act on the world
        // outside our stores (contact changes are keyed by their step).
        if matches!(
            record.action,
            ActionKind::HttpRequest | ActionKind::SendEmail | ActionKind::SendSms
        ) {
            self.faults.crash(
                CutPoint::AfterActionBeforeRecord,
                &attempt_identity(&record.run_id, &record.step_id, record.attempt),
            )?;
        }
        let put = self.inner.put_step(record).await?;
        if matches!(put, PutStep::AlreadyRecorded(_)) {
            self.faults.absorbed();
        }
        Ok(put)
    }
    async fn get_step(&self, run_id: &str, step_id: &str, attempt: u32) -> PortResult<Option<StepRecord>> {
        self.inner.get_step(run_id, step_id, attempt).await
    }
    async fn list_steps(&self, run_id: &str) -> PortResult<Vec<StepRecord>> {
        self.inner.list_steps(run_id).await
    }
    async fn claim_step(&self, claim: &StepClaim, now: DateTime<Utc>) -> PortResult<ClaimOutcome> {
        let outcome = self.inner.claim_step(claim, now).await?;
        match outcome {
            ClaimOutcome::Acquired => self.faults.crash(
                CutPoint::BeforeAction,
                &attempt_identity(&claim.run_id, &claim.step_id, claim.attempt),
            )?,
            ClaimOutcome::Completed(_) | ClaimOutcome::InProgress { .. } => self.faults.absorbed(),
        }
        Ok(outcome)
    }
    async fn put_blob(&self, run_id: &str, key: &str, value: &str) -> PortResult<()> {
        self.inner.put_blob(run_id, key, value).await
    }
    async fn get_blob(&self, run_id: &str, key: &str) -> PortResult<Option<String>> {
        self.inner.get_blob(run_id, key).await
    }
    async fn reopen_run(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<Option<u32>> {
        self.inner.reopen_run(run_id, due_at).await
    }
    async fn extend_due(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<()> {
        self.inner.extend_due(run_id, due_at).await
    }
    async fn list_overdue(&self, cutoff: DateTime<Utc>, limit: usize) -> PortResult<Vec<String>> {
        self.inner.list_overdue(cutoff, limit).await
    }
    async fn has_live_claim(&self, run_id: &str, now: DateTime<Utc>) -> PortResult<bool> {
        self.inner.has_live_claim(run_id, now).await
    }
    async fn mark_handed_off(&self, run_id: &str, key: &str) -> PortResult<()> {
        self.inner.mark_handed_off(run_id, key).await
    }
    async fn handed_off(&self, run_id: &str, key: &str) -> PortResult<bool> {
        let sent = self.inner.handed_off(run_id, key).await?;
        if sent {
            self.faults.absorbed();
        }
        Ok(sent)
    }
    async fn list_contact_runs(
        &self,
        workspace_id: &str,
        contact_id: &str,
        after: Option<&hookflow_core::run::RunPosition>,
        page_size: usize,
    ) -> PortResult<RunPage> {
        self.inner
            .list_contact_runs(workspace_id, contact_id, after, page_size)
            .await
    }
    async fn erase_run_data(&self, run_id: &str, at: DateTime<Utc>) -> PortResult<()> {
        self.inner.erase_run_data(run_id, at).await
    }
}

/// A queue that delivers every message twice, and crashes before sends
/// (when it carries the engine's hand-offs) and before acknowledgements.
pub struct FaultyQueue {
    inner: Arc<dyn Queue>,
    faults: Arc<Faults>,
    crash_sends: bool,
    /// receipt → body, so an acknowledgement is decided per message.
    bodies: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl Queue for FaultyQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn send(&self, body: String, delay: Duration) -> PortResult<()> {
        if self.crash_sends {
            self.faults.crash(CutPoint::AfterRecordBeforeSend, &body)?;
        }
        self.inner.send(body.clone(), delay).await?;
        self.inner.send(body, delay).await?;
        self.faults.duplicate_sends.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        let deliveries = self.inner.receive(max, wait).await?;
        let mut bodies = self.bodies.lock().expect("lock");
        for delivery in &deliveries {
            bodies.insert(delivery.receipt.clone(), delivery.body.clone());
        }
        Ok(deliveries)
    }
    async fn ack(&self, receipt: &str) -> PortResult<()> {
        let body = self.bodies.lock().expect("lock").remove(receipt).unwrap_or_default();
        self.faults.crash(CutPoint::BeforeAck, &format!("ack:{body}"))?;
        self.inner.ack(receipt).await?;
        self.faults.progress.acks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn peek(&self, max: usize) -> PortResult<Vec<String>> {
        self.inner.peek(max).await
    }
}

/// A function as its `main` wires it: the handler of its queue and the
/// dead letters of that queue (whose dead-letter queue it also consumes).
#[derive(Clone)]
struct Function {
    handler: Arc<dyn MessageHandler>,
    dead_letters: Arc<DeadLetters>,
    dead_letter_queue_arn: &'static str,
}

/// One SQS event source mapping of `function`, as Lambda runs it, until
/// `shutdown`: a batch of `queue` (its records carrying `arn`) goes to the
/// function's own handler, and the records it did not report failed are
/// deleted, unless the invocation died first.
async fn event_source(
    queue: Arc<dyn Queue>,
    arn: &'static str,
    function: Function,
    faults: Arc<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A dead-letter queue is mostly empty: it is asked without a long poll
    // (moto answers one request at a time, and a waiting receive would hold
    // it from the main queues), then left alone a moment.
    let dead_letter_mode = arn == function.dead_letter_queue_arn;
    let wait = if dead_letter_mode {
        Duration::ZERO
    } else {
        Duration::from_millis(200)
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        let batch = tokio::select! {
            batch = queue.receive(10, wait) => batch,
            _ = shutdown.changed() => break,
        };
        match batch {
            Ok(deliveries) if !deliveries.is_empty() => invoke(&queue, arn, &function, &faults, deliveries).await,
            Ok(_) if dead_letter_mode => tokio::time::sleep(Duration::from_millis(500)).await,
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One invocation. On the main queues a record may kill it as it is
/// reached (a doomed one every time, another once: out of memory); any
/// invocation may die once its handler returns (a timeout). Either way
/// nothing of the batch is deleted. The dead-letter mode runs no step, so
/// nothing there runs out of memory.
async fn invoke(
    queue: &Arc<dyn Queue>,
    arn: &'static str,
    function: &Function,
    faults: &Faults,
    deliveries: Vec<Delivery>,
) {
    let dead_letter_mode = arn == function.dead_letter_queue_arn;
    let fatal = deliveries.iter().position(|d| {
        !dead_letter_mode && (faults.doomed(&d.body) || faults.strikes(CutPoint::MemoryBlowup, &d.body, 10))
    });
    if fatal.is_some_and(|at| faults.doomed(&deliveries[at].body)) {
        faults.doomed_deaths.fetch_add(1, Ordering::Relaxed);
    }
    let handled = &deliveries[..fatal.unwrap_or(deliveries.len())];
    let records: Vec<serde_json::Value> = handled
        .iter()
        .map(|d| {
            json!({"messageId": d.receipt, "body": d.body, "eventSourceARN": arn,
                "attributes": {"ApproximateReceiveCount": d.receive_count.to_string()}})
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
    let consumer = QueueConsumer {
        handler: function.handler.as_ref(),
        dead_letters: &function.dead_letters,
        dead_letter_queue_arn: function.dead_letter_queue_arn,
    };
    let response = handle_sqs_batch(&consumer, event, None).await;
    let batch_identity = deliveries
        .iter()
        .map(|d| d.receipt.as_str())
        .collect::<Vec<_>>()
        .join("|");
    if fatal.is_some() || faults.strikes(CutPoint::InvocationDies, &batch_identity, 30) {
        return;
    }
    for delivery in handled {
        if !response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == delivery.receipt)
        {
            // A failed delete (an injected crash) only brings the message back.
            let _ = queue.ack(&delivery.receipt).await;
        }
    }
}

/// How many times on-call replays the failed runs: a replayed run still
/// failed after that fails the suite.
const REPLAY_ROUNDS: usize = 3;

/// Replays every failed run from the step it stopped at, and sends the
/// messages parked for it again: stale duplicates from before the replay,
/// which must change nothing. Returns the replayed runs.
async fn replay_failed(stores: &Stores, steps: &Arc<dyn Queue>) -> Vec<String> {
    let query = RunQuery {
        status: Some(RunStatus::Failed),
        ..RunQuery::default()
    };
    let failed = collect_runs(stores.runs.as_ref(), WS, &query, usize::MAX)
        .await
        .expect("list failed runs");
    let recovery = stores.recovery(steps.clone());
    let parked = stores
        .dead_letters(QueueKind::Steps, steps.clone())
        .list()
        .await
        .expect("parked messages");
    for run in &failed {
        recovery
            .replay(WS, &run.run_id, ReplayFrom::FailedStep, None)
            .await
            .expect("replay a dead-lettered run");
        for stale in parked
            .iter()
            .filter(|m| m.run_id.as_deref() == Some(run.run_id.as_str()))
        {
            steps
                .send(stale.body.clone(), Duration::ZERO)
                .await
                .expect("stale duplicate");
        }
    }
    failed.into_iter().map(|run| run.run_id).collect()
}

/// A clock a day ahead: the reaper's pass at the end looks at every run as
/// if everything due had long passed.
struct DayLater;

impl Clock for DayLater {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::days(1)
    }
}

/// The HTTP peer: answers 5xx 20 % and 429 with `Retry-After` 5 % of the
/// time (by hash of seed, key and try), and logs what it answered.
pub struct ChaosSink {
    seed: u64,
    tries: Mutex<HashMap<String, u32>>,
    /// (Idempotency-Key, status) of every request, in arrival order.
    pub answered: Mutex<Vec<(String, u16)>>,
}

struct SinkResponder(Arc<ChaosSink>);

impl Respond for SinkResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.answer(request)
    }
}

impl ChaosSink {
    fn answer(&self, request: &Request) -> ResponseTemplate {
        let key = request
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let try_number = {
            let mut tries = self.tries.lock().expect("lock");
            let n = tries.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let roll = fnv(&[&self.seed.to_be_bytes(), key.as_bytes(), &try_number.to_be_bytes()]) % 100;
        let response = match roll {
            0..20 => ResponseTemplate::new(503),
            20..25 => ResponseTemplate::new(429).insert_header("Retry-After", "1"),
            // A character SQS refuses in a message body, which the next
            // step sends on: escaped, it travels; raw, it would break the run.
            _ => ResponseTemplate::new(200).set_body_json(json!({"ok": true, "note": NOTE})),
        };
        let status = match roll {
            0..20 => 503,
            20..25 => 429,
            _ => 200,
        };
        self.answered.lock().expect("lock").push((key, status));
        response
    }
}

pub const WS: &str = "ws_chaos";

const TRIGGERS_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:chaos-triggers";
const TRIGGERS_DLQ_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:chaos-triggers-dlq";
const STEPS_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:chaos-steps";
const STEPS_DLQ_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:chaos-steps-dlq";

/// What the peer says on success: U+FFFF inside.
const NOTE: &str = "fine\u{ffff}";

/// The credentials `wf_big` sends to its peer, which redirects it (307) to
/// another origin: none may arrive there.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-partner", "x-chaos-key"];

/// Answers what reached the other origin through a redirect, counting the
/// requests that still carried a credential.
struct RedirectedResponder {
    sink: Arc<ChaosSink>,
    leaked: Arc<AtomicU64>,
    arrived: Arc<AtomicU64>,
}

impl Respond for RedirectedResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.arrived.fetch_add(1, Ordering::Relaxed);
        if CREDENTIAL_HEADERS.iter().any(|h| request.headers.contains_key(*h)) {
            self.leaked.fetch_add(1, Ordering::Relaxed);
        }
        self.sink.answer(request)
    }
}

/// Sends every `/redirect/<path>` on to `<to>/<path>` with a 307.
struct Redirector(String);

impl Respond for Redirector {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let rest = request.url.path().trim_start_matches("/redirect");
        ResponseTemplate::new(307).insert_header("Location", format!("{}{rest}", self.0))
    }
}

/// Two workflows on one trigger: `wf_all` takes every event through two
/// HTTP hops with a pure Decision and SetVariables between them (and a
/// Delay hop on one branch), the second sending on what the first peer
/// answered; `wf_big` matches half of the events by filter and is
/// redirected to another origin with credentials it must not take along.
pub fn workflows(sink: &str) -> Vec<WorkflowDefinition> {
    let retry = json!({"max_attempts": 12, "initial_interval_s": 0.2, "backoff_rate": 1.5, "max_interval_s": 1, "jitter": "full"});
    let all = json!({
        "id": "wf_all", "workspace_id": WS, "name": "chaos all", "status": "active", "version": 1,
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "notify",
        "steps": {
            "notify": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/all/notify"),
                        "body": {"n": "{{ n }}"}}, "retry": retry, "next": "points"},
            "points": {"action": {"type": "AwardPoints", "program": "chaos", "points": 1}, "next": "route"},
            "route": {"action": {"type": "Decision",
                        "branches": [{"when": {"path": "n", "op": "gte", "value": 50}, "next": "big"}], "default": "tag"}},
            "tag": {"action": {"type": "SetVariables", "values": {"tier": "small"}}, "next": "pause"},
            "pause": {"action": {"type": "Delay", "seconds": 1}, "next": "small"},
            "small": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/all/small"),
                        "body": {"tier": "{{ vars.tier }}", "note": "{{ steps.notify.body.note }}"}}, "retry": retry},
            "big": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/all/big"),
                        "body": {"n": "{{ n }}", "note": "{{ steps.notify.body.note }}"}}, "retry": retry}
        }
    });
    let big = json!({
        "id": "wf_big", "workspace_id": WS, "name": "chaos big", "status": "active", "version": 1,
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won", "filter": {"path": "n", "op": "gte", "value": 50}},
        "start": "hook",
        "steps": {"hook": {"action": {"type": "HttpRequest", "method": "PUT", "url": format!("{sink}/redirect/big/hook"),
                    "headers": {"Authorization": "Bearer chaos-token", "X-Partner": "partner-secret"},
                    "auth": {"type": "api_key", "header": "X-Chaos-Key", "value": "chaos-key"},
                    "secret_headers": ["X-Partner"], "follow_redirects": "any",
                    "body": {"n": "{{ n }}"}}, "retry": retry}}
    });
    // Every award emits Loyalty.PointsAwarded, which must start this once,
    // and each run emails and texts its contact once.
    let loyalty = json!({
        "id": "wf_loyalty", "workspace_id": WS, "name": "chaos loyalty", "status": "active", "version": 1,
        "scope": {"workspace": true}, "trigger": {"type": "Loyalty.PointsAwarded"}, "start": "note",
        "steps": {"note": {"action": {"type": "SetVariables", "values": {"balance": "{{ loyalty.balance }}"}}, "next": "mail"},
            "mail": {"action": {"type": "SendEmail", "from": CHAOS_SENDER, "to": ["{{ event.contactid }}@example.com"],
                "subject": "chaos {{ run.id }}", "text": "balance {{ vars.balance }}",
                "html": "<p>balance {{ vars.balance }}</p>"}, "retry": retry, "next": "text"},
            "text": {"action": {"type": "SendSms", "phone_number": "+447700900123", "message": "chaos {{ run.id }}"},
                "retry": retry}}
    });
    [all, big, loyalty]
        .into_iter()
        .map(|doc| WorkflowDefinition::from_value(doc).expect("chaos workflow decodes"))
        .collect()
}

/// How many messages the queues and their dead-letter queues still hold
/// (visible or not).
pub type PendingCount = Pin<Box<dyn Future<Output = usize> + Send>>;

/// The address the chaos workflow emails from (a verified identity on SES).
pub const CHAOS_SENDER: &str = "chaos@example.com";

/// What the email and SMS services were given: each email's subject, and
/// each text message's body when the target can see them (SNS on moto
/// keeps them out of reach).
pub struct SentMessages {
    pub emails: Vec<String>,
    pub texts: Option<Vec<String>>,
}

pub type SentReport = Pin<Box<dyn Future<Output = SentMessages> + Send>>;

/// Where the chaos runs: the ports `hookflow dev` would use, and how to tell
/// that nothing is left.
pub struct Target {
    pub name: &'static str,
    pub ports: Ports,
    pub pending: Box<dyn Fn() -> PendingCount + Send + Sync>,
    pub visibility_timeout: Duration,
    /// The email and SMS the services were given.
    pub sent: Box<dyn Fn() -> SentReport + Send + Sync>,
}

pub struct ChaosConfig {
    pub seed: u64,
    pub events: usize,
    pub crash_per_mille: u64,
    pub step_workers: usize,
    /// How long the run may go without progress (no run finished and no
    /// message consumed) before it counts as stuck. There is no total
    /// deadline: a slower machine only takes longer.
    pub stall: Duration,
    /// Runs that may be unfinished before more events are accepted. A
    /// backlog makes every SQS receive on moto slower (it scans the whole
    /// queue on each), so the emulator gets a small window;
    /// each message still meets the same faults.
    pub window: usize,
}

pub struct Summary {
    pub line: String,
}

fn key_of(run_id: &str, step_id: &str) -> String {
    hookflow_core::run::idempotency_key(run_id, step_id)
}

/// The contacts the chaos events are about: each gets a point per event.
const CONTACTS: usize = 25;

/// The run an award's `Loyalty.PointsAwarded` starts: its identity is the
/// awarding step's (brief §10).
fn loyalty_run(awarding_run: &str) -> String {
    hookflow_core::run::run_id_of(
        WS,
        &format!("hookflow/runs/{awarding_run}/steps/points"),
        "loyalty.pointsawarded-1",
        "wf_loyalty",
    )
}

/// Runs `config.events` events through `target` under faults and asserts
/// the invariants. Returns the one-line summary.
pub async fn run(target: Target, config: ChaosConfig) -> Summary {
    let faults = Faults::new(config.seed, config.crash_per_mille);
    let sink = Arc::new(ChaosSink {
        seed: config.seed,
        tries: Mutex::default(),
        answered: Mutex::default(),
    });
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    let (leaked, redirected) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    Mock::given(wiremock::matchers::any())
        .respond_with(RedirectedResponder {
            sink: sink.clone(),
            leaked: leaked.clone(),
            arrived: redirected.clone(),
        })
        .mount(&elsewhere)
        .await;
    Mock::given(wiremock::matchers::path_regex("^/redirect/"))
        .respond_with(Redirector(elsewhere.uri()))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(SinkResponder(sink.clone()))
        .mount(&server)
        .await;

    let definitions = workflows(&server.uri());
    for workflow in &definitions {
        target
            .ports
            .stores
            .workflows
            .put_version(workflow)
            .await
            .expect("store workflow");
        target
            .ports
            .stores
            .subscriptions
            .put(&Subscription::for_workflow(workflow).expect("active workflow subscribes"))
            .await
            .expect("subscribe workflow");
    }

    let runs: Arc<dyn RunLog> = Arc::new(FaultyRunLog {
        inner: target.ports.stores.runs.clone(),
        faults: faults.clone(),
    });
    let faulty = |queue: &Arc<dyn Queue>, crash_sends: bool| -> Arc<dyn Queue> {
        Arc::new(FaultyQueue {
            inner: queue.clone(),
            faults: faults.clone(),
            crash_sends,
            bodies: Mutex::default(),
        })
    };
    // Ingest's send is not faulted: a failed send there is a 5xx to the
    // sender, not an accepted event.
    let stores = Stores {
        runs: runs.clone(),
        ..target.ports.stores.clone()
    };
    let ingest = stores.ingest(faulty(&target.ports.triggers, false));
    let triggers = faulty(&target.ports.triggers, false);
    let steps = faulty(&target.ports.steps, true);
    let http: Arc<dyn HttpClient> =
        Arc::new(ReqwestHttpClient::with_policy(NetworkPolicy::allow_all()).expect("HTTP client"));
    let dispatcher = Arc::new(stores.dispatcher(steps.clone()));
    // Claims shorter than the visibility timeout: a crashed step's claim
    // has lapsed by the time its message comes back.
    let executor = Arc::new(stores.steps_consumer(
        steps.clone(),
        triggers.clone(),
        http,
        DeliveryLimits {
            claim_lease: target.visibility_timeout / 2,
            ..DeliveryLimits::for_queue(target.visibility_timeout, hookflow_aws::MAX_RECEIVE_COUNT)
        },
    ));

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut consumers = vec![];
    let dispatcher_function = Function {
        handler: dispatcher.clone(),
        dead_letters: Arc::new(stores.dead_letters(QueueKind::Triggers, steps.clone())),
        dead_letter_queue_arn: TRIGGERS_DLQ_ARN,
    };
    let step_function = Function {
        handler: executor.clone(),
        dead_letters: Arc::new(stores.dead_letters(QueueKind::Steps, steps.clone())),
        dead_letter_queue_arn: STEPS_DLQ_ARN,
    };
    let mappings = [
        (triggers.clone(), TRIGGERS_ARN, &dispatcher_function, 2),
        (
            target.ports.triggers_dlq.clone(),
            TRIGGERS_DLQ_ARN,
            &dispatcher_function,
            1,
        ),
        (steps.clone(), STEPS_ARN, &step_function, config.step_workers),
        (target.ports.steps_dlq.clone(), STEPS_DLQ_ARN, &step_function, 1),
    ];
    for (queue, arn, function, pollers) in mappings {
        for _ in 0..pollers {
            consumers.push(tokio::spawn(event_source(
                queue.clone(),
                arn,
                function.clone(),
                faults.clone(),
                shutdown_rx.clone(),
            )));
        }
    }

    let started = Instant::now();
    let mut watch = Watch::new(&target, &config, &faults.progress, started);
    let mut expected_runs = BTreeSet::new();
    let mut accepted = 0;
    for chunk in (0..config.events).collect::<Vec<_>>().chunks(10) {
        while watch.unfinished(&expected_runs) > config.window {
            watch.tick(&expected_runs).await;
        }
        let events: Vec<TriggerEvent> = chunk
            .iter()
            .map(|i| {
                serde_json::from_value(json!({"specversion": "1.0", "id": format!("evt-{}-{i}", config.seed),
                    "source": "chaos", "type": "Prize.Won", "workspaceid": WS,
                    "contactid": format!("ct_{}", i % CONTACTS), "data": {"n": i % 100}}))
                .expect("chaos event decodes")
            })
            .collect();
        let receipts = ingest.accept(&events).await.expect("ingest accepts");
        for (event, receipt) in events.iter().zip(receipts) {
            assert!(!receipt.duplicate, "fresh event ids");
            accepted += 1;
            let n = event.data["n"].as_u64().unwrap_or_default();
            expected_runs.insert(run_id_for(event, "wf_all"));
            if n >= 50 {
                expected_runs.insert(run_id_for(event, "wf_big"));
            }
        }
    }
    // The backend is asked only once the bookkeeping says every run ended.
    while watch.unfinished(&expected_runs) > 0 || (target.pending)().await > 0 {
        watch.tick(&expected_runs).await;
    }

    // The dead-lettered runs ended failed. On-call cures the cause and
    // replays them, while the doomed messages' stale duplicates (from before
    // the replay) come again and must change nothing. A replay's message can
    // dead-letter too (a batch-mate's crash, or redeliveries of a handler
    // slower than the short visibility timeout on a loaded machine): on-call
    // replays what failed again, a bounded number of times.
    faults.cured.store(true, Ordering::Relaxed);
    let mut replayed: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..REPLAY_ROUNDS {
        let failed = replay_failed(&stores, &target.ports.steps).await;
        assert!(round > 0 || !failed.is_empty(), "the doomed runs did not dead-letter");
        if failed.is_empty() {
            break;
        }
        for run_id in failed {
            *replayed.entry(run_id).or_default() += 1;
        }
        // A run ends once per pass: once more than it was replayed.
        let each_ended_again = |progress: &Progress| {
            let finished = progress.finished.lock().expect("lock");
            replayed
                .iter()
                .all(|(id, replays)| finished.get(id).is_some_and(|ends| ends.len() > *replays))
        };
        while !each_ended_again(&faults.progress) || (target.pending)().await > 0 {
            watch.tick(&expected_runs).await;
        }
    }
    let _ = shutdown.send(true);
    for consumer in consumers {
        let _ = consumer.await;
    }

    // The reaper, a day later, finds nothing left running: every run
    // ended through the pipeline itself.
    let reaper = Reaper::new(
        stores.runs.clone(),
        Arc::new(DayLater),
        stores.metrics.clone(),
        DeliveryLimits::for_queue(target.visibility_timeout, hookflow_aws::MAX_RECEIVE_COUNT).redelivery_horizon,
        hookflow_core::outbound::FanOut::new(stores.outbound.clone(), steps.clone(), Arc::new(DayLater)),
    );
    let reaped = reaper.reap().await.expect("reaper pass");
    assert!(
        reaped.reaped.is_empty() && reaped.spared.is_empty(),
        "left for the reaper: {reaped:?}"
    );

    // Exactly one run per (accepted event, matched workflow), each ended
    // once, and the store agrees with what the engine reported ending.
    let finished = collect_runs(target.ports.stores.runs.as_ref(), WS, &RunQuery::default(), usize::MAX)
        .await
        .expect("list runs");
    // Each award started one wf_loyalty run: a run that failed before its
    // award (and was replayed past it) awarded then.
    for run in finished.iter().filter(|r| r.workflow_id == "wf_all") {
        let awarded = target
            .ports
            .stores
            .runs
            .list_steps(&run.run_id)
            .await
            .expect("list steps")
            .iter()
            .any(|s| s.step_id == "points" && s.status == StepStatus::Succeeded);
        if awarded {
            expected_runs.insert(loyalty_run(&run.run_id));
        }
    }
    let actual: BTreeSet<String> = finished.iter().map(|r| r.run_id.clone()).collect();
    assert_eq!(actual.len(), finished.len(), "a run id is listed twice");
    assert_eq!(actual, expected_runs, "runs differ from (event × matched workflow)");
    {
        let ended = faults.progress.finished.lock().expect("lock");
        for run in &finished {
            let statuses = ended.get(&run.run_id).map(Vec::as_slice).unwrap_or_default();
            assert!(run.status.is_terminal(), "run {} is stuck {}", run.run_id, run.status);
            assert_eq!(
                (statuses.len(), statuses.last()),
                (1 + run.replays as usize, Some(&run.status)),
                "run {} must end once per pass (replays: {}), last with the status the store holds",
                run.run_id,
                run.replays
            );
            if run.replays > 0 {
                assert_eq!(
                    run.status,
                    RunStatus::Succeeded,
                    "replayed run {} did not finish",
                    run.run_id
                );
            }
        }
    }
    let failed = finished.iter().filter(|r| r.status == RunStatus::Failed).count();

    // No duplicate step records; each side effect once after dedupe.
    let mut side_effects_expected = BTreeSet::new();
    for run in &finished {
        let steps = target
            .ports
            .stores
            .runs
            .list_steps(&run.run_id)
            .await
            .expect("list steps");
        let mut keys = BTreeSet::new();
        for record in &steps {
            assert!(
                keys.insert((record.step_id.clone(), record.attempt)),
                "duplicate step record {}/{}#{}",
                run.run_id,
                record.step_id,
                record.attempt
            );
            if record.action == "HttpRequest" && record.status == StepStatus::Succeeded {
                assert!(
                    side_effects_expected.insert(key_of(&run.run_id, &record.step_id)),
                    "step {} of {} succeeded twice",
                    record.step_id,
                    run.run_id
                );
            }
        }
        if run.status == RunStatus::Succeeded {
            let last = steps.last().map(|s| s.step_id.as_str()).unwrap_or_default();
            assert!(
                ["small", "big", "hook", "text"].contains(&last),
                "run {} succeeded without its last step: {steps:?}",
                run.run_id
            );
        }
    }
    // Points changed exactly once per (run, step): one per event, whatever
    // was delivered twice or crashed between the change and its record.
    let mut points_expected: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..accepted {
        *points_expected.entry(format!("ct_{}", i % CONTACTS)).or_default() += 1;
    }
    for (contact_id, expected) in &points_expected {
        let contact = target
            .ports
            .stores
            .contacts
            .get_contact(WS, contact_id)
            .await
            .expect("get contact")
            .unwrap_or_else(|| panic!("contact {contact_id} was never created"));
        let points = contact.loyalty.get("chaos").map_or(0, |l| l.points);
        assert_eq!(points, *expected, "contact {contact_id}: points awarded once per run");
    }
    // Each loyalty run emailed and texted once: duplicates only from crashes
    // between a send and its record (neither service takes a token).
    let loyalty_runs: BTreeSet<String> = finished
        .iter()
        .filter(|r| r.workflow_id == "wf_loyalty")
        .map(|r| format!("chaos {}", r.run_id))
        .collect();
    let sent = (target.sent)().await;
    let mut raw_duplicate_messages = 0;
    for (kind, messages) in [("email", Some(sent.emails)), ("text message", sent.texts)] {
        let Some(messages) = messages else { continue };
        let distinct: BTreeSet<String> = messages.iter().cloned().collect();
        assert_eq!(distinct, loyalty_runs, "each loyalty run sends one {kind}");
        raw_duplicate_messages += messages.len() - distinct.len();
    }
    let answered = sink.answered.lock().expect("lock").clone();
    let delivered: Vec<&String> = answered.iter().filter(|(_, s)| *s == 200).map(|(k, _)| k).collect();
    let distinct: BTreeSet<String> = delivered.iter().map(|k| (*k).clone()).collect();
    assert_eq!(
        distinct, side_effects_expected,
        "side effects observed by the peer (deduped by Idempotency-Key) differ from the succeeded HTTP steps"
    );
    let raw_duplicates = delivered.len() - distinct.len();

    for dlq in [&target.ports.triggers_dlq, &target.ports.steps_dlq] {
        let parked = dlq.peek(10).await.expect("peek dead letters");
        assert!(parked.is_empty(), "{} holds {parked:?}", dlq.name());
    }

    let crashes = faults.crashes.lock().expect("lock").clone();
    let by_point: Vec<String> = CUT_POINTS
        .iter()
        .map(|p| format!("{p:?}={}", crashes.get(p).copied().unwrap_or(0)))
        .collect();
    let peer_faults = answered.iter().filter(|(_, s)| *s != 200).count();
    let missing: Vec<&CutPoint> = CUT_POINTS.iter().filter(|p| !crashes.contains_key(p)).collect();
    assert!(
        missing.is_empty(),
        "seed {} injected no crash at {missing:?}: too few events",
        config.seed
    );
    assert!(
        faults.duplicate_sends.load(Ordering::Relaxed) > 0,
        "no duplicated delivery was injected"
    );
    assert!(answered.iter().any(|(_, s)| *s == 503), "the peer never answered 503");
    let redirected = redirected.load(Ordering::Relaxed);
    assert!(redirected > 0, "no request was redirected to the other origin");
    assert_eq!(
        leaked.load(Ordering::Relaxed),
        0,
        "credentials crossed to another origin"
    );
    let mut dead_lettered = 0;
    for queue in QueueKind::ALL {
        dead_lettered += stores
            .dead_letters(queue, target.ports.steps.clone())
            .list()
            .await
            .expect("parked")
            .len();
    }
    assert!(answered.iter().any(|(_, s)| *s == 429), "the peer never answered 429");
    Summary {
        line: format!(
            "chaos[{}] seed={} events={accepted} runs={} failed_runs={failed} points_awarded={accepted} contacts={} faults={} (crashes {} [{}], doomed invocations {}, duplicated deliveries {}, peer 5xx/429 {peer_faults}, U+FFFF replies {}, cross-origin redirects {redirected}) duplicates_absorbed={} raw_duplicate_side_effects={raw_duplicates} raw_duplicate_messages={raw_duplicate_messages} dead_lettered={dead_lettered} replayed={} (rounds {}) credentials_leaked=0 reaped=0 lost=0 stuck=0 in {:.1}s",
            target.name,
            config.seed,
            finished.len(),
            points_expected.len(),
            faults.total_crashes() + faults.duplicate_sends.load(Ordering::Relaxed) + peer_faults as u64,
            faults.total_crashes(),
            by_point.join(" "),
            faults.doomed_deaths.load(Ordering::Relaxed),
            faults.duplicate_sends.load(Ordering::Relaxed),
            answered.iter().filter(|(_, s)| *s == 200).count(),
            faults.absorbed.load(Ordering::Relaxed),
            replayed.len(),
            replayed.values().max().copied().unwrap_or_default(),
            started.elapsed().as_secs_f64(),
        ),
    }
}

/// Waits for the pipeline, and panics when nothing progresses (no run
/// ends, no message is consumed) for `config.stall`, with the throughput so
/// far and what is left. There is no total deadline: a slower machine only
/// takes longer. It reads the harness's own bookkeeping, so waiting adds no
/// load to an emulator while the pipeline works.
struct Watch<'a> {
    target: &'a Target,
    config: &'a ChaosConfig,
    progress: &'a Progress,
    started: Instant,
    last_mark: (usize, u64),
    last_progress: Instant,
    last_report: Instant,
}

/// How often a long run says how far it got.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Writes past the test harness's output capture, so `make test` shows the
/// seed, the progress and the summary of a passing run too.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

impl<'a> Watch<'a> {
    fn new(target: &'a Target, config: &'a ChaosConfig, progress: &'a Progress, started: Instant) -> Self {
        Self {
            target,
            config,
            progress,
            started,
            last_mark: progress.mark(),
            last_progress: Instant::now(),
            last_report: Instant::now(),
        }
    }

    fn unfinished(&self, expected: &BTreeSet<String>) -> usize {
        let finished = self.progress.finished.lock().expect("lock");
        expected.iter().filter(|run_id| !finished.contains_key(*run_id)).count()
    }

    async fn tick(&mut self, expected: &BTreeSet<String>) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mark = self.progress.mark();
        if self.last_report.elapsed() >= REPORT_EVERY {
            self.last_report = Instant::now();
            report(&format!(
                "chaos[{}] {:.0}s: {} runs ended ({} of the events' {} runs unfinished; awards start more), {} messages consumed",
                self.target.name,
                self.started.elapsed().as_secs_f64(),
                mark.0,
                self.unfinished(expected),
                expected.len(),
                mark.1
            ));
        }
        if mark != self.last_mark {
            (self.last_mark, self.last_progress) = (mark, Instant::now());
            return;
        }
        if self.last_progress.elapsed() < self.config.stall {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let (ended, acks) = mark;
        panic!(
            "chaos seed={} on {}: no progress for {:?} after {elapsed:.1}s: {ended} of {} runs ended ({:.1} runs/s), \
             {acks} messages consumed ({:.1}/s), {} runs unfinished, {} messages pending",
            self.config.seed,
            self.target.name,
            self.config.stall,
            expected.len(),
            ended as f64 / elapsed,
            acks as f64 / elapsed,
            self.unfinished(expected),
            (self.target.pending)().await
        );
    }
}

/// The seed from `HOOKFLOW_CHAOS_SEED`, or one from the clock (printed, so a
/// failure can be replayed).
pub fn seed() -> u64 {
    std::env::var("HOOKFLOW_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_micros().unsigned_abs())
}
