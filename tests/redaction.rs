//! Secrets stay secret: a secret variable used in credential headers and a
//! body, echoed back by the peer, copied by SetVariables and failing a step,
//! appears neither in the stored run (read over the API) nor in the logs,
//! while the peer did receive it. A connection's credentials, echoed back by
//! the app, reach no workflow, step message, run record, log line or API
//! answer either.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use hookflow_cli::dev::{DevConfig, DevServer};
use hookflow_cli::ports::Ports;
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::ports::{Delivery, PortResult, Queue};
use hookflow_core::workflow::WorkflowDefinition;

use hookflow_tests::{event, Stack};
use serde_json::json;
use serde_json::Value;
use wiremock::matchers::{header, method, path};
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

/// Installs the process-wide subscriber once; every test reads the same buffer.
fn logs() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
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
    let logs = logs();

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

    let logged = logs.text();
    assert!(logged.contains("step attempt recorded"), "logs were captured");
    assert!(!logged.contains(SECRET), "the logs leak the secret");
}

const API_KEY: &str = "c0ffee00c0ffee00c0ffee00c0ffee00-us21";

/// The steps queue, keeping a copy of every message sent on it.
struct Recording {
    inner: Arc<dyn Queue>,
    sent: Mutex<Vec<String>>,
}

#[async_trait]
impl Queue for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn send(&self, body: String, delay: Duration) -> PortResult<()> {
        self.sent.lock().expect("sent").push(body.clone());
        self.inner.send(body, delay).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        self.inner.receive(max, wait).await
    }
    async fn ack(&self, receipt: &str) -> PortResult<()> {
        self.inner.ack(receipt).await
    }
    async fn peek(&self, max: usize) -> PortResult<Vec<String>> {
        self.inner.peek(max).await
    }
}

/// Mailchimp that echoes what it was sent, and the key, back.
struct EchoKey(u16);

impl Respond for EchoKey {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        ResponseTemplate::new(self.0).set_body_json(json!({"status": "subscribed",
            "detail": format!("you sent {authorization} with key {API_KEY}"),
            "echo": String::from_utf8_lossy(&request.body)}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_credentials_reach_only_the_app() {
    let logs = logs();
    let mailchimp = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/3.0/lists/L1/members/cdb9d6a1dddc375a09cc83e3001598dc"))
        .and(header(
            "authorization",
            format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("hookflow:{API_KEY}")
                )
            )
            .as_str(),
        ))
        .respond_with(EchoKey(200))
        .mount(&mailchimp)
        .await;
    Mock::given(method("PUT"))
        .respond_with(EchoKey(400))
        .mount(&mailchimp)
        .await;
    let workflow = json!({"id": "wf_conn", "workspace_id": hookflow_tests::WS, "name": "subscribe", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Contact.Created"}, "start": "subscribe",
        "steps": {"subscribe": {"action": {"type": "MailchimpUpsertSubscriber", "connection": "mc", "list_id": "L1",
            "email": "{{ contact.email }}"}, "next": "again"},
          "again": {"action": {"type": "MailchimpUpsertSubscriber", "connection": "mc", "list_id": "L1",
            "email": "x{{ contact.email }}"}, "retry": {"max_attempts": 1}}}});
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback"),
        ..DevConfig::default()
    };
    let backend = Arc::new(MemoryBackend::new(QueueSettings {
        visibility_timeout: config.visibility_timeout,
        max_receive_count: config.max_receive_count,
    }));
    let mut ports = Ports::memory(&backend);
    let steps = Arc::new(Recording {
        inner: ports.steps.clone(),
        sent: Mutex::new(vec![]),
    });
    ports.steps = steps.clone();
    let definition = WorkflowDefinition::from_value(workflow).expect("workflow decodes");
    let server = DevServer::start_on(config, vec![definition], ports, Some(backend))
        .await
        .expect("dev starts");
    let stack = Stack::on(server);
    let connections = format!("/v1/workspaces/{}/connections", hookflow_tests::WS);
    let mut answers: Vec<Value> = vec![];
    let (status, created) = stack
        .call(
            reqwest::Method::POST,
            &connections,
            Some(json!({"name": "mc",
        "app": "mailchimp", "credentials": {"api_key": API_KEY}, "base_url": mailchimp.uri()})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    answers.push(created);

    stack
        .post_event(&event(
            "evt-conn",
            "Contact.Created",
            &[],
            json!({"contact": {"email": "ana@example.com"}}),
        ))
        .await;
    let runs = stack.wait_for_finished_runs(1).await;
    assert_eq!(runs[0]["status"], "failed", "the second call is refused: {:#}", runs[0]);
    assert!(
        runs[0].to_string().contains("[REDACTED]"),
        "the echo was redacted: {:#}",
        runs[0]
    );
    answers.extend(runs);
    for path in [
        connections.clone(),
        format!("{connections}/mc"),
        format!("/v1/workspaces/{}/workflows/wf_conn", hookflow_tests::WS),
        format!("/v1/workspaces/{}/runs", hookflow_tests::WS),
    ] {
        answers.push(stack.get(&path).await.1);
    }
    stack.shutdown().await;

    let sent = steps.sent.lock().expect("sent").clone();
    assert!(sent.len() >= 2, "step messages were recorded: {sent:?}");
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("hookflow:{API_KEY}"),
    );
    let logged = logs.text();
    assert!(logged.contains("connection created"), "logs were captured");
    let places = [
        ("a step message", sent.join("\n")),
        ("the logs", logged),
        ("an API answer or the run", Value::Array(answers).to_string()),
    ];
    for (place, text) in places {
        for secret in [API_KEY, &encoded[..]] {
            assert!(!text.contains(secret), "{place} holds the credential");
        }
    }
}
