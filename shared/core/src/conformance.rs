//! The port contract as executable checks. Every adapter of a port (the
//! in-memory twins here, the AWS adapters later) must pass the same suite,
//! so the engine can rely on the promises, not on one implementation.
//!
//! Each check panics with a message naming the broken promise. Call them
//! from a test with a fresh, empty instance of the adapter.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::access::{Actor, ApiKey, AuditEntry, AuditLog, KeyStore, Role, ACCESS_FORMAT};
use crate::contacts::{
    Applied, ContactChange, ContactEdit, ContactEffect, ContactKey, ContactQuery, ContactRefusal, ContactStore,
    NewContact,
};
use crate::dead_letter::{ParkedBecause, ParkedMessage, QueueKind};
use crate::hooks::{AuthRequest, Hook, HookAuth, HookKind, HookRequest, HookStore, Hooks};
use crate::lifecycle::{Commit, HeadChange, HeadWrite, LifecycleError, WorkflowCatalog, WorkflowHead, Workflows};
use crate::ports::*;
use crate::run::{RunPosition, RunRecord, RunStatus, StepRecord, StepStatus, ERASED};
use crate::subscription::Subscription;
use crate::workflow::{Scope, WorkflowDefinition, WorkflowStatus};

fn workflow(workspace: &str, id: &str, version: u32, name: &str) -> WorkflowDefinition {
    WorkflowDefinition::from_value(
        json!({"id": id, "workspace_id": workspace, "name": name, "status": "active",
        "version": version, "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "s",
        "steps": {"s": {"action": {"type": "SetVariables", "values": {"a": 1}}}}}),
    )
    .expect("conformance workflow decodes")
}

pub async fn workflow_store(store: Arc<dyn WorkflowStore>) {
    let v1 = workflow("ws_c", "wf", 1, "first");
    store.put_version(&v1).await.expect("put v1");
    store
        .put_version(&v1)
        .await
        .expect("storing the same version again is a no-op");
    let changed = workflow("ws_c", "wf", 1, "changed");
    let err = store
        .put_version(&changed)
        .await
        .expect_err("a stored version is immutable");
    assert!(!err.retryable, "changing a version is a terminal error");
    store
        .put_version(&workflow("ws_c", "wf", 2, "second"))
        .await
        .expect("put v2");
    let got = store
        .get_version("ws_c", "wf", 1)
        .await
        .expect("get")
        .expect("v1 exists");
    assert_eq!(*got, v1, "a version reads back as stored");
    assert_eq!(
        store
            .get_version("ws_c", "wf", 2)
            .await
            .expect("get")
            .map(|w| w.name.clone()),
        Some("second".into())
    );
    assert!(store.get_version("ws_c", "wf", 3).await.expect("get").is_none());
    assert!(
        store.get_version("ws_other", "wf", 1).await.expect("get").is_none(),
        "workspaces are fenced"
    );
}

fn subscription(workspace: &str, trigger: &str, workflow_id: &str, scope: Scope) -> Subscription {
    Subscription {
        workspace_id: workspace.into(),
        trigger_type: trigger.into(),
        workflow_id: workflow_id.into(),
        workflow_version: 1,
        scope,
        filter: None,
        start: "s".into(),
    }
}

fn by_workflow(mut subs: Vec<Subscription>) -> Vec<Subscription> {
    subs.sort_by(|x, y| x.workflow_id.cmp(&y.workflow_id));
    subs
}

pub async fn subscription_index(index: Arc<dyn SubscriptionIndex>) {
    let card = Scope::Card("c1".into());
    let site = Scope::Site("s1".into());
    let everywhere = Scope::Workspace(true);
    let a = subscription("ws_c", "Prize.Won", "wf_a", card.clone());
    let b = subscription("ws_c", "Prize.Won", "wf_b", everywhere.clone());
    let c = subscription("ws_c", "Prize.Won", "wf_c", site.clone());
    for sub in [&a, &b, &c] {
        index.put(sub).await.expect("put");
    }
    // Neighbours that no lookup below may return: another type, workspace
    // and card, a card id that extends c1's (ids may hold `#`), and a
    // disabled workspace scope.
    for other in [
        subscription("ws_c", "Card.Completed", "wf_x", card.clone()),
        subscription("ws_other", "Prize.Won", "wf_y", card.clone()),
        subscription("ws_c", "Prize.Won", "wf_z", Scope::Card("c2".into())),
        subscription("ws_c", "Prize.Won", "wf_w", Scope::Card("c1#b".into())),
        subscription("ws_c", "Prize.Won", "wf_v", Scope::Workspace(false)),
    ] {
        index.put(&other).await.expect("put");
    }
    assert_eq!(
        index.find("ws_c", "Prize.Won", &card).await.expect("find"),
        vec![a.clone()],
        "find returns exactly the subscriptions of that scope"
    );
    assert_eq!(
        index.find("ws_c", "Prize.Won", &site).await.expect("find"),
        vec![c.clone()]
    );
    assert_eq!(
        index.find("ws_c", "Prize.Won", &everywhere).await.expect("find"),
        vec![b.clone()]
    );
    assert!(index
        .find("ws_c", "Prize.Won", &Scope::Site("c1".into()))
        .await
        .expect("find")
        .is_empty());
    assert_eq!(
        by_workflow(index.list("ws_c", "Prize.Won").await.expect("list"))
            .iter()
            .map(|s| s.workflow_id.as_str())
            .collect::<Vec<_>>(),
        ["wf_a", "wf_b", "wf_c", "wf_v", "wf_w", "wf_z"],
        "list returns every scope's"
    );
    index
        .remove(&subscription("ws_c", "Prize.Won", "wf_v", Scope::Workspace(false)))
        .await
        .expect("remove");
    assert_eq!(
        index.find("ws_c", "Prize.Won", &everywhere).await.expect("find"),
        vec![b.clone()],
        "removing a disabled scope's subscription leaves the enabled scope's"
    );

    let replaced = Subscription {
        workflow_version: 2,
        ..a.clone()
    };
    index.put(&replaced).await.expect("replace");
    assert_eq!(
        index.find("ws_c", "Prize.Won", &card).await.expect("find"),
        vec![replaced.clone()],
        "put replaces the subscription of the same workflow, type and scope"
    );
    index.remove(&replaced).await.expect("remove");
    assert!(index.find("ws_c", "Prize.Won", &card).await.expect("find").is_empty());
    assert_eq!(index.find("ws_c", "Prize.Won", &site).await.expect("find"), vec![c]);
    assert!(index
        .find("ws_c", "Nothing.Here", &everywhere)
        .await
        .expect("find")
        .is_empty());
    for i in 0..1000 {
        index
            .put(&subscription(
                "ws_many",
                "Prize.Won",
                &format!("wf_{i:04}"),
                everywhere.clone(),
            ))
            .await
            .expect("put");
    }
    assert_eq!(
        index
            .find("ws_many", "Prize.Won", &everywhere)
            .await
            .expect("find")
            .len(),
        1000,
        "find is not truncated"
    );
    assert_eq!(index.list("ws_many", "Prize.Won").await.expect("list").len(), 1000);
}

pub(crate) fn run(run_id: &str, workspace: &str, workflow_id: &str, minute: u32) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        workspace_id: workspace.into(),
        workflow_id: workflow_id.into(),
        workflow_version: 1,
        event_id: format!("evt_{run_id}"),
        trigger_type: "Prize.Won".into(),
        status: RunStatus::Running,
        started_at: Utc
            .with_ymd_and_hms(2026, 11, 23, 10, minute, 0)
            .single()
            .expect("valid time"),
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

/// `second` orders the records in time, as the executor's clock would.
pub(crate) fn step_record(run_id: &str, step_id: &str, attempt: u32, status: StepStatus, second: u32) -> StepRecord {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 23, 11, 0, second)
        .single()
        .expect("valid time");
    StepRecord {
        run_id: run_id.into(),
        step_id: step_id.into(),
        action: crate::actions::ActionKind::HttpRequest,
        status,
        attempt,
        started_at: at,
        ended_at: at,
        output: Some(json!({"status": 200, "body": {"n": attempt}})),
        error: None,
        next: Some("after".into()),
        retryable: status == StepStatus::Failed,
        retry_after_s: None,
        request: None,
    }
}

pub async fn run_log(log: Arc<dyn RunLog>) {
    let r1 = run("run_1", "ws_c", "wf_a", 1);
    assert_eq!(log.create_run(&r1).await.expect("create"), CreateRun::Created);
    let again = RunRecord {
        started_at: r1.started_at + chrono::Duration::minutes(5),
        ..r1.clone()
    };
    assert_eq!(
        log.create_run(&again).await.expect("create"),
        CreateRun::AlreadyExists(Box::new(r1.clone())),
        "a second create returns the first run untouched"
    );
    log.create_run(&run("run_2", "ws_c", "wf_b", 2)).await.expect("create");
    log.create_run(&run("run_3", "ws_c", "wf_a", 3)).await.expect("create");
    log.create_run(&run("run_x", "ws_other", "wf_a", 4))
        .await
        .expect("create");

    let ended = Utc
        .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time");
    assert!(log
        .finish_run("run_2", RunStatus::Failed, Some("boom".into()), ended)
        .await
        .expect("finish"));
    assert!(
        !log.finish_run("run_2", RunStatus::Succeeded, None, ended)
            .await
            .expect("finish"),
        "a run ends once"
    );
    let r2 = log.get_run("run_2").await.expect("get").expect("exists");
    assert_eq!(
        (r2.status, r2.error.as_deref(), r2.ended_at),
        (RunStatus::Failed, Some("boom"), Some(ended))
    );
    assert!(log.get_run("run_none").await.expect("get").is_none());

    let ids = |page: RunPage| page.runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let all = RunQuery::default();
    assert_eq!(
        ids(log.list_runs("ws_c", &all).await.expect("list")),
        vec!["run_3", "run_2", "run_1"],
        "newest first"
    );
    let by_workflow = RunQuery {
        workflow_id: Some("wf_a".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(log.list_runs("ws_c", &by_workflow).await.expect("list")),
        vec!["run_3", "run_1"]
    );
    let failed = RunQuery {
        status: Some(RunStatus::Failed),
        ..all.clone()
    };
    assert_eq!(ids(log.list_runs("ws_c", &failed).await.expect("list")), vec!["run_2"]);
    let running_of_b = RunQuery {
        workflow_id: Some("wf_b".into()),
        status: Some(RunStatus::Running),
        ..all.clone()
    };
    assert!(
        ids(log.list_runs("ws_c", &running_of_b).await.expect("list")).is_empty(),
        "a finished run leaves its old status's listings"
    );
    let one = RunQuery {
        limit: 1,
        ..all.clone()
    };
    let first_page = log.list_runs("ws_c", &one).await.expect("list");
    assert_eq!(first_page.runs[0].run_id, "run_3");
    assert!(first_page.next.is_some(), "more runs follow");

    // A live test's run is listed with the tests, never with production runs.
    let tested = RunRecord {
        test: true,
        ..run("run_t", "ws_c", "wf_a", 9)
    };
    assert_eq!(log.create_run(&tested).await.expect("create"), CreateRun::Created);
    let tests = RunQuery {
        test: true,
        ..all.clone()
    };
    assert_eq!(ids(log.list_runs("ws_c", &tests).await.expect("list")), vec!["run_t"]);
    assert_eq!(
        ids(log.list_runs("ws_c", &all).await.expect("list")),
        vec!["run_3", "run_2", "run_1"],
        "production listings leave test runs out"
    );
    assert!(log.get_run("run_t").await.expect("get").is_some_and(|r| r.test));

    let first = step_record("run_1", "push", 1, StepStatus::Failed, 1);
    assert_eq!(log.put_step(&first).await.expect("put step"), PutStep::Recorded);
    let rival = StepRecord {
        status: StepStatus::Succeeded,
        ..first.clone()
    };
    assert_eq!(
        log.put_step(&rival).await.expect("put step"),
        PutStep::AlreadyRecorded(Box::new(first.clone())),
        "an attempt is recorded once; the first outcome wins"
    );
    let second = step_record("run_1", "push", 2, StepStatus::Succeeded, 2);
    log.put_step(&second).await.expect("put step");
    let after = step_record("run_1", "after", 1, StepStatus::Succeeded, 3);
    log.put_step(&after).await.expect("put step");
    assert_eq!(
        log.get_step("run_1", "push", 2).await.expect("get step"),
        Some(second.clone())
    );
    assert_eq!(log.get_step("run_1", "push", 3).await.expect("get step"), None);
    assert_eq!(
        log.list_steps("run_1").await.expect("list steps"),
        vec![first, second, after],
        "execution order"
    );
    assert!(log.list_steps("run_3").await.expect("list steps").is_empty());

    // An output larger than one DynamoDB item (HTTP responses may be 1 MiB).
    let big = StepRecord {
        output: Some(json!({"body": "ü".repeat(450_000)})),
        ..step_record("run_2", "fetch", 1, StepStatus::Succeeded, 5)
    };
    assert_eq!(log.put_step(&big).await.expect("put big step"), PutStep::Recorded);
    assert_eq!(
        log.get_step("run_2", "fetch", 1).await.expect("get step"),
        Some(big.clone())
    );
    assert_eq!(log.list_steps("run_2").await.expect("list steps"), vec![big.clone()]);
    // The outline may leave a large output in its store, and says so.
    let outline = log.list_step_outlines("run_2").await.expect("outline");
    assert_eq!(outline.len(), 1);
    let apart = Some(serde_json::Value::String(OUTPUT_STORED_APART.into()));
    assert!(outline[0].output == big.output || outline[0].output == apart);
    assert_eq!(
        StepRecord {
            output: big.output.clone(),
            ..outline[0].clone()
        },
        big
    );
    assert_eq!(
        log.put_step(&StepRecord {
            output: None,
            ..big.clone()
        })
        .await
        .expect("put step"),
        PutStep::AlreadyRecorded(Box::new(big)),
        "a large record is recorded once too"
    );

    claims_and_blobs(log.as_ref(), ended).await;
    assert_eq!(
        log.reopen_run("run_2", ended).await.expect("reopen"),
        Some(1),
        "a failed run reopens and counts the replay"
    );
    let reopened = log.get_run("run_2").await.expect("get").expect("exists");
    assert_eq!(
        (
            reopened.status,
            reopened.error,
            reopened.ended_at,
            reopened.replays,
            reopened.due_at
        ),
        (RunStatus::Running, None, None, 1, Some(ended)),
        "a reopened run is due when its replay's message is"
    );
    assert_eq!(
        log.reopen_run("run_2", ended).await.expect("reopen"),
        None,
        "only a failed run reopens"
    );
    assert!(log
        .finish_run("run_2", RunStatus::Failed, Some("again".into()), ended)
        .await
        .expect("finish"));
    assert_eq!(
        log.reopen_run("run_2", ended).await.expect("reopen"),
        Some(2),
        "replays count up"
    );
    assert!(
        log.reopen_run("run_none", ended).await.is_err(),
        "reopening a missing run is an error"
    );
}

async fn claims_and_blobs(log: &dyn RunLog, now: chrono::DateTime<Utc>) {
    let claim = StepClaim {
        run_id: "run_3".into(),
        step_id: "push".into(),
        attempt: 1,
        owner: "worker-a".into(),
        expires_at: now + chrono::Duration::seconds(30),
    };
    assert_eq!(
        log.claim_step(&claim, now).await.expect("claim"),
        ClaimOutcome::Acquired
    );
    let rival = StepClaim {
        owner: "worker-b".into(),
        ..claim.clone()
    };
    assert_eq!(
        log.claim_step(&rival, now + chrono::Duration::seconds(1))
            .await
            .expect("claim"),
        ClaimOutcome::InProgress {
            owner: "worker-a".into(),
            expires_at: claim.expires_at
        },
        "a live claim keeps a second delivery out"
    );
    assert!(
        log.list_steps("run_3").await.expect("list steps").is_empty(),
        "a claim is not a step record"
    );
    assert_eq!(log.get_step("run_3", "push", 1).await.expect("get step"), None);
    let later = now + chrono::Duration::seconds(31);
    assert_eq!(
        log.claim_step(&rival, later).await.expect("claim"),
        ClaimOutcome::Acquired,
        "an expired claim (a crashed worker) is taken over"
    );
    let record = step_record("run_3", "push", 1, StepStatus::Succeeded, 4);
    assert_eq!(
        log.put_step(&record).await.expect("put step"),
        PutStep::Recorded,
        "the claim holder records the attempt"
    );
    assert_eq!(
        log.claim_step(&claim, later).await.expect("claim"),
        ClaimOutcome::Completed(Box::new(record.clone())),
        "a recorded attempt is completed, not claimable"
    );
    assert_eq!(log.list_steps("run_3").await.expect("list steps"), vec![record]);

    assert_eq!(log.get_blob("run_3", "ctx").await.expect("get blob"), None);
    // Larger than one DynamoDB item: adapters split and join it.
    let big: String = "äbc{}\"".chars().cycle().take(900_000).collect();
    log.put_blob("run_3", "ctx", &big).await.expect("put blob");
    assert_eq!(
        log.get_blob("run_3", "ctx").await.expect("get blob").as_deref(),
        Some(big.as_str())
    );
    log.put_blob("run_3", "ctx", "small").await.expect("replace blob");
    assert_eq!(
        log.get_blob("run_3", "ctx").await.expect("get blob").as_deref(),
        Some("small"),
        "a blob is replaced whole"
    );
    assert_eq!(
        log.get_blob("run_1", "ctx").await.expect("get blob"),
        None,
        "blobs are per run"
    );
    assert!(!log.handed_off("run_3", "next#1").await.expect("handed off"));
    log.mark_handed_off("run_3", "next#1").await.expect("mark");
    log.mark_handed_off("run_3", "next#1")
        .await
        .expect("marking twice is fine");
    assert!(log.handed_off("run_3", "next#1").await.expect("handed off"));
    assert!(!log.handed_off("run_3", "next#2").await.expect("handed off"));
    assert!(
        log.list_steps("run_3").await.expect("list steps").len() == 1,
        "blobs and hand-offs are not step records"
    );
}

/// Listings page through every run once, newest first, under every
/// combination of workflow, status and time window.
pub async fn run_listings(log: Arc<dyn RunLog>) {
    let ws = "ws_pages";
    let mut expected: Vec<RunRecord> = vec![];
    // 60 runs over 60 minutes: workflows alternate, every third one fails,
    // every fifth is cancelled; two share a start time.
    for n in 0..60u32 {
        let mut record = run(&format!("run_p{n:02}"), ws, ["wf_a", "wf_b"][n as usize % 2], n.min(58));
        log.create_run(&record).await.expect("create");
        let ended = record.started_at + chrono::Duration::seconds(30);
        let status = match n {
            n if n % 3 == 0 => Some(RunStatus::Failed),
            n if n % 5 == 0 => Some(RunStatus::Cancelled),
            n if n % 2 == 0 => Some(RunStatus::Succeeded),
            _ => None,
        };
        if let Some(status) = status {
            assert!(log
                .finish_run(&record.run_id, status, None, ended)
                .await
                .expect("finish"));
            record.status = status;
            record.ended_at = Some(ended);
        }
        expected.push(record);
    }
    let minute = |m: u32| {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, m, 0)
            .single()
            .expect("valid time")
    };
    let windows = [
        (None, None),
        (Some(minute(10)), Some(minute(40))),
        (Some(minute(58)), None),
    ];
    for workflow in [None, Some("wf_a")] {
        for status in [
            None,
            Some(RunStatus::Failed),
            Some(RunStatus::Cancelled),
            Some(RunStatus::Running),
        ] {
            for (since, until) in windows {
                let query = RunQuery {
                    workflow_id: workflow.map(str::to_owned),
                    status,
                    since,
                    until,
                    limit: 7,
                    ..RunQuery::default()
                };
                let mut want: Vec<&RunRecord> = expected.iter().filter(|r| query.matches(ws, r)).collect();
                want.sort_by_key(|r| std::cmp::Reverse(RunPosition::of(r)));
                let mut got: Vec<String> = vec![];
                let mut pages = 0;
                let mut page_query = query.clone();
                loop {
                    let page = log.list_runs(ws, &page_query).await.expect("list");
                    assert!(page.runs.len() <= 7, "a page holds at most its limit");
                    pages += 1;
                    got.extend(page.runs.iter().map(|r| r.run_id.clone()));
                    match page.next {
                        Some(next) => page_query.after = Some(next),
                        None => break,
                    }
                    assert!(pages < 20, "paging does not end");
                }
                let want: Vec<String> = want.iter().map(|r| r.run_id.clone()).collect();
                assert_eq!(got, want, "{query:?}");
                assert_eq!(pages, want.len().div_ceil(7).max(1), "no empty last page: {query:?}");
            }
        }
    }
    // A cursor from outside the window: before it ends the listing, after
    // it starts at the window's top (the dashboard's window moves on).
    let window = RunQuery {
        since: Some(minute(10)),
        until: Some(minute(40)),
        limit: 5,
        ..RunQuery::default()
    };
    let top = log.list_runs(ws, &window).await.expect("list");
    let early = expected.iter().find(|r| r.started_at < minute(10)).map(RunPosition::of);
    let late = expected
        .iter()
        .find(|r| r.started_at >= minute(40))
        .map(RunPosition::of);
    let before = log
        .list_runs(
            ws,
            &RunQuery {
                after: early,
                ..window.clone()
            },
        )
        .await
        .expect("list");
    assert!(before.runs.is_empty() && before.next.is_none(), "{before:?}");
    let after = log
        .list_runs(
            ws,
            &RunQuery {
                after: late,
                ..window.clone()
            },
        )
        .await
        .expect("list");
    assert_eq!(after, top);

    let first_failed = expected
        .iter()
        .find(|r| r.status == RunStatus::Failed)
        .expect("a failed run");
    let listed = log
        .list_runs(
            ws,
            &RunQuery {
                status: Some(RunStatus::Failed),
                ..RunQuery::default()
            },
        )
        .await
        .expect("list");
    let record = listed
        .runs
        .iter()
        .find(|r| r.run_id == first_failed.run_id)
        .expect("listed");
    assert_eq!(record, first_failed, "a listing holds the whole record");
}

/// The reaper's view: running runs by when their latest message is due,
/// moved only later, dropped when they end; live claims seen.
pub async fn run_due_index(log: Arc<dyn RunLog>) {
    let at = |minute: u32| Utc.with_ymd_and_hms(2026, 11, 30, 4, minute, 0).unwrap();
    for (run_id, due) in [("run_due_a", 10), ("run_due_b", 5), ("run_due_c", 20)] {
        let run = RunRecord {
            due_at: Some(at(due)),
            ..run(run_id, "ws_due", "wf", 1)
        };
        assert_eq!(log.create_run(&run).await.expect("create"), CreateRun::Created);
    }
    let overdue = |cutoff| {
        let log = log.clone();
        async move { log.list_overdue(at(cutoff), 10).await.expect("list overdue") }
    };
    assert_eq!(
        overdue(15).await,
        vec!["run_due_b", "run_due_a"],
        "earliest due first, the later one not yet"
    );
    assert_eq!(log.list_overdue(at(15), 1).await.expect("list"), vec!["run_due_b"]);
    log.extend_due("run_due_b", at(1)).await.expect("extend");
    assert_eq!(
        log.get_run("run_due_b").await.expect("get").and_then(|r| r.due_at),
        Some(at(5)),
        "due never moves earlier"
    );
    log.extend_due("run_due_b", at(30)).await.expect("extend");
    assert_eq!(
        overdue(15).await,
        vec!["run_due_a"],
        "a later message moves the run out"
    );
    assert!(log
        .finish_run("run_due_a", RunStatus::Failed, Some("x".into()), at(16))
        .await
        .expect("finish"));
    log.extend_due("run_due_a", at(40))
        .await
        .expect("an ended run is left alone");
    assert_eq!(
        overdue(59).await,
        vec!["run_due_c", "run_due_b"],
        "an ended run leaves the index"
    );
    assert_eq!(log.reopen_run("run_due_a", at(2)).await.expect("reopen"), Some(1));
    assert_eq!(overdue(15).await, vec!["run_due_a"], "a reopened run is due again");

    let claim = StepClaim {
        run_id: "run_due_c".into(),
        step_id: "s".into(),
        attempt: 1,
        owner: "w1".into(),
        expires_at: at(25),
    };
    assert!(!log.has_live_claim("run_due_c", at(21)).await.expect("claims"));
    assert_eq!(
        log.claim_step(&claim, at(21)).await.expect("claim"),
        ClaimOutcome::Acquired
    );
    assert!(
        log.has_live_claim("run_due_c", at(22)).await.expect("claims"),
        "a held claim is live"
    );
    assert!(
        !log.has_live_claim("run_due_c", at(26)).await.expect("claims"),
        "an expired claim is not"
    );
    assert!(
        !log.has_live_claim("run_due_b", at(22)).await.expect("claims"),
        "claims are per run"
    );
}

/// A contact's runs are listed apart from every other contact's and
/// workspace's, newest first, page by page. Erasing a run's data strips
/// its attempts (a large output kept apart included), deletes its blobs,
/// replaces its errors and marks it, and keeps its ids, statuses, times
/// and claims; a second erasure strips what was recorded since and keeps
/// the first mark.
pub async fn run_erasure(log: Arc<dyn RunLog>) {
    let at = |minute: u32| Utc.with_ymd_and_hms(2026, 12, 2, 5, minute, 0).unwrap();
    let runs = [
        ("run_e1", Some("c#1"), "ws_e", 1),
        ("run_e2", Some("c#1"), "ws_e", 2),
        ("run_e3", Some("c#1"), "ws_e", 3),
        ("run_e4", Some("c#2"), "ws_e", 4),
        ("run_e5", Some("c#1"), "ws_e2", 5),
        ("run_e6", None, "ws_e", 6),
    ];
    for (run_id, contact, workspace, minute) in runs {
        let about = RunRecord {
            contact_id: contact.map(str::to_owned),
            ..run(run_id, workspace, "wf_e", minute)
        };
        assert_eq!(log.create_run(&about).await.expect("create"), CreateRun::Created);
    }
    let first = log.list_contact_runs("ws_e", "c#1", None, 2).await.expect("list");
    let ids = |page: &RunPage| page.runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&first),
        ["run_e3", "run_e2"],
        "newest first, one contact, one workspace"
    );
    let next = first.next.expect("a second page");
    let second = log
        .list_contact_runs("ws_e", "c#1", Some(&next), 2)
        .await
        .expect("list");
    assert_eq!((ids(&second), second.next), (vec!["run_e1".to_owned()], None));

    let personal = json!({"email": "ada@example.com"});
    let mut done = step_record("run_e1", "tag", 1, StepStatus::Succeeded, 1);
    done.output = Some(personal.clone());
    done.request = Some(personal.clone());
    let mut failed = step_record("run_e1", "push", 1, StepStatus::Failed, 2);
    failed.error = Some("HTTP 400 for ada@example.com".into());
    let mut large = step_record("run_e1", "fetch", 1, StepStatus::Succeeded, 3);
    large.output = Some(json!({"text": "a".repeat(310_000)}));
    for record in [&done, &failed, &large] {
        assert_eq!(log.put_step(record).await.expect("put step"), PutStep::Recorded);
    }
    let claim = StepClaim {
        run_id: "run_e1".into(),
        step_id: "later".into(),
        attempt: 1,
        owner: "worker-a".into(),
        expires_at: at(40),
    };
    assert_eq!(
        log.claim_step(&claim, at(7)).await.expect("claim"),
        ClaimOutcome::Acquired
    );
    let context = "b".repeat(400_000);
    for (run_id, key) in [
        ("run_e1", "start"),
        ("run_e1", "resume"),
        ("run_e1", "ctx#push#1"),
        ("run_e2", "start"),
    ] {
        log.put_blob(run_id, key, &context).await.expect("put blob");
    }
    assert!(log
        .finish_run(
            "run_e1",
            RunStatus::Failed,
            Some("push failed for ada@example.com".into()),
            at(8)
        )
        .await
        .expect("finish"));

    log.erase_run_data("run_e1", at(9)).await.expect("erase");
    let erased = log.get_run("run_e1").await.expect("get").expect("the run stays");
    assert_eq!(
        (
            erased.status,
            erased.error.as_deref(),
            erased.erased_at,
            erased.contact_id.as_deref()
        ),
        (RunStatus::Failed, Some(ERASED), Some(at(9)), Some("c#1")),
        "status and contact id kept, error erased, run marked"
    );
    let steps = log.list_steps("run_e1").await.expect("steps");
    assert_eq!(steps.len(), 3, "every attempt stays, in order");
    for step in &steps {
        assert_eq!(
            (&step.output, &step.request),
            (&None, &None),
            "{} is stripped",
            step.step_id
        );
    }
    assert_eq!(
        steps
            .iter()
            .map(|s| (s.step_id.as_str(), s.status, s.error.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("tag", StepStatus::Succeeded, None),
            ("push", StepStatus::Failed, Some(ERASED)),
            ("fetch", StepStatus::Succeeded, None)
        ]
    );
    for key in ["start", "resume", "ctx#push#1"] {
        assert_eq!(
            log.get_blob("run_e1", key).await.expect("blob"),
            None,
            "blob {key} erased"
        );
    }
    assert_eq!(
        log.get_blob("run_e2", "start").await.expect("blob").as_deref(),
        Some(context.as_str()),
        "another run of the contact is left to its own erasure"
    );
    let rival = StepClaim {
        owner: "worker-b".into(),
        ..claim.clone()
    };
    assert!(
        matches!(
            log.claim_step(&rival, at(10)).await.expect("claim"),
            ClaimOutcome::InProgress { .. }
        ),
        "a claim in progress is left to its delivery"
    );

    let mut late = step_record("run_e1", "later", 1, StepStatus::Succeeded, 4);
    late.output = Some(personal);
    log.put_step(&late).await.expect("a late attempt");
    log.erase_run_data("run_e1", at(11)).await.expect("erase again");
    let again = log.get_step("run_e1", "later", 1).await.expect("get").expect("kept");
    assert_eq!(again.output, None, "a second erasure strips what came since");
    assert_eq!(
        log.get_run("run_e1").await.expect("get").and_then(|r| r.erased_at),
        Some(at(9)),
        "the first erasure's time is kept"
    );
    log.erase_run_data("run_missing", at(11))
        .await
        .expect("a missing run has nothing to erase");
}

/// A message parks once per (queue, body); listings are per queue, oldest
/// first, whole; unparking is idempotent.
pub async fn dead_letter_store(store: Arc<dyn DeadLetterStore>) {
    let at = |minute: u32| Utc.with_ymd_and_hms(2026, 11, 30, 3, minute, 0).unwrap();
    let parked = |queue: QueueKind, body: &str, minute: u32| ParkedMessage {
        queue,
        id: ParkedMessage::id_of(queue, body),
        body: body.to_owned(),
        because: ParkedBecause::Terminal,
        reason: "no version 2".into(),
        receive_count: 1,
        parked_at: at(minute),
        workspace_id: Some("ws".into()),
        run_id: Some(format!("run_{minute}")),
    };
    let late = parked(QueueKind::Steps, "{\"late\": \"\u{fffe}\"}", 9);
    let early = parked(QueueKind::Steps, "early", 1);
    let trigger = parked(QueueKind::Triggers, "early", 5);
    for message in [&late, &early, &trigger] {
        assert!(store.park(message).await.expect("park"), "a new message parks");
    }
    let again = ParkedMessage {
        receive_count: 5,
        because: ParkedBecause::DeliveriesExhausted,
        ..late.clone()
    };
    assert!(
        !store.park(&again).await.expect("park again"),
        "the same body parks once"
    );
    let late = again;
    let steps = store.list_parked(QueueKind::Steps, 10).await.expect("list");
    assert_eq!(
        steps,
        vec![early.clone(), late.clone()],
        "oldest first, refreshed when parked again"
    );
    assert_eq!(
        store.list_parked(QueueKind::Steps, 1).await.expect("list"),
        vec![early.clone()]
    );
    assert_eq!(
        store.list_parked(QueueKind::Triggers, 10).await.expect("list"),
        vec![trigger]
    );
    // A trigger event may be 1 MiB, over what one DynamoDB item holds.
    let big = parked(
        QueueKind::Triggers,
        &format!("{{\"data\": \"{}\"}}", "x".repeat(1024 * 1024 - 16)),
        7,
    );
    assert!(store.park(&big).await.expect("park a large body"));
    let triggers = store.list_parked(QueueKind::Triggers, 10).await.expect("list");
    assert_eq!(triggers.last(), Some(&big), "the large body comes back whole");
    store
        .unpark(QueueKind::Triggers, &big.id, big.parked_at)
        .await
        .expect("unpark");
    store
        .unpark(QueueKind::Steps, &early.id, early.parked_at)
        .await
        .expect("unpark");
    store
        .unpark(QueueKind::Steps, &early.id, early.parked_at)
        .await
        .expect("unparking twice is fine");
    assert_eq!(
        store.list_parked(QueueKind::Steps, 10).await.expect("list"),
        vec![late.clone()]
    );
    // Parked again after a redrive listed it: the redrive's unpark leaves it.
    let back = ParkedMessage {
        parked_at: at(30),
        receive_count: 2,
        ..late.clone()
    };
    assert!(!store.park(&back).await.expect("park again"));
    store
        .unpark(QueueKind::Steps, &late.id, late.parked_at)
        .await
        .expect("unpark");
    assert_eq!(store.list_parked(QueueKind::Steps, 10).await.expect("list"), vec![back]);
}

pub async fn event_dedupe(dedupe: Arc<dyn EventDedupe>) {
    assert!(!dedupe.seen("ws_c", "e1").await.expect("seen"));
    dedupe
        .remember("ws_c", "e1", Duration::from_secs(3600))
        .await
        .expect("remember");
    assert!(dedupe.seen("ws_c", "e1").await.expect("seen"));
    assert!(
        !dedupe.seen("ws_other", "e1").await.expect("seen"),
        "dedupe is per workspace"
    );
    dedupe
        .remember("ws_c", "short", Duration::from_millis(1))
        .await
        .expect("remember");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        !dedupe.seen("ws_c", "short").await.expect("seen"),
        "an expired id is forgotten"
    );
}

/// `queue` must have a visibility timeout of at most 2 s.
pub async fn queue(queue: Arc<dyn Queue>) {
    assert!(
        queue.receive(10, Duration::ZERO).await.expect("receive").is_empty(),
        "starts empty"
    );
    queue.send("now".into(), Duration::ZERO).await.expect("send");
    queue.send("later".into(), Duration::from_secs(1)).await.expect("send");
    let got = queue.receive(10, Duration::from_millis(200)).await.expect("receive");
    assert_eq!(
        got.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        vec!["now"],
        "a delayed message waits"
    );
    assert_eq!(got[0].receive_count, 1);
    queue.ack(&got[0].receipt).await.expect("ack");
    let later = queue.receive(10, Duration::from_secs(3)).await.expect("receive");
    assert_eq!(
        later.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        vec!["later"],
        "it arrives after its delay"
    );
    // Not acknowledged: delivered again after the visibility timeout.
    let again = queue.receive(10, Duration::from_secs(5)).await.expect("receive");
    assert_eq!(again.len(), 1, "an unacknowledged message comes back");
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("later", 2));
    queue.ack(&again[0].receipt).await.expect("ack");
    assert!(
        queue
            .receive(10, Duration::from_millis(2500))
            .await
            .expect("receive")
            .is_empty(),
        "acknowledged means gone"
    );
    queue.send("parked".into(), Duration::ZERO).await.expect("send");
    assert_eq!(
        queue.peek(10).await.expect("peek"),
        vec!["parked".to_owned()],
        "peek shows a message"
    );
    let parked = queue.receive(10, Duration::from_secs(1)).await.expect("receive");
    assert_eq!(parked.len(), 1, "a peeked message is still there to receive");
    queue.ack(&parked[0].receipt).await.expect("ack");

    // Text SQS refuses travels escaped and arrives as it was sent.
    let awkward = serde_json::json!({"text": "\u{fffe}\u{ffff}\u{0}\u{1b}\u{10ffff}"});
    let body = crate::ports::message_body(&awkward).expect("encode");
    assert!(
        crate::ports::sqs_accepts(&body),
        "message_body leaves a character SQS refuses: {body:?}"
    );
    queue.send(body, Duration::ZERO).await.expect("send escaped text");
    let got = queue.receive(10, Duration::from_secs(1)).await.expect("receive");
    assert_eq!(got.len(), 1, "the escaped message arrives");
    let decoded: serde_json::Value = serde_json::from_str(&got[0].body).expect("decode");
    assert_eq!(decoded, awkward, "escaped text decodes to what was sent");
    queue.ack(&got[0].receipt).await.expect("ack");
}

fn lifecycle_draft(workspace: &str, id: &str, trigger_type: &str, valid: bool) -> WorkflowDefinition {
    let start = if valid { "s" } else { "missing" };
    WorkflowDefinition::from_value(json!({"id": id, "workspace_id": workspace, "name": id,
        "scope": {"workspace": true}, "trigger": {"type": trigger_type}, "start": start,
        "steps": {"s": {"action": {"type": "SetVariables", "values": {"trigger": trigger_type}}}}}))
    .expect("lifecycle draft decodes")
}

fn head_at(workspace: &str, id: &str, revision: u64, published: Option<u32>, latest: u32) -> WorkflowHead {
    let at = Utc
        .timestamp_opt(1_700_000_000 + revision as i64, 0)
        .single()
        .expect("time");
    WorkflowHead {
        format: crate::lifecycle::HEAD_FORMAT,
        workspace_id: workspace.into(),
        id: id.into(),
        status: if published.is_some() {
            WorkflowStatus::Active
        } else {
            WorkflowStatus::Draft
        },
        revision,
        draft: lifecycle_draft(workspace, id, "Prize.Won", true),
        published_version: published,
        latest_version: latest,
        created_at: at,
        updated_at: at,
    }
}

fn change(head: WorkflowHead, expected: Option<u64>) -> HeadChange {
    HeadChange {
        workspace_id: head.workspace_id.clone(),
        workflow_id: head.id.clone(),
        expected_revision: expected,
        head: HeadWrite::Put(Box::new(head)),
        new_version: None,
        unsubscribe: None,
        subscribe: None,
    }
}

/// `catalog` and `index` must be views of the same, empty store.
pub async fn workflow_catalog(catalog: Arc<dyn WorkflowCatalog>, index: Arc<dyn SubscriptionIndex>) {
    let ws = "ws_cat";
    assert!(catalog.get_head(ws, "wf").await.expect("get").is_none());
    assert!(catalog.list_heads(ws).await.expect("list").is_empty());

    let created = change(head_at(ws, "wf", 1, None, 0), None);
    assert_eq!(catalog.commit(&created).await.expect("create"), Commit::Applied);
    assert_eq!(
        catalog.commit(&created).await.expect("create again"),
        Commit::Conflict,
        "a head is created only where none exists"
    );
    assert_eq!(
        catalog.get_head(ws, "wf").await.expect("get").map(|h| h.revision),
        Some(1)
    );

    // Publish v1 on Prize.Won: head, version and subscription together.
    let v1 = WorkflowDefinition {
        version: 1,
        ..lifecycle_draft(ws, "wf", "Prize.Won", true)
    };
    let publish = HeadChange {
        new_version: Some(v1.clone()),
        subscribe: Some(Subscription::for_version(&v1)),
        ..change(head_at(ws, "wf", 2, Some(1), 1), Some(1))
    };
    let stale = HeadChange {
        expected_revision: Some(7),
        ..publish.clone()
    };
    assert_eq!(catalog.commit(&stale).await.expect("stale"), Commit::Conflict);
    assert!(
        catalog.get_version(ws, "wf", 1).await.expect("get").is_none(),
        "a refused commit stores no version"
    );
    assert!(
        index.list(ws, "Prize.Won").await.expect("find").is_empty(),
        "a refused commit subscribes nothing"
    );
    assert_eq!(catalog.commit(&publish).await.expect("publish"), Commit::Applied);
    let found = index.list(ws, "Prize.Won").await.expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].workflow_version, 1);

    // v2 moves to Form.Submitted: the old subscription goes in the same commit.
    let v2 = WorkflowDefinition {
        version: 2,
        ..lifecycle_draft(ws, "wf", "Form.Submitted", true)
    };
    let swap = HeadChange {
        new_version: Some(v2.clone()),
        unsubscribe: Some(Subscription::for_version(&v1)),
        subscribe: Some(Subscription::for_version(&v2)),
        ..change(head_at(ws, "wf", 3, Some(2), 2), Some(2))
    };
    assert_eq!(catalog.commit(&swap).await.expect("swap"), Commit::Applied);
    assert!(
        index.list(ws, "Prize.Won").await.expect("find").is_empty(),
        "old trigger unsubscribed"
    );
    assert_eq!(
        index.list(ws, "Form.Submitted").await.expect("find")[0].workflow_version,
        2
    );

    // A version number that is taken refuses the whole commit.
    let taken = HeadChange {
        new_version: Some(WorkflowDefinition {
            name: "other".into(),
            ..v2.clone()
        }),
        unsubscribe: Some(Subscription::for_version(&v2)),
        ..change(head_at(ws, "wf", 4, Some(2), 2), Some(3))
    };
    assert_eq!(catalog.commit(&taken).await.expect("taken"), Commit::Conflict);
    assert_eq!(
        catalog.get_head(ws, "wf").await.expect("get").map(|h| h.revision),
        Some(3)
    );
    assert_eq!(
        index.list(ws, "Form.Submitted").await.expect("find").len(),
        1,
        "nothing of it applied"
    );

    // Versions list by number, 10 after 9 (sort keys are zero-padded).
    // The head is at revision 3; version n is committed at revision n + 1.
    for n in 3..=11u32 {
        let version = WorkflowDefinition {
            version: n,
            ..v2.clone()
        };
        let revision = u64::from(n);
        let next = HeadChange {
            new_version: Some(version),
            ..change(head_at(ws, "wf", revision + 1, Some(n), n), Some(revision))
        };
        assert_eq!(catalog.commit(&next).await.expect("version"), Commit::Applied);
    }
    let numbers: Vec<u32> = catalog
        .list_versions(ws, "wf")
        .await
        .expect("versions")
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(numbers, (1..=11).collect::<Vec<_>>(), "versions list in numeric order");

    let other = change(head_at(ws, "other", 1, None, 0), None);
    assert_eq!(catalog.commit(&other).await.expect("create"), Commit::Applied);
    assert_eq!(catalog.list_heads(ws).await.expect("list").len(), 2);
    assert!(catalog.list_heads("ws_elsewhere").await.expect("list").is_empty());
    let delete = HeadChange {
        head: HeadWrite::Delete,
        ..change(head_at(ws, "other", 1, None, 0), Some(1))
    };
    assert_eq!(catalog.commit(&delete).await.expect("delete"), Commit::Applied);
    assert!(catalog.get_head(ws, "other").await.expect("get").is_none());
    moves_between_scopes(catalog, index, ws).await;
}

/// A workflow published in a card, moved to a site on the same trigger
/// type (the card's subscription goes in the commit), then republished in
/// the same site (the put replaces the item in place).
async fn moves_between_scopes(catalog: Arc<dyn WorkflowCatalog>, index: Arc<dyn SubscriptionIndex>, ws: &str) {
    let in_scope = |version: u32, scope: Scope| WorkflowDefinition {
        version,
        scope,
        ..lifecycle_draft(ws, "moving", "Prize.Won", true)
    };
    let (card, site) = (Scope::Card("card_m".into()), Scope::Site("site_m".into()));
    assert_eq!(
        catalog
            .commit(&change(head_at(ws, "moving", 1, None, 0), None))
            .await
            .expect("create"),
        Commit::Applied
    );
    let mut published: Option<WorkflowDefinition> = None;
    for (version, scope) in [(1, &card), (2, &site), (3, &site)] {
        let next = in_scope(version, scope.clone());
        let revision = u64::from(version);
        let commit = HeadChange {
            new_version: Some(next.clone()),
            unsubscribe: published.as_ref().map(Subscription::for_version),
            subscribe: Some(Subscription::for_version(&next)),
            ..change(
                head_at(ws, "moving", revision + 1, Some(version), version),
                Some(revision),
            )
        };
        assert_eq!(catalog.commit(&commit).await.expect("move"), Commit::Applied);
        published = Some(next);
        let found = index.find(ws, "Prize.Won", scope).await.expect("find");
        assert_eq!(
            found.iter().map(|s| s.workflow_version).collect::<Vec<_>>(),
            [version],
            "version {version} is subscribed in {scope:?}"
        );
    }
    assert!(
        index.find(ws, "Prize.Won", &card).await.expect("find").is_empty(),
        "the card's subscription went with the move"
    );
}

/// One step of a random lifecycle: the property test's alphabet.
#[derive(Debug, Clone)]
pub enum LifecycleOp {
    Create { id: usize, trigger: usize },
    Edit { id: usize, trigger: usize, valid: bool },
    Publish(usize),
    Pause(usize),
    Resume(usize),
    Archive(usize),
    Delete(usize),
    Clone { from: usize, to: usize },
    Rollback { id: usize, version: u32 },
}

/// The workflow ids and trigger types the operations pick from. A draft's
/// `trigger` number picks its trigger type (modulo 3) and its scope (the
/// next digit in base 3: workspace, site or card), so an edit can move a
/// workflow to another type, scope or both.
pub const LIFECYCLE_IDS: [&str; 3] = ["wf_a", "wf_b", "wf_c"];
pub const LIFECYCLE_TRIGGERS: [&str; 3] = ["Prize.Won", "Form.Submitted", "Hook.crm"];

fn lifecycle_scope(trigger: usize) -> Scope {
    match (trigger / LIFECYCLE_TRIGGERS.len()) % 3 {
        0 => Scope::Workspace(true),
        1 => Scope::Site("site_1".into()),
        _ => Scope::Card("card_1".into()),
    }
}

fn scoped_draft(ws: &str, id: &str, trigger: usize, valid: bool) -> WorkflowDefinition {
    WorkflowDefinition {
        scope: lifecycle_scope(trigger),
        ..lifecycle_draft(ws, id, LIFECYCLE_TRIGGERS[trigger % LIFECYCLE_TRIGGERS.len()], valid)
    }
}

fn hook_request(name: &str) -> HookRequest {
    HookRequest {
        name: name.into(),
        kind: HookKind::Webhook,
        trigger_type: None,
        siteid: None,
        cardid: None,
        auth: AuthRequest {
            auth: HookAuth::StandardWebhooks,
            secret: None,
        },
        event_id: None,
        status: None,
        max_body_bytes: None,
        rate_limit: None,
        redirect_url: None,
    }
}

/// Hooks: found by id and listed per workspace, newest first; a change is
/// written only over the revision it read; deletes stay in their workspace.
pub async fn hook_store(store: Arc<dyn HookStore>) {
    let hooks = Hooks::new(store.clone(), Arc::new(SystemClock));
    let first = hooks.create("ws_h", hook_request("crm")).await.expect("create").hook;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = hooks.create("ws_h", hook_request("shop")).await.expect("create").hook;
    let other = hooks
        .create("ws_h_other", hook_request("crm"))
        .await
        .expect("create")
        .hook;
    assert_eq!(store.get_hook(&first.id).await.expect("get"), Some(first.clone()));
    assert!(store
        .get_hook("hk_00000000000000000000000000000000")
        .await
        .expect("get")
        .is_none());
    let listed: Vec<String> = store
        .list_hooks("ws_h")
        .await
        .expect("list")
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(listed, vec![second.id.clone(), first.id.clone()], "newest first");
    assert!(store.create_hook(&first).await.is_err(), "an id is never reused");

    let renamed = Hook {
        name: "crm2".into(),
        revision: first.revision + 1,
        ..first.clone()
    };
    assert!(
        !store.replace_hook(&renamed, first.revision + 5).await.expect("replace"),
        "stale revision"
    );
    assert!(store.replace_hook(&renamed, first.revision).await.expect("replace"));
    assert!(
        !store.replace_hook(&renamed, first.revision).await.expect("replace"),
        "the revision moved on"
    );
    assert_eq!(
        store.get_hook(&first.id).await.expect("get").map(|h| h.name),
        Some("crm2".into())
    );
    let stolen = Hook {
        workspace_id: "ws_h".into(),
        revision: other.revision + 1,
        ..other.clone()
    };
    assert!(
        !store.replace_hook(&stolen, other.revision).await.expect("replace"),
        "another workspace's hook"
    );

    assert!(
        !store.delete_hook("ws_h", &other.id).await.expect("delete"),
        "another workspace's hook"
    );
    assert!(store.delete_hook("ws_h", &first.id).await.expect("delete"));
    assert!(store.get_hook(&first.id).await.expect("get").is_none());
    assert_eq!(store.list_hooks("ws_h").await.expect("list").len(), 1);
    assert_eq!(store.list_hooks("ws_h_other").await.expect("list").len(), 1);
}

/// In-memory hooks with one webhook of `workspace` emitting `Hook.<name>`.
pub async fn hooks_emitting(workspace: &str, name: &str) -> Hooks {
    let hooks = Hooks::new(Arc::new(crate::memory::MemoryHooks::default()), Arc::new(SystemClock));
    hooks
        .create(workspace, hook_request(name))
        .await
        .expect("create the hook");
    hooks
}

/// Runs `ops` through the use cases and checks after each one that the
/// subscription index holds exactly one subscription per active workflow,
/// for its published version and that version's trigger type, and none for
/// any other. Refusals are fine; a port failure is not.
pub async fn lifecycle_keeps_the_subscription_invariant(
    catalog: Arc<dyn WorkflowCatalog>,
    index: Arc<dyn SubscriptionIndex>,
    ops: &[LifecycleOp],
) {
    let ws = "ws_prop";
    let workflows = Workflows::new(catalog.clone(), hooks_emitting(ws, "crm").await, Arc::new(SystemClock));
    for (i, op) in ops.iter().enumerate() {
        let outcome = apply(&workflows, ws, op).await;
        if let Err(LifecycleError::Port(err)) = outcome {
            panic!("op {i} {op:?}: the store failed: {err}");
        }
        let mut subscribed = std::collections::BTreeMap::new();
        for trigger in LIFECYCLE_TRIGGERS {
            for sub in index.list(ws, trigger).await.expect("find") {
                let previous = subscribed.insert(sub.workflow_id.clone(), sub);
                assert!(
                    previous.is_none(),
                    "after op {i} {op:?}: a workflow has two subscriptions"
                );
            }
        }
        for head in catalog.list_heads(ws).await.expect("heads") {
            let sub = subscribed.remove(&head.id);
            if head.status != WorkflowStatus::Active {
                assert!(
                    sub.is_none(),
                    "after op {i} {op:?}: {} is {:?} but subscribed",
                    head.id,
                    head.status
                );
                continue;
            }
            let sub = sub.unwrap_or_else(|| panic!("after op {i} {op:?}: active {} has no subscription", head.id));
            let version = head
                .published_version
                .expect("an active workflow has a published version");
            let published = catalog
                .get_version(ws, &head.id, version)
                .await
                .expect("get")
                .expect("the published version is stored");
            assert_eq!(
                sub.workflow_version, version,
                "after op {i} {op:?}: {} subscribed to another version",
                head.id
            );
            assert_eq!(
                (&sub.trigger_type, &sub.scope),
                (&published.trigger.trigger_type, &published.scope),
                "after op {i} {op:?}: {} subscribed to another trigger type or scope",
                head.id
            );
        }
        assert!(
            subscribed.is_empty(),
            "after op {i} {op:?}: subscriptions without an active workflow: {subscribed:?}"
        );
    }
}

async fn apply(workflows: &Workflows, ws: &str, op: &LifecycleOp) -> Result<(), LifecycleError> {
    let id = |n: &usize| LIFECYCLE_IDS[n % LIFECYCLE_IDS.len()];
    match op {
        LifecycleOp::Create { id: n, trigger: t } => {
            workflows.create(ws, scoped_draft(ws, id(n), *t, true)).await?;
        }
        LifecycleOp::Edit {
            id: n,
            trigger: t,
            valid,
        } => {
            let revision = workflows.get(ws, id(n)).await?.revision;
            let draft = scoped_draft(ws, id(n), *t, *valid);
            workflows.update_draft(ws, id(n), draft, Some(revision)).await?;
        }
        LifecycleOp::Publish(n) => {
            workflows.publish(ws, id(n)).await?;
        }
        LifecycleOp::Pause(n) => {
            workflows.pause(ws, id(n)).await?;
        }
        LifecycleOp::Resume(n) => {
            workflows.resume(ws, id(n)).await?;
        }
        LifecycleOp::Archive(n) => {
            workflows.archive(ws, id(n)).await?;
        }
        LifecycleOp::Delete(n) => workflows.delete(ws, id(n)).await?,
        LifecycleOp::Clone { from, to } => {
            workflows.clone_as(ws, id(from), id(to)).await?;
        }
        LifecycleOp::Rollback { id: n, version } => {
            workflows.rollback(ws, id(n), *version).await?;
        }
    }
    Ok(())
}

fn api_key(workspace: &str, id: &str, minute: u32) -> ApiKey {
    ApiKey {
        format: ACCESS_FORMAT,
        id: id.to_owned(),
        workspace_id: workspace.to_owned(),
        role: Role::Operator,
        name: Some(format!("key {id}")),
        secret_hash: format!("{id:0>64}"),
        created_at: Utc
            .with_ymd_and_hms(2026, 11, 30, 10, minute, 0)
            .single()
            .expect("valid time"),
        revoked_at: None,
    }
}

pub async fn key_store(store: Arc<dyn KeyStore>) {
    let (a1, a2, b1) = (
        api_key("ws_a", "k_a1", 1),
        api_key("ws_a", "k_a2", 2),
        api_key("ws_b", "k_b1", 3),
    );
    for key in [&a1, &a2, &b1] {
        store.put_key(key).await.expect("put_key");
    }
    assert!(store.put_key(&a1).await.is_err(), "an existing key id is refused");
    assert_eq!(store.get_key("k_a1").await.expect("get_key"), Some(a1.clone()));
    assert_eq!(store.get_key("k_none").await.expect("get_key"), None);
    let listed = store.list_keys("ws_a").await.expect("list_keys");
    assert_eq!(
        listed,
        vec![a2.clone(), a1.clone()],
        "a workspace's keys, newest first, and no other's"
    );

    let at = Utc
        .with_ymd_and_hms(2026, 11, 30, 11, 0, 0)
        .single()
        .expect("valid time");
    assert_eq!(
        store.revoke_key("ws_b", "k_a1", at).await.expect("revoke_key"),
        None,
        "a key is revoked only through its own workspace"
    );
    let revoked = store.revoke_key("ws_a", "k_a1", at).await.expect("revoke_key");
    assert_eq!(revoked.and_then(|key| key.revoked_at), Some(at));
    let later = at + chrono::Duration::minutes(5);
    store.revoke_key("ws_a", "k_a1", later).await.expect("revoke again");
    let stored = store.get_key("k_a1").await.expect("get_key");
    assert_eq!(
        stored.and_then(|key| key.revoked_at),
        Some(at),
        "revoking twice keeps the first time"
    );
    let listed = store.list_keys("ws_a").await.expect("list_keys");
    assert_eq!(listed[1].revoked_at, Some(at), "the list shows the revocation");
    assert_eq!(store.revoke_key("ws_a", "k_none", at).await.expect("revoke"), None);
}

pub async fn audit_log(audit: Arc<dyn AuditLog>) {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 30, 10, 0, 0)
        .single()
        .expect("valid time");
    let mut recorded = vec![];
    for i in 0..5 {
        // Two entries share each instant: the id keeps them apart and ordered.
        let at = base + chrono::Duration::seconds(i / 2);
        let entry = AuditEntry::new(
            "ws_a",
            at,
            &Actor::LocalDeveloper,
            format!("POST /x/{i}"),
            format!("/x/{i}"),
        );
        audit.record(&entry).await.expect("record");
        recorded.push(entry);
    }
    let other = AuditEntry::new(
        "ws_b",
        base,
        &Actor::AwsCredentials,
        "POST /y".to_owned(),
        "/y".to_owned(),
    );
    audit.record(&other).await.expect("record");
    recorded.sort_by_key(|entry| std::cmp::Reverse(entry.list_position()));

    let first = audit.list("ws_a", 2, None).await.expect("list");
    assert_eq!(first.entries, recorded[..2].to_vec(), "newest first");
    let cursor = first.next_cursor.expect("more pages");
    let second = audit.list("ws_a", 2, Some(&cursor)).await.expect("list");
    assert_eq!(
        second.entries,
        recorded[2..4].to_vec(),
        "the cursor continues after the last entry seen"
    );
    let cursor = second.next_cursor.expect("more pages");
    let last = audit.list("ws_a", 2, Some(&cursor)).await.expect("list");
    assert_eq!((last.entries, last.next_cursor), (recorded[4..].to_vec(), None));
    let b = audit.list("ws_b", 10, None).await.expect("list");
    assert_eq!(b.entries, vec![other], "one workspace's trail only");
}

fn contact_change(contact_id: &str, email: Option<&str>, edits: Vec<ContactEdit>) -> ContactChange {
    ContactChange {
        contact_id: contact_id.into(),
        create: Some(NewContact {
            email: email.map(str::to_owned),
            ..NewContact::default()
        }),
        edits,
    }
}

fn tag(name: &str) -> ContactEdit {
    ContactEdit::AddTag { tag: name.into() }
}

/// Applies a change that must be accepted.
async fn applied(store: &dyn ContactStore, ws: &str, change: &ContactChange, token: &str) -> Applied {
    store
        .apply(ws, change, token, Utc::now())
        .await
        .expect("apply")
        .expect("change accepted")
}

pub async fn contact_store(store: Arc<dyn ContactStore>) {
    let store = store.as_ref();
    let ws = "ws_contacts";
    let created = applied(
        store,
        ws,
        &contact_change("c1", Some("Ana@Example.com"), vec![tag("vip")]),
        "run1:s1",
    )
    .await;
    assert_eq!(
        created.effects,
        vec![ContactEffect::Created, ContactEffect::TagAdded { tag: "vip".into() }]
    );
    let got = store.get_contact(ws, "c1").await.expect("get").expect("stored");
    assert_eq!(got, created.contact);
    assert!(
        store.get_contact("ws_other", "c1").await.expect("get").is_none(),
        "keys start with the workspace"
    );
    for spelled in ["ana@example.com", "ANA@EXAMPLE.COM"] {
        let found = store
            .find_contact(ws, &ContactKey::Email(spelled.into()))
            .await
            .expect("find");
        assert_eq!(
            found.map(|c| c.id),
            Some("c1".into()),
            "emails match case-insensitively"
        );
    }

    // A repeated token answers what its change did and changes nothing.
    let points = contact_change(
        "c1",
        None,
        vec![ContactEdit::AwardPoints {
            program: "main".into(),
            points: 50,
        }],
    );
    let first = applied(store, ws, &points, "run1:s2").await;
    let again = applied(store, ws, &points, "run1:s2").await;
    assert_eq!(first, again, "a repeat answers the first outcome");
    let balance = store.get_contact(ws, "c1").await.expect("get").expect("stored").loyalty["main"].points;
    assert_eq!(balance, 50, "points are awarded once per token");
    let refused = store
        .apply(
            ws,
            &contact_change(
                "c1",
                None,
                vec![ContactEdit::RedeemPoints {
                    program: "main".into(),
                    points: 80,
                }],
            ),
            "run1:s3",
            Utc::now(),
        )
        .await
        .expect("apply");
    assert!(matches!(
        refused,
        Err(ContactRefusal::InsufficientPoints { balance: 50, .. })
    ));

    // Emails are unique per workspace.
    let taken = store
        .apply(
            ws,
            &contact_change("c2", Some("ana@EXAMPLE.com"), vec![]),
            "run2:s1",
            Utc::now(),
        )
        .await
        .expect("apply");
    assert!(
        matches!(taken, Err(ContactRefusal::EmailTaken { ref owner, .. }) if owner == "c1"),
        "{taken:?}"
    );
    assert!(
        store.get_contact(ws, "c2").await.expect("get").is_none(),
        "a refused change writes nothing"
    );
    applied(
        store,
        "ws_other",
        &contact_change("c2", Some("ana@example.com"), vec![]),
        "run2:s1",
    )
    .await;
    let missing = store
        .apply(
            ws,
            &ContactChange {
                contact_id: "c_missing".into(),
                create: None,
                edits: vec![tag("x")],
            },
            "run3:s1",
            Utc::now(),
        )
        .await
        .expect("apply");
    assert_eq!(missing, Err(ContactRefusal::NotFound("c_missing".into())));

    contact_listings(store, ws).await;

    assert!(store.erase_contact(ws, "c1").await.expect("erase"));
    assert!(store.get_contact(ws, "c1").await.expect("get").is_none());
    assert!(store
        .find_contact(ws, &ContactKey::Email("ana@example.com".into()))
        .await
        .expect("find")
        .is_none());
    let vip = ContactQuery {
        tag: Some("vip".into()),
        limit: 100,
        ..ContactQuery::default()
    };
    let members: Vec<String> = store
        .list_contacts(ws, &vip)
        .await
        .expect("list")
        .contacts
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(!members.contains(&"c1".to_owned()), "an erased contact leaves its tags");
    assert!(!store.erase_contact(ws, "c1").await.expect("erase"));
    // The email is free again, and an old token is not answered for a new contact.
    let reborn = applied(
        store,
        ws,
        &contact_change("c1", Some("ana@example.com"), vec![]),
        "run1:s2",
    )
    .await;
    assert_eq!(
        reborn.effects,
        vec![ContactEffect::Created],
        "erasure forgets the contact's changes"
    );

    // Erasing a contact leaves alone another whose id starts with its id.
    let award = |id: &str| {
        contact_change(
            id,
            None,
            vec![ContactEdit::AwardPoints {
                program: "p".into(),
                points: 5,
            }],
        )
    };
    applied(store, ws, &award("e1"), "run9:s1").await;
    applied(store, ws, &award("e1#x"), "run9:s1").await;
    assert!(store.erase_contact(ws, "e1").await.expect("erase"));
    let repeat = applied(store, ws, &award("e1#x"), "run9:s1").await;
    assert_eq!(
        repeat.contact.loyalty["p"].points, 5,
        "e1#x's change is still answered, not applied again"
    );
}

/// Tags and lists are listed a page at a time, in id order, without the
/// contacts outside them.
async fn contact_listings(store: &dyn ContactStore, ws: &str) {
    for i in 0..7 {
        let mut edits = vec![tag("sponsor-a")];
        if i % 2 == 0 {
            edits.push(ContactEdit::AddToList { list: "even".into() });
        }
        applied(
            store,
            ws,
            &contact_change(&format!("m{i}"), None, edits),
            &format!("list:{i}"),
        )
        .await;
    }
    applied(
        store,
        ws,
        &contact_change(
            "m2",
            None,
            vec![ContactEdit::RemoveTag {
                tag: "sponsor-a".into(),
            }],
        ),
        "list:untag",
    )
    .await;
    let pages = |query: ContactQuery| async move {
        let mut query = query;
        let mut pages = vec![];
        loop {
            let page = store.list_contacts(ws, &query).await.expect("list");
            pages.push(page.contacts.iter().map(|c| c.id.clone()).collect::<Vec<_>>());
            match page.next {
                Some(next) => query.after = Some(next),
                None => return pages,
            }
        }
    };
    let tagged = pages(ContactQuery {
        tag: Some("sponsor-a".into()),
        limit: 2,
        ..ContactQuery::default()
    })
    .await;
    assert_eq!(
        tagged,
        vec![vec!["m0", "m1"], vec!["m3", "m4"], vec!["m5", "m6"]],
        "a tag's members, paginated, without the untagged"
    );
    let listed = pages(ContactQuery {
        list: Some("even".into()),
        limit: 3,
        ..ContactQuery::default()
    })
    .await;
    assert_eq!(listed, vec![vec!["m0", "m2", "m4"], vec!["m6"]]);
    let both = pages(ContactQuery {
        tag: Some("sponsor-a".into()),
        list: Some("even".into()),
        limit: 10,
        ..ContactQuery::default()
    })
    .await;
    assert_eq!(both, vec![vec!["m0", "m4", "m6"]]);
    let all: Vec<String> = pages(ContactQuery {
        limit: 4,
        ..ContactQuery::default()
    })
    .await
    .concat();
    assert_eq!(
        all,
        vec!["c1", "m0", "m1", "m2", "m3", "m4", "m5", "m6"],
        "every contact of the workspace"
    );
}

fn connection(ws: &str, name: &str, secret_ref: &str) -> crate::connections::Connection {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single().expect("time");
    crate::connections::Connection {
        workspace_id: ws.into(),
        name: name.into(),
        app: crate::connections::App::Mailchimp,
        base_url: None,
        fields: vec!["api_key".into()],
        secret_ref: secret_ref.into(),
        created_at: at,
        rotated_at: at,
    }
}

/// Connections: names are unique per workspace, a rotation only replaces
/// the credentials it read, and a deletion answers what it deleted.
pub async fn connection_store(store: Arc<dyn crate::connections::ConnectionStore>) {
    let store = store.as_ref();
    let mc = connection("ws_conn", "mc", "ws_conn/r1");
    assert!(store.create(&mc).await.expect("create"), "a new name is taken");
    assert!(
        !store
            .create(&connection("ws_conn", "mc", "ws_conn/r2"))
            .await
            .expect("create"),
        "a taken name is refused"
    );
    assert!(store
        .create(&connection("ws_other", "mc", "ws_other/r1"))
        .await
        .expect("create"));
    assert!(store
        .create(&connection("ws_conn", "braze", "ws_conn/r3"))
        .await
        .expect("create"));
    assert_eq!(store.get("ws_conn", "mc").await.expect("get"), Some(mc.clone()));
    assert_eq!(store.get("ws_conn", "nope").await.expect("get"), None);
    let names: Vec<String> = store
        .list("ws_conn")
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["braze", "mc"], "a workspace's own, by name");

    let rotated = crate::connections::Connection {
        secret_ref: "ws_conn/r4".into(),
        ..mc.clone()
    };
    assert!(store.replace(&rotated, "ws_conn/r1").await.expect("replace"));
    assert!(
        !store
            .replace(&connection("ws_conn", "mc", "ws_conn/r5"), "ws_conn/r1")
            .await
            .expect("replace"),
        "a rotation from credentials already replaced loses"
    );
    assert_eq!(store.get("ws_conn", "mc").await.expect("get"), Some(rotated.clone()));
    assert!(
        !store
            .replace(&connection("ws_conn", "gone", "ws_conn/r6"), "ws_conn/r0")
            .await
            .expect("replace"),
        "nothing to rotate"
    );
    assert_eq!(
        store.get("ws_conn", "gone").await.expect("get"),
        None,
        "a lost rotation creates nothing"
    );

    assert_eq!(store.delete("ws_conn", "mc").await.expect("delete"), Some(rotated));
    assert_eq!(store.delete("ws_conn", "mc").await.expect("delete"), None);
    assert_eq!(
        store.get("ws_other", "mc").await.expect("get").map(|c| c.workspace_id),
        Some("ws_other".into())
    );
}

fn outbound_endpoint(workspace_id: &str, id: &str) -> crate::outbound::Endpoint {
    let now = chrono::Utc::now();
    crate::outbound::Endpoint {
        id: id.into(),
        workspace_id: workspace_id.into(),
        url: "https://example.com/hook".into(),
        description: String::new(),
        event_types: vec!["Prize.Won".into()],
        disabled: None,
        secrets: vec![crate::outbound::SigningSecret {
            value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            created_at: now,
            expires_at: None,
        }],
        failing_since: None,
        last_failure_at: None,
        throttled_until: None,
        created_at: now,
        updated_at: now,
        revision: 1,
    }
}

fn outbound_message(endpoint: &crate::outbound::Endpoint, id: &str, at_s: i64) -> crate::outbound::OutboundMessage {
    crate::outbound::OutboundMessage {
        id: id.into(),
        workspace_id: endpoint.workspace_id.clone(),
        endpoint_id: endpoint.id.clone(),
        event_type: "Prize.Won".into(),
        payload: r#"{"type":"Prize.Won","data":{"ü":"\u0000"}}"#.into(),
        created_at: chrono::DateTime::from_timestamp(at_s, 0).expect("time"),
        status: crate::outbound::MessageStatus::Pending,
        attempts: 0,
        in_flight_until: None,
        next_attempt_at: None,
        last_error: None,
        version: 1,
    }
}

/// Outbound webhooks: endpoints replaced on their revision only, messages
/// created once and replaced on their version only, the failed index in
/// creation order from a time, and the attempt log newest first in pages.
pub async fn outbound_store(store: Arc<dyn crate::outbound::OutboundStore>) {
    use crate::outbound::{AttemptOutcome, DeliveryAttempt, MessageStatus};
    let store = store.as_ref();
    let ep = outbound_endpoint("ws_out", "ep_1");
    assert!(store.create_endpoint(&ep).await.expect("create"));
    assert!(
        !store.create_endpoint(&ep).await.expect("create"),
        "an id is taken once"
    );
    assert!(store
        .create_endpoint(&outbound_endpoint("ws_other", "ep_2"))
        .await
        .expect("create"));
    let mut changed = ep.clone();
    changed.revision = 2;
    changed.event_types.push("Run.Failed".into());
    assert!(store.replace_endpoint(&changed, 1).await.expect("replace"));
    assert!(
        !store.replace_endpoint(&changed, 1).await.expect("replace"),
        "a stale revision loses"
    );
    assert_eq!(
        store.get_endpoint("ws_out", "ep_1").await.expect("get"),
        Some(changed.clone())
    );
    let listed = store.list_endpoints("ws_out").await.expect("list");
    assert_eq!(listed, vec![changed.clone()], "a workspace's own only");

    let first = outbound_message(&ep, "msg_a", 1_000);
    assert_eq!(store.create_message(&first).await.expect("create"), None);
    let mut again = first.clone();
    again.payload = "{}".into();
    assert_eq!(
        store.create_message(&again).await.expect("create"),
        Some(first.clone()),
        "a message is created once; the first stays"
    );
    let mut claimed = first.clone();
    claimed.attempts = 1;
    claimed.version = 2;
    assert!(store.replace_message(&claimed, 1).await.expect("replace"));
    assert!(
        !store.replace_message(&claimed, 1).await.expect("replace"),
        "a stale version loses"
    );
    assert_eq!(
        store.get_message("ws_out", "ep_1", "msg_a").await.expect("get"),
        Some(claimed.clone())
    );
    assert_eq!(
        store.get_message("ws_out", "ep_1", "msg_none").await.expect("get"),
        None
    );

    let second = outbound_message(&ep, "msg_b", 2_000);
    let third = outbound_message(&ep, "msg_c", 3_000);
    for failed in [&third, &first, &second] {
        store.index_failed(failed, true).await.expect("index");
    }
    store.index_failed(&second, false).await.expect("unindex");
    let since = |s: i64| chrono::DateTime::from_timestamp(s, 0).expect("time");
    assert_eq!(
        store
            .failed_since("ws_out", "ep_1", since(0), 10)
            .await
            .expect("failed"),
        ["msg_a", "msg_c"],
        "oldest first, without what left the index"
    );
    assert_eq!(
        store
            .failed_since("ws_out", "ep_1", since(1_500), 10)
            .await
            .expect("failed"),
        ["msg_c"]
    );
    assert_eq!(
        store.failed_since("ws_out", "ep_1", since(0), 1).await.expect("failed"),
        ["msg_a"]
    );
    assert!(store
        .failed_since("ws_other", "ep_2", since(0), 10)
        .await
        .expect("failed")
        .is_empty());

    for n in 1..=5u32 {
        let attempt = DeliveryAttempt {
            workspace_id: "ws_out".into(),
            endpoint_id: "ep_1".into(),
            message_id: "msg_a".into(),
            event_type: "Prize.Won".into(),
            attempt: n,
            at: since(10_000 + i64::from(n)),
            status_code: Some(500),
            error: None,
            response: Some("oops".into()),
            duration_ms: 3,
            outcome: AttemptOutcome::WillRetry,
            next_attempt_at: None,
            manual: false,
        };
        store.record_attempt(&attempt).await.expect("record");
    }
    let page = store.list_attempts("ws_out", "ep_1", 2, None).await.expect("list");
    assert_eq!(page.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [5, 4]);
    let next = page.next.expect("a next page");
    let page = store
        .list_attempts("ws_out", "ep_1", 2, Some(&next))
        .await
        .expect("list");
    assert_eq!(page.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [3, 2]);
    let page = store
        .list_attempts("ws_out", "ep_1", 2, page.next.as_deref())
        .await
        .expect("list");
    assert_eq!(page.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1]);
    assert_eq!(page.next, None, "the last page says so");
    assert_eq!(claimed.status, MessageStatus::Pending);

    store.delete_endpoint("ws_out", "ep_1").await.expect("delete");
    assert_eq!(store.get_endpoint("ws_out", "ep_1").await.expect("get"), None);
    store
        .delete_endpoint("ws_out", "ep_1")
        .await
        .expect("deleting twice is fine");
}

/// The vault: a put is read back, a repeated put replaces, a delete of what
/// is not there is fine.
pub async fn secret_vault(vault: Arc<dyn crate::connections::SecretVault>) {
    use crate::connections::Credentials;
    let vault = vault.as_ref();
    let credentials = |key: &str| Credentials::new([("api_key".to_owned(), key.to_owned())].into());
    assert_eq!(vault.get("ws_v/r1").await.expect("get"), None);
    vault.put("ws_v/r1", &credentials("k1-us21")).await.expect("put");
    vault.put("ws_v/r2", &credentials("k2-us21")).await.expect("put");
    assert_eq!(vault.get("ws_v/r1").await.expect("get"), Some(credentials("k1-us21")));
    vault
        .put("ws_v/r1", &credentials("k1-us21"))
        .await
        .expect("a retried put");
    assert_eq!(vault.get("ws_v/r1").await.expect("get"), Some(credentials("k1-us21")));
    assert!(vault
        .replace("ws_v/r1", &credentials("k1b-us21"))
        .await
        .expect("replace"));
    assert_eq!(vault.get("ws_v/r1").await.expect("get"), Some(credentials("k1b-us21")));
    vault.delete("ws_v/r1").await.expect("delete");
    vault.delete("ws_v/r1").await.expect("deleting again");
    assert_eq!(vault.get("ws_v/r1").await.expect("get"), None);
    assert!(
        !vault
            .replace("ws_v/r1", &credentials("k1c-us21"))
            .await
            .expect("replace"),
        "a write-back does not bring deleted credentials back"
    );
    assert_eq!(vault.get("ws_v/r1").await.expect("get"), None);
    assert_eq!(vault.get("ws_v/r2").await.expect("get"), Some(credentials("k2-us21")));
}

pub async fn site_store(store: Arc<dyn crate::sso::SiteStore>) {
    use crate::sso::{SsoAlgorithm, SsoSettings};
    let settings = |ws: &str, audience: &str| SsoSettings {
        site_id: "site_conf".into(),
        workspace_id: ws.into(),
        algorithm: SsoAlgorithm::HS256,
        secret: Some("a-secret-of-thirty-two-bytes-or-more".into()),
        public_key: None,
        issuer: None,
        audience: Some(audience.into()),
        updated_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single().expect("time"),
    };
    assert!(store.get_sso("site_conf").await.expect("get").is_none());
    assert!(
        store.put_sso(&settings("ws_a", "one")).await.expect("put"),
        "the first claims the site"
    );
    assert!(
        store.put_sso(&settings("ws_a", "two")).await.expect("put"),
        "its workspace may change it"
    );
    assert!(
        !store.put_sso(&settings("ws_b", "three")).await.expect("put"),
        "another workspace may not take it"
    );
    assert_eq!(
        store.get_sso("site_conf").await.expect("get"),
        Some(settings("ws_a", "two"))
    );
    site_releases(store, settings).await;
}

/// Releases hold a site for [`crate::sso::RELEASE_HOLD`] against every
/// workspace but the releasing one and the one it was handed to.
async fn site_releases(
    store: Arc<dyn crate::sso::SiteStore>,
    settings: impl Fn(&str, &str) -> crate::sso::SsoSettings,
) {
    use crate::sso::{SiteRelease, RELEASE_HOLD};
    // Not on a whole millisecond: both stores count the hold in milliseconds.
    let t0 = settings("ws_a", "x").updated_at + chrono::TimeDelta::nanoseconds(123_456_789);
    let release = |ws: &str, to: Option<&str>| SiteRelease {
        site_id: "site_conf".into(),
        workspace_id: ws.into(),
        handed_to: to.map(str::to_owned),
        released_at: t0,
    };
    let claim_at = |ws: &str, at| crate::sso::SsoSettings {
        updated_at: at,
        ..settings(ws, "claimed")
    };
    let claims = |ws: &'static str, at| {
        let store = store.clone();
        let claim = claim_at(ws, at);
        async move { store.put_sso(&claim).await.expect("put") }
    };
    assert!(
        !store.release_sso(&release("ws_b", None)).await.expect("release"),
        "another workspace may not release it"
    );
    assert!(store.get_sso("site_conf").await.expect("get").is_some());
    assert!(store.release_sso(&release("ws_a", None)).await.expect("release"));
    assert!(store.get_sso("site_conf").await.expect("get").is_none(), "released");
    assert!(
        !store
            .release_sso(&release("ws_b", Some("ws_b")))
            .await
            .expect("release"),
        "nor release it once released"
    );
    assert!(
        !claims("ws_b", t0 + RELEASE_HOLD - chrono::TimeDelta::milliseconds(1)).await,
        "held against other workspaces until the last millisecond"
    );
    assert!(claims("ws_a", t0).await, "the releasing workspace may claim it again");
    assert!(store.release_sso(&release("ws_a", None)).await.expect("release"));
    assert!(
        store
            .release_sso(&release("ws_a", Some("ws_c")))
            .await
            .expect("release"),
        "a repeated release replaces the first: a corrected handoff takes effect"
    );
    assert!(!claims("ws_b", t0).await);
    assert!(claims("ws_c", t0).await, "handed to ws_c");
    assert_eq!(
        store.get_sso("site_conf").await.expect("get").map(|s| s.workspace_id),
        Some("ws_c".to_owned())
    );
    assert!(
        !store.release_sso(&release("ws_a", None)).await.expect("release"),
        "ws_a let go of it"
    );
    assert!(store
        .release_sso(&release("ws_c", Some("ws_d")))
        .await
        .expect("release"));
    assert!(
        claims("ws_b", t0 + RELEASE_HOLD).await,
        "anyone once the hold is over, handed to another or not"
    );
}

#[cfg(test)]
mod memory_twins {
    use super::*;
    use crate::memory::*;

    #[tokio::test]
    async fn workflow_catalog_conforms() {
        let subscriptions = Arc::new(MemorySubscriptions::default());
        let store = Arc::new(MemoryWorkflowStore::new(subscriptions.clone()));
        workflow_catalog(store, subscriptions).await;
    }

    #[tokio::test]
    async fn key_store_conforms() {
        key_store(Arc::new(MemoryKeys::default())).await;
    }

    #[tokio::test]
    async fn hook_store_conforms() {
        hook_store(Arc::new(MemoryHooks::default())).await;
    }

    #[tokio::test]
    async fn site_store_conforms() {
        site_store(Arc::new(crate::memory::MemorySites::default())).await;
    }

    #[tokio::test]
    async fn connection_store_conforms() {
        connection_store(Arc::new(crate::memory::MemoryConnections::default())).await;
    }

    #[tokio::test]
    async fn outbound_store_conforms() {
        outbound_store(Arc::new(crate::memory::MemoryOutbound::default())).await;
    }

    #[tokio::test]
    async fn secret_vault_conforms() {
        secret_vault(Arc::new(crate::memory::MemoryVault::default())).await;
    }

    #[tokio::test]
    async fn contact_store_conforms() {
        contact_store(Arc::new(crate::memory::MemoryContacts::default())).await;
    }

    #[tokio::test]
    async fn audit_log_conforms() {
        audit_log(Arc::new(MemoryAudit::default())).await;
    }

    #[tokio::test]
    async fn workflow_store_conforms() {
        workflow_store(Arc::new(MemoryWorkflowStore::default())).await;
    }

    #[tokio::test]
    async fn subscription_index_conforms() {
        subscription_index(Arc::new(MemorySubscriptions::default())).await;
    }

    #[tokio::test]
    async fn run_log_conforms() {
        run_log(Arc::new(MemoryRunLog::default())).await;
        run_listings(Arc::new(MemoryRunLog::default())).await;
        dead_letter_store(Arc::new(crate::memory::MemoryDeadLetters::default())).await;
        run_due_index(Arc::new(MemoryRunLog::default())).await;
        run_erasure(Arc::new(MemoryRunLog::default())).await;
    }

    #[tokio::test]
    async fn event_dedupe_conforms() {
        event_dedupe(Arc::new(MemoryDedupe::default())).await;
    }

    #[tokio::test]
    async fn queue_conforms() {
        let settings = QueueSettings {
            visibility_timeout: Duration::from_secs(1),
            max_receive_count: 10,
        };
        queue(Arc::new(MemoryQueue::new("conformance", settings, None))).await;
    }

    #[tokio::test]
    async fn the_twin_queue_dead_letters_after_max_receive_count() {
        let settings = QueueSettings {
            visibility_timeout: Duration::from_millis(20),
            max_receive_count: 2,
        };
        let (q, dlq) = MemoryQueue::with_dlq("poison", settings);
        q.send("bad".into(), Duration::ZERO).await.expect("send");
        for expected in 1..=2 {
            let got = q.receive(1, Duration::from_secs(1)).await.expect("receive");
            assert_eq!(got[0].receive_count, expected);
        }
        assert!(q
            .receive(1, Duration::from_millis(100))
            .await
            .expect("receive")
            .is_empty());
        assert_eq!(dlq.peek(10).await.expect("peek"), vec!["bad".to_owned()]);
    }

    #[tokio::test]
    async fn the_twin_queue_refuses_what_sqs_refuses() {
        let settings = QueueSettings {
            visibility_timeout: Duration::from_secs(1),
            max_receive_count: 2,
        };
        let q = MemoryQueue::new("strict", settings, None);
        for refused in ["\u{fffe}", "\u{ffff}", "a\u{0}b", "\u{1f}"] {
            let err = q.send(refused.into(), Duration::ZERO).await.expect_err("refused");
            assert!(!err.retryable, "{refused:?}: resending cannot help");
        }
        q.send("\t\n\r \u{d7ff}\u{e000}\u{fffd}\u{10ffff}".into(), Duration::ZERO)
            .await
            .expect("every allowed class is accepted");
    }
}
