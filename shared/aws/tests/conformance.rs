//! The port conformance suite against a real AWS-protocol server (moto's
//! server mode, started by `scripts/test.sh`). These tests never skip: with
//! no emulator they fail and say how to start one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use hookflow_aws::{
    create_resources, DynamoAccess, DynamoConnections, DynamoContacts, DynamoHooks, DynamoRuns, DynamoSites,
    DynamoWorkflows, ResourceNames, SqsQueue,
};
use hookflow_core::conformance;

const ENDPOINT_VAR: &str = "HOOKFLOW_TEST_AWS_ENDPOINT";

async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: run the tests with `make test` (scripts/test.sh starts moto on loopback)")
    });
    assert!(
        endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
        "{ENDPOINT_VAR} must be a loopback address, got {endpoint}"
    );
    hookflow_aws::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "hookflow-tests"))
        .load()
        .await
}

/// Fresh resources per test, so tests run in parallel on one emulator.
async fn resources(
    test: &str,
) -> (
    aws_sdk_dynamodb::Client,
    aws_sdk_sqs::Client,
    ResourceNames,
    hookflow_aws::QueueUrls,
) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let config = config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let prefix = format!(
        "conf-{test}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let names = ResourceNames::with_prefix(&prefix);
    let urls = create_resources(&dynamo, &sqs, &names, Duration::from_secs(1))
        .await
        .expect("create resources on the emulator");
    (dynamo, sqs, names, urls)
}

#[tokio::test]
async fn workflow_store_conforms() {
    let (dynamo, _, names, _) = resources("wfs").await;
    conformance::workflow_store(Arc::new(DynamoWorkflows::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn hook_store_conforms() {
    let (dynamo, _, names, _) = resources("hooks").await;
    conformance::hook_store(Arc::new(DynamoHooks::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn site_store_conforms() {
    let (dynamo, _, names, _) = resources("sites").await;
    conformance::site_store(Arc::new(DynamoSites::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn connection_store_conforms() {
    let (dynamo, _, names, _) = resources("connections").await;
    conformance::connection_store(Arc::new(DynamoConnections::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn outbound_store_conforms() {
    let (dynamo, _, names, _) = resources("outbound").await;
    conformance::outbound_store(Arc::new(hookflow_aws::DynamoOutbound::new(
        dynamo,
        names.workflows_table,
        names.runs_table,
    )))
    .await;
}

/// On Secrets Manager (moto), under a prefix of the test's own.
#[tokio::test]
async fn secret_vault_conforms() {
    let (_, _, names, _) = resources("vault").await;
    let client = aws_sdk_secretsmanager::Client::new(&config().await);
    conformance::secret_vault(hookflow_aws::secrets_vault(client, &names.workflows_table)).await;
}

#[tokio::test]
async fn contact_store_conforms() {
    let (dynamo, _, names, _) = resources("contacts").await;
    conformance::contact_store(Arc::new(DynamoContacts::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn key_store_conforms() {
    let (dynamo, _, names, _) = resources("keys").await;
    conformance::key_store(Arc::new(DynamoAccess::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn audit_log_conforms() {
    let (dynamo, _, names, _) = resources("audit").await;
    conformance::audit_log(Arc::new(DynamoAccess::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn workflow_catalog_conforms() {
    let (dynamo, _, names, _) = resources("cat").await;
    let store = Arc::new(DynamoWorkflows::new(dynamo, names.workflows_table));
    conformance::workflow_catalog(store.clone(), store).await;
}

/// A shorter run of the twins' property test, on DynamoDB's transactions:
/// a fixed pseudo-random sequence covering every operation.
#[tokio::test]
async fn lifecycle_keeps_the_subscription_invariant_on_dynamodb() {
    use conformance::LifecycleOp::*;
    let (dynamo, _, names, _) = resources("life").await;
    let store = Arc::new(DynamoWorkflows::new(dynamo, names.workflows_table));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n) as usize
    };
    let mut ops = vec![Create { id: 0, trigger: 0 }, Publish(0), Create { id: 1, trigger: 1 }];
    for _ in 0..40 {
        // A draft's number picks its trigger type and its scope (0..9).
        let (id, other, draft) = (next(3), next(3), next(9));
        ops.push(match next(10) {
            0 => Create { id, trigger: draft },
            1 => Edit {
                id,
                trigger: draft,
                valid: next(5) > 0,
            },
            2 | 3 => Publish(id),
            4 => Pause(id),
            5 => Resume(id),
            6 => Archive(id),
            7 => Clone { from: id, to: other },
            8 => Delete(id),
            _ => Rollback {
                id,
                version: 1 + next(3) as u32,
            },
        });
    }
    conformance::lifecycle_keeps_the_subscription_invariant(store.clone(), store, &ops).await;
}

#[tokio::test]
async fn subscription_index_conforms() {
    let (dynamo, _, names, _) = resources("subs").await;
    conformance::subscription_index(Arc::new(DynamoWorkflows::new(dynamo, names.workflows_table))).await;
}

#[tokio::test]
async fn run_log_conforms() {
    let (dynamo, _, names, _) = resources("runs").await;
    conformance::run_log(Arc::new(DynamoRuns::new(dynamo, names.runs_table, None))).await;
}

#[tokio::test]
async fn run_listings_conform() {
    let (dynamo, _, names, _) = resources("listings").await;
    conformance::run_listings(Arc::new(DynamoRuns::new(dynamo, names.runs_table, None))).await;
}

#[tokio::test]
async fn run_due_index_conforms() {
    let (dynamo, _, names, _) = resources("due").await;
    conformance::run_due_index(Arc::new(DynamoRuns::new(dynamo, names.runs_table, None))).await;
}

#[tokio::test]
async fn run_erasure_conforms() {
    let (dynamo, _, names, _) = resources("erasure").await;
    conformance::run_erasure(Arc::new(DynamoRuns::new(dynamo, names.runs_table, None))).await;
}

#[tokio::test]
async fn dead_letter_store_conforms() {
    let (dynamo, _, names, _) = resources("parked").await;
    conformance::dead_letter_store(Arc::new(DynamoRuns::new(dynamo, names.runs_table, None))).await;
}

/// The TTL attribute of one item of a run, if it has one (the item must exist).
async fn expires_at(dynamo: &aws_sdk_dynamodb::Client, table: &str, run_id: &str, sk: &str) -> Option<i64> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = dynamo
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("RUN#{run_id}")))
        .key("sk", AttributeValue::S(sk.into()))
        .send()
        .await
        .expect("get item")
        .item
        .unwrap_or_else(|| panic!("{run_id}/{sk} exists"));
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
}

/// With a retention, run items carry the TTL attribute: steps from their
/// write; the run record only once it has ended, from its end.
#[tokio::test]
async fn run_items_expire_after_the_retention() {
    use hookflow_core::ports::{RunLog, StepClaim};
    use hookflow_core::run::{RunRecord, RunStatus, StepRecord, StepStatus};

    let (dynamo, _, names, _) = resources("ttl").await;
    let day = Duration::from_secs(24 * 3600);
    let runs = DynamoRuns::new(dynamo.clone(), names.runs_table.clone(), Some(day));
    let started = chrono::Utc::now();
    let run = RunRecord {
        run_id: "run_ttl".into(),
        workspace_id: "ws".into(),
        workflow_id: "wf".into(),
        workflow_version: 1,
        event_id: "e".into(),
        trigger_type: "Prize.Won".into(),
        status: RunStatus::Running,
        started_at: started,
        ended_at: None,
        error: None,
        replays: 0,
        test: false,
        replay_of: None,
        due_at: None,
        contact_id: None,
        erased_at: None,
    };
    runs.create_run(&run).await.expect("create");
    let table = names.runs_table.clone();
    let expires = |run_id: &'static str, sk: &'static str| expires_at(&dynamo, &table, run_id, sk);
    assert_eq!(expires("run_ttl", "META").await, None, "a running run never expires");
    let claim = StepClaim {
        run_id: "run_ttl".into(),
        step_id: "s".into(),
        attempt: 1,
        owner: "me".into(),
        expires_at: started + chrono::Duration::seconds(60),
    };
    runs.claim_step(&claim, started).await.expect("claim");
    assert_eq!(
        expires("run_ttl", "STEP#s#00001").await,
        Some(started.timestamp() + 86_400)
    );
    let ended = started + chrono::Duration::hours(3);
    let record = StepRecord {
        run_id: "run_ttl".into(),
        step_id: "s".into(),
        action: hookflow_core::actions::ActionKind::HttpRequest,
        status: StepStatus::Succeeded,
        attempt: 1,
        started_at: started,
        ended_at: ended,
        output: None,
        error: None,
        next: None,
        retryable: false,
        retry_after_s: None,
        request: None,
    };
    runs.put_step(&record).await.expect("record");
    assert_eq!(
        expires("run_ttl", "STEP#s#00001").await,
        Some(ended.timestamp() + 86_400)
    );
    runs.finish_run("run_ttl", RunStatus::Succeeded, None, ended)
        .await
        .expect("finish");
    assert_eq!(
        expires("run_ttl", "META").await,
        Some(ended.timestamp() + 86_400),
        "a finished run counts from its end"
    );
    // A replay reopens a failed run: it runs again without a TTL.
    let mut second = run.clone();
    second.run_id = "run_ttl2".into();
    runs.create_run(&second).await.expect("create");
    runs.finish_run("run_ttl2", RunStatus::Failed, Some("boom".into()), ended)
        .await
        .expect("fail");
    assert_eq!(
        runs.reopen_run("run_ttl2", chrono::Utc::now()).await.expect("reopen"),
        Some(1)
    );
    assert_eq!(expires("run_ttl2", "META").await, None, "a reopened run has no TTL");
}

#[tokio::test]
async fn event_dedupe_conforms() {
    let (dynamo, _, names, _) = resources("dedupe").await;
    conformance::event_dedupe(Arc::new(DynamoRuns::new(dynamo, names.runs_table, None))).await;
}

#[tokio::test]
async fn queue_conforms() {
    let (_, sqs, _, urls) = resources("queue").await;
    conformance::queue(Arc::new(SqsQueue::new(sqs, urls.steps))).await;
}

/// A run that outlives the retention (a Delay of 40 days under a 30-day
/// retention) keeps every item: each time its next message's due time
/// comes within half a retention of what its items are kept for, they are
/// all kept a retention past it. Moto does not expire items, so the
/// `expires_at` values are what is checked.
#[tokio::test]
async fn a_running_run_outliving_the_retention_keeps_its_items() {
    use hookflow_core::ports::{RunLog, StepClaim};
    use hookflow_core::run::{RunRecord, RunStatus};

    let (dynamo, _, names, _) = resources("retain").await;
    let retention = Duration::from_secs(30 * 24 * 3600);
    let runs = DynamoRuns::new(dynamo.clone(), names.runs_table.clone(), Some(retention));
    let started = chrono::Utc::now();
    let run = RunRecord {
        run_id: "run_long".into(),
        workspace_id: "ws".into(),
        workflow_id: "wf".into(),
        workflow_version: 1,
        event_id: "e".into(),
        trigger_type: "Prize.Won".into(),
        status: RunStatus::Running,
        started_at: started,
        ended_at: None,
        error: None,
        replays: 0,
        test: false,
        replay_of: None,
        due_at: Some(started),
        contact_id: None,
        erased_at: None,
    };
    runs.create_run(&run).await.expect("create");
    runs.put_blob("run_long", "ctx#wait#1", "{\"contact\": {}}")
        .await
        .expect("blob");
    runs.mark_handed_off("run_long", "wait#1#r0#wait").await.expect("note");
    let claim = StepClaim {
        run_id: "run_long".into(),
        step_id: "call".into(),
        attempt: 1,
        owner: "me".into(),
        expires_at: started + chrono::Duration::seconds(60),
    };
    runs.claim_step(&claim, started).await.expect("claim");
    let table = names.runs_table.clone();
    let items = ["BLOB#ctx#wait#1#0000", "HANDOFF#wait#1#r0#wait", "STEP#call#00001"];
    let written = started.timestamp() + retention.as_secs() as i64;
    for sk in items {
        let expires = expires_at(&dynamo, &table, "run_long", sk).await.expect("a TTL");
        assert!((written..written + 60).contains(&expires), "{sk}: {expires}");
    }

    // The wait hops along; while it is far from the items' expiry nothing moves.
    let day = chrono::Duration::days(1);
    runs.extend_due("run_long", started + day).await.expect("extend");
    assert!(expires_at(&dynamo, &table, "run_long", items[0]).await < Some(written + 60));
    // Within half a retention of it: every item is kept a retention past the due time.
    let late = started + day * 16;
    runs.extend_due("run_long", late).await.expect("extend");
    let kept = (late + chrono::Duration::from_std(retention).expect("retention")).timestamp();
    for sk in items {
        assert_eq!(expires_at(&dynamo, &table, "run_long", sk).await, Some(kept), "{sk}");
    }
    assert_eq!(
        expires_at(&dynamo, &table, "run_long", "META").await,
        None,
        "a running run never expires"
    );
    // The next refresh waits for the next half retention.
    runs.extend_due("run_long", late + day).await.expect("extend");
    assert_eq!(expires_at(&dynamo, &table, "run_long", items[1]).await, Some(kept));
    runs.extend_due("run_long", started + day * 40).await.expect("extend");
    let kept = (started + day * 70).timestamp();
    for sk in items {
        assert_eq!(expires_at(&dynamo, &table, "run_long", sk).await, Some(kept), "{sk}");
    }
}
