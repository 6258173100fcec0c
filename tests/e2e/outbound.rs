//! Outbound webhooks: endpoints made through the API receive signed
//! Standard Webhooks messages, checked by the official library; a 410
//! disables an endpoint and announces it; resend and recover send failed
//! messages again. Then, on a test clock: the retry schedule, the hops
//! through the queue, the slow-down, the five-day disable and the SSRF guard.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookflow_core::memory::{MemoryBackend, QueueSettings};
use hookflow_core::metrics::Counter;
use hookflow_core::outbound::{
    AttemptOutcome, DeliveryOrder, DeliveryReport, DeliveryTarget, DisabledBecause, EndpointRequest, MessageStatus,
    OutboundStore, WebhookDeliverer, RETRY_SCHEDULE,
};
use hookflow_core::ports::{Clock, Delivery, HttpClient, PortResult, Queue, RunLog};
use hookflow_core::wiring::Stores;
use hookflow_core::TriggerEvent;
use hookflow_http_client::{NetworkPolicy, ReqwestHttpClient};
use hookflow_tests::{event, Stack, PIPELINE_WAIT, WS};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Runs `tests/signers/verify.py`: the official library's verdict on one
/// received request, as the payload it decoded.
fn verify(secret: &str, request: &Request) -> Result<Value, String> {
    let python = std::env::var("HOOKFLOW_TEST_PYTHON")
        .expect("HOOKFLOW_TEST_PYTHON is not set: run the tests with `make test`, which installs standardwebhooks");
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("body");
    let headers = dir.path().join("headers.json");
    std::fs::write(&body, &request.body).expect("write body");
    let map: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or_default())))
        .collect();
    std::fs::write(&headers, serde_json::to_vec(&map).expect("headers")).expect("write headers");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/signers/verify.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(secret)
        .arg(&body)
        .arg(&headers)
        .output()
        .expect("run the verifier");
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("payload JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn header(request: &Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn requests_at(server: &MockServer, wanted: usize) -> Vec<Request> {
    let deadline = Instant::now() + PIPELINE_WAIT;
    loop {
        let received = server.received_requests().await.unwrap_or_default();
        if received.len() >= wanted {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {wanted} requests arrived",
            received.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_endpoint(stack: &Stack, url: &str, types: &[&str]) -> Value {
    let (status, created) = stack
        .call(
            Method::POST,
            &format!("/v1/workspaces/{WS}/webhook-endpoints"),
            Some(json!({"url": url, "event_types": types, "description": "tests"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// PATCHes `enabled` and checks the status the answer shows.
async fn set_enabled(stack: &Stack, endpoint: &Value, enabled: bool) {
    let (status, answer) = stack
        .call(
            Method::PATCH,
            &endpoint_path(endpoint, ""),
            Some(json!({"enabled": enabled})),
        )
        .await;
    let expected = if enabled { "enabled" } else { "disabled" };
    assert_eq!((status, answer["status"].as_str()), (200, Some(expected)), "{answer}");
}

fn endpoint_path(endpoint: &Value, tail: &str) -> String {
    format!(
        "/v1/workspaces/{WS}/webhook-endpoints/{}{tail}",
        endpoint["id"].as_str().expect("id")
    )
}

fn prize_workflow() -> Value {
    json!({"id": "wf_prize", "workspace_id": WS, "name": "prize", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "note",
        "steps": {"note": {"action": {"type": "SetVariables", "values": {"seen": true}}}}})
}

fn won(id: &str) -> Value {
    event(id, "Prize.Won", &[], json!({"prize": "mug"}))
}

#[tokio::test]
async fn deliveries_are_signed_as_the_official_library_verifies_through_a_rotation() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let stack = Stack::start(vec![prize_workflow()]).await;
    let endpoint = create_endpoint(
        &stack,
        &format!("{}/hook", server.uri()),
        &["Prize.Won", "Run.Succeeded"],
    )
    .await;
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{endpoint}");

    let (status, _) = stack.post_event(&won("evt_1")).await;
    assert_eq!(status, 202);
    let received = requests_at(&server, 2).await;
    let mut types = vec![];
    for request in &received {
        let payload = verify(&secret, request).unwrap_or_else(|e| panic!("the library refused: {e}"));
        assert!(header(request, "webhook-id").starts_with("msg_"));
        assert!(verify(OTHER_SECRET, request).is_err(), "another secret must not verify");
        types.push(payload["type"].as_str().unwrap_or_default().to_owned());
        if payload["type"] == "Prize.Won" {
            assert_eq!(payload["data"]["id"], "evt_1", "{payload}");
            assert_eq!(payload["data"]["data"]["prize"], "mug", "{payload}");
        } else {
            assert_eq!(payload["data"]["workflow_id"], "wf_prize", "{payload}");
            assert_eq!(payload["data"]["status"], "succeeded", "{payload}");
        }
    }
    types.sort();
    assert_eq!(types, ["Prize.Won", "Run.Succeeded"]);

    // While a rotation overlaps, both secrets verify the same message.
    let (status, rotated) = stack
        .call(Method::POST, &endpoint_path(&endpoint, "/rotate"), None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new_secret, secret);
    stack.post_event(&won("evt_2")).await;
    let received = requests_at(&server, 4).await;
    let after: Vec<&Request> = received[2..]
        .iter()
        .filter(|r| verify(&new_secret, r).is_ok_and(|p| p["type"] == "Prize.Won"))
        .collect();
    assert_eq!(
        after.len(),
        1,
        "the new secret verifies the message sent after the rotation"
    );
    assert_eq!(header(after[0], "webhook-signature").matches("v1,").count(), 2);
    assert!(
        verify(&secret, after[0]).is_ok(),
        "the old secret still verifies during the overlap"
    );

    // Answers never show a secret again; the attempt log shows each attempt.
    let (_, listed) = stack.get(&format!("/v1/workspaces/{WS}/webhook-endpoints")).await;
    let text = listed.to_string();
    assert!(!text.contains(&secret) && !text.contains(&new_secret), "{text}");
    let (_, shown) = stack.get(&endpoint_path(&endpoint, "")).await;
    assert_eq!(shown["secrets"].as_array().map(Vec::len), Some(2), "{shown}");
    let (status, log) = stack.get(&endpoint_path(&endpoint, "/attempts")).await;
    assert_eq!(status, 200, "{log}");
    let attempts = log["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 4, "{log}");
    assert!(
        attempts
            .iter()
            .all(|a| a["outcome"] == "delivered" && a["status_code"] == 204),
        "{log}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_is_announced() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&server)
        .await;
    let watcher = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&watcher)
        .await;
    let stack = Stack::start(vec![]).await;
    let gone = create_endpoint(&stack, &format!("{}/gone", server.uri()), &["Prize.Won"]).await;
    let watch = create_endpoint(&stack, &watcher.uri(), &["WebhookEndpoint.Disabled"]).await;

    stack.post_event(&won("evt_gone")).await;
    let announced = requests_at(&watcher, 1).await;
    let payload = verify(watch["secret"].as_str().expect("secret"), &announced[0]).expect("verified");
    assert_eq!(payload["type"], "WebhookEndpoint.Disabled", "{payload}");
    assert_eq!(payload["data"]["data"]["endpoint_id"], gone["id"], "{payload}");
    assert_eq!(payload["data"]["data"]["because"], "gone", "{payload}");

    let (_, shown) = stack.get(&endpoint_path(&gone, "")).await;
    assert_eq!(shown["status"], "disabled", "{shown}");
    assert_eq!(shown["disabled"]["because"], "gone", "{shown}");
    let (_, log) = stack.get(&endpoint_path(&gone, "/attempts")).await;
    assert_eq!(log["attempts"][0]["outcome"], "endpoint_disabled", "{log}");
    assert_eq!(log["attempts"][0]["status_code"], 410, "{log}");

    stack.post_event(&won("evt_after")).await;
    stack.wait_until_idle().await;
    assert_eq!(
        server.received_requests().await.map(|r| r.len()),
        Some(1),
        "nothing more goes to a disabled endpoint"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn recover_and_resend_send_failed_and_delivered_messages_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let stack = Stack::start(vec![]).await;
    let endpoint = create_endpoint(&stack, &server.uri(), &["Prize.Won"]).await;
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    set_enabled(&stack, &endpoint, false).await;

    let since = Utc::now() - chrono::Duration::seconds(1);
    for id in ["evt_r1", "evt_r2", "evt_r3"] {
        stack.post_event(&won(id)).await;
    }
    stack.wait_until_idle().await;
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(0));

    set_enabled(&stack, &endpoint, true).await;
    let (status, report) = stack
        .call(
            Method::POST,
            &endpoint_path(&endpoint, "/recover"),
            Some(json!({"since": since.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["resent"].as_array().map(Vec::len), Some(3), "{report}");
    assert_eq!(report["more"], false);
    let received = requests_at(&server, 3).await;
    let mut ids: Vec<String> = received.iter().map(|r| header(r, "webhook-id")).collect();
    for request in &received {
        verify(&secret, request).expect("a recovered message verifies");
    }

    // A delivered message sent again keeps its webhook-id, for receivers' dedupe.
    let (status, resent) = stack
        .call(
            Method::POST,
            &endpoint_path(&endpoint, "/resend"),
            Some(json!({"message_id": ids[0]})),
        )
        .await;
    assert_eq!(status, 202, "{resent}");
    let received = requests_at(&server, 4).await;
    assert_eq!(header(&received[3], "webhook-id"), ids[0]);
    let (_, log) = stack.get(&endpoint_path(&endpoint, "/attempts?limit=10")).await;
    assert!(
        log["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .all(|a| a["manual"] == true),
        "{log}"
    );

    // The dispatcher's listing still says disabled (it is kept 30 s): an
    // event now is read against the endpoint itself, and delivered.
    stack.post_event(&won("evt_r4")).await;
    let received = requests_at(&server, 5).await;
    let fresh = verify(&secret, &received[4]).expect("verified");
    assert_eq!(fresh["data"]["id"], "evt_r4", "{fresh}");

    let (status, refused) = stack
        .call(
            Method::POST,
            &endpoint_path(&endpoint, "/resend"),
            Some(json!({"message_id": "msg_nope"})),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (404, Some("message_not_found")),
        "{refused}"
    );
    let (status, refused) = stack
        .call(
            Method::POST,
            &endpoint_path(&endpoint, "/recover"),
            Some(json!({"since": "yesterday"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = stack
        .call(
            Method::POST,
            &format!("/v1/workspaces/{WS}/webhook-endpoints"),
            Some(json!({"url": "ftp://example.com", "event_types": ["Prize.Wonn"]})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("url"), "{refused}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three messages, three ids");
    stack.shutdown().await;
}

// ---- On a test clock ----------------------------------------------------

struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock") = at;
    }
    fn advance(&self, by: Duration) {
        let now = self.now();
        self.set(now + chrono::Duration::from_std(by).expect("duration"));
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

/// A queue that keeps what is sent to it, with the delay asked for: the
/// test plays the queue's part and hands each order to the deliverer.
#[derive(Default)]
struct SentMessages(Mutex<Vec<(String, Duration)>>);

impl SentMessages {
    fn take(&self) -> Vec<(String, Duration)> {
        std::mem::take(&mut *self.0.lock().expect("sent"))
    }

    fn take_orders(&self) -> Vec<(DeliveryTarget, Duration)> {
        self.take()
            .into_iter()
            .map(|(body, delay)| {
                let order = DeliveryOrder::from_body(&body).unwrap_or_else(|| panic!("not an order: {body}"));
                (order.webhook_delivery, delay)
            })
            .collect()
    }
}

#[async_trait]
impl Queue for SentMessages {
    fn name(&self) -> &str {
        "recorded"
    }
    async fn send(&self, body: String, delay: Duration) -> PortResult<()> {
        self.0.lock().expect("sent").push((body, delay));
        Ok(())
    }
    async fn receive(&self, _max: usize, _wait: Duration) -> PortResult<Vec<Delivery>> {
        Ok(vec![])
    }
    async fn ack(&self, _receipt: &str) -> PortResult<()> {
        Ok(())
    }
    async fn peek(&self, _max: usize) -> PortResult<Vec<String>> {
        Ok(vec![])
    }
}

struct Bench {
    backend: MemoryBackend,
    stores: Stores,
    clock: Arc<TestClock>,
    steps: Arc<SentMessages>,
    triggers: Arc<SentMessages>,
    deliverer: WebhookDeliverer,
}

fn bench(policy: NetworkPolicy) -> Bench {
    let backend = MemoryBackend::new(QueueSettings {
        visibility_timeout: Duration::from_secs(30),
        max_receive_count: 5,
    });
    let clock = Arc::new(TestClock(Mutex::new(Utc::now())));
    let stores = Stores::memory(&backend, clock.clone());
    let steps = Arc::new(SentMessages::default());
    let triggers = Arc::new(SentMessages::default());
    let http: Arc<dyn HttpClient> = Arc::new(ReqwestHttpClient::with_policy(policy).expect("client"));
    let deliverer = stores.webhook_deliverer(steps.clone(), triggers.clone(), http);
    Bench {
        backend,
        stores,
        clock,
        steps,
        triggers,
        deliverer,
    }
}

impl Bench {
    async fn endpoint(&self, url: &str, types: &[&str]) -> String {
        let request = EndpointRequest {
            url: url.to_owned(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            description: String::new(),
        };
        let (endpoint, _) = self
            .stores
            .webhook_endpoints(self.steps.clone())
            .create(WS, request)
            .await
            .expect("endpoint");
        endpoint.id
    }

    /// The event dispatched; its first order.
    async fn publish(&self, id: &str) -> DeliveryTarget {
        let event: TriggerEvent = serde_json::from_value(won(id)).expect("event");
        self.stores
            .dispatcher(self.steps.clone())
            .dispatch(&event)
            .await
            .expect("dispatch");
        let mut orders = self.steps.take_orders();
        assert_eq!(orders.len(), 1, "{orders:?}");
        let (order, delay) = orders.remove(0);
        assert_eq!(
            (order.attempt, delay),
            (1, Duration::ZERO),
            "the first attempt is immediate"
        );
        order
    }
}

async fn answering_server(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_string("upstream broke"))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_retry_schedule_is_followed_with_hops_through_the_queue() {
    let server = answering_server(500).await;
    let bench = bench(NetworkPolicy::allow_all());
    let endpoint_id = bench.endpoint(&server.uri(), &["Prize.Won"]).await;
    let mut order = bench.publish("evt_sched").await;
    let mut jittered = 0;
    for (index, nominal) in RETRY_SCHEDULE.iter().enumerate() {
        let report = bench.deliverer.deliver(&order).await.expect("deliver");
        assert_eq!(
            report,
            DeliveryReport::Attempted(AttemptOutcome::WillRetry),
            "attempt {}",
            index + 1
        );
        // The same order delivered again is absorbed.
        assert!(matches!(
            bench.deliverer.deliver(&order).await,
            Ok(DeliveryReport::Skipped(_))
        ));
        let mut sent = bench.steps.take_orders();
        assert_eq!(sent.len(), 1, "one next order after attempt {}", index + 1);
        let (next, delay) = sent.remove(0);
        assert_eq!(next.attempt, order.attempt + 1);
        let gap = (next.due_at - bench.clock.now()).to_std().expect("due later");
        let nominal_s = nominal.as_secs_f64();
        assert!(
            gap.as_secs_f64() >= nominal_s * 0.9 && gap.as_secs_f64() <= nominal_s * 1.1,
            "attempt {} waits {gap:?}, not {nominal:?} ± 10 %",
            index + 2
        );
        jittered += usize::from((gap.as_secs_f64() - nominal_s).abs() > 0.001);
        assert_eq!(
            delay,
            gap.min(Duration::from_secs(900)),
            "a queue delay is at most 15 minutes"
        );
        // Longer waits hop: an order that arrives early goes back on the queue.
        let mut hops = 0;
        while bench.clock.now() + chrono::Duration::seconds(900) < next.due_at {
            bench.clock.advance(Duration::from_secs(900));
            let report = bench.deliverer.deliver(&next).await.expect("hop");
            assert_eq!(report, DeliveryReport::Deferred { until: next.due_at });
            let (hopped, hop_delay) = bench.steps.take_orders().remove(0);
            assert_eq!(hopped, next, "a hop keeps the order as it was");
            assert!(hop_delay <= Duration::from_secs(900));
            hops += 1;
        }
        assert_eq!(
            hops > 0,
            gap > Duration::from_secs(900),
            "hops for attempt {}",
            index + 2
        );
        bench.clock.set(next.due_at);
        order = next;
    }
    assert!(jittered >= 5, "the waits carry jitter");
    let last = bench.deliverer.deliver(&order).await.expect("deliver");
    assert_eq!(
        last,
        DeliveryReport::Attempted(AttemptOutcome::Failed),
        "eight attempts in all"
    );
    assert!(bench.steps.take().is_empty(), "no ninth attempt");

    let received = server.received_requests().await.expect("requests");
    assert_eq!(received.len(), 8);
    let ids: std::collections::BTreeSet<String> = received.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(ids.len(), 1, "every retry carries the same webhook-id");
    let message = bench
        .backend
        .outbound
        .get_message(WS, &endpoint_id, &order.message_id)
        .await
        .expect("read")
        .expect("message");
    assert_eq!(message.status, MessageStatus::Failed);
    assert_eq!(message.attempts, 8);
    let log = bench
        .stores
        .webhook_endpoints(bench.steps.clone())
        .attempts(WS, &endpoint_id, 100, None)
        .await
        .expect("log");
    assert_eq!(log.attempts.len(), 8);
    assert_eq!(log.attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(log.attempts[0].response.as_deref(), Some("upstream broke"));
    assert!(log.attempts[1..].iter().all(|a| a.outcome == AttemptOutcome::WillRetry));
}

#[tokio::test]
async fn failing_for_five_days_disables_the_endpoint_with_an_event_and_a_metric() {
    let server = answering_server(503).await;
    let bench = bench(NetworkPolicy::allow_all());
    let endpoint_id = bench.endpoint(&server.uri(), &["Prize.Won"]).await;
    let endpoints = bench.stores.webhook_endpoints(bench.steps.clone());
    // One failure, then two quiet days: the next failure starts the streak.
    let early = bench.clock.now();
    let lone = bench.publish("evt_lone").await;
    bench.deliverer.deliver(&lone).await.expect("deliver");
    bench.steps.take();
    bench.clock.set(early + chrono::Duration::days(2));
    let start = bench.clock.now();
    let first = bench.publish("evt_day0").await;
    bench.deliverer.deliver(&first).await.expect("deliver");
    bench.steps.take();
    let endpoint = endpoints.get(WS, &endpoint_id).await.expect("get");
    assert_eq!(
        endpoint.failing_since,
        Some(start),
        "a day without failures ends a streak"
    );

    // Failures every twelve hours, up to a second short of five days.
    for half_day in 1..10 {
        bench.clock.set(start + chrono::Duration::hours(12 * half_day));
        let order = bench.publish(&format!("evt_half_{half_day}")).await;
        bench.deliverer.deliver(&order).await.expect("deliver");
        bench.steps.take();
    }
    bench
        .clock
        .set(start + chrono::Duration::days(5) - chrono::Duration::seconds(1));
    let almost = bench.publish("evt_almost").await;
    bench.deliverer.deliver(&almost).await.expect("deliver");
    bench.steps.take();
    let endpoint = endpoints.get(WS, &endpoint_id).await.expect("get");
    assert!(endpoint.disabled.is_none(), "not yet: {endpoint:?}");
    assert_eq!(endpoint.failing_since, Some(start));
    assert!(bench.triggers.take().is_empty());

    bench.clock.set(start + chrono::Duration::days(5));
    let last = bench.publish("evt_day5").await;
    bench.deliverer.deliver(&last).await.expect("deliver");
    bench.steps.take();
    let endpoint = endpoints.get(WS, &endpoint_id).await.expect("get");
    let disabled = endpoint.disabled.expect("disabled after five days");
    assert_eq!(disabled.because, DisabledBecause::FailingTooLong);
    assert!(disabled.detail.contains("503"), "{}", disabled.detail);
    assert_eq!(bench.backend.metrics.get(Counter::WebhookEndpointsDisabled), 1);
    let announced: Vec<TriggerEvent> = bench
        .triggers
        .take()
        .into_iter()
        .map(|(body, _)| serde_json::from_str(&body).expect("event"))
        .collect();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].event_type, "WebhookEndpoint.Disabled");
    assert_eq!(announced[0].data["endpoint_id"], endpoint_id.as_str());
    assert_eq!(announced[0].data["because"], "failing_too_long");

    // An attempt still scheduled fails without being made; recover finds it.
    let mut second = first.clone();
    second.attempt = 2;
    second.due_at = bench.clock.now();
    assert_eq!(
        bench.deliverer.deliver(&second).await.expect("deliver"),
        DeliveryReport::Abandoned
    );
    let failed = bench
        .backend
        .outbound
        .failed_since(WS, &endpoint_id, start, 10)
        .await
        .expect("failed index");
    assert!(failed.contains(&first.message_id), "{failed:?}");
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(13));
}

#[tokio::test]
async fn a_429_slows_the_endpoint_down_and_a_success_clears_its_streak() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let bench = bench(NetworkPolicy::allow_all());
    let endpoint_id = bench.endpoint(&server.uri(), &["Prize.Won"]).await;
    let first = bench.publish("evt_busy1").await;
    let second = bench.publish("evt_busy2").await;
    let now = bench.clock.now();
    assert_eq!(
        bench.deliverer.deliver(&first).await.expect("deliver"),
        DeliveryReport::Attempted(AttemptOutcome::WillRetry)
    );
    let (retry, _) = bench.steps.take_orders().remove(0);
    assert!(
        retry.due_at >= now + chrono::Duration::seconds(120),
        "Retry-After is a floor: {retry:?}"
    );

    let endpoint = bench
        .stores
        .webhook_endpoints(bench.steps.clone())
        .get(WS, &endpoint_id)
        .await
        .expect("get");
    let until = endpoint.throttled_until.expect("slowed down");
    assert_eq!(until, now + chrono::Duration::seconds(120));
    let report = bench.deliverer.deliver(&second).await.expect("deliver");
    let DeliveryReport::Deferred { until: deferred } = report else {
        panic!("other messages wait for the slow-down: {report:?}");
    };
    assert!(
        deferred >= until && deferred <= until + chrono::Duration::seconds(12),
        "spread over a tenth of the wait: {deferred} for {until}"
    );
    let (waiting, delay) = bench.steps.take_orders().remove(0);
    assert_eq!(waiting.attempt, 1);
    assert_eq!(delay, (deferred - now).to_std().expect("later"));

    bench.clock.set(deferred);
    assert_eq!(
        bench.deliverer.deliver(&waiting).await.expect("deliver"),
        DeliveryReport::Attempted(AttemptOutcome::Delivered)
    );
    let endpoint = bench
        .stores
        .webhook_endpoints(bench.steps.clone())
        .get(WS, &endpoint_id)
        .await
        .expect("get");
    assert_eq!((endpoint.failing_since, endpoint.throttled_until), (None, None));
}

#[tokio::test]
async fn deliveries_pass_the_ssrf_guard() {
    let bench = bench(NetworkPolicy::deny_private());
    let endpoint_id = bench.endpoint("http://127.0.0.1:9/hook", &["Prize.Won"]).await;
    let order = bench.publish("evt_ssrf").await;
    assert_eq!(
        bench.deliverer.deliver(&order).await.expect("deliver"),
        DeliveryReport::Attempted(AttemptOutcome::Failed),
        "a refused address fails at once: no later attempt would fare better"
    );
    assert!(bench.steps.take().is_empty());
    let log = bench
        .stores
        .webhook_endpoints(bench.steps.clone())
        .attempts(WS, &endpoint_id, 10, None)
        .await
        .expect("log");
    let attempt = &log.attempts[0];
    assert_eq!(attempt.status_code, None);
    let error = attempt.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("127.0.0.1") || error.contains("private") || error.contains("refused"),
        "{error}"
    );
}

#[tokio::test]
async fn a_run_the_reaper_ends_is_announced_as_failed() {
    let server = answering_server(200).await;
    let bench = bench(NetworkPolicy::allow_all());
    let endpoint_id = bench.endpoint(&server.uri(), &["Run.Failed"]).await;
    let started = bench.clock.now() - chrono::Duration::days(2);
    let run = hookflow_core::run::RunRecord {
        run_id: "run_stuck".into(),
        workspace_id: WS.into(),
        workflow_id: "wf_stuck".into(),
        workflow_version: 1,
        event_id: "evt_stuck".into(),
        trigger_type: "Prize.Won".into(),
        status: hookflow_core::run::RunStatus::Running,
        started_at: started,
        ended_at: None,
        error: None,
        replays: 0,
        test: false,
        replay_of: None,
        due_at: Some(started),
        contact_id: None,
        erased_at: None,
    };
    bench.backend.runs.create_run(&run).await.expect("run");
    let limits = hookflow_core::engine::DeliveryLimits::for_queue(Duration::from_secs(30), 5);
    let reaped = bench
        .stores
        .reaper(limits, bench.steps.clone())
        .reap()
        .await
        .expect("reap");
    assert_eq!(reaped.reaped, ["run_stuck"]);
    let mut orders = bench.steps.take_orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    let (order, _) = orders.remove(0);
    assert_eq!(order.endpoint_id, endpoint_id);
    assert_eq!(
        bench.deliverer.deliver(&order).await.expect("deliver"),
        DeliveryReport::Attempted(AttemptOutcome::Delivered)
    );
    let received = server.received_requests().await.expect("requests");
    let payload: Value = serde_json::from_slice(&received[0].body).expect("payload");
    assert_eq!(payload["type"], "Run.Failed", "{payload}");
    assert_eq!(payload["data"]["run_id"], "run_stuck", "{payload}");
    assert!(
        payload["data"]["error"].as_str().is_some_and(|e| e.contains("reaper")),
        "{payload}"
    );
}

/// The same door on DynamoDB and SQS (moto): the endpoint, its message and
/// attempt in the tables, the order through the steps queue.
#[tokio::test]
async fn deliveries_on_dynamodb_and_sqs_verify_with_the_official_library() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let stack = Stack::start_aws(vec![]).await;
    let endpoint = create_endpoint(&stack, &server.uri(), &["Prize.Won"]).await;
    let (status, _) = stack.post_event(&won("evt_aws")).await;
    assert_eq!(status, 202);
    let received = requests_at(&server, 1).await;
    let payload = verify(endpoint["secret"].as_str().expect("secret"), &received[0]).expect("verified");
    assert_eq!(payload["data"]["id"], "evt_aws", "{payload}");
    let deadline = Instant::now() + PIPELINE_WAIT;
    loop {
        let (_, log) = stack.get(&endpoint_path(&endpoint, "/attempts")).await;
        if log["attempts"][0]["outcome"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "no attempt logged: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, missing) = stack
        .get(&format!("/v1/workspaces/{WS}/webhook-endpoints/ep_nope"))
        .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("webhook_endpoint_not_found"))
    );
    stack.shutdown().await;
}
