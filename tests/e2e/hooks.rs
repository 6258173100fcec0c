//! Inbound hooks over real HTTP on `hookflow dev`, with requests signed by
//! independent code (`tests/signers/sign.py`: the official Standard Webhooks
//! library, Python's `hmac`), forms posted by curl, and the inbound email
//! samples of Postmark and SendGrid (`events/hooks/`).

use std::process::Command;

use hookflow_core::ports::EventDedupe;
use hookflow_tests::{event, sign_hook as sign, Stack, WS};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::post_workflow;

type Headers = Vec<(String, String)>;
/// Signs `body` with `secret` as one kind of sender does.
type Signer = Box<dyn Fn(&str, &[u8]) -> Headers>;

async fn sink() -> MockServer {
    let sink = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sink)
        .await;
    sink
}

async fn received(sink: &MockServer) -> Vec<Value> {
    sink.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

/// A hook of the test workspace, with its one-time secret.
async fn create_hook(stack: &Stack, body: Value) -> Value {
    let response = stack
        .client
        .post(format!("{}/v1/workspaces/{WS}/hooks", stack.base))
        .json(&body)
        .send()
        .await
        .expect("POST hooks");
    let status = response.status().as_u16();
    let hook: Value = response.json().await.expect("JSON");
    assert_eq!(status, 201, "{hook}");
    hook
}

async fn manage(stack: &Stack, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = stack
        .client
        .request(method, format!("{}/v1/workspaces/{WS}/hooks/{path}", stack.base));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("hook route");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn publish(stack: &Stack, workflow: Value) -> (u16, Value) {
    let id = workflow["id"].as_str().expect("id").to_owned();
    let workflows = format!("{}/v1/workspaces/{WS}/workflows", stack.base);
    let created = stack
        .client
        .post(&workflows)
        .json(&workflow)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let response = stack
        .client
        .post(format!("{workflows}/{id}/publish"))
        .send()
        .await
        .expect("publish");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

struct Answer {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn post_hook(
    stack: &Stack,
    hook_id: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Answer {
    let mut request = stack
        .client
        .post(format!("{}/v1/hooks/{hook_id}", stack.base))
        .header("content-type", content_type)
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("POST hook");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut changed: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    changed.push((name.to_owned(), value.to_owned()));
    changed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_verify_refuse_alike_deduplicate_and_rotate() {
    let sink = sink().await;
    let stack = Stack::start(vec![]).await;
    let hook = create_hook(
        &stack,
        json!({"name": "crm", "kind": "webhook", "cardid": "card_1", "auth": {"type": "standard_webhooks"}}),
    )
    .await;
    let (id, secret) = (
        hook["id"].as_str().expect("id"),
        hook["secret"].as_str().expect("secret"),
    );
    assert!(id.starts_with("hk_") && id.len() == 35, "{id}");
    assert!(secret.starts_with("whsec_"), "{secret}");
    // The secret is shown once: reads carry its id only.
    let (_, shown) = manage(&stack, reqwest::Method::GET, id, None).await;
    assert!(
        shown.get("secret").is_none() && !shown.to_string().contains(&secret[6..]),
        "{shown}"
    );

    let workflow = post_workflow(
        "wf_crm",
        "Hook.crm",
        json!({"card": "card_1"}),
        &sink.uri(),
        json!({"order": "{{ order }}"}),
    );
    assert_eq!(publish(&stack, workflow).await.0, 200);

    let body = br#"{"order": {"id": 7, "total": 12.5}}"#;
    let signed = sign(&["standard-webhooks", secret, "msg_1", &now().to_string()], body);
    let accepted = post_hook(&stack, id, &signed, "application/json", body).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(accepted.json()["event_id"].as_str(), Some("msg_1"));
    let again = post_hook(&stack, id, &signed, "application/json", body).await;
    assert_eq!((again.status, again.json()["duplicate"].as_bool()), (202, Some(true)));

    // Every refusal: the same 401 body, nothing enqueued.
    let unknown = post_hook(
        &stack,
        "hk_00000000000000000000000000000000",
        &signed,
        "application/json",
        body,
    )
    .await;
    assert_eq!(unknown.status, 401);
    let other_secret = format!("whsec_{}", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY");
    let stale = (now() - 301).to_string();
    // The exact ±301 s boundary is checked with a fixed clock in
    // hooks::auth's unit tests; over HTTP the clock moves while the test
    // signs, so the future case keeps a second of margin.
    let future = (now() + 302).to_string();
    let good_sig = signed
        .iter()
        .find(|(k, _)| k == "webhook-signature")
        .expect("signature")
        .1
        .clone();
    let refused: Vec<(&str, Headers, &[u8])> = vec![
        (
            "tampered body",
            signed.clone(),
            br#"{"order": {"id": 8, "total": 12.5}}"#,
        ),
        (
            "wrong secret",
            sign(&["standard-webhooks", &other_secret, "msg_2", &now().to_string()], body),
            body,
        ),
        (
            "301 s old",
            sign(&["standard-webhooks", secret, "msg_3", &stale], body),
            body,
        ),
        (
            "301 s ahead",
            sign(&["standard-webhooks", secret, "msg_4", &future], body),
            body,
        ),
        ("empty v1,", with(&signed, "webhook-signature", "v1,"), body),
        (
            "truncated",
            with(&signed, "webhook-signature", &good_sig[..good_sig.len() - 6]),
            body,
        ),
        (
            "no signature",
            signed
                .iter()
                .filter(|(k, _)| k != "webhook-signature")
                .cloned()
                .collect(),
            body,
        ),
        (
            "no timestamp",
            signed
                .iter()
                .filter(|(k, _)| k != "webhook-timestamp")
                .cloned()
                .collect(),
            body,
        ),
    ];
    for (case, headers, body) in refused {
        let answer = post_hook(&stack, id, &headers, "application/json", body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (401, unknown.body.as_str()),
            "{case}"
        );
    }
    let (status, _) = manage(&stack, reqwest::Method::PATCH, id, Some(json!({"status": "disabled"}))).await;
    assert_eq!(status, 200);
    let fresh = sign(&["standard-webhooks", secret, "msg_5", &now().to_string()], body);
    let disabled = post_hook(&stack, id, &fresh, "application/json", body).await;
    assert_eq!(
        (disabled.status, disabled.body.as_str()),
        (401, unknown.body.as_str()),
        "disabled"
    );
    manage(&stack, reqwest::Method::PATCH, id, Some(json!({"status": "enabled"}))).await;

    // Rotation: both secrets verify until the old one is revoked.
    let (status, rotated) = manage(&stack, reqwest::Method::POST, &format!("{id}/rotate"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("new secret");
    let old_id = hook["secret_id"].as_str().expect("secret id");
    for (n, key) in [(6, secret), (7, new_secret)] {
        let headers = sign(
            &["standard-webhooks", key, &format!("msg_{n}"), &now().to_string()],
            body,
        );
        assert_eq!(
            post_hook(&stack, id, &headers, "application/json", body).await.status,
            202,
            "msg_{n}"
        );
    }
    let (status, _) = manage(&stack, reqwest::Method::DELETE, &format!("{id}/secrets/{old_id}"), None).await;
    assert_eq!(status, 200);
    let old = sign(&["standard-webhooks", secret, "msg_8", &now().to_string()], body);
    assert_eq!(post_hook(&stack, id, &old, "application/json", body).await.status, 401);
    let new = sign(&["standard-webhooks", new_secret, "msg_9", &now().to_string()], body);
    assert_eq!(post_hook(&stack, id, &new, "application/json", body).await.status, 202);

    // msg_1 (once), msg_6, msg_7, msg_9: four runs, each on the card-scoped workflow.
    let runs = stack.wait_for_finished_runs(4).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let bodies = received(&sink).await;
    assert_eq!(bodies.len(), 4);
    assert_eq!(bodies[0]["order"], json!({"id": 7, "total": 12.5}));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_presets_bearer_basic_and_none_verify_and_refuse() {
    let sink = sink().await;
    let stack = Stack::start(vec![]).await;
    // Every hook below emits Hook.signed, and one workflow counts what got in.
    create_hook(
        &stack,
        json!({"name": "signed", "kind": "webhook", "auth": {"type": "bearer"}}),
    )
    .await;
    let counter = post_workflow(
        "wf_signed",
        "Hook.signed",
        json!({"workspace": true}),
        &sink.uri(),
        json!({}),
    );
    assert_eq!(publish(&stack, counter).await.0, 200);
    let body = br#"{"id": "evt_x", "object": "event"}"#;
    let secret = "a-sender-chosen-secret-1234";
    let cases: Vec<(Value, Signer)> = vec![
        (
            json!({"type": "hmac", "preset": "github"}),
            Box::new(|s, b| sign(&["github", s], b)),
        ),
        (
            json!({"type": "hmac", "preset": "shopify"}),
            Box::new(|s, b| sign(&["shopify", s], b)),
        ),
        (
            json!({"type": "hmac", "preset": "stripe"}),
            Box::new(|s, b| sign(&["stripe", s, &now().to_string()], b)),
        ),
        (
            json!({"type": "hmac", "header": "X-Acme-Signature", "prefix": "sha256=", "encoding": "hex"}),
            Box::new(|s, b| {
                let github = sign(&["github", s], b);
                vec![("X-Acme-Signature".to_owned(), github[0].1.clone())]
            }),
        ),
        (
            json!({"type": "bearer"}),
            Box::new(|s, _| vec![("Authorization".to_owned(), format!("Bearer {s}"))]),
        ),
        (
            json!({"type": "basic", "username": "acme"}),
            Box::new(|s, _| {
                use base64::Engine;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("acme:{s}"));
                vec![("Authorization".to_owned(), format!("Basic {token}"))]
            }),
        ),
    ];
    for (n, (auth, signer)) in cases.into_iter().enumerate() {
        let mut auth = auth;
        auth["secret"] = json!(secret);
        let hook = create_hook(
            &stack,
            json!({"name": format!("h{n}"), "kind": "webhook", "trigger_type": "Hook.signed", "auth": auth}),
        )
        .await;
        let id = hook["id"].as_str().expect("id");
        let good = signer(secret, body);
        assert_eq!(
            post_hook(&stack, id, &good, "application/json", body).await.status,
            202,
            "{auth}"
        );
        let tampered = post_hook(&stack, id, &good, "application/json", br#"{"id": "evt_y"}"#).await;
        let wrong = signer("another-secret-entirely-5678", body);
        let bad_auth = post_hook(&stack, id, &wrong, "application/json", body).await;
        let bare = post_hook(&stack, id, &[], "application/json", body).await;
        let expected_tamper = if auth["type"] == "hmac" { 401 } else { 202 };
        assert_eq!(tampered.status, expected_tamper, "tampered body, {auth}");
        assert_eq!((bad_auth.status, bare.status), (401, 401), "{auth}");
    }
    let stripe = create_hook(
        &stack,
        json!({"name": "stripe_old", "kind": "webhook", "trigger_type": "Hook.signed",
               "auth": {"type": "hmac", "preset": "stripe", "secret": secret}}),
    )
    .await;
    let old = sign(&["stripe", secret, &(now() - 301).to_string()], body);
    let id = stripe["id"].as_str().expect("id");
    assert_eq!(post_hook(&stack, id, &old, "application/json", body).await.status, 401);

    let open = create_hook(
        &stack,
        json!({"name": "open", "kind": "webhook", "auth": {"type": "none"}}),
    )
    .await;
    assert!(open.get("secret").is_none());
    let answer = post_hook(&stack, open["id"].as_str().expect("id"), &[], "text/plain", b"hello").await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    // Four HMAC hooks let their signed body in; bearer and basic sign no
    // body, so the "tampered" one got in too: 4 + 2 × 2. Every refusal
    // enqueued nothing.
    let runs = stack.wait_for_finished_runs(8).await;
    assert!(runs.iter().all(|r| r["workflow_id"] == "wf_signed"));
    stack.shutdown().await;
}

fn curl(args: &[&str]) -> (String, String) {
    let output = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code} %{redirect_url}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or_default();
    (status.trim().to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_hook_answers_browsers_and_lists_files_without_keeping_them() {
    let sink = sink().await;
    let stack = Stack::start(vec![]).await;
    let redirected = create_hook(
        &stack,
        json!({"name": "contact", "kind": "form", "auth": {"type": "none"}, "siteid": "site_1",
               "redirect_url": "https://example.com/thanks"}),
    )
    .await;
    let workflow = post_workflow(
        "wf_form",
        "Hook.contact",
        json!({"site": "site_1"}),
        &sink.uri(),
        json!({"fields": "{{ form_fields }}", "files": "{{ files }}"}),
    );
    assert_eq!(publish(&stack, workflow).await.0, 200);
    let url = format!("{}/v1/hooks/{}", stack.base, redirected["id"].as_str().expect("id"));
    let (status, _) = curl(&[
        "-H",
        "Accept: text/html",
        "--data-urlencode",
        "name=Ana Silva",
        "--data-urlencode",
        "topic=a",
        "--data-urlencode",
        "topic=b",
        &url,
    ]);
    assert_eq!(status, "303 https://example.com/thanks");

    let dir = tempfile::tempdir().expect("temp dir");
    let cv = dir.path().join("cv.pdf");
    std::fs::write(&cv, b"%PDF-1.4 not really").expect("write");
    let thanks = create_hook(
        &stack,
        json!({"name": "apply", "kind": "form", "auth": {"type": "none"}}),
    )
    .await;
    let workflow = post_workflow(
        "wf_apply",
        "Hook.apply",
        json!({"workspace": true}),
        &sink.uri(),
        json!({"fields": "{{ form_fields }}", "files": "{{ files }}"}),
    );
    assert_eq!(publish(&stack, workflow).await.0, 200);
    let url = format!("{}/v1/hooks/{}", stack.base, thanks["id"].as_str().expect("id"));
    let file = format!("cv=@{};type=application/pdf", cv.display());
    let (status, page) = curl(&["-H", "Accept: text/html", "-F", "name=Bo", "-F", &file, &url]);
    assert_eq!(status.trim(), "200");
    assert!(page.contains("Thank you"), "{page}");
    // Not a browser: a JSON answer.
    let (status, answer) = curl(&["-F", "name=Cy", &url]);
    assert_eq!(status.trim(), "202", "{answer}");

    let runs = stack.wait_for_finished_runs(3).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let bodies = received(&sink).await;
    let fields: Vec<&Value> = bodies.iter().map(|b| &b["fields"]).collect();
    assert!(
        fields.contains(&&json!({"name": "Ana Silva", "topic": ["a", "b"]})),
        "{bodies:#?}"
    );
    let with_file = bodies
        .iter()
        .find(|b| b["fields"] == json!({"name": "Bo"}))
        .expect("the multipart post");
    assert_eq!(
        with_file["files"],
        json!([{"field": "cv", "name": "cv.pdf", "content_type": "application/pdf", "size": 19}])
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_hooks_normalise_postmark_and_sendgrid() {
    let sink = sink().await;
    let stack = Stack::start(vec![]).await;
    let hook = create_hook(
        &stack,
        json!({"name": "support", "kind": "email", "auth": {"type": "basic", "username": "postmark"}}),
    )
    .await;
    let (id, secret) = (
        hook["id"].as_str().expect("id"),
        hook["secret"].as_str().expect("secret"),
    );
    let workflow = post_workflow(
        "wf_mail",
        "Hook.support",
        json!({"workspace": true}),
        &sink.uri(),
        json!({"email": "{{ email }}"}),
    );
    assert_eq!(publish(&stack, workflow).await.0, 200);
    let basic = {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("postmark:{secret}"));
        vec![("Authorization".to_owned(), format!("Basic {token}"))]
    };
    let postmark = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/hooks/postmark-inbound.json"
    ))
    .expect("sample");
    let answer = post_hook(&stack, id, &basic, "application/json", &postmark).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        answer.json()["event_id"].as_str(),
        Some("73e6d360-66eb-11e1-8e72-a8904824019b"),
        "Postmark's own MessageID is the event id: a sender cannot choose it"
    );
    assert!(
        post_hook(&stack, id, &basic, "application/json", &postmark)
            .await
            .json()["duplicate"]
            .as_bool()
            == Some(true)
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let attachment = dir.path().join("invoice.txt");
    std::fs::write(&attachment, b"invoice 42").expect("write");
    let sendgrid: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/hooks/sendgrid-inbound-fields.json"
        ))
        .expect("sample"),
    )
    .expect("fields");
    let mut args = vec!["-u".to_owned(), format!("postmark:{secret}")];
    for (name, value) in sendgrid.as_object().expect("fields") {
        // Taken literally: `-F` would read `;type=` and `@file` in values.
        args.push("--form-string".into());
        args.push(format!("{name}={}", value.as_str().unwrap_or_default()));
    }
    args.push("-F".into());
    args.push(format!("attachment1=@{};type=text/plain", attachment.display()));
    args.push(format!("{}/v1/hooks/{id}", stack.base));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, body) = curl(&args);
    assert_eq!(status.trim(), "202", "{body}");

    stack.wait_for_finished_runs(2).await;
    let emails: Vec<Value> = received(&sink).await.into_iter().map(|b| b["email"].clone()).collect();
    let postmark_email = emails
        .iter()
        .find(|e| e["subject"] == "Order 1042 arrived damaged")
        .expect("postmark");
    assert_eq!(postmark_email["from"], "ana@example.com");
    assert_eq!(postmark_email["to"], json!(["support@inbound.example.com"]));
    assert_eq!(postmark_email["in_reply_to"], "<order-1042@shop.example.com>");
    assert_eq!(
        postmark_email["message_id"],
        "<CAKdRL6KqdCw0Ee8TKx6WmTg@mail.example.com>"
    );
    assert_eq!(
        postmark_email["attachments"],
        json!([{"name": "photo.jpg", "content_type": "image/jpeg", "size": 48213}])
    );
    let sendgrid_email = emails
        .iter()
        .find(|e| e["subject"] == "Invoice question")
        .expect("sendgrid");
    assert_eq!(sendgrid_email["from"], "bo@example.com");
    assert_eq!(sendgrid_email["to"], json!(["support@parse.example.com"]));
    assert_eq!(sendgrid_email["message_id"], "<sg-4711@mail.example.com>");
    assert_eq!(
        sendgrid_email["attachments"],
        json!([{"name": "invoice.txt", "content_type": "text/plain", "size": 10}])
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_unknown_hooks_at_publish_and_event_identity() {
    let stack = Stack::start(vec![]).await;
    // Publishing a Hook.<name> workflow needs the hook.
    let (status, refused) = publish(
        &stack,
        post_workflow(
            "wf_x",
            "Hook.nobody",
            json!({"workspace": true}),
            "http://127.0.0.1:9",
            json!({}),
        ),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["details"]["problems"][0]["code"].as_str()),
        (422, Some("unknown_hook")),
        "{refused}"
    );

    // A rate limit of 1/s: the second request at once gets 429 and Retry-After.
    let slow = create_hook(
        &stack,
        json!({"name": "slow", "kind": "webhook", "auth": {"type": "none"}, "rate_limit": 1}),
    )
    .await;
    let id = slow["id"].as_str().expect("id");
    assert_eq!(post_hook(&stack, id, &[], "text/plain", b"1").await.status, 202);
    let limited = post_hook(&stack, id, &[], "text/plain", b"2").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.headers.get("retry-after").is_some());

    // Body limits: the default 256 KiB, up to 1 MiB per hook; unknown media types.
    let big = vec![b'a'; 300 * 1024];
    let small = create_hook(
        &stack,
        json!({"name": "small", "kind": "webhook", "auth": {"type": "none"}}),
    )
    .await;
    let small_id = small["id"].as_str().expect("id");
    let too_large = post_hook(&stack, small_id, &[], "text/plain", &big).await;
    assert_eq!(
        (too_large.status, too_large.json()["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let roomy = create_hook(
        &stack,
        json!({"name": "roomy", "kind": "webhook", "auth": {"type": "none"}, "max_body_bytes": 1_048_576}),
    )
    .await;
    assert_eq!(
        post_hook(&stack, roomy["id"].as_str().expect("id"), &[], "text/plain", &big)
            .await
            .status,
        202
    );
    let unsupported = post_hook(&stack, small_id, &[], "application/pdf", b"%PDF").await;
    assert_eq!(unsupported.status, 415, "{}", unsupported.body);
    let broken = post_hook(&stack, small_id, &[], "application/json", b"{").await;
    assert_eq!(
        (broken.status, broken.json()["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );

    // At /v1/events identity is (source, id): one id from two sources is two events.
    let sink = sink().await;
    let stack_workflow = post_workflow("wf_ev", "Prize.Won", json!({"workspace": true}), &sink.uri(), json!({}));
    assert_eq!(publish(&stack, stack_workflow).await.0, 200);
    let mut crm = event("shared-id", "Prize.Won", &[], json!({}));
    crm["source"] = json!("crm");
    let mut shop = crm.clone();
    shop["source"] = json!("shop");
    for ev in [&crm, &shop, &crm] {
        assert_eq!(stack.post_event(ev).await.0, 202);
    }
    let runs = stack.wait_for_finished_runs(2).await;
    assert!(runs.iter().all(|r| r["workflow_id"] == "wf_ev"), "{runs:#?}");
    // Ingest remembered each identity (that a repeat is then not enqueued
    // is checked exactly on the queue in engine::ingest's unit tests).
    let memory = stack.server.memory.clone().expect("in memory");
    for source in ["crm", "shop"] {
        let identity = hookflow_core::event::event_identity(source, "shared-id");
        assert!(memory.dedupe.seen(WS, &identity).await.expect("dedupe"), "{source}");
    }
    stack.shutdown().await;
}
