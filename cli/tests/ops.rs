//! The operator tools end to end: `hookflow dlq list|redrive` against a
//! real `hookflow dev` stack on a free port (`hookflow runs`: `runs.rs`).

use std::process::Output;
use std::time::Duration;

mod common;

use common::{stderr, stdout};
use hookflow_cli::dev::DevServer;
use hookflow_core::ports::Queue;
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
