//! `hookflow connections create|list|rotate|delete` against a real
//! `hookflow dev`: credentials go in from a file or a flag and never come
//! back out.

use std::process::Output;

mod common;

use common::{stderr, stdout};

const WS: &str = "ws_cli_connections";
const KEY: &str = "0123456789abcdef0123456789abcdef-us21";

async fn connections(base: &str, args: &[&str]) -> Output {
    common::hookflow_in("connections", base, WS, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_rotate_and_delete_without_showing_credentials() {
    let (server, base) = common::dev_server(vec![]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let credentials = dir.path().join("mc.json");
    std::fs::write(&credentials, format!("{{\"api_key\": \"{KEY}\"}}")).expect("write credentials");
    let path = credentials.to_string_lossy().into_owned();

    let created = connections(
        &base,
        &[
            "create",
            "--name",
            "mc",
            "--app",
            "mailchimp",
            "--credentials-file",
            &path,
        ],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains("created connection mc"),
        "{}",
        stdout(&created)
    );

    let listed = connections(&base, &["list"]).await;
    let shown = stdout(&listed);
    assert!(
        shown.contains("mc") && shown.contains("mailchimp") && shown.contains("api_key"),
        "{shown}"
    );

    let rotated = connections(
        &base,
        &["--json", "rotate", "mc", "--credential", "api_key=fedcba-us21"],
    )
    .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let answer: serde_json::Value = serde_json::from_slice(&rotated.stdout).expect("JSON");
    assert_eq!(answer["credentials"]["api_key"], "set");

    let refused = connections(
        &base,
        &["create", "--name", "b", "--app", "braze", "--credential", "api_key=x"],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("base_url is required"),
        "{}",
        stderr(&refused)
    );
    let no_credentials = connections(&base, &["create", "--name", "b", "--app", "braze"]).await;
    assert_eq!(no_credentials.status.code(), Some(2), "{}", stderr(&no_credentials));

    let deleted = connections(&base, &["delete", "mc"]).await;
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let gone = connections(&base, &["delete", "mc"]).await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("connection_not_found"), "{}", stderr(&gone));

    for output in [&created, &listed, &rotated, &refused, &deleted] {
        for text in [stdout(output), stderr(output)] {
            assert!(
                !text.contains(KEY) && !text.contains("fedcba-us21"),
                "credentials shown: {text}"
            );
        }
    }
    server.shutdown().await;
}
