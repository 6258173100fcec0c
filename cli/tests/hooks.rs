//! `hookflow hooks …` against a real `hookflow dev`, in human and `--json`
//! output.

use std::process::Output;

mod common;

use common::{stderr, stdout};
use hookflow_cli::dev::{DevConfig, DevServer};
use serde_json::Value;

const WS: &str = "ws_cli_hooks";

async fn hooks(base: &str, args: &[&str]) -> Output {
    common::hookflow_in("hooks", base, WS, args).await
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).expect("--json prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_update_rotate_and_delete_a_hook() {
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback address"),
        ..DevConfig::default()
    };
    let server = DevServer::start(config, vec![]).await.expect("dev server starts");
    let base = format!("http://{}", server.addr);

    let created = hooks(
        &base,
        &[
            "create", "--name", "crm", "--kind", "webhook", "--auth", "hmac", "--preset", "github", "--card", "card_1",
        ],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let shown = stdout(&created);
    assert!(shown.contains("Hook.crm") && shown.contains("hks_"), "{shown}");
    assert!(shown.contains("Keep it now"), "{shown}");
    let id = shown
        .split_whitespace()
        .find(|word| word.starts_with("hk_"))
        .expect("the hook id")
        .to_owned();

    let listed = json(&hooks(&base, &["--json", "list"]).await);
    assert_eq!(listed["hooks"][0]["id"].as_str(), Some(id.as_str()));
    assert!(!listed.to_string().contains("hks_"), "a list never shows a secret");

    let disabled = json(&hooks(&base, &["--json", "update", &id, "--status", "disabled"]).await);
    assert_eq!(disabled["status"].as_str(), Some("disabled"));
    let rotated = json(&hooks(&base, &["--json", "rotate", &id]).await);
    assert!(rotated["secret"].as_str().is_some_and(|s| s.starts_with("hks_")));
    assert_eq!(rotated["secrets"].as_array().map(Vec::len), Some(2));

    let bad = hooks(&base, &["create", "--name", "x", "--kind", "form", "--auth", "hmac"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("invalid_hook"), "{}", stderr(&bad));

    let deleted = hooks(&base, &["delete", &id]).await;
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let gone = hooks(&base, &["show", &id]).await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("hook_not_found"), "{}", stderr(&gone));
    server.shutdown().await;
}
