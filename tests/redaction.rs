//! Secrets stay secret: a secret variable used in credential headers and a
//! body, echoed back by the peer, copied by SetVariables and failing a step,
//! appears neither in the stored run (read over the API) nor in the logs,
//! while the peer did receive it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use hookflow_tests::{event, Stack};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "sk-live-7f3a9c2e11";

/// Everything the process logs, at debug level, as JSON lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Echoes the request body and sets a cookie holding the secret.
struct Echo(u16);

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        ResponseTemplate::new(self.0)
            .insert_header("Set-Cookie", format!("session={SECRET}").as_str())
            .insert_header("Content-Type", "application/json")
            .set_body_bytes(request.body.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted_in_stored_runs_and_logs() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/echo"))
        .respond_with(Echo(200))
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .and(path("/fail"))
        .respond_with(Echo(500))
        .mount(&sink)
        .await;
    let workflow = json!({
        "id": "wf_secret", "workspace_id": hookflow_tests::WS, "name": "uses a secret", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "call",
        "vars": {"api_secret": SECRET},
        "steps": {
            "call": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/echo", sink.uri()),
                "headers": {"Authorization": "Bearer {{ vars.api_secret }}", "X-Api-Key": "{{ vars.api_secret }}"},
                "body": {"token": "{{ vars.api_secret }}", "text": "key={{ vars.api_secret }}"}}, "next": "copy"},
            "copy": {"action": {"type": "SetVariables",
                "values": {"copied_secret": "{{ vars.api_secret }}", "mixed": "k-{{ vars.api_secret }}"}}, "next": "fail"},
            "fail": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/fail", sink.uri()),
                "body": {"x": "{{ vars.mixed }}"}}, "retry": {"max_attempts": 1}}
        }
    });
    let stack = Stack::start(vec![workflow]).await;
    let (status, body) = stack
        .post_event(&event("evt-secret", "Prize.Won", &[], json!({"prize": "x"})))
        .await;
    assert_eq!(status, 202, "{body}");
    let runs = stack.wait_for_finished_runs(1).await;
    let stored = runs[0].to_string();
    assert_eq!(runs[0]["status"], "failed", "{stored}");
    assert!(!stored.contains(SECRET), "the stored run leaks the secret: {stored}");
    assert!(stored.contains("[REDACTED]"), "redaction is visible: {stored}");

    // The peer got the real values, also those SetVariables derived.
    let received = sink.received_requests().await.expect("recorded requests");
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert!(String::from_utf8_lossy(&received[1].body).contains(&format!("k-{SECRET}")));
    stack.shutdown().await;

    let logged = String::from_utf8_lossy(&logs.0.lock().expect("log buffer")).into_owned();
    assert!(logged.contains("step attempt recorded"), "logs were captured");
    assert!(!logged.contains(SECRET), "the logs leak the secret");
}
