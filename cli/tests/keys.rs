//! `hookflow keys …` and `hookflow dev`'s key rules, against a real dev
//! server: key-less requests only on loopback without `--require-keys`, a
//! bootstrap admin key, and keys made, listed and revoked from the CLI.

mod common;

use common::{hookflow_with_key, stderr, stdout};
use hookflow_cli::dev::{DevConfig, DevServer};
use serde_json::Value;

const WS: &str = "ws_keys";
/// A well-formed key the test chooses, as `HOOKFLOW_BOOTSTRAP_KEY` would be.
const BOOTSTRAP: &str = "hfk_00112233445566aa_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

async fn get(url: &str, key: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("the server answers").status().as_u16()
}

async fn keys(base: &str, key: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = ["keys", "--api-url", base, "--workspace", WS]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    all.extend(args.iter().map(|a| (*a).to_owned()));
    hookflow_with_key(all, key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_off_loopback_refuses_key_less_requests() {
    let config = DevConfig {
        addr: "0.0.0.0:0".parse().expect("address"),
        ..DevConfig::default()
    };
    let server = DevServer::start(config, vec![]).await.expect("dev server starts");
    let base = format!("http://127.0.0.1:{}", server.addr.port());
    assert_eq!(get(&format!("{base}/v1/workspaces/{WS}/workflows"), None).await, 401);
    assert_eq!(server.bootstrap_key, None, "no bootstrap key without --require-keys");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_keys_with_a_bootstrap_key_then_keys_made_listed_and_revoked_from_the_cli() {
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback address"),
        require_keys: true,
        bootstrap_key: Some(BOOTSTRAP.to_owned()),
        bootstrap_workspace: WS.to_owned(),
        ..DevConfig::default()
    };
    let server = DevServer::start(config, vec![]).await.expect("dev server starts");
    assert_eq!(server.bootstrap_key.as_deref(), Some(BOOTSTRAP));
    let base = format!("http://{}", server.addr);
    let workflows = format!("{base}/v1/workspaces/{WS}/workflows");
    assert_eq!(get(&workflows, None).await, 401, "--require-keys holds on loopback too");
    assert_eq!(get(&workflows, Some(BOOTSTRAP)).await, 200);
    assert_eq!(
        get(&format!("{base}/dev/dlq/steps"), None).await,
        401,
        "dev's own operator routes are behind the same check"
    );
    assert_eq!(
        get(&format!("{base}/dev/dlq/steps"), Some(BOOTSTRAP)).await,
        403,
        "they cross workspaces: the local developer's only, never a key's"
    );

    let no_key = keys(&base, None, &["list"]).await;
    assert_eq!(no_key.status.code(), Some(1));
    assert!(stderr(&no_key).contains("unauthenticated"), "{}", stderr(&no_key));

    let created = keys(
        &base,
        Some(BOOTSTRAP),
        &["create", "--role", "operator", "--name", "on-call"],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let human = stdout(&created);
    assert!(human.starts_with("created operator key "), "{human}");
    let operator = human
        .split_whitespace()
        .find(|word| word.starts_with("hfk_"))
        .expect("the key is printed")
        .to_owned();
    assert_eq!(get(&workflows, Some(&operator)).await, 200);

    let listed = keys(&base, Some(BOOTSTRAP), &["--json", "list"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let json: Value = serde_json::from_str(&stdout(&listed)).expect("--json prints JSON");
    let roles: Vec<&str> = json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|key| key["role"].as_str())
        .collect();
    assert_eq!(roles, vec!["operator", "admin"], "newest first");
    assert!(!stdout(&listed).contains(&operator[21..]), "never a secret");
    let table = stdout(&keys(&base, Some(BOOTSTRAP), &["list"]).await);
    assert!(table.starts_with("ID") && table.contains("on-call"), "{table}");

    let operator_id = json["keys"][0]["id"].as_str().expect("id").to_owned();
    let weak = keys(&base, Some(&operator), &["revoke", &operator_id]).await;
    assert_eq!(weak.status.code(), Some(1));
    assert!(stderr(&weak).contains("forbidden"), "{}", stderr(&weak));
    let revoked = keys(&base, Some(BOOTSTRAP), &["revoke", &operator_id]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains("within 60 s"), "{}", stdout(&revoked));
    assert_eq!(get(&workflows, Some(&operator)).await, 401);

    let usage = keys(&base, Some(BOOTSTRAP), &["create", "--role", "owner"]).await;
    assert_eq!(usage.status.code(), Some(2), "a bad role is a usage error");
    server.shutdown().await;
}

#[tokio::test]
async fn a_malformed_bootstrap_key_stops_dev_with_a_reason() {
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback address"),
        require_keys: true,
        bootstrap_key: Some("hfk_short".to_owned()),
        ..DevConfig::default()
    };
    let err = DevServer::start(config, vec![]).await.err().expect("refused");
    assert!(err.to_string().contains("HOOKFLOW_BOOTSTRAP_KEY"), "{err}");
}
