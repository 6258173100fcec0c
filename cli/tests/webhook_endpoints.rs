//! `hookflow webhook-endpoints …` against a real `hookflow dev`: a signing
//! secret is shown by `create` and `rotate` only, rotation keeps the old one
//! signing for a while, and refusals exit 1 (usage mistakes 2).

use std::process::Output;

use serde_json::{json, Value};

mod common;

use common::{stderr, stdout};

const WS: &str = "ws_cli_webhook_endpoints";

async fn endpoints(base: &str, args: &[&str]) -> Output {
    common::hookflow_in("webhook-endpoints", base, WS, args).await
}

/// A successful command's `--json` answer.
fn answer(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_rotate_update_recover_and_delete() {
    let (server, base) = common::dev_server(vec![]).await;

    let created = answer(
        &endpoints(
            &base,
            &[
                "--json",
                "create",
                "--url",
                "http://127.0.0.1:9/hook",
                "--event-type",
                "Prize.Won",
            ],
        )
        .await,
    );
    let first_secret = created["secret"].as_str().expect("a secret").to_owned();
    assert!(first_secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();

    let listed = endpoints(&base, &["--json", "list"]).await;
    let listing = answer(&listed);
    let all = listing["webhook_endpoints"].as_array().expect("a list");
    assert!(all.iter().any(|e| e["id"] == id.as_str()), "{listing}");
    let listed_text = stdout(&listed);
    assert!(
        !listed_text.contains(&first_secret) && !listed_text.contains("whsec_") && !listed_text.contains("\"secret\""),
        "a secret listed: {listed_text}"
    );

    let rotated = answer(&endpoints(&base, &["--json", "rotate", &id]).await);
    let second_secret = rotated["secret"].as_str().expect("a new secret");
    assert!(second_secret.starts_with("whsec_"), "{rotated}");
    assert_ne!(second_secret, first_secret);

    let shown = answer(&endpoints(&base, &["--json", "show", &id]).await);
    let secrets = shown["endpoint"]["secrets"].as_array().expect("secrets");
    assert_eq!(secrets.len(), 2, "{shown}");
    let expiring: Vec<&Value> = secrets.iter().filter(|s| s["expires_at"].is_string()).collect();
    assert_eq!(expiring.len(), 1, "only the old secret expires: {shown}");
    assert!(shown["attempts"]["attempts"].is_array(), "{shown}");

    let disabled = answer(&endpoints(&base, &["--json", "update", &id, "--disable"]).await);
    assert_eq!(disabled["status"], "disabled", "{disabled}");

    let resend = endpoints(&base, &["resend", &id, "msg_nope"]).await;
    assert_eq!(resend.status.code(), Some(1), "{}", stderr(&resend));
    assert!(stderr(&resend).contains("msg_nope"), "{}", stderr(&resend));

    let recovered = answer(&endpoints(&base, &["--json", "recover", &id, "--since", "1h"]).await);
    assert_eq!(recovered["resent"], json!([]), "{recovered}");

    let unknown_type = endpoints(
        &base,
        &[
            "create",
            "--url",
            "http://127.0.0.1:9/hook",
            "--event-type",
            "Nope.Nothing",
        ],
    )
    .await;
    assert_eq!(unknown_type.status.code(), Some(1), "{}", stderr(&unknown_type));
    assert!(
        stderr(&unknown_type).contains("Nope.Nothing"),
        "{}",
        stderr(&unknown_type)
    );

    let deleted = endpoints(&base, &["delete", &id]).await;
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let gone = endpoints(&base, &["show", &id]).await;
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_mistakes_exit_2() {
    let (server, base) = common::dev_server(vec![]).await;
    let no_types = endpoints(&base, &["create", "--url", "http://127.0.0.1:9/hook"]).await;
    assert_eq!(no_types.status.code(), Some(2), "{}", stderr(&no_types));
    let nothing = endpoints(&base, &["update", "we_any"]).await;
    assert_eq!(nothing.status.code(), Some(2), "{}", stderr(&nothing));
    let bad_since = endpoints(&base, &["recover", "we_any", "--since", "yesterday"]).await;
    assert_eq!(bad_since.status.code(), Some(2), "{}", stderr(&bad_since));
    server.shutdown().await;
}
