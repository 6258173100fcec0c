//! `hookflow workflows …` against a real `hookflow dev` on a free port, in
//! human and `--json` output, and `validate` offline.

use std::process::Output;

mod common;

use common::{stderr, stdout};
use hookflow_cli::dev::{DevConfig, DevServer};
use serde_json::{json, Value};

const WS: &str = "ws_cli";

async fn start() -> (DevServer, String) {
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback address"),
        ..DevConfig::default()
    };
    let server = DevServer::start(config, vec![]).await.expect("dev server starts");
    let base = format!("http://{}", server.addr);
    (server, base)
}

/// Runs `hookflow workflows …` on the workspace, without a key.
async fn workflows(base: &str, args: &[&str]) -> Output {
    common::hookflow_in("workflows", base, WS, args).await
}

fn document(start: &str) -> Value {
    json!({"id": "wf_cli", "workspace_id": WS, "name": "cli", "status": "active",
           "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": start,
           "steps": {"s": {"action": {"type": "SetVariables", "values": {"a": 1}}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_publish_pause_in_human_and_json_output() {
    let (server, base) = start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = dir.path().join("wf_cli.yaml");
    std::fs::write(&yaml, serde_yaml::to_string(&document("s")).expect("yaml")).expect("write");

    let applied = workflows(&base, &["apply", "-f", dir.path().to_str().expect("utf-8 path")]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(
        stdout(&applied).starts_with("created wf_cli (revision 1)"),
        "{}",
        stdout(&applied)
    );
    let again = workflows(&base, &["--json", "apply", "-f", yaml.to_str().expect("utf-8 path")]).await;
    assert!(again.status.success(), "{}", stderr(&again));
    let json: Value = serde_json::from_str(&stdout(&again)).expect("--json prints JSON");
    assert_eq!(
        (json[0]["action"].as_str(), json[0]["workflow"]["revision"].as_u64()),
        (Some("updated"), Some(2))
    );

    let published = workflows(&base, &["publish", "wf_cli"]).await;
    assert!(published.status.success(), "{}", stderr(&published));
    let table = stdout(&published);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("wf_cli  active  1"), "{table}");
    let published = workflows(&base, &["publish", "wf_cli", "--json"]).await;
    let json: Value = serde_json::from_str(&stdout(&published)).expect("JSON");
    assert_eq!(
        json["published_version"], 1,
        "publishing the same draft makes no new version"
    );

    let paused = workflows(&base, &["--json", "pause", "wf_cli"]).await;
    let json: Value = serde_json::from_str(&stdout(&paused)).expect("JSON");
    assert_eq!(json["status"], "paused");
    let paused_again = workflows(&base, &["pause", "wf_cli"]).await;
    assert_eq!(paused_again.status.code(), Some(1));
    assert!(
        stderr(&paused_again).contains("invalid_transition: cannot pause a workflow that is paused"),
        "{}",
        stderr(&paused_again)
    );

    let listed = workflows(&base, &["list"]).await;
    assert!(stdout(&listed).contains("wf_cli  paused"), "{}", stdout(&listed));
    let versions = workflows(&base, &["versions", "wf_cli", "--json"]).await;
    let json: Value = serde_json::from_str(&stdout(&versions)).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    let shown = workflows(&base, &["show", "wf_cli", "--version", "1"]).await;
    assert!(
        stdout(&shown).starts_with("wf_cli v1 (cli, trigger Prize.Won)"),
        "{}",
        stdout(&shown)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_an_invalid_draft_prints_its_problems() {
    let (server, base) = start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.json");
    std::fs::write(&file, document("nowhere").to_string()).expect("write");
    let applied = workflows(&base, &["apply", "-f", file.to_str().expect("utf-8 path")]).await;
    assert!(
        applied.status.success(),
        "an invalid draft may be saved: {}",
        stderr(&applied)
    );
    let refused = workflows(&base, &["publish", "wf_cli"]).await;
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(err.contains("invalid_workflow"), "{err}");
    assert!(err.contains("$.start  unknown_step"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_works_offline_and_reports_what_the_api_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.json");
    std::fs::write(&file, document("nowhere").to_string()).expect("write");
    // No server at this address: validate must not need one.
    let offline = workflows(
        "http://127.0.0.1:9",
        &["validate", "-f", file.to_str().expect("utf-8 path")],
    )
    .await;
    assert_eq!(offline.status.code(), Some(1));
    assert!(
        stdout(&offline).contains("$.start  unknown_step"),
        "{}",
        stdout(&offline)
    );
    let json = workflows(
        "http://127.0.0.1:9",
        &["validate", "--json", "-f", file.to_str().expect("utf-8 path")],
    )
    .await;
    let report: Value = serde_json::from_str(&stdout(&json)).expect("JSON");

    let (server, base) = start().await;
    workflows(&base, &["apply", "-f", file.to_str().expect("utf-8 path")]).await;
    let client = reqwest::Client::new();
    let api: Value = client
        .post(format!("{base}/v1/workspaces/{WS}/workflows/wf_cli/validate"))
        .send()
        .await
        .expect("validate")
        .json()
        .await
        .expect("JSON");
    assert_eq!(report, api, "offline and API validation agree");
    let good = dir.path().join("good.json");
    std::fs::write(&good, document("s").to_string()).expect("write");
    let valid = workflows(&base, &["validate", "-f", good.to_str().expect("utf-8 path")]).await;
    assert!(valid.status.success(), "{}", stdout(&valid));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_a_missing_server_is_named() {
    let usage = workflows("http://127.0.0.1:9", &["frobnicate"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let down = workflows("http://127.0.0.1:9", &["list"]).await;
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down).contains("cannot reach the API at http://127.0.0.1:9"),
        "{}",
        stderr(&down)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_dry_runs_show_the_rendered_request_with_secrets_redacted_and_send_nothing() {
    let peer = wiremock::MockServer::start().await;
    let (server, base) = start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("wf_dry.json");
    let document = json!({"id": "wf_dry", "workspace_id": WS, "name": "dry", "status": "draft",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "push",
        "vars": {"crm_secret": "hunter2-secret"},
        "steps": {"push": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/leads", peer.uri()),
            "auth": {"type": "bearer", "token": "{{ vars.crm_secret }}"},
            "body": {"email": "{{ contact.email }}"}}}}});
    std::fs::write(&file, document.to_string()).expect("write");
    let applied = workflows(&base, &["apply", "-f", file.to_str().expect("utf-8 path")]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let event = dir.path().join("event.json");
    let cloud_event = json!({"specversion": "1.0", "id": "evt-dry", "source": "s", "type": "Prize.Won",
        "workspaceid": WS, "data": {"contact": {"email": "ana@example.com"}}});
    std::fs::write(&event, cloud_event.to_string()).expect("write");

    let human = workflows(
        &base,
        &["test", "wf_dry", "--event", event.to_str().expect("utf-8 path")],
    )
    .await;
    assert!(human.status.success(), "{}", stderr(&human));
    let shown = stdout(&human);
    assert!(shown.starts_with("dry run of wf_dry"), "{shown}");
    assert!(shown.contains(&format!("POST {}/leads", peer.uri())), "{shown}");
    assert!(shown.contains("[REDACTED]") && !shown.contains("hunter2"), "{shown}");
    assert!(shown.contains(r#"{"email":"ana@example.com"}"#), "{shown}");

    let json_out = workflows(&base, &["--json", "test", "wf_dry"]).await;
    assert!(json_out.status.success(), "{}", stderr(&json_out));
    let tested: Value = serde_json::from_str(&stdout(&json_out)).expect("--json prints JSON");
    assert_eq!(
        tested["event_id"].as_str(),
        Some("evt-sample-prize.won"),
        "without --event the sample of the trigger type is used"
    );
    assert_eq!(tested["run"]["steps"][0]["status"].as_str(), Some("rendered"));
    assert!(!stdout(&json_out).contains("hunter2"));

    let with_event = workflows(
        &base,
        &[
            "--json",
            "test",
            "wf_dry",
            "--event",
            event.to_str().expect("utf-8 path"),
        ],
    )
    .await;
    assert!(with_event.status.success(), "{}", stderr(&with_event));
    let tested: Value = serde_json::from_str(&stdout(&with_event)).expect("--json prints JSON");
    assert_eq!(tested["event_id"].as_str(), Some("evt-dry"));
    let request = &tested["run"]["steps"][0]["request"];
    assert_eq!(request["body"].as_str(), Some(r#"{"email":"ana@example.com"}"#));
    assert!(!stdout(&with_event).contains("hunter2"));

    let live = workflows(&base, &["test", "wf_dry", "--live"]).await;
    assert_eq!(live.status.code(), Some(1));
    assert!(
        stderr(&live).contains("not_published"),
        "a draft is never run for real: {}",
        stderr(&live)
    );
    let received = peer.received_requests().await.expect("recording is on");
    assert!(received.is_empty(), "a dry run sends nothing: {received:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_test_runs_the_published_version_for_real_and_is_kept_apart_from_production_runs() {
    let peer = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&peer)
        .await;
    let (server, base) = start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("wf_live.json");
    let document = json!({"id": "wf_live", "workspace_id": WS, "name": "live", "status": "draft",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "push",
        "steps": {"push": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/leads", peer.uri()),
            "body": {"email": "{{ contact.email }}"}}}}});
    std::fs::write(&file, document.to_string()).expect("write");
    let applied = workflows(&base, &["apply", "-f", file.to_str().expect("utf-8 path")]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let published = workflows(&base, &["publish", "wf_live"]).await;
    assert!(published.status.success(), "{}", stderr(&published));
    let event = dir.path().join("event.json");
    let cloud_event = json!({"specversion": "1.0", "id": "evt-live", "source": "s", "type": "Prize.Won",
        "workspaceid": WS, "data": {"contact": {"email": "ana@example.com"}}});
    std::fs::write(&event, cloud_event.to_string()).expect("write");

    let human = workflows(
        &base,
        &[
            "test",
            "wf_live",
            "--live",
            "--event",
            event.to_str().expect("utf-8 path"),
        ],
    )
    .await;
    assert!(human.status.success(), "{}", stderr(&human));
    assert!(stdout(&human).starts_with("test run run_test_"), "{}", stdout(&human));
    let json_out = workflows(
        &base,
        &[
            "--json",
            "test",
            "wf_live",
            "--live",
            "--event",
            event.to_str().expect("utf-8 path"),
        ],
    )
    .await;
    assert!(json_out.status.success(), "{}", stderr(&json_out));
    let started: Value = serde_json::from_str(&stdout(&json_out)).expect("--json prints JSON");
    assert_eq!(
        (started["dry_run"].as_bool(), started["workflow_version"].as_u64()),
        (Some(false), Some(1))
    );
    let run_url = format!("{base}{}", started["run_url"].as_str().expect("run url"));

    // Each live test is a run of its own, even on the same event.
    let client = reqwest::Client::new();
    let runs = format!("{base}/v1/workspaces/{WS}/runs");
    let finished = |listing: &Value| {
        listing["runs"]
            .as_array()
            .is_some_and(|runs| runs.len() == 2 && runs.iter().all(|r| r["status"] != "running"))
    };
    // A bound, not a race: returns as soon as both runs have ended.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let tests = loop {
        let listing: Value = client
            .get(format!("{runs}?test=true"))
            .send()
            .await
            .expect("runs")
            .json()
            .await
            .expect("JSON");
        if finished(&listing) || std::time::Instant::now() > deadline {
            break listing;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(finished(&tests), "both test runs end: {tests}");
    let run: Value = client
        .get(&run_url)
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (run["status"].as_str(), run["test"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{run}"
    );
    let received = peer.received_requests().await.expect("recording is on");
    assert_eq!(received.len(), 2, "two live tests, two real requests");
    let production: Value = client
        .get(&runs)
        .send()
        .await
        .expect("runs")
        .json()
        .await
        .expect("JSON");
    assert_eq!(production["runs"].as_array().map(Vec::len), Some(0), "{production}");
    server.shutdown().await;
}
