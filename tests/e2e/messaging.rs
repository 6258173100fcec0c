//! Email and SMS steps: rendered (values in HTML escaped), sent once per
//! (run, step), shown in `hookflow dev`'s sink, and on moto through SES v2
//! and SNS, where an unverified sender is refused for good.

use hookflow_core::messaging::Sent;
use hookflow_tests::{event, Stack, WS};
use serde_json::{json, Value};

fn welcome_workflow(from: &str) -> Value {
    json!({"id": "wf_welcome", "workspace_id": WS, "name": "welcome", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Contact.Created"}, "start": "mail",
        "steps": {
          "mail": {"action": {"type": "SendEmail", "from": from, "to": ["{{ contact.email }}"],
            "subject": "Welcome {{ contact.first_name }} ({{ event.id }})", "text": "Hi {{ contact.first_name }}",
            "html": "<p>Hi <b>{{ contact.first_name }}</b></p>"}, "retry": {"max_attempts": 1}, "next": "text"},
          "text": {"action": {"type": "SendSms", "phone_number": "{{ contact.phone }}",
            "message": "Welcome {{ contact.first_name }}", "sender_id": "Komo"}}}})
}

fn created(id: &str) -> Value {
    event(
        id,
        "Contact.Created",
        &[],
        json!({"contact": {"email": "ana@example.com",
        "first_name": "Ana <script>", "phone": "+44 7700 900123"}}),
    )
}

#[tokio::test]
async fn a_welcome_email_and_text_are_sent_once_and_shown_in_the_sink() {
    let stack = Stack::start(vec![welcome_workflow("news@example.com")]).await;
    stack.post_event(&created("evt-welcome")).await;
    // The same event again: absorbed, nothing sent twice.
    stack.post_event(&created("evt-welcome")).await;
    let run = &stack.wait_for_finished_runs(1).await[0];
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let outputs: Vec<&Value> = run["steps"]
        .as_array()
        .map(|s| s.iter().map(|s| &s["output"]).collect())
        .unwrap_or_default();
    assert_eq!(outputs[0]["to"], json!(["ana@example.com"]));
    assert_eq!(outputs[1]["phone_number"], "+447700900123");

    let sent = stack.server.memory.as_ref().expect("in memory").outbox.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let Sent::Email(email) = &sent[0] else {
        panic!("an email first: {sent:?}")
    };
    assert_eq!(email.html.as_deref(), Some("<p>Hi <b>Ana &lt;script&gt;</b></p>"));
    assert_eq!(email.text.as_deref(), Some("Hi Ana <script>"));
    let Sent::Sms(sms) = &sent[1] else {
        panic!("a text second: {sent:?}")
    };
    assert_eq!(
        (sms.message.as_str(), sms.sender_id.as_deref()),
        ("Welcome Ana <script>", Some("Komo"))
    );

    let (_, shown) = stack.get("/dev/sink/email").await;
    assert_eq!(
        shown["requests"][0]["body"]["to"],
        json!(["ana@example.com"]),
        "{shown}"
    );
    let (_, shown) = stack.get("/dev/sink/sms").await;
    assert_eq!(shown["requests"][0]["body"]["phone_number"], "+447700900123", "{shown}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_number_that_is_not_e164_fails_the_step_without_sending() {
    let stack = Stack::start(vec![welcome_workflow("news@example.com")]).await;
    stack
        .post_event(&event(
            "evt-bad-phone",
            "Contact.Created",
            &[],
            json!({"contact": {"email": "ana@example.com", "first_name": "Ana", "phone": "07700 900123"}}),
        ))
        .await;
    let run = &stack.wait_for_finished_runs(1).await[0];
    assert_eq!(run["status"], "failed");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("not an E.164 phone number"), "{error}");
    let sent = stack.server.memory.as_ref().expect("in memory").outbox.sent();
    assert_eq!(sent.len(), 1, "the email went, the text did not: {sent:?}");
    stack.shutdown().await;
}

/// The emails moto's SES keeps, as its model listing shows them.
async fn ses_messages() -> Vec<Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the emulator");
    let models: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto's models")
        .json()
        .await
        .expect("JSON");
    models["ses"]["Message"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn on_moto_ses_sends_the_email_sns_the_text_and_an_unverified_sender_is_refused() {
    let stack = Stack::start_aws(vec![
        welcome_workflow("news@hookflow-e2e.example"),
        json!({"id": "wf_unverified", "workspace_id": WS, "name": "unverified", "status": "active",
            "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "mail",
            "steps": {"mail": {"action": {"type": "SendEmail", "from": "nobody@unverified.example",
                "to": ["ana@example.com"], "subject": "x", "text": "x"}}}}),
    ])
    .await;
    let config = hookflow_aws::sdk_config_loader().load().await;
    aws_sdk_sesv2::Client::new(&config)
        .create_email_identity()
        .email_identity("hookflow-e2e.example")
        .send()
        .await
        .expect("verify the sending domain");
    let id = format!("evt-ses-{}", ulid::Ulid::new());
    stack.post_event(&created(&id)).await;
    stack
        .post_event(&event("evt-unverified", "Prize.Won", &[], json!({})))
        .await;
    let runs = stack.wait_for_finished_runs(2).await;
    let welcome = runs
        .iter()
        .find(|r| r["workflow_id"] == "wf_welcome")
        .expect("welcome run");
    assert_eq!(welcome["status"], "succeeded", "{welcome:#}");
    let text_id = welcome["steps"][1]["output"]["message_id"].as_str().unwrap_or_default();
    assert!(!text_id.is_empty(), "SNS answered a message id: {welcome:#}");

    let ours: Vec<Value> = ses_messages()
        .await
        .into_iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(&id)))
        .collect();
    assert_eq!(ours.len(), 1, "sent once: {ours:?}");
    assert_eq!(ours[0]["body"], "<p>Hi <b>Ana &lt;script&gt;</b></p>");

    let refused = runs
        .iter()
        .find(|r| r["workflow_id"] == "wf_unverified")
        .expect("refused run");
    assert_eq!(refused["status"], "failed");
    assert_eq!(
        refused["steps"].as_array().map_or(0, Vec::len),
        1,
        "not retried: {refused:#}"
    );
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains("not verified"), "{error}");
    stack.shutdown().await;
}
