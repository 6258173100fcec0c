//! The workflow lifecycle on the in-memory twins: the use cases' rules, a
//! lost race, and the subscription invariant under random operations.

use std::sync::Arc;

use async_trait::async_trait;
use hookflow_core::conformance::{self, LifecycleOp};
use hookflow_core::hooks::{HookRequest, Hooks};
use hookflow_core::lifecycle::{Commit, HeadChange, LifecycleError, WorkflowCatalog, WorkflowHead, Workflows};
use hookflow_core::memory::{MemoryHooks, MemorySubscriptions, MemoryWorkflowStore};
use hookflow_core::ports::{PortResult, SubscriptionIndex, SystemClock, WorkflowStore};
use hookflow_core::validate::ProblemCode;
use hookflow_core::workflow::WorkflowStatus;
use hookflow_core::WorkflowDefinition;
use proptest::prelude::*;
use serde_json::json;
use tokio::sync::Barrier;

const WS: &str = "ws_life";

fn draft(id: &str, trigger: &str) -> WorkflowDefinition {
    WorkflowDefinition::from_value(
        json!({"id": id, "workspace_id": WS, "name": id, "status": "active", "version": 9,
        "scope": {"workspace": true}, "trigger": {"type": trigger}, "start": "s",
        "steps": {"s": {"action": {"type": "SetVariables", "values": {"a": 1}}}}}),
    )
    .expect("draft decodes")
}

fn twins() -> (Arc<MemoryWorkflowStore>, Arc<MemorySubscriptions>, Workflows) {
    let subscriptions = Arc::new(MemorySubscriptions::default());
    let store = Arc::new(MemoryWorkflowStore::new(subscriptions.clone()));
    let workflows = Workflows::new(store.clone(), no_hooks(), Arc::new(SystemClock));
    (store, subscriptions, workflows)
}

fn no_hooks() -> Hooks {
    Hooks::new(Arc::new(MemoryHooks::default()), Arc::new(SystemClock))
}

#[tokio::test]
async fn a_hook_trigger_is_published_only_while_a_hook_of_the_workspace_emits_it() {
    let subscriptions = Arc::new(MemorySubscriptions::default());
    let store = Arc::new(MemoryWorkflowStore::new(subscriptions.clone()));
    let hook_store = Arc::new(MemoryHooks::default());
    let hooks = Hooks::new(hook_store.clone(), Arc::new(SystemClock));
    let workflows = Workflows::new(
        store,
        Hooks::new(hook_store, Arc::new(SystemClock)),
        Arc::new(SystemClock),
    );
    workflows.create(WS, draft("wf", "Hook.crm")).await.expect("create");
    let problems = workflows.validate(WS, "wf").await.expect("validate");
    assert_eq!(
        problems.iter().map(|p| (p.path.as_str(), p.code)).collect::<Vec<_>>(),
        vec![("trigger.type", ProblemCode::UnknownHook)]
    );
    let refused = workflows.publish(WS, "wf").await;
    assert!(
        matches!(&refused, Err(LifecycleError::Invalid(p)) if p[0].code == ProblemCode::UnknownHook),
        "{refused:?}"
    );
    // A hook of another workspace emitting the same type does not count.
    hooks.create("ws_other", conformance_hook("crm")).await.expect("hook");
    let elsewhere = workflows.publish(WS, "wf").await;
    assert!(
        matches!(&elsewhere, Err(LifecycleError::Invalid(p)) if p[0].code == ProblemCode::UnknownHook),
        "{elsewhere:?}"
    );
    hooks.create(WS, conformance_hook("crm")).await.expect("hook");
    let head = workflows.publish(WS, "wf").await.expect("publish");
    assert_eq!(head.published_version, Some(1));
    assert_eq!(subscriptions.list(WS, "Hook.crm").await.expect("find").len(), 1);
}

fn conformance_hook(name: &str) -> HookRequest {
    serde_json::from_value(json!({"name": name, "kind": "webhook", "auth": {"type": "none"}})).expect("hook request")
}

#[tokio::test]
async fn a_draft_is_created_without_status_or_version_of_its_own() {
    let (_, subscriptions, workflows) = twins();
    let head = workflows.create(WS, draft("wf", "Prize.Won")).await.expect("create");
    assert_eq!(
        (head.status, head.revision, head.published_version),
        (WorkflowStatus::Draft, 1, None)
    );
    assert!(
        subscriptions.list(WS, "Prize.Won").await.expect("find").is_empty(),
        "a draft starts nothing"
    );
    let again = workflows.create(WS, draft("wf", "Prize.Won")).await;
    assert!(matches!(again, Err(LifecycleError::AlreadyExists(_))), "{again:?}");
    let elsewhere = workflows.create("ws_other", draft("wf2", "Prize.Won")).await;
    assert!(matches!(
        elsewhere,
        Err(LifecycleError::IdMismatch {
            field: "workspace_id",
            ..
        })
    ));
}

#[tokio::test]
async fn editing_a_draft_needs_the_current_revision() {
    let (_, _, workflows) = twins();
    workflows.create(WS, draft("wf", "Prize.Won")).await.expect("create");
    let missing = workflows
        .update_draft(WS, "wf", draft("wf", "Form.Submitted"), None)
        .await;
    assert_eq!(missing, Err(LifecycleError::RevisionRequired));
    let stale = workflows
        .update_draft(WS, "wf", draft("wf", "Form.Submitted"), Some(7))
        .await;
    assert_eq!(stale, Err(LifecycleError::RevisionMismatch { given: 7, current: 1 }));
    let head = workflows
        .update_draft(WS, "wf", draft("wf", "Form.Submitted"), Some(1))
        .await
        .expect("update");
    assert_eq!(
        (head.revision, head.draft.trigger.trigger_type.as_str()),
        (2, "Form.Submitted")
    );
}

#[tokio::test]
async fn publishing_an_invalid_draft_lists_every_problem_and_changes_nothing() {
    let (store, _, workflows) = twins();
    let mut bad = draft("wf", "Prize.Wonn");
    bad.start = "nowhere".into();
    workflows.create(WS, bad).await.expect("an invalid draft may be saved");
    let problems = workflows.validate(WS, "wf").await.expect("validate");
    let codes: Vec<ProblemCode> = problems.iter().map(|p| p.code).collect();
    assert_eq!(
        codes,
        [ProblemCode::UnknownTriggerType, ProblemCode::UnknownStep],
        "{problems:?}"
    );
    let refused = workflows.publish(WS, "wf").await;
    assert_eq!(refused, Err(LifecycleError::Invalid(problems)));
    assert!(store.list_versions(WS, "wf").await.expect("versions").is_empty());
    assert_eq!(workflows.get(WS, "wf").await.expect("get").revision, 1);
}

#[tokio::test]
async fn publishing_swaps_the_subscription_and_an_identical_draft_makes_no_version() {
    let (store, subscriptions, workflows) = twins();
    workflows.create(WS, draft("wf", "Prize.Won")).await.expect("create");
    let v1 = workflows.publish(WS, "wf").await.expect("publish v1");
    assert_eq!((v1.status, v1.published_version), (WorkflowStatus::Active, Some(1)));
    let again = workflows.publish(WS, "wf").await.expect("publish unchanged");
    assert_eq!(
        again.published_version,
        Some(1),
        "an identical draft makes no new version"
    );

    workflows
        .update_draft(WS, "wf", draft("wf", "Form.Submitted"), Some(again.revision))
        .await
        .expect("edit");
    let v2 = workflows.publish(WS, "wf").await.expect("publish v2");
    assert_eq!(v2.published_version, Some(2));
    assert!(
        subscriptions.list(WS, "Prize.Won").await.expect("find").is_empty(),
        "old trigger type"
    );
    let subs = subscriptions.list(WS, "Form.Submitted").await.expect("find");
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].workflow_version, 2);
    let v1_stored = store.get_version(WS, "wf", 1).await.expect("get").expect("v1 kept");
    assert_eq!(v1_stored.trigger.trigger_type, "Prize.Won", "versions are immutable");

    let rolled = workflows.rollback(WS, "wf", 1).await.expect("rollback");
    assert_eq!(
        rolled.published_version,
        Some(3),
        "a rollback publishes the old version as a new one"
    );
    assert_eq!(
        subscriptions.list(WS, "Prize.Won").await.expect("find")[0].workflow_version,
        3
    );
    assert!(subscriptions.list(WS, "Form.Submitted").await.expect("find").is_empty());
    let missing = workflows.rollback(WS, "wf", 9).await;
    assert!(matches!(
        missing,
        Err(LifecycleError::VersionNotFound { version: 9, .. })
    ));
}

#[tokio::test]
async fn pause_resume_archive_move_the_subscription_and_refuse_other_moves() {
    let (_, subscriptions, workflows) = twins();
    workflows.create(WS, draft("wf", "Prize.Won")).await.expect("create");
    assert!(matches!(
        workflows.pause(WS, "wf").await,
        Err(LifecycleError::InvalidTransition {
            action: "pause",
            status: "draft"
        })
    ));
    workflows.publish(WS, "wf").await.expect("publish");
    workflows.pause(WS, "wf").await.expect("pause");
    assert!(
        subscriptions.list(WS, "Prize.Won").await.expect("find").is_empty(),
        "paused: no runs"
    );
    workflows.resume(WS, "wf").await.expect("resume");
    assert_eq!(subscriptions.list(WS, "Prize.Won").await.expect("find").len(), 1);
    workflows.archive(WS, "wf").await.expect("archive");
    assert!(subscriptions.list(WS, "Prize.Won").await.expect("find").is_empty());
    assert!(matches!(
        workflows.resume(WS, "wf").await,
        Err(LifecycleError::InvalidTransition { .. })
    ));
    assert!(matches!(
        workflows.publish(WS, "wf").await,
        Err(LifecycleError::InvalidTransition { .. })
    ));
    assert!(matches!(
        workflows.delete(WS, "wf").await,
        Err(LifecycleError::Published(_))
    ));
}

#[tokio::test]
async fn clone_makes_a_draft_and_a_never_published_draft_can_be_deleted() {
    let (_, _, workflows) = twins();
    workflows.create(WS, draft("wf", "Prize.Won")).await.expect("create");
    workflows.publish(WS, "wf").await.expect("publish");
    let copy = workflows.clone_as(WS, "wf", "wf_copy").await.expect("clone");
    assert_eq!(
        (copy.id.as_str(), copy.status, copy.published_version),
        ("wf_copy", WorkflowStatus::Draft, None)
    );
    workflows.delete(WS, "wf_copy").await.expect("delete the draft");
    assert!(matches!(
        workflows.get(WS, "wf_copy").await,
        Err(LifecycleError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_paused_file_is_published_paused_in_one_commit() {
    let (store, subscriptions, workflows) = twins();
    let mut paused = draft("wf", "Prize.Won");
    paused.status = WorkflowStatus::Paused;
    let head = workflows.apply_file(paused.clone()).await.expect("apply");
    assert_eq!(
        (head.status, head.published_version, head.revision),
        (WorkflowStatus::Paused, Some(1), 2)
    );
    assert!(
        subscriptions.list(WS, "Prize.Won").await.expect("find").is_empty(),
        "never live"
    );
    let again = workflows.apply_file(paused).await.expect("apply again");
    assert_eq!(
        again.published_version,
        Some(1),
        "an unchanged file makes no new version"
    );
    assert_eq!(store.list_versions(WS, "wf").await.expect("versions").len(), 1);
    let ids = workflows.get(WS, &"x".repeat(65)).await;
    assert!(matches!(ids, Err(LifecycleError::InvalidId { .. })), "{ids:?}");
}

/// Makes two requests read the same head before either commits.
struct RacingCatalog {
    inner: Arc<MemoryWorkflowStore>,
    barrier: Barrier,
}

#[async_trait]
impl WorkflowStore for RacingCatalog {
    async fn put_version(&self, workflow: &WorkflowDefinition) -> PortResult<()> {
        self.inner.put_version(workflow).await
    }
    async fn get_version(&self, ws: &str, id: &str, version: u32) -> PortResult<Option<Arc<WorkflowDefinition>>> {
        self.inner.get_version(ws, id, version).await
    }
}

#[async_trait]
impl WorkflowCatalog for RacingCatalog {
    async fn get_head(&self, ws: &str, id: &str) -> PortResult<Option<WorkflowHead>> {
        let head = self.inner.get_head(ws, id).await;
        self.barrier.wait().await;
        head
    }
    async fn list_heads(&self, ws: &str) -> PortResult<Vec<WorkflowHead>> {
        self.inner.list_heads(ws).await
    }
    async fn list_versions(&self, ws: &str, id: &str) -> PortResult<Vec<Arc<WorkflowDefinition>>> {
        self.inner.list_versions(ws, id).await
    }
    async fn commit(&self, change: &HeadChange) -> PortResult<Commit> {
        self.inner.commit(change).await
    }
}

#[tokio::test]
async fn of_two_concurrent_publishes_exactly_one_wins() {
    let (store, subscriptions, setup) = twins();
    setup.create(WS, draft("wf", "Prize.Won")).await.expect("create");
    let racing = Arc::new(RacingCatalog {
        inner: store,
        barrier: Barrier::new(2),
    });
    let workflows = Workflows::new(racing, no_hooks(), Arc::new(SystemClock));
    let (a, b) = tokio::join!(workflows.publish(WS, "wf"), workflows.publish(WS, "wf"));
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{a:?} / {b:?}");
    let lost = if a.is_ok() { b } else { a };
    assert_eq!(lost, Err(LifecycleError::Conflict));
    assert_eq!(subscriptions.list(WS, "Prize.Won").await.expect("find").len(), 1);
}

fn arb_op() -> impl Strategy<Value = LifecycleOp> {
    let n = 0usize..3;
    prop_oneof![
        2 => (n.clone(), 0usize..9).prop_map(|(id, trigger)| LifecycleOp::Create { id, trigger }),
        2 => (n.clone(), 0usize..9, prop::bool::weighted(0.8)).prop_map(|(id, trigger, valid)| LifecycleOp::Edit { id, trigger, valid }),
        3 => n.clone().prop_map(LifecycleOp::Publish),
        2 => n.clone().prop_map(LifecycleOp::Pause),
        2 => n.clone().prop_map(LifecycleOp::Resume),
        1 => n.clone().prop_map(LifecycleOp::Archive),
        1 => n.clone().prop_map(LifecycleOp::Delete),
        1 => (n.clone(), n.clone()).prop_map(|(from, to)| LifecycleOp::Clone { from, to }),
        1 => (n, 1u32..4).prop_map(|(id, version)| LifecycleOp::Rollback { id, version }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_lifecycles_keep_one_subscription_per_active_workflow(ops in prop::collection::vec(arb_op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let subscriptions = Arc::new(MemorySubscriptions::default());
            let store = Arc::new(MemoryWorkflowStore::new(subscriptions.clone()));
            conformance::lifecycle_keeps_the_subscription_invariant(store, subscriptions, &ops).await;
        });
    }
}
