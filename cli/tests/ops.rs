//! The operator tools end to end: `hookflow dlq list|redrive` against a
//! real `hookflow dev` stack on a free port (`hookflow runs`: `runs.rs`).

use std::process::Output;
use std::time::Duration;

mod common;

use common::{stderr, stdout};
use hookflow_cli::dev::DevServer;
use hookflow_core::dead_letter::QueueKind;
use hookflow_core::memory::MemoryBackend;
use hookflow_core::ports::{Queue, RunLog, RunQuery};
use hookflow_core::run::{RunRecord, RunStatus};
use serde_json::{json, Value};

async fn start(workflows: Vec<Value>) -> (DevServer, String) {
    common::dev_server(workflows).await
}

async fn hookflow(args: &[&str]) -> Output {
    common::hookflow_with_key(args.iter().map(|a| (*a).to_owned()).collect(), None).await
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const WS: &str = "ws_ops";

fn workflow() -> Value {
    json!({"id": "wf_ops", "workspace_id": WS, "name": "ops", "status": "active", "version": 1,
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "note",
        "steps": {"note": {"action": {"type": "SetVariables", "values": {"seen": "yes"}}}}})
}

/// A run of `wf_ops` that is `running`, and the step message carrying it.
async fn running_run(memory: &MemoryBackend, run_id: &str) -> String {
    let run = RunRecord {
        run_id: run_id.into(),
        workspace_id: WS.into(),
        workflow_id: "wf_ops".into(),
        workflow_version: 1,
        event_id: "evt-ops".into(),
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
    memory.runs.create_run(&run).await.expect("create run");
    json!({"run_id": run_id, "workspace_id": WS, "workflow_id": "wf_ops", "workflow_version": 1,
        "step_id": "note", "attempt": 1, "context": {}})
    .to_string()
}

/// Waits (seconds at most) until the dead-letter consumers parked `count` messages of `queue`.
async fn parked(memory: &MemoryBackend, queue: QueueKind, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while memory.dead_letters.parked(queue).len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{count} {queue} dead letter(s) were not parked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_parked_listed_and_redriven() {
    let (server, base) = start(vec![workflow()]).await;
    let memory = server.memory.clone().expect("in-memory backend");
    // What SQS moves to the dead-letter queues after exhausted deliveries.
    let stranded = running_run(&memory, "run_stranded").await;
    memory.steps_dlq.send(stranded, Duration::ZERO).await.expect("send");
    memory
        .steps_dlq
        .send("not json".into(), Duration::ZERO)
        .await
        .expect("send");
    let event = json!({"specversion": "1.0", "id": "evt-dead", "source": "ops", "type": "Prize.Won",
        "workspaceid": WS, "data": {}});
    memory
        .triggers_dlq
        .send(event.to_string(), Duration::ZERO)
        .await
        .expect("send");
    parked(&memory, QueueKind::Steps, 2).await;
    parked(&memory, QueueKind::Triggers, 1).await;
    let run = memory.runs.get_run("run_stranded").await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Failed, "parking ended the stranded run");

    let client = reqwest::Client::new();
    let (status, body) = get(&client, &format!("{base}/dev/dlq/steps")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parked"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(
        body["waiting"],
        json!([]),
        "the consumer took them off the queue: {body}"
    );
    assert_eq!(body["parked"][0]["because"], "deliveries_exhausted", "{body}");
    let (status, body) = get(&client, &format!("{base}/dev/dlq/bogus")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_queue", "{body}");

    let listed = hookflow(&["dlq", "list", "--server", &base]).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let out = stdout(&listed);
    assert!(
        out.contains("run=run_stranded step=note attempt=1 workflow=wf_ops"),
        "{out}"
    );
    assert!(
        out.contains("not json") && out.contains("moved to the dead-letter queue"),
        "{out}"
    );
    assert!(
        out.contains("2 parked, 0 waiting in the steps dead-letter queue"),
        "{out}"
    );
    let json_listed = hookflow(&["dlq", "list", "--json", "--queue", "triggers", "--server", &base]).await;
    assert_eq!(json_listed.status.code(), Some(0), "{}", stderr(&json_listed));
    let printed: Value = serde_json::from_str(&stdout(&json_listed)).expect("--json prints JSON");
    assert_eq!(printed["parked"][0]["workspace_id"], WS, "{printed}");

    // Parked trigger events are sent again: the event starts its run.
    let redriven = hookflow(&["dlq", "redrive", "--queue", "triggers", "--server", &base]).await;
    assert_eq!(redriven.status.code(), Some(0), "{}", stderr(&redriven));
    assert!(
        stdout(&redriven).contains("1 parked message(s) re-sent to triggers"),
        "{}",
        stdout(&redriven)
    );
    // Parked step messages' runs are replayed; a body that is no step message stays.
    let redriven = hookflow(&["dlq", "redrive", "--server", &base]).await;
    assert_eq!(redriven.status.code(), Some(0), "{}", stderr(&redriven));
    let out = stdout(&redriven);
    assert!(out.contains("1 parked message(s) runs replayed"), "{out}");
    assert!(
        out.contains("left parked") && out.contains("not a step message"),
        "{out}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let runs = memory
            .runs
            .list_runs(WS, &RunQuery::default())
            .await
            .expect("list")
            .runs;
        let ended = |status| runs.iter().filter(|r| r.status == status).count();
        if runs.len() == 2 && ended(RunStatus::Succeeded) == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the redriven runs did not finish: {runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(memory.dead_letters.parked(QueueKind::Steps).len(), 1);
    assert!(memory.dead_letters.parked(QueueKind::Triggers).is_empty());

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named_with_a_hint() {
    // Nothing listens on port 1.
    let output = hookflow(&["dlq", "list", "--server", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("http://127.0.0.1:1"), "{err}");
    assert!(err.contains("hookflow dev"), "{err}");
}
