//! `hookflow contacts list|export` against a real `hookflow dev`: the
//! export streams to a file that Python's `csv` module reads back.

use std::process::Output;

mod common;

use common::{stderr, stdout};
use hookflow_cli::dev::{DevConfig, DevServer};
use serde_json::{json, Value};

const WS: &str = "ws_cli_contacts";

async fn contacts(base: &str, args: &[&str]) -> Output {
    common::hookflow_in("contacts", base, WS, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_and_export_a_tag_to_a_file() {
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback address"),
        ..DevConfig::default()
    };
    let server = DevServer::start(config, vec![]).await.expect("dev server starts");
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    for n in 0..5 {
        let tags = if n == 4 { json!([]) } else { json!(["sponsor-a"]) };
        let response = client
            .post(format!("{base}/v1/workspaces/{WS}/contacts"))
            .json(&json!({"email": format!("p{n}@example.com"), "properties": {"company": "@SUM(1)"}, "tags": tags}))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
    }

    let page = contacts(&base, &["list", "--tag", "sponsor-a", "--limit", "2"]).await;
    assert!(page.status.success(), "{}", stderr(&page));
    let shown = stdout(&page);
    assert!(
        shown.contains("p0@example.com") && shown.contains("more: --cursor "),
        "{shown}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("leads.csv");
    let exported = contacts(
        &base,
        &[
            "--json",
            "export",
            "--tag",
            "sponsor-a",
            "-o",
            file.to_str().expect("path"),
        ],
    )
    .await;
    assert!(exported.status.success(), "{}", stderr(&exported));
    let summary: Value = serde_json::from_str(&stdout(&exported)).expect("--json prints JSON");
    assert_eq!(summary["contacts"], json!(4));
    let text = std::fs::read_to_string(&file).expect("the export file");
    assert!(
        text.starts_with("id,email,external_id,tags,lists,loyalty,created_at,updated_at,company\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("'@SUM(1)").count(), 4, "{text}");
    assert!(!dir.path().join("leads.csv.partial").exists());

    let refused = contacts(&base, &["export", "--tag", "x", "-o", "/nonexistent-dir/leads.csv"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("cannot create"), "{}", stderr(&refused));
    server.shutdown().await;
}
