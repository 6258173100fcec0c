//! Contacts over real HTTP on `hookflow dev`: the sponsor lead recipe (a
//! card-scoped workflow tags its leads, posts them to the sponsor, and the
//! tag is exported), the contacts API, and the CSV export read back by
//! Python's `csv` module, on the in-memory backend and on the emulator.

use hookflow_tests::{event, Stack, WS};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A company name a spreadsheet would run as a formula.
const INJECTION: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";

/// Parses a CSV export with Python's `csv` module: the rows as header → cell.
fn python_rows(csv: &[u8]) -> Vec<serde_json::Map<String, Value>> {
    let python =
        std::env::var("HOOKFLOW_TEST_PYTHON").expect("HOOKFLOW_TEST_PYTHON is not set: run the tests with `make test`");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("export.csv");
    std::fs::write(&file, csv).expect("write export");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/checkers/read_csv.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(&file)
        .output()
        .expect("run the CSV reader");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("rows JSON")
}

async fn contacts_call(stack: &Stack, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    stack
        .call(method, &format!("/v1/workspaces/{WS}/contacts{path}"), body)
        .await
}

async fn export(stack: &Stack, query: &str) -> Vec<u8> {
    let response = stack
        .client
        .get(format!("{}/v1/workspaces/{WS}/contacts?format=csv{query}", stack.base))
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap_or_default(),
        "text/csv; charset=utf-8"
    );
    response.bytes().await.expect("CSV body").to_vec()
}

fn sponsor_workflow(sponsor_url: &str) -> Value {
    json!({"id": "sponsor_leads", "workspace_id": WS, "name": "Sponsor A leads", "status": "active",
    "scope": {"card": "card_sponsor_a"}, "trigger": {"type": "Gameplay.DataCapturedQualified"},
    "start": "tag",
    "steps": {
        "tag": {"action": {"type": "UpdateContact", "add_tags": ["sponsor-a"],
                           "set": {"company": "{{ form_fields.company }}"}}, "next": "post"},
        "post": {"action": {"type": "HttpRequest", "method": "POST", "url": sponsor_url,
                            "body": {"email": "{{ contact.email }}", "company": "{{ form_fields.company }}"}}}
    }})
}

fn lead(n: usize, card: &str, company: &str) -> Value {
    event(
        &format!("lead-{n}"),
        "Gameplay.DataCapturedQualified",
        &[("cardid", card), ("contactid", &format!("ct_{n:03}"))],
        json!({"contact": {"email": format!("lead{n}@example.com"), "first_name": format!("Lead {n}")},
               "form_fields": {"company": company}}),
    )
}

#[tokio::test]
async fn sponsor_leads_are_tagged_posted_and_exported_as_safe_csv() {
    let sponsor = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sponsor)
        .await;
    let stack = Stack::start(vec![sponsor_workflow(&format!("{}/leads", sponsor.uri()))]).await;
    for n in 0..3 {
        let company = if n == 1 { INJECTION } else { "ACME" };
        let (status, body) = stack.post_event(&lead(n, "card_sponsor_a", company)).await;
        assert_eq!(status, 202, "{body}");
    }
    // Another card's lead is not the sponsor's.
    stack.post_event(&lead(9, "card_other", "Initech")).await;
    let runs = stack.wait_for_finished_runs(3).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    assert_eq!(sponsor.received_requests().await.unwrap_or_default().len(), 3);

    let (status, page) = contacts_call(&stack, reqwest::Method::GET, "?tag=sponsor-a&limit=2", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["contacts"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let (_, rest) = contacts_call(
        &stack,
        reqwest::Method::GET,
        &format!("?tag=sponsor-a&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest["contacts"].as_array().map(Vec::len), Some(1));
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    let rows = python_rows(&export(&stack, "&tag=sponsor-a").await);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap_or_default()).collect();
    assert_eq!(ids, vec!["ct_000", "ct_001", "ct_002"]);
    assert_eq!(rows[0]["email"], json!("lead0@example.com"));
    assert_eq!(rows[0]["first_name"], json!("Lead 0"), "properties are columns");
    assert_eq!(rows[0]["tags"], json!("sponsor-a"));
    assert_eq!(
        rows[1]["company"],
        json!(format!("'{INJECTION}")),
        "the formula is neutralised"
    );
    assert_eq!(rows[2]["company"], json!("ACME"));
    let (status, audit) = stack.get(&format!("/v1/workspaces/{WS}/audit")).await;
    assert_eq!(status, 200, "{audit}");
    let exports: Vec<&Value> = audit["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("GET ")))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        exports.len(),
        1,
        "the export is audited, the JSON pages are not: {audit}"
    );
    assert_eq!(
        exports[0]["target"],
        json!(format!("/v1/workspaces/{WS}/contacts?format=csv&tag=sponsor-a")),
        "with what it selected"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn the_contacts_api_creates_changes_refuses_and_erases() {
    let stack = Stack::start(vec![]).await;
    use reqwest::Method;
    let (status, created) = contacts_call(
        &stack,
        Method::POST,
        "",
        Some(json!({"email": "Ana@Example.com", "properties": {"plan": "pro"}, "tags": ["vip"]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, taken) = contacts_call(&stack, Method::POST, "", Some(json!({"email": "ana@example.COM"}))).await;
    assert_eq!(
        (status, taken["error"]["code"].as_str()),
        (409, Some("email_taken")),
        "{taken}"
    );

    let (status, patched) = contacts_call(
        &stack,
        Method::PATCH,
        &format!("/{id}"),
        Some(
            json!({"set": {"company": "ACME"}, "unset": ["plan"], "add_lists": ["newsletter"], "remove_tags": ["vip"]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["properties"], json!({"company": "ACME"}));
    assert_eq!(patched["lists"], json!(["newsletter"]));
    assert_eq!(patched["tags"], json!([]));
    let (status, bad) = contacts_call(&stack, Method::PATCH, &format!("/{id}"), Some(json!({"sett": {}}))).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{bad}"
    );
    let (status, _) = contacts_call(&stack, Method::PATCH, "/c_missing", Some(json!({"add_tags": ["x"]}))).await;
    assert_eq!(status, 404);
    let (status, bad) = contacts_call(&stack, Method::GET, "?format=xml", None).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{bad}"
    );

    let (status, _) = contacts_call(&stack, Method::DELETE, &format!("/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, gone) = contacts_call(&stack, Method::GET, &format!("/{id}"), None).await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("contact_not_found"))
    );
    let (status, _) = contacts_call(&stack, Method::DELETE, &format!("/{id}"), None).await;
    assert_eq!(status, 404, "erasing twice");
    let (status, again) = contacts_call(&stack, Method::POST, "", Some(json!({"email": "ana@example.com"}))).await;
    assert_eq!(status, 201, "an erased contact's email is free: {again}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_few_hundred_contacts_export_from_dynamodb() {
    let stack = Stack::start_aws(vec![]).await;
    const CONTACTS: usize = 250;
    for n in 0..CONTACTS {
        let tags = if n % 5 == 0 {
            json!(["other"])
        } else {
            json!(["sponsor-a"])
        };
        let (status, body) = contacts_call(
            &stack,
            reqwest::Method::POST,
            "",
            Some(
                json!({"email": format!("lead{n}@example.com"), "properties": {"n": n, "note": "-1 or more"},
                        "tags": tags}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let rows = python_rows(&export(&stack, "&tag=sponsor-a").await);
    assert_eq!(rows.len(), CONTACTS - CONTACTS / 5, "every tagged contact once");
    let mut emails: Vec<&str> = rows.iter().map(|r| r["email"].as_str().unwrap_or_default()).collect();
    emails.sort_unstable();
    emails.dedup();
    assert_eq!(emails.len(), rows.len(), "no contact twice across pages");
    assert!(rows.iter().all(|r| r["note"] == json!("'-1 or more")));
    let all = python_rows(&export(&stack, "").await);
    assert_eq!(all.len(), CONTACTS);
    stack.shutdown().await;
}

/// A workflow that changes the contact, then waits: its run is still
/// running when the contact is erased, and its message comes back after.
const WAKE_UP: std::time::Duration = std::time::Duration::from_secs(4);

fn follow_up_workflow() -> Value {
    json!({"id": "follow_up", "workspace_id": WS, "name": "Follow up", "status": "active",
    "scope": {"workspace": true}, "trigger": {"type": "Gameplay.Ended"}, "start": "note",
    "steps": {
        "note": {"action": {"type": "UpdateContact", "set": {"last_game": "{{ game }}"}}, "next": "wait"},
        "wait": {"action": {"type": "Delay", "seconds": WAKE_UP.as_secs()}}
    }})
}

/// The run of `workflow_id` once `ready` holds for its detail.
async fn run_when(stack: &Stack, workflow_id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + hookflow_tests::PIPELINE_WAIT;
    loop {
        let runs = stack.runs(&format!("?workflow_id={workflow_id}")).await;
        for run in &runs {
            let detail = stack.run(run["run_id"].as_str().unwrap_or_default()).await;
            if ready(&detail) {
                return detail;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such run of {workflow_id}: {runs:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Erasure keeps only the contact's id in its runs: the ended run and the
/// waiting one (cancelled first) lose their event, outputs and requests,
/// another contact's run keeps them, and an erased run cannot be replayed.
async fn erasure_keeps_only_the_id(stack: Stack, sponsor: &MockServer) {
    for n in [1, 2] {
        let (status, body) = stack.post_event(&lead(n, "card_sponsor_a", "ACME")).await;
        assert_eq!(status, 202, "{body}");
    }
    let leads = |n: usize| {
        run_when(&stack, "sponsor_leads", move |run| {
            run["status"] == "succeeded" && run["contact_id"] == json!(format!("ct_{n:03}"))
        })
    };
    let (first, second) = (leads(1).await, leads(2).await);
    assert_eq!(sponsor.received_requests().await.unwrap_or_default().len(), 2);
    assert!(first.to_string().contains("lead1@example.com"), "{first:#}");
    let ended = event(
        "game-1",
        "Gameplay.Ended",
        &[("contactid", "ct_001")],
        json!({"game": "trivia", "contact": {"email": "lead1@example.com"}}),
    );
    assert_eq!(stack.post_event(&ended).await.0, 202);
    let waiting = run_when(&stack, "follow_up", |run| {
        run["status"] == "running" && run["steps"].as_array().is_some_and(|steps| !steps.is_empty())
    })
    .await;
    let (status, body) = contacts_call(&stack, reqwest::Method::DELETE, "/ct_001", None).await;
    assert_eq!(status, 204, "{body}");
    // The waiting run's message comes back: it finds the run cancelled and
    // erased, and records nothing.
    tokio::time::sleep(WAKE_UP + std::time::Duration::from_secs(2)).await;
    for before in [&first, &waiting] {
        let run_id = before["run_id"].as_str().unwrap_or_default();
        let after = stack.run(run_id).await;
        assert_eq!(after["contact_id"], json!("ct_001"), "{after:#}");
        assert!(after["erased_at"].is_string(), "{after:#}");
        assert_eq!(after["event"], Value::Null, "{after:#}");
        let text = after.to_string();
        for personal in ["lead1@example.com", "Lead 1", "trivia", "ACME"] {
            assert!(!text.contains(personal), "{personal} is left in {after:#}");
        }
        let steps = after["steps"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            steps.len(),
            before["steps"].as_array().map_or(0, Vec::len),
            "attempts kept"
        );
        assert!(steps.iter().all(|s| s["status"] == "succeeded"), "{after:#}");
    }
    let waiting_id = waiting["run_id"].as_str().unwrap_or_default();
    assert_eq!(stack.run(waiting_id).await["status"], "cancelled");
    let (status, refused) = stack
        .call(
            reqwest::Method::POST,
            &format!("/v1/workspaces/{WS}/runs/{waiting_id}/replay"),
            Some(json!({"from": "start"})),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("run_erased")),
        "{refused}"
    );
    let kept = stack.run(second["run_id"].as_str().unwrap_or_default()).await;
    assert!(
        kept.to_string().contains("lead2@example.com"),
        "another contact's run is kept: {kept:#}"
    );
    assert!(kept["erased_at"].is_null());

    let (status, _) = contacts_call(&stack, reqwest::Method::DELETE, "/ct_001", None).await;
    assert_eq!(status, 404, "erasing twice");
    stack.shutdown().await;
}

async fn sponsor_and_stack(on_aws: bool) -> (MockServer, Stack) {
    let sponsor = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&sponsor)
        .await;
    let workflows = vec![
        sponsor_workflow(&format!("{}/leads", sponsor.uri())),
        follow_up_workflow(),
    ];
    let stack = if on_aws {
        Stack::start_aws(workflows).await
    } else {
        Stack::start(workflows).await
    };
    (sponsor, stack)
}

#[tokio::test]
async fn erasure_keeps_only_the_contact_id_in_its_runs() {
    let (sponsor, stack) = sponsor_and_stack(false).await;
    erasure_keeps_only_the_id(stack, &sponsor).await;
}

#[tokio::test]
async fn erasure_keeps_only_the_contact_id_in_its_runs_on_dynamodb() {
    let (sponsor, stack) = sponsor_and_stack(true).await;
    erasure_keeps_only_the_id(stack, &sponsor).await;
}
