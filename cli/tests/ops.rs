//! The operator tools end to end: `hookflow dlq list|redrive` and
//! `hookflow runs replay` against a real `hookflow dev` stack on a free port.

use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use common::{stderr, stdout};
use hookflow_cli::dev::{DevConfig, DevServer};
use hookflow_core::ports::Queue;
use hookflow_core::validate::validate;
use hookflow_core::WorkflowDefinition;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WS: &str = "ws_ops";

async fn start(workflows: Vec<Value>) -> (DevServer, String) {
    let workflows = workflows
        .into_iter()
        .map(|doc| {
            let wf =
                WorkflowDefinition::from_value(doc).unwrap_or_else(|e| panic!("test workflow does not decode: {e}"));
            let problems = validate(&wf);
            assert!(problems.is_empty(), "test workflow {} is invalid: {problems:?}", wf.id);
            wf
        })
        .collect();
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback address"),
        ..DevConfig::default()
    };
    let server = DevServer::start(config, workflows).await.expect("dev server starts");
    let base = format!("http://{}", server.addr);
    (server, base)
}

async fn hookflow(args: &[&str]) -> Output {
    common::hookflow_with_key(args.iter().map(|a| (*a).to_owned()).collect(), None).await
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_redriven() {
    let (server, base) = start(vec![]).await;
    let memory = server.memory.clone().expect("in-memory backend");
    memory
        .steps_dlq
        .send("not json".into(), Duration::ZERO)
        .await
        .expect("send to the DLQ");
    let client = reqwest::Client::new();

    let (status, body) = get(&client, &format!("{base}/dev/dlq/steps")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"queue": "steps", "messages": ["not json"], "count": 1}));
    let (status, body) = get(&client, &format!("{base}/dev/dlq/triggers")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 0, "{body}");
    let (status, body) = get(&client, &format!("{base}/dev/dlq/bogus")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_queue", "{body}");

    let listed = hookflow(&["dlq", "list", "--server", &base]).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let out = stdout(&listed);
    assert!(out.contains("not json"), "{out}");
    assert!(out.contains("1 message(s) in the steps dead-letter queue"), "{out}");

    let json_listed = hookflow(&["dlq", "list", "--json", "--queue", "steps", "--server", &base]).await;
    assert_eq!(json_listed.status.code(), Some(0), "{}", stderr(&json_listed));
    let printed: Value = serde_json::from_str(&stdout(&json_listed)).expect("--json prints JSON");
    assert_eq!(printed, json!(["not json"]));

    let redriven = hookflow(&["dlq", "redrive", "--server", &base]).await;
    assert_eq!(redriven.status.code(), Some(0), "{}", stderr(&redriven));
    let out = stdout(&redriven);
    assert!(out.contains("moved 1 message(s) from steps-dlq back to steps"), "{out}");
    assert!(
        memory.steps_dlq.is_empty(),
        "the DLQ still holds {} message(s)",
        memory.steps_dlq.len()
    );
    let (_, body) = get(&client, &format!("{base}/dev/dlq/steps")).await;
    assert_eq!(body["count"], 0, "{body}");

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

/// Polls the run until it has `status`; returns it with its timeline.
async fn wait_for_status(client: &reqwest::Client, base: &str, run_id: &str, status: &str) -> Value {
    // Seconds here; the bound only fails a stuck pipeline (3× margin at half speed and more).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, run) = get(client, &format!("{base}/v1/workspaces/{WS}/runs/{run_id}")).await;
        if code == 200 && run["status"] == status {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} did not become {status}; last answer {code}: {run}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn timeline(run: &Value) -> Vec<(String, String, u64)> {
    run["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["step_id"].as_str().unwrap_or_default().to_owned(),
                        s["status"].as_str().unwrap_or_default().to_owned(),
                        s["attempt"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_replayed_from_its_failed_step() {
    let sink = MockServer::start().await;
    // Every attempt of the first run fails (there is one).
    Mock::given(method("POST"))
        .and(path("/won"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&sink)
        .await;
    let workflow = json!({"id": "wf_replay", "workspace_id": WS, "name": "replay", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "notify",
        "steps": {"notify": {
            "action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/won", sink.uri()),
                       "body": {"prize": "{{ prize.name }}"}},
            "retry": {"max_attempts": 1}}}});
    let (server, base) = start(vec![workflow]).await;
    let client = reqwest::Client::new();

    let event = json!({"specversion": "1.0", "id": "evt-replay-1", "source": "tests", "type": "Prize.Won",
                       "time": "2026-11-23T10:00:00Z", "workspaceid": WS, "data": {"prize": {"name": "Bike"}}});
    let response = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .expect("POST /v1/events");
    assert_eq!(response.status().as_u16(), 202);

    let run_id = hookflow_core::run::run_id_of(WS, "tests", "evt-replay-1", "wf_replay");
    let failed = wait_for_status(&client, &base, &run_id, "failed").await;
    assert_eq!(timeline(&failed), vec![("notify".to_owned(), "failed".to_owned(), 1)]);

    Mock::given(method("POST"))
        .and(path("/won"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&sink)
        .await;
    let replayed = hookflow(&["runs", "replay", &run_id, "--server", &base]).await;
    assert_eq!(replayed.status.code(), Some(0), "{}", stderr(&replayed));
    let out = stdout(&replayed);
    assert!(
        out.contains(&format!("replaying run {run_id} from step notify (attempt 2)")),
        "{out}"
    );

    let succeeded = wait_for_status(&client, &base, &run_id, "succeeded").await;
    assert_eq!(
        timeline(&succeeded),
        vec![
            ("notify".to_owned(), "failed".to_owned(), 1),
            ("notify".to_owned(), "succeeded".to_owned(), 2)
        ]
    );

    let again = hookflow(&["runs", "replay", &run_id, "--server", &base]).await;
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    let err = stderr(&again);
    assert!(err.contains("only failed runs"), "{err}");

    let unknown = hookflow(&["runs", "replay", "run_does_not_exist", "--server", &base]).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", stdout(&unknown));
    let err = stderr(&unknown);
    assert!(err.contains("does not exist"), "{err}");

    server.shutdown().await;
}
