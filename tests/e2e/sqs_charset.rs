//! Bytes SQS refuses, end to end. SQS answers `InvalidMessageContents` to a
//! message body with a character outside `#x9 | #xA | #xD | #x20-#xD7FF |
//! #xE000-#xFFFD | #x10000-#x10FFFF`; moto accepts them (measured), so the
//! stack here talks to moto through a small proxy that refuses what SQS
//! refuses. An event carrying U+FFFF, and a peer answering U+FFFF, must
//! both go through: accepted, run, succeeded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hookflow_aws::{create_resources, ResourceNames};
use hookflow_cli::dev::{DevConfig, DevServer};
use hookflow_cli::ports::Ports;
use hookflow_core::WorkflowDefinition;
use hookflow_tests::{event, Stack, SHARED_EMULATOR, WS};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The characters SQS takes in a message body, as its API reference lists
/// them (written out here, apart from the engine's own check).
fn sqs_allows(c: char) -> bool {
    let c = u32::from(c);
    matches!(c, 0x9 | 0xA | 0xD) || (0x20..=0xD7FF).contains(&c) || (0xE000..=0xFFFD).contains(&c) || c >= 0x10000
}

#[derive(Clone)]
struct Proxy {
    moto: String,
    http: reqwest::Client,
    refused: Arc<AtomicUsize>,
    /// Message bodies sent through, escaped U+FFFF included.
    escaped: Arc<AtomicUsize>,
}

/// The message bodies of an SQS `SendMessage` or `SendMessageBatch` (AWS
/// JSON protocol), or none for any other request.
fn message_bodies(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !target.starts_with("AmazonSQS.SendMessage") {
        return vec![];
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let entries = request["Entries"].as_array().cloned().unwrap_or_else(|| vec![request]);
    entries
        .iter()
        .filter_map(|entry| entry["MessageBody"].as_str().map(str::to_owned))
        .collect()
}

async fn forward(State(proxy): State<Proxy>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let bodies = message_bodies(&headers, &body);
    if let Some(bad) = bodies.iter().flat_map(|b| b.chars()).find(|c| !sqs_allows(*c)) {
        proxy.refused.fetch_add(1, Ordering::SeqCst);
        let answer = json!({"__type": "com.amazonaws.sqs#InvalidMessageContents",
            "message": format!("Invalid binary character '#x{:X}' was found in the message body", u32::from(bad))});
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            answer.to_string(),
        )
            .into_response();
    }
    if bodies.iter().any(|b| b.contains("\\uffff")) {
        proxy.escaped.fetch_add(1, Ordering::SeqCst);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy.http.request(method, format!("{}{path}", proxy.moto)).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let Ok(answer) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut relayed = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
            relayed.append(name.clone(), value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, relayed, bytes).into_response()
}

async fn start_proxy() -> (String, Proxy) {
    let moto = std::env::var(SHARED_EMULATOR).expect("run the tests with `make test`, which starts moto");
    let proxy = Proxy {
        moto,
        http: reqwest::Client::new(),
        refused: Arc::default(),
        escaped: Arc::default(),
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, proxy)
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    hookflow_aws::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "charset",
        ))
        .load()
        .await
}

#[tokio::test]
async fn u_ffff_in_an_event_and_in_a_reply_goes_through_a_queue_that_refuses_it_raw() {
    let (endpoint, proxy) = start_proxy().await;
    let config = sdk_config(&endpoint).await;
    let (dynamo, sqs) = (
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
    );
    let names = ResourceNames::with_prefix(&format!("charset-{}", ulid::Ulid::new().to_string().to_lowercase()));
    let urls = create_resources(&dynamo, &sqs, &names, Duration::from_secs(30))
        .await
        .expect("create resources through the proxy");

    // The proxy refuses as SQS does: a raw U+FFFF never reaches moto.
    let raw = sqs
        .send_message()
        .queue_url(&urls.steps)
        .message_body("\u{ffff}")
        .send()
        .await;
    let err = raw.expect_err("refused");
    assert!(format!("{:?}", err).contains("InvalidMessageContents"), "{err:?}");
    assert_eq!(proxy.refused.swap(0, Ordering::SeqCst), 1);

    // A peer answering U+FFFF, whose answer the next step sends on.
    let peer = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{\"note\": \"odd\u{ffff}\"}", "application/json"))
        .mount(&peer)
        .await;
    let workflow = json!({"id": "wf_odd", "workspace_id": WS, "name": "odd", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "ask",
        "steps": {
          "ask": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/ask", peer.uri()),
                  "body": {"text": "{{ text }}"}}, "next": "tell"},
          "tell": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/tell", peer.uri()),
                  "body": {"note": "{{ steps.ask.body.note }}"}}}}});
    let workflow = WorkflowDefinition::from_value(workflow).expect("workflow decodes");
    let ports = Ports::on_aws(
        dynamo,
        sqs,
        hookflow_tests::emulator_services(&config, &names),
        &names,
        urls,
        None,
    );
    let config = DevConfig {
        addr: "127.0.0.1:0".parse().expect("loopback"),
        ..DevConfig::default()
    };
    let server = DevServer::start_on(config, vec![workflow], ports, None)
        .await
        .expect("dev server");
    let stack = Stack::on(server);

    let odd = event("evt-odd", "Prize.Won", &[], json!({"text": "a\u{ffff}b\u{fffe}c"}));
    let (status, answer) = stack.post_event(&odd).await;
    assert_eq!(status, 202, "an event with U+FFFF is accepted: {answer}");
    let runs = stack.wait_for_finished_runs(1).await;
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let told = peer
        .received_requests()
        .await
        .expect("recording")
        .into_iter()
        .find(|r| r.url.path() == "/tell")
        .expect("the second step ran");
    let told: Value = serde_json::from_slice(&told.body).expect("JSON");
    assert_eq!(told["note"], "odd\u{ffff}", "the character arrived whole");
    assert_eq!(proxy.refused.load(Ordering::SeqCst), 0, "nothing sent was refused");
    assert!(
        proxy.escaped.load(Ordering::SeqCst) >= 2,
        "the trigger and the hand-off went escaped"
    );
    stack.shutdown().await;
}
