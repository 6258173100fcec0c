//! The web dashboard in a real browser (Debian's headless Chromium, driven
//! through chromedriver) against `hookflow dev` with keys required: sign in
//! with an operator key, filter to failed runs, open one, read the failing
//! step's error and response, replay it and see it succeed. Event data and
//! the peer's response carry `<script>` and `<img onerror>` payloads, which
//! must show as text and never run. Screenshots go to
//! `target/screenshots/`.

mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

use hookflow_cli::dev::{DevConfig, DevServer};
use hookflow_core::WorkflowDefinition;
use serde_json::{json, Value};
use webdriver::Browser;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WS: &str = "ws_dash";
const BOOTSTRAP_KEY: &str = "hfk_0123456789abcdef_ZGFzaGJvYXJkLXRlc3QtYm9vdHN0cmFwLWtleS0wMDA";
const PAYLOAD: &str = "<script>window.__pwned='script'</script><img src=x onerror=\"window.__pwned='img'\">";
const WAIT: Duration = Duration::from_secs(20);

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/screenshots")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_finds_reads_and_replays_a_failed_run_in_the_browser() {
    let peer = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm"))
        .respond_with(ResponseTemplate::new(502).set_body_raw(PAYLOAD, "text/html"))
        .up_to_n_times(1)
        .mount(&peer)
        .await;
    let workflow = WorkflowDefinition::from_value(json!({"id": "wf_dash", "workspace_id": WS, "name": "dash",
        "status": "active", "scope": {"workspace": true}, "trigger": {"type": "Form.Submitted"}, "start": "crm",
        "steps": {"crm": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/crm", peer.uri()),
            "body": {"name": "{{ form.name }}"}}, "retry": {"max_attempts": 1}}}}))
    .expect("workflow");
    Mock::given(method("POST"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&peer)
        .await;
    let fine = WorkflowDefinition::from_value(json!({"id": "wf_fine", "workspace_id": WS, "name": "fine",
        "status": "active", "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "ok",
        "steps": {"ok": {"action": {"type": "HttpRequest", "method": "POST", "url": format!("{}/ok", peer.uri())}}}}))
    .expect("workflow");
    let server = DevServer::start(
        DevConfig {
            addr: "127.0.0.1:0".parse().expect("address"),
            require_keys: true,
            bootstrap_key: Some(BOOTSTRAP_KEY.into()),
            bootstrap_workspace: WS.into(),
            ..DevConfig::default()
        },
        vec![workflow, fine],
    )
    .await
    .expect("dev starts");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    // An operator key, made by the admin, is what on-call signs in with.
    let minted: Value = http
        .post(format!("{base}/v1/workspaces/{WS}/keys"))
        .bearer_auth(BOOTSTRAP_KEY)
        .json(&json!({"role": "operator", "name": "on-call"}))
        .send()
        .await
        .expect("POST keys")
        .json()
        .await
        .expect("key JSON");
    let operator_key = minted["key"].as_str().expect("a minted key").to_owned();
    let event = json!({"specversion": "1.0", "id": "evt-dash-1", "source": "tests", "type": "Form.Submitted",
        "workspaceid": WS, "data": {"form": {"name": "<img src=x onerror=\"window.__pwned='event'\">"}}});
    let won = json!({"specversion": "1.0", "id": "evt-dash-2", "source": "tests", "type": "Prize.Won",
        "workspaceid": WS, "data": {}});
    for event in [event, won] {
        let accepted = http
            .post(format!("{base}/v1/events"))
            .bearer_auth(BOOTSTRAP_KEY)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
            .send()
            .await
            .expect("POST events");
        assert_eq!(accepted.status().as_u16(), 202);
    }

    let page = http.get(format!("{base}/")).send().await.expect("GET /");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );

    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for("[data-test=workspace]", WAIT)
        .await
        .send_keys(WS)
        .await;
    browser
        .wait_for("[data-test=key]", WAIT)
        .await
        .send_keys(&operator_key)
        .await;
    browser.wait_for("[data-test=signin] button", WAIT).await.click().await;
    let workflows = browser.wait_for_text("#app table", "wf_dash", WAIT).await;
    assert!(
        workflows.contains("wf_fine") && workflows.contains("Form.Submitted"),
        "{workflows}"
    );
    let stored = browser
        .execute("return [sessionStorage.getItem('hookflow.key'), location.href]")
        .await;
    assert_eq!(stored[0], operator_key.as_str(), "the key lives in sessionStorage");
    assert!(
        !stored[1].as_str().unwrap_or_default().contains(&operator_key),
        "never in the URL"
    );

    // 1. Both runs are listed; the filter leaves the failed one.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        browser.goto(&format!("{base}/#/runs")).await;
        browser.wait_for("[data-test=run-row], [data-test=no-runs]", WAIT).await;
        let rows = browser.all("[data-test=run-row]").await;
        let mut statuses = vec![];
        for row in &rows {
            statuses.push(row.try_text().await.unwrap_or_default());
        }
        let ended = statuses
            .iter()
            .filter(|s| s.contains("failed") || s.contains("succeeded"))
            .count();
        if ended == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the two runs did not end: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser.goto(&format!("{base}/#/workflows")).await;
    }
    browser
        .wait_for("[data-test=status-filter] option[value=failed]", WAIT)
        .await
        .click()
        .await;
    browser.wait_for("[data-test=apply-filters]", WAIT).await.click().await;
    let deadline = std::time::Instant::now() + WAIT;
    while browser.all("[data-test=run-row]").await.len() != 1 {
        assert!(std::time::Instant::now() < deadline, "the filter did not leave one run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = browser.wait_for_text("[data-test=run-row]", "failed", WAIT).await;
    assert!(row.contains("wf_dash"), "{row}");
    let hash = browser.execute("return location.hash").await;
    assert!(hash.as_str().unwrap_or_default().contains("status=failed"), "{hash}");
    browser.screenshot(&screenshot("runs-failed.png")).await;

    // 2. Open it: the failing step's error and the peer's response, as text.
    browser.wait_for("[data-test=run-link]", WAIT).await.click().await;
    let error = browser.wait_for_text("[data-test=step-error]", "502", WAIT).await;
    assert!(error.contains("502"), "{error}");
    let response = browser
        .wait_for_text("[data-test=response-pane]", "window.__pwned='script'", WAIT)
        .await;
    assert!(
        response.contains("<img src=x onerror="),
        "the payload shows as text: {response}"
    );
    let request = browser.wait_for_text("[data-test=request-pane]", "POST", WAIT).await;
    assert!(request.contains("/crm"), "{request}");
    let shown_event = browser
        .wait_for_text("[data-test=event-pane]", "evt-dash-1", WAIT)
        .await;
    assert!(shown_event.contains("onerror"), "{shown_event}");
    browser.screenshot(&screenshot("run-failed.png")).await;

    // 3. Replay once the peer is back: the run succeeds.
    Mock::given(method("POST"))
        .and(path("/crm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&peer)
        .await;
    browser.wait_for("[data-test=replay]", WAIT).await.click().await;
    browser.wait_for_text("h1 [data-test=status]", "succeeded", WAIT).await;
    browser.screenshot(&screenshot("run-replayed.png")).await;

    // 4. Nothing from the data ever ran, and no element was made of it.
    let ran = browser
        .execute("return [typeof window.__pwned, document.querySelectorAll('#app img, #app script').length]")
        .await;
    assert_eq!(
        ran,
        json!(["undefined", 0]),
        "an injected payload ran or became an element"
    );

    browser.quit().await;
    server.shutdown().await;
}
