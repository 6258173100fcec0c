//! Contact actions through the whole in-memory pipeline: ingest, dispatch
//! and steps, with every message delivered twice, and a step interrupted
//! after its change was stored. Tags, lists and points change once per
//! (run, step); each emitted event starts one run; loops stop at the
//! dispatcher's depth limit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookflow_core::contacts::{
    Applied, Contact, ContactChange, ContactEdit, ContactKey, ContactPage, ContactQuery, ContactRefusal, ContactStore,
    CsvExport, NewContact,
};
use hookflow_core::engine::{DeliveryInfo, DeliveryLimits, DEFAULT_MAX_DEPTH};
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::ports::*;
use hookflow_core::run::{RunStatus, StepStatus};
use hookflow_core::subscription::Subscription;
use hookflow_core::wiring::Stores;
use hookflow_core::{StepExecutor, TriggerEvent, WorkflowDefinition};
use serde_json::{json, Value};

struct NoHttp;

#[async_trait]
impl HttpClient for NoHttp {
    async fn send(&self, _call: HttpCall) -> Result<HttpReply, HttpError> {
        Err(HttpError {
            kind: HttpErrorKind::Invalid,
            message: "no HTTP in these tests".into(),
        })
    }
}

/// The triggers queue, failing its next `failures` sends as SQS would
/// when throttled.
struct FlakyTriggers {
    inner: Arc<dyn Queue>,
    failures: AtomicU32,
}

#[async_trait]
impl Queue for FlakyTriggers {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn send(&self, body: String, delay: Duration) -> PortResult<()> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(PortError::retryable("send_message", "throttled"));
        }
        self.inner.send(body, delay).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        self.inner.receive(max, wait).await
    }
    async fn ack(&self, receipt: &str) -> PortResult<()> {
        self.inner.ack(receipt).await
    }
    async fn peek(&self, max: usize) -> PortResult<Vec<String>> {
        self.inner.peek(max).await
    }
}

struct Stack {
    backend: MemoryBackend,
    stores: Stores,
    executor: StepExecutor,
    triggers: Arc<FlakyTriggers>,
}

fn stack() -> Stack {
    let backend = MemoryBackend::new(QueueSettings {
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: 5,
    });
    let stores = Stores::memory(&backend, Arc::new(SystemClock));
    let triggers = Arc::new(FlakyTriggers {
        inner: backend.triggers.clone(),
        failures: AtomicU32::new(0),
    });
    let executor = stores.step_executor(
        backend.steps.clone(),
        triggers.clone(),
        Arc::new(NoHttp),
        DeliveryLimits::for_queue(Duration::from_secs(30), 5),
    );
    Stack {
        backend,
        stores,
        executor,
        triggers,
    }
}

impl Stack {
    async fn activate(&self, id: &str, trigger: Value, steps: Value, start: &str) {
        let workflow = WorkflowDefinition::from_value(json!({"id": id, "workspace_id": "ws", "name": id,
            "status": "active", "version": 1, "scope": {"workspace": true}, "trigger": trigger,
            "start": start, "steps": steps}))
        .expect("workflow decodes");
        self.backend.workflows.put_version(&workflow).await.expect("store");
        self.backend
            .subscriptions
            .put(&Subscription::for_workflow(&workflow).expect("active"))
            .await
            .expect("subscribe");
    }

    async fn ingest(&self, event: Value) {
        let event: TriggerEvent = serde_json::from_value(event).expect("event");
        self.stores
            .ingest(self.backend.triggers.clone())
            .accept(&[event])
            .await
            .expect("accept");
    }

    /// Runs the pipeline until both queues are empty, handling every
    /// message twice (a duplicate delivery); an interrupted step comes back.
    async fn settle(&self) {
        for _ in 0..1_000 {
            let triggers = self
                .backend
                .triggers
                .receive(10, Duration::ZERO)
                .await
                .expect("receive");
            let steps = self.backend.steps.receive(10, Duration::ZERO).await.expect("receive");
            if triggers.is_empty() && steps.is_empty() {
                return;
            }
            let dispatcher = self.stores.dispatcher(self.backend.steps.clone());
            for delivery in triggers {
                dispatcher.handle_message(&delivery.body).await.expect("dispatch");
                dispatcher.handle_message(&delivery.body).await.expect("dispatch again");
                self.backend.triggers.ack(&delivery.receipt).await.expect("ack");
            }
            for delivery in steps {
                // Claims lapse at once, so a repeat after an interruption
                // takes the step over as a redelivery would.
                let lease = DeliveryInfo {
                    receive_count: 1,
                    lease_until: Some(chrono::Utc::now()),
                };
                let first = self.executor.handle_delivery(&delivery.body, lease).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                let second = self.executor.handle_delivery(&delivery.body, lease).await;
                if first.is_ok() || second.is_ok() {
                    self.backend.steps.ack(&delivery.receipt).await.expect("ack");
                } else {
                    let err = second.expect_err("both failed");
                    assert!(err.is_retryable(), "only retryable errors in these tests: {err}");
                }
            }
        }
        panic!("the pipeline did not settle");
    }

    async fn runs_of(&self, workflow_id: &str) -> Vec<hookflow_core::run::RunRecord> {
        let query = RunQuery {
            workflow_id: Some(workflow_id.into()),
            ..RunQuery::default()
        };
        collect_runs(self.backend.runs.as_ref(), "ws", &query, 1_000)
            .await
            .expect("runs")
    }
}

fn gameplay_ended(id: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "komo", "type": "Gameplay.Ended", "workspaceid": "ws",
        "siteid": "site_1", "contactid": "ct_ana",
        "data": {"contact": {"email": "Ana@Example.com", "first_name": "Ana"},
                 "form_fields": {"company": "ACME"}, "extension_data": {"campaign": "spring"}}})
}

#[tokio::test]
async fn contact_changes_happen_once_and_each_emitted_event_starts_one_run() {
    let stack = stack();
    stack
        .activate(
            "score",
            json!({"type": "Gameplay.Ended"}),
            json!({
                "tag": {"action": {"type": "UpdateContact", "set": {"company": "{{ form_fields.company }}"},
                        "add_tags": ["sponsor-a"]}, "next": "list"},
                "list": {"action": {"type": "AddToList", "list": "players"}, "next": "award"},
                "award": {"action": {"type": "AwardPoints", "program": "main", "points": 50}}
            }),
            "tag",
        )
        .await;
    stack
        .activate(
            "tiers",
            json!({"type": "Loyalty.PointsAwarded", "filter": {"path": "loyalty.balance", "op": "gte", "value": 100}}),
            json!({"gold": {"action": {"type": "AddTier", "program": "main", "tier": "gold"}}}),
            "gold",
        )
        .await;
    stack
        .activate(
            "welcome",
            json!({"type": "Contact.Created"}),
            json!({"note": {"action": {"type": "SetVariables", "values": {"campaign": "{{ extension_data.campaign }}"}}}}),
            "note",
        )
        .await;

    stack.ingest(gameplay_ended("game-1")).await;
    stack.settle().await;
    // The second game's emit fails once after its points were stored: the
    // step is taken over and its change answered from the store.
    stack.triggers.failures.store(1, Ordering::SeqCst);
    stack.ingest(gameplay_ended("game-2")).await;
    stack.settle().await;
    assert_eq!(
        stack.triggers.failures.load(Ordering::SeqCst),
        0,
        "the emit failed once"
    );

    let contact = stack
        .backend
        .contacts
        .get_contact("ws", "ct_ana")
        .await
        .expect("get")
        .expect("the event's contact was created");
    assert_eq!(contact.email.as_deref(), Some("Ana@Example.com"));
    assert_eq!(contact.properties["first_name"], json!("Ana"));
    assert_eq!(contact.properties["company"], json!("ACME"));
    assert_eq!(contact.tags.iter().collect::<Vec<_>>(), vec!["sponsor-a"]);
    assert_eq!(contact.lists.iter().collect::<Vec<_>>(), vec!["players"]);
    assert_eq!(contact.loyalty["main"].points, 100, "50 points per game, once each");
    assert!(contact.loyalty["main"].tiers.contains("gold"));

    let score_runs = stack.runs_of("score").await;
    assert_eq!(score_runs.len(), 2);
    assert!(
        score_runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{score_runs:?}"
    );
    let welcome = stack.runs_of("welcome").await;
    assert_eq!(
        welcome.len(),
        1,
        "Contact.Created once: the second game found the contact"
    );
    let note = stack
        .backend
        .runs
        .get_step(&welcome[0].run_id, "note", 1)
        .await
        .expect("get")
        .expect("recorded");
    assert_eq!(
        note.output,
        Some(json!({"campaign": "spring"})),
        "extension data is carried over"
    );
    let tiers = stack.runs_of("tiers").await;
    assert_eq!(tiers.len(), 1, "only the award that reached 100 passed the filter");
    assert_eq!(tiers[0].status, RunStatus::Succeeded);
}

#[tokio::test]
async fn redeeming_more_than_the_balance_fails_the_step_terminally_with_the_reason() {
    let stack = stack();
    stack
        .activate(
            "redeem",
            json!({"type": "Gameplay.Ended"}),
            json!({"spend": {"action": {"type": "RedeemPoints", "program": "main", "points": 10},
                             "retry": {"max_attempts": 3}}}),
            "spend",
        )
        .await;
    stack.ingest(gameplay_ended("game-r")).await;
    stack.settle().await;
    let runs = stack.runs_of("redeem").await;
    assert_eq!(runs[0].status, RunStatus::Failed);
    let step = stack
        .backend
        .runs
        .get_step(&runs[0].run_id, "spend", 1)
        .await
        .expect("get")
        .expect("recorded");
    assert_eq!(step.status, StepStatus::Failed);
    assert!(!step.retryable, "a refusal is terminal");
    assert!(
        step.error.as_deref().unwrap_or_default().contains("balance is 0"),
        "{:?}",
        step.error
    );
    assert!(
        stack
            .backend
            .runs
            .get_step(&runs[0].run_id, "spend", 2)
            .await
            .expect("get")
            .is_none(),
        "never retried"
    );
}

#[tokio::test]
async fn a_workflow_that_retriggers_itself_stops_at_the_depth_limit() {
    let stack = stack();
    stack
        .activate(
            "loop",
            json!({"type": "Contact.PropertyUpdated"}),
            json!({"bump": {"action": {"type": "UpdateContact", "set": {"hops": "{{ event.depth }}"}}}}),
            "bump",
        )
        .await;
    stack
        .activate(
            "start",
            json!({"type": "Gameplay.Ended"}),
            json!({"bump": {"action": {"type": "UpdateContact", "set": {"last_event": "{{ event.id }}"}}}}),
            "bump",
        )
        .await;
    stack.ingest(gameplay_ended("game-loop")).await;
    stack.settle().await;
    let looped = stack.runs_of("loop").await;
    assert_eq!(
        looped.len() as u32,
        DEFAULT_MAX_DEPTH,
        "one run per depth from 1 to the limit, none past it"
    );
    assert!(looped.iter().all(|r| r.status == RunStatus::Succeeded));
}

/// The memory twin, counting the pages read and the largest one.
#[derive(Default)]
struct CountingContacts {
    inner: hookflow_core::memory::MemoryContacts,
    pages: AtomicU32,
    largest: AtomicU32,
}

#[async_trait]
impl ContactStore for CountingContacts {
    async fn get_contact(&self, ws: &str, id: &str) -> PortResult<Option<Contact>> {
        self.inner.get_contact(ws, id).await
    }
    async fn find_contact(&self, ws: &str, key: &ContactKey) -> PortResult<Option<Contact>> {
        self.inner.find_contact(ws, key).await
    }
    async fn apply(
        &self,
        ws: &str,
        change: &ContactChange,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> PortResult<Result<Applied, ContactRefusal>> {
        self.inner.apply(ws, change, token, now).await
    }
    async fn list_contacts(&self, ws: &str, query: &ContactQuery) -> PortResult<ContactPage> {
        let page = self.inner.list_contacts(ws, query).await?;
        self.pages.fetch_add(1, Ordering::SeqCst);
        self.largest.fetch_max(page.contacts.len() as u32, Ordering::SeqCst);
        Ok(page)
    }
    async fn erase_contact(&self, ws: &str, id: &str) -> PortResult<bool> {
        self.inner.erase_contact(ws, id).await
    }
}

#[tokio::test]
async fn a_ten_thousand_contact_tag_streams_one_page_at_a_time() {
    const CONTACTS: u32 = 10_000;
    let store = Arc::new(CountingContacts::default());
    let now = chrono::Utc::now();
    for n in 0..CONTACTS {
        let change = ContactChange {
            contact_id: format!("c{n:05}"),
            create: Some(NewContact::default()),
            edits: vec![
                ContactEdit::AddTag { tag: "big".into() },
                ContactEdit::Set {
                    name: format!("field{}", n % 3),
                    value: json!(n),
                },
            ],
        };
        store
            .apply("ws", &change, &format!("t{n}"), now)
            .await
            .expect("apply")
            .expect("created");
    }
    let query = ContactQuery {
        tag: Some("big".into()),
        ..ContactQuery::default()
    };
    let mut export = CsvExport::start(store.clone(), "ws", &query).await.expect("start");
    let scanned = store.pages.load(Ordering::SeqCst);
    assert_eq!(scanned, CONTACTS / 100, "the column pass reads a page at a time");
    let header = export.next_chunk().await.expect("header").expect("a header");
    assert!(String::from_utf8_lossy(&header).ends_with("field0,field1,field2\r\n"));
    let (mut rows, mut chunks) = (0, 0);
    while let Some(chunk) = export.next_chunk().await.expect("chunk") {
        chunks += 1;
        // Nothing is read ahead: the export holds one page at a time.
        assert_eq!(store.pages.load(Ordering::SeqCst) - scanned, chunks);
        rows += chunk.windows(2).filter(|w| w == b"\r\n").count();
    }
    assert_eq!(rows, CONTACTS as usize);
    assert_eq!(
        store.largest.load(Ordering::SeqCst),
        100,
        "no page holds more than 100 contacts"
    );
}
