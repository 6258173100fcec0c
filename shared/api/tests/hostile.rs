//! Hostile input at `POST /v1/events`, sent through the router over the
//! in-memory twins: every refusal is a 4xx with a JSON error body that names
//! the problem, and nothing is enqueued or remembered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use hookflow_api::{router, ApiState, Gate, KeylessRequests, Router, DEFAULT_MAX_BODY_BYTES};
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::ports::{EventDedupe, SystemClock};
use hookflow_core::wiring::Stores;
use serde_json::{json, Value};
use tower::ServiceExt;

const WS: &str = "ws_hostile";
const ID: &str = "evt-hostile";
const JSON: Option<&str> = Some("application/json");
const CE: Option<&str> = Some("application/cloudevents+json");
const BATCH: Option<&str> = Some("application/cloudevents-batch+json");
const LIMIT: usize = DEFAULT_MAX_BODY_BYTES;

fn backend_and_router(max_body_bytes: usize) -> (MemoryBackend, Router) {
    let backend = MemoryBackend::new(QueueSettings {
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: 5,
    });
    let stores = Stores::memory(&backend, Arc::new(SystemClock));
    let app = router(
        ApiState {
            // These tests are about bodies, not keys (see keys.rs).
            gate: Gate {
                access: Arc::new(stores.access()),
                keyless: KeylessRequests::AllowedAsLocalDeveloper,
            },
            ingest: Some(Arc::new(stores.ingest(backend.triggers.clone()))),
            runs: None,
            workflows: Some(Arc::new(stores.workflows())),
            live_tests: None,
            hooks: None,
            hook_receiver: None,
            recovery: None,
            contacts: None,
            connections: None,
            webhook_endpoints: None,
            sso_sites: None,
            identify: None,
        },
        max_body_bytes,
    );
    (backend, app)
}

/// What ingest remembers of [`event`]`(id)`: its source and id.
fn identity(id: &str) -> String {
    hookflow_core::event::event_identity("komo/platform", id)
}

/// A valid event with every optional attribute set.
fn event(id: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "komo/platform", "type": "Gameplay.Ended",
           "time": "2026-11-23T10:00:00Z", "workspaceid": WS, "siteid": "site_1", "cardid": "card_1",
           "contactid": "contact_1", "depth": 0, "data": {"gameplay": {"score": 120}}})
}

/// The valid event with one change.
fn edit(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = event(ID);
    change(&mut v);
    v.to_string().into_bytes()
}

fn set(attribute: &str, value: Value) -> Vec<u8> {
    edit(|v| v[attribute] = value)
}

fn without(attribute: &str) -> Vec<u8> {
    edit(|v| {
        if let Some(map) = v.as_object_mut() {
            map.remove(attribute);
        }
    })
}

/// The valid event with raw bytes (not necessarily JSON or UTF-8) as its id.
fn raw_id(raw: &[u8]) -> Vec<u8> {
    let text = event("@ID@").to_string();
    let (before, after) = text.split_once("\"@ID@\"").expect("placeholder");
    [
        before.as_bytes(),
        "\"".as_bytes(),
        raw,
        "\"".as_bytes(),
        after.as_bytes(),
    ]
    .concat()
}

/// `n` arrays nested around a number.
fn nested(n: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..n {
        value = Value::Array(vec![value]);
    }
    value
}

struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    body: Value,
}

async fn send(app: &Router, content_type: Option<&str>, body: Body, content_length: Option<usize>) -> Reply {
    let mut request = Request::builder().method("POST").uri("/v1/events");
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(length) = content_length {
        request = request.header(header::CONTENT_LENGTH, length);
    }
    let request = request.body(body).expect("request");
    let response = app.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        body,
    }
}

fn assert_refusal(name: &str, reply: &Reply, status: u16, code: &str, message: &str) {
    assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.body);
    assert!(
        reply
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json")),
        "{name}: content type {:?}",
        reply.content_type
    );
    let got_code = reply.body["error"]["code"].as_str().unwrap_or_default();
    let got_message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(got_code.contains(code), "{name}: code {got_code:?}, wanted {code:?}");
    assert!(
        got_message.contains(message),
        "{name}: message {got_message:?} does not name {message:?}"
    );
}

/// (name, content type, body, status, error code, what the message names)
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn hostile_requests_are_refused_with_json_errors_and_nothing_is_kept() {
    let (backend, app) = backend_and_router(LIMIT);
    let batch_101: Vec<Value> = (0..=100).map(|i| event(&format!("b-{i}"))).collect();
    let utf16_with_bom: Vec<u8> = [0xFF_u8, 0xFE]
        .into_iter()
        .chain(event(ID).to_string().encode_utf16().flat_map(u16::to_le_bytes))
        .collect();

    // (name, content type, body, status, error code, what the message names)
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // Not JSON, or not UTF-8.
        ("truncated JSON", CE, b"{\"specversion\": ".to_vec(), 400, "malformed_json", "not valid JSON"),
        ("trailing garbage", JSON, [event(ID).to_string().as_bytes(), " x".as_bytes()].concat(), 400, "malformed_json", "trailing characters"),
        ("plain text", JSON, b"hello".to_vec(), 400, "malformed_json", "expected value"),
        ("single quotes", JSON, b"{'id': 'x'}".to_vec(), 400, "malformed_json", "key must be a string"),
        ("lone surrogate escape", JSON, raw_id(br"\udc00"), 400, "malformed_json", "not valid JSON"),
        ("empty body", JSON, vec![], 400, "empty_body", "empty"),
        ("whitespace only", CE, b" \r\n\t ".to_vec(), 400, "empty_body", "empty"),
        ("whitespace exactly at the body limit", JSON, vec![b' '; LIMIT], 400, "empty_body", "empty"),
        ("invalid UTF-8 byte", JSON, raw_id(b"\xff"), 400, "invalid_utf8", "UTF-8"),
        ("overlong UTF-8 encoding", JSON, raw_id(b"\xc0\xaf"), 400, "invalid_utf8", "offset"),
        ("UTF-16 with a byte order mark", Some("application/json; charset=utf-16"), utf16_with_bom, 400, "invalid_utf8", "offset 0"),
        // Content types.
        ("text/plain", Some("text/plain"), event(ID).to_string().into_bytes(), 415, "unsupported_media_type", "text/plain"),
        ("no content type", None, event(ID).to_string().into_bytes(), 415, "unsupported_media_type", "application/cloudevents+json"),
        ("form encoded", Some("application/x-www-form-urlencoded"), b"id=1".to_vec(), 415, "unsupported_media_type", "x-www-form-urlencoded"),
        ("JSON look-alike", Some("application/json-patch+json"), event(ID).to_string().into_bytes(), 415, "unsupported_media_type", "json-patch"),
        ("JSON only in a parameter", Some("text/plain; type=application/json"), event(ID).to_string().into_bytes(), 415, "unsupported_media_type", "text/plain"),
        // Nesting, answered by the scanner before serde_json parses.
        ("data nested one level too deep", JSON, set("data", nested(64)), 400, "nesting_too_deep", "64 levels"),
        ("100,000 open brackets", JSON, "[".repeat(100_000).into_bytes(), 400, "nesting_too_deep", "64 levels"),
        ("200 nested objects", CE, format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200)).into_bytes(), 400, "nesting_too_deep", "64 levels"),
        // Not an event.
        ("an array sent as one event", JSON, json!([event(ID)]).to_string().into_bytes(), 400, "invalid_attribute", "application/cloudevents-batch+json"),
        ("a string", JSON, b"\"hi\"".to_vec(), 400, "invalid_attribute", "not a string"),
        ("null", JSON, b"null".to_vec(), 400, "invalid_attribute", "not null"),
        // CloudEvents attributes.
        ("missing specversion", JSON, without("specversion"), 400, "missing_attribute", "`specversion`"),
        ("specversion 0.3", JSON, set("specversion", json!("0.3")), 400, "invalid_attribute", "`specversion`"),
        ("specversion as a number", JSON, set("specversion", json!(1.0)), 400, "invalid_attribute", "must be a string"),
        ("missing id", JSON, without("id"), 400, "missing_attribute", "`id`"),
        ("empty id", JSON, set("id", json!("")), 400, "invalid_attribute", "must not be empty"),
        ("id as a number", JSON, set("id", json!(42)), 400, "invalid_attribute", "`id`"),
        ("missing source", JSON, without("source"), 400, "missing_attribute", "`source`"),
        ("missing type", JSON, without("type"), 400, "missing_attribute", "`type`"),
        ("missing workspaceid", JSON, without("workspaceid"), 400, "missing_attribute", "`workspaceid`"),
        // Ids: at most 256 bytes, no control characters.
        ("id with a newline", JSON, set("id", json!("a\nb")), 400, "invalid_id", "`id`"),
        ("id with NUL", JSON, set("id", json!("a\u{0}b")), 400, "invalid_id", "U+0000"),
        ("id of 257 bytes", JSON, set("id", json!("x".repeat(257))), 400, "invalid_id", "256 bytes"),
        ("id of 129 two-byte characters", JSON, set("id", json!("é".repeat(129))), 400, "invalid_id", "got 258"),
        ("workspaceid with a terminal escape", JSON, set("workspaceid", json!("ws\u{1b}[2J")), 400, "invalid_id", "`workspaceid`"),
        ("workspaceid of 300 bytes", JSON, set("workspaceid", json!("w".repeat(300))), 400, "invalid_id", "`workspaceid`"),
        ("siteid with a carriage return", JSON, set("siteid", json!("site\r1")), 400, "invalid_id", "`siteid`"),
        ("empty siteid", JSON, set("siteid", json!("")), 400, "invalid_id", "`siteid`"),
        ("cardid of 1,000 bytes", JSON, set("cardid", json!("c".repeat(1000))), 400, "invalid_id", "`cardid`"),
        ("contactid with DEL", JSON, set("contactid", json!("contact\u{7f}")), 400, "invalid_id", "`contactid`"),
        ("contactid with a C1 control", JSON, set("contactid", json!("contact\u{85}")), 400, "invalid_id", "U+0085"),
        ("source of 257 bytes", JSON, set("source", json!("s".repeat(257))), 400, "invalid_id", "`source`"),
        ("source with a tab", JSON, set("source", json!("komo\tplatform")), 400, "invalid_id", "`source`"),
        // Trigger types.
        ("unknown type", JSON, set("type", json!("Gameplay.Endd")), 400, "unknown_trigger_type", "did you mean Gameplay.Ended"),
        ("hook name with a slash", JSON, set("type", json!("Hook.a/b")), 400, "unknown_trigger_type", "Hook.a/b"),
        ("type of 10,000 bytes", JSON, set("type", json!(format!("Hook.{}", "a".repeat(10_000)))), 400, "invalid_attribute", "`type`"),
        // time.
        ("time in words", JSON, set("time", json!("yesterday")), 400, "invalid_attribute", "RFC 3339"),
        ("time out of range", JSON, set("time", json!("2026-13-45T99:00:00Z")), 400, "invalid_attribute", "`time`"),
        ("time without an offset", JSON, set("time", json!("2026-11-23T10:00:00")), 400, "invalid_attribute", "`time`"),
        ("time as a number", JSON, set("time", json!(1_795_428_000)), 400, "invalid_attribute", "`time`"),
        // depth.
        ("negative depth", JSON, set("depth", json!(-1)), 400, "invalid_attribute", "`depth`"),
        ("fractional depth", JSON, set("depth", json!(1.5)), 400, "invalid_attribute", "non-negative integer"),
        ("depth past u32", JSON, set("depth", json!(1_u64 << 40)), 400, "invalid_attribute", "`depth`"),
        ("depth in words", JSON, set("depth", json!("three")), 400, "invalid_attribute", "`depth`"),
        ("depth as a boolean", JSON, set("depth", json!(true)), 400, "invalid_attribute", "`depth`"),
        // Batches.
        ("batch of 101 events", BATCH, Value::Array(batch_101).to_string().into_bytes(), 413, "batch_too_large", "at most 100"),
        ("empty batch", BATCH, b"[]".to_vec(), 400, "invalid_batch", "0 events"),
        ("batch that is one object", BATCH, event(ID).to_string().into_bytes(), 400, "invalid_batch", "an object"),
        ("batch with one bad member", BATCH, json!([event("batch-ok-0"), event("a\u{0}b")]).to_string().into_bytes(), 400, "invalid_id", "events[1]"),
        // Size, with a Content-Length.
        ("one byte over the body limit", JSON, vec![b' '; LIMIT + 1], 413, "payload_too_large", "262144 bytes"),
        ("300 KiB body", JSON, vec![b' '; 300 * 1024], 413, "payload_too_large", "limit"),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, content_type, body, status, code, message) in cases {
        let length = body.len();
        let reply = send(&app, content_type, Body::from(body), Some(length)).await;
        assert_refusal(name, &reply, status, code, message);
    }

    // A chunked body (no Content-Length) far over the limit: refused once the
    // limit is passed, with the JSON error, without reading the rest.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let chunk = Bytes::from(vec![b' '; 8 * 1024]);
    let chunks = (0..1000).map(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<Bytes, std::io::Error>(chunk.clone())
    });
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let reply = send(&app, JSON, body, None).await;
    assert_refusal(
        "chunked body over the limit",
        &reply,
        413,
        "payload_too_large",
        "262144 bytes",
    );
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled <= LIMIT / (8 * 1024) + 2,
        "{pulled} of 1000 chunks were read; the limit should stop reading at 33"
    );

    assert_eq!(backend.triggers.len(), 0, "a refused request enqueues nothing");
    assert!(backend.triggers_dlq.is_empty());
    let mut ids = vec![ID.to_owned(), "batch-ok-0".to_owned()];
    ids.extend((0..=100).map(|i| format!("b-{i}")));
    for id in &ids {
        assert!(
            !backend.dedupe.seen(WS, &identity(id)).await.expect("dedupe"),
            "a refused request remembers no id ({id})"
        );
    }
}

#[tokio::test]
async fn valid_requests_are_accepted_and_enqueued() {
    let (backend, app) = backend_and_router(LIMIT);
    let mut at_the_limit = event("ok-4");
    // 1 (event) + 1 (data) + 62 arrays = 64 levels; brackets in strings do not count.
    at_the_limit["data"] = json!({"deep": nested(62), "s": "\"]]]}}}\\[[[{{{"});
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<&str>, Vec<u8>, &str)> = vec![
        ("single event", JSON, event("ok-1").to_string().into_bytes(), "ok-1"),
        ("charset parameter", Some("application/json; charset=utf-8"), event("ok-2").to_string().into_bytes(), "ok-2"),
        ("cloudevents+json", CE, event("ok-3").to_string().into_bytes(), "ok-3"),
        ("nesting exactly at the limit", CE, at_the_limit.to_string().into_bytes(), "ok-4"),
        ("media type in capitals", Some("Application/CloudEvents+JSON; Charset=UTF-8"), event("ok-5").to_string().into_bytes(), "ok-5"),
    ];
    let singles = cases.len();
    for (name, content_type, body, id) in cases {
        let length = body.len();
        let reply = send(&app, content_type, Body::from(body), Some(length)).await;
        assert_eq!(
            (reply.status, reply.body["event_id"].as_str()),
            (StatusCode::ACCEPTED, Some(id)),
            "{name}: {}",
            reply.body
        );
    }

    // A valid event in small chunks without Content-Length.
    let bytes = event("ok-stream").to_string().into_bytes();
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let reply = send(&app, JSON, Body::from_stream(futures_util::stream::iter(chunks)), None).await;
    assert_eq!(
        (reply.status, reply.body["event_id"].as_str()),
        (StatusCode::ACCEPTED, Some("ok-stream")),
        "{}",
        reply.body
    );

    // A batch of exactly the maximum.
    let batch: Vec<Value> = (0..100).map(|i| event(&format!("batch-{i}"))).collect();
    let reply = send(&app, BATCH, Body::from(Value::Array(batch).to_string()), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["event_ids"].as_array().map(Vec::len), Some(100));

    assert_eq!(backend.triggers.len(), singles + 1 + 100);
    for id in [
        "ok-1",
        "ok-2",
        "ok-3",
        "ok-4",
        "ok-5",
        "ok-stream",
        "batch-0",
        "batch-99",
    ] {
        assert!(
            backend.dedupe.seen(WS, &identity(id)).await.expect("dedupe"),
            "{id} is remembered"
        );
    }
}

#[tokio::test]
async fn the_configured_body_limit_is_used_and_named() {
    let (backend, app) = backend_and_router(1024);
    let mut big = event("too-big");
    big["data"] = json!({"pad": "x".repeat(2048)});
    let body = big.to_string().into_bytes();
    let reply = send(&app, JSON, Body::from(body), None).await;
    assert_refusal("over a 1 KiB limit", &reply, 413, "payload_too_large", "1024 bytes");
    let reply = send(&app, JSON, Body::from(event("small").to_string()), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(backend.triggers.len(), 1);
}

/// The management routes refuse in JSON too, including what the framework
/// refuses before a handler runs (an undecodable path, a body over the limit).
#[tokio::test]
async fn management_routes_refuse_with_json_errors() {
    let (_, app) = backend_and_router(LIMIT);
    let cases: Vec<(&str, &str, Body, StatusCode, &str)> = vec![
        (
            "GET",
            "/v1/workspaces/ws/workflows/%FF",
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "GET",
            "/v1/workspaces/w%23s/workflows/wf",
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "POST",
            "/v1/workspaces/ws/workflows",
            Body::from(vec![b' '; LIMIT + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "POST",
            "/v1/workspaces/ws/workflows",
            Body::from("{"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "PUT",
            "/v1/workspaces/ws/workflows/wf",
            Body::from("[]"),
            StatusCode::BAD_REQUEST,
            "invalid_document",
        ),
        (
            "POST",
            "/v1/workspaces/ws/workflows/wf/rollback",
            Body::from("{}"),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "GET",
            "/v1/workspaces/ws/workflows/wf/versions/99999999999",
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "invalid_version",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let request = Request::builder().method(method).uri(uri).body(body).expect("request");
        let response = app.clone().oneshot(request).await.expect("response");
        assert_eq!(response.status(), status, "{method} {uri}");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{method} {uri}: not JSON: {bytes:?}"));
        assert_eq!(body["error"]["code"], code, "{method} {uri}: {body}");
    }
}
