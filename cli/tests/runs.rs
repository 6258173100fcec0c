//! `hookflow runs list|show|replay|cancel|tail` end to end against a real
//! `hookflow dev` stack on a free port, with a real HTTP peer (wiremock):
//! the on-call path from "which runs failed in the last hour" to the
//! failing step's request and response to a replay.

use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use common::{stderr, stdout};
use hookflow_cli::dev::DevServer;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WS: &str = "ws_oncall";

struct Stack {
    server: DevServer,
    base: String,
    client: reqwest::Client,
}

async fn start(workflows: Vec<Value>) -> Stack {
    let (server, base) = common::dev_server(workflows).await;
    Stack {
        server,
        base,
        client: reqwest::Client::new(),
    }
}

impl Stack {
    async fn hookflow(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend([
            "--api-url".to_owned(),
            self.base.clone(),
            "--workspace".to_owned(),
            WS.to_owned(),
        ]);
        common::hookflow_with_key(all, None).await
    }

    async fn send(&self, id: &str) -> String {
        let event = json!({"specversion": "1.0", "id": id, "source": "tests", "type": "Prize.Won",
            "workspaceid": WS, "data": {"prize": {"name": "<img src=x onerror=alert(1)>"}}});
        let response = self
            .client
            .post(format!("{}/v1/events", self.base))
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
            .send()
            .await
            .expect("POST /v1/events");
        assert_eq!(response.status().as_u16(), 202);
        hookflow_core::run::run_id_of(WS, "tests", id, "wf_oncall")
    }

    /// Polls the run until it has `status`.
    async fn wait_for(&self, run_id: &str, status: &str) -> Value {
        // Seconds here; the bound only fails a stuck pipeline (3× margin at half speed and more).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let response = self
                .client
                .get(format!("{}/v1/workspaces/{WS}/runs/{run_id}", self.base))
                .send()
                .await
                .expect("GET run");
            let code = response.status().as_u16();
            let run: Value = response.json().await.unwrap_or(Value::Null);
            if code == 200 && run["status"] == status {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} did not become {status}: {code} {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn ok(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(output), stderr(output));
    stdout(output)
}

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap_or_else(|e| panic!("--json prints JSON: {e}"))
}

fn oncall_workflow(sink: &str) -> Value {
    json!({"id": "wf_oncall", "workspace_id": WS, "name": "on-call", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "notify",
        "vars": {"crm_secret": "s3cr3t-token-value"},
        "steps": {"notify": {
            "action": {"type": "HttpRequest", "method": "POST", "url": format!("{sink}/won"),
                       "query": {"api_key": "k-123456", "team": "blue"},
                       "headers": {"Authorization": "Bearer {{ vars.crm_secret }}"},
                       "body": {"prize": "{{ prize.name }}"}},
            "retry": {"max_attempts": 1}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_found_read_and_replayed_in_three_commands() {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/won"))
        .respond_with(ResponseTemplate::new(502).set_body_json(json!({"error": "upstream down"})))
        .up_to_n_times(3)
        .mount(&sink)
        .await;
    let stack = start(vec![oncall_workflow(&sink.uri())]).await;
    let mut runs = vec![];
    for n in 0..3 {
        let run_id = stack.send(&format!("evt-oncall-{n}")).await;
        stack.wait_for(&run_id, "failed").await;
        runs.push(run_id);
    }

    // 1. Which runs failed in the last hour?
    let listed = ok(&stack
        .hookflow(&["runs", "list", "--status", "failed", "--since", "1h"])
        .await);
    assert!(listed.starts_with("RUN"), "{listed}");
    for run_id in &runs {
        assert!(listed.contains(run_id.as_str()), "{listed}");
    }
    assert_eq!(listed.lines().count(), 4, "a header and three runs: {listed}");
    let paged = json_of(
        &stack
            .hookflow(&["runs", "list", "--status", "failed", "--limit", "2", "--json"])
            .await,
    );
    let paged: Vec<&str> = paged["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert_eq!(paged, vec![runs[2].as_str(), runs[1].as_str()], "newest first, limited");
    let none = ok(&stack.hookflow(&["runs", "list", "--status", "succeeded"]).await);
    assert_eq!(none.trim(), "no runs match");

    // 2. The failing step: its request (credentials redacted) and response.
    let shown = ok(&stack.hookflow(&["runs", "show", &runs[0]]).await);
    assert!(shown.contains("failing step notify (attempt 1)"), "{shown}");
    assert!(
        shown.contains("request:\n  POST http://") && shown.contains("/won?"),
        "{shown}"
    );
    assert!(shown.contains("team=blue"), "{shown}");
    assert!(shown.contains("api_key=%5BREDACTED%5D"), "{shown}");
    assert!(
        shown.contains("Authorization: [REDACTED]"),
        "the Authorization header is redacted: {shown}"
    );
    assert!(
        !shown.contains("s3cr3t-token-value") && !shown.contains("k-123456"),
        "{shown}"
    );
    assert!(
        shown.contains("response:\n  HTTP 502") && shown.contains("upstream down"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("Idempotency-Key: {}:notify", runs[0])),
        "{shown}"
    );
    assert!(shown.contains("trigger event"), "{shown}");
    let detail = json_of(&stack.hookflow(&["runs", "show", &runs[0], "--json"]).await);
    assert_eq!(detail["steps"][0]["output"]["status"], 502);
    assert_eq!(detail["event"]["data"]["prize"]["name"], "<img src=x onerror=alert(1)>");

    // 3. Replay once the peer is back.
    Mock::given(method("POST"))
        .and(path("/won"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&sink)
        .await;
    let replayed = ok(&stack.hookflow(&["runs", "replay", &runs[0]]).await);
    assert!(
        replayed.contains(&format!("replaying run {} from step notify (attempt 2)", runs[0])),
        "{replayed}"
    );
    stack.wait_for(&runs[0], "succeeded").await;
    let again = stack.hookflow(&["runs", "replay", &runs[0]]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("only failed runs"), "{}", stderr(&again));
    let unknown = stack.hookflow(&["runs", "replay", "run_does_not_exist"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("does not exist"), "{}", stderr(&unknown));

    // From the start: a new run on the same event; the failed run stays failed.
    let from_start = ok(&stack
        .hookflow(&["runs", "replay", &runs[1], "--from-start", "--json"])
        .await);
    let from_start: Value = serde_json::from_str(&from_start).expect("JSON");
    assert_eq!(from_start["replay_of"], runs[1].as_str());
    let fresh = from_start["run_id"].as_str().expect("a new run id").to_owned();
    let replay = stack.wait_for(&fresh, "succeeded").await;
    assert_eq!(replay["replay_of"], runs[1].as_str());
    assert_eq!(replay["event"]["id"], "evt-oncall-1");

    // Bulk: the two failed runs left, once per key.
    let bulk_args = [
        "runs",
        "replay",
        "--workflow",
        "wf_oncall",
        "--status",
        "failed",
        "--since",
        "1h",
        "--idempotency-key",
        "k-1",
    ];
    let bulk = ok(&stack.hookflow(&bulk_args).await);
    assert!(bulk.starts_with("2 replayed, 0 skipped"), "{bulk}");
    let mut json_args = bulk_args.to_vec();
    json_args.push("--json");
    let repeated = json_of(&stack.hookflow(&json_args).await);
    assert_eq!(repeated["repeated"], true, "{repeated}");
    assert_eq!(repeated["replayed"].as_array().map(Vec::len), Some(2));
    for run_id in &runs[1..] {
        stack.wait_for(run_id, "succeeded").await;
    }
    let usage = stack
        .hookflow(&["runs", "replay", &runs[1], "--workflow", "wf_oncall"])
        .await;
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));

    // The engine counted all of it: `hookflow dev` serves Prometheus text.
    let expected = [
        "hookflow_runs_started_total 4\n",
        "hookflow_runs_failed_total 3\n",
        "hookflow_runs_succeeded_total 4\n",
        "hookflow_step_retries_total 3\n",
        "hookflow_runs_cancelled_total 0\n",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = stack
            .client
            .get(format!("{}/metrics", stack.base))
            .send()
            .await
            .expect("GET /metrics");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"));
        let text = response.text().await.expect("metrics text");
        if expected.iter().all(|line| text.contains(line)) {
            assert!(
                text.contains("hookflow_step_duration_seconds_count{action=\"HttpRequest\",status=\"failed\"} 3"),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counters never reached {expected:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stack.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_is_cancelled_and_tail_sees_it_change() {
    let workflow = json!({"id": "wf_oncall", "workspace_id": WS, "name": "waits", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "wait",
        "steps": {"wait": {"action": {"type": "Delay", "seconds": 3600}}}});
    let stack = start(vec![workflow]).await;
    let run_id = stack.send("evt-waiting").await;
    stack.wait_for(&run_id, "running").await;

    let tail_stack_base = stack.base.clone();
    let tail = tokio::spawn(async move {
        common::hookflow_with_key(
            [
                "runs",
                "tail",
                "--every",
                "1",
                "--stop-after",
                "4",
                "--api-url",
                &tail_stack_base,
                "--workspace",
                WS,
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
            None,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cancelled = ok(&stack.hookflow(&["runs", "cancel", &run_id]).await);
    assert!(cancelled.contains(&format!("cancelled run {run_id}")), "{cancelled}");
    stack.wait_for(&run_id, "cancelled").await;
    let twice = stack.hookflow(&["runs", "cancel", &run_id]).await;
    assert_eq!(twice.status.code(), Some(1));
    assert!(stderr(&twice).contains("only running runs"), "{}", stderr(&twice));

    let tailed = tail.await.expect("tail ran");
    let out = ok(&tailed);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(run_id.as_str())).collect();
    assert_eq!(lines.len(), 2, "the run once running, once cancelled: {out}");
    assert!(lines[0].contains("running") && lines[1].contains("cancelled"), "{out}");

    stack.server.shutdown().await;
}
