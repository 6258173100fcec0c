//! Connectors against local imitations of the documented APIs (wiremock):
//! a connection made through the API, steps that name it, and the
//! credentials on the wire only: never in the workflow, the run or an
//! answer. Token refresh after a rotation, rate limits and the apps' own
//! error shapes are each exercised.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hookflow_tests::{event, Stack, WS};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const MC_KEY: &str = "0123456789abcdef0123456789abcdef-us21";
const MC_KEY_ROTATED: &str = "fedcba9876543210fedcba9876543210-us21";
const BRAZE_KEY: &str = "braze-rest-key-5a1b2c3d4e";
/// md5("ana@example.com"): Mailchimp's member id for Ana.
const ANA_HASH: &str = "cdb9d6a1dddc375a09cc83e3001598dc";

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("hookflow:{key}"))
    )
}

async fn create_connection(stack: &Stack, body: Value) -> Value {
    let (status, created) = stack
        .call(Method::POST, &format!("/v1/workspaces/{WS}/connections"), Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

fn mailchimp_workflow() -> Value {
    json!({"id": "wf_mc", "workspace_id": WS, "name": "newsletter", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Contact.Created"}, "start": "subscribe",
        "steps": {
            "subscribe": {"action": {"type": "MailchimpUpsertSubscriber", "connection": "mc", "list_id": "L1",
                "email": "{{ contact.email }}", "merge_fields": {"FNAME": "{{ contact.first_name }}"}},
                "next": "tag"},
            "tag": {"action": {"type": "MailchimpTagSubscriber", "connection": "mc", "list_id": "L1",
                "email": "{{ contact.email }}", "add": ["hookflow", "{{ source }}"], "remove": ["lapsed"]}}}})
}

fn contact_created(id: &str, email: &str) -> Value {
    event(
        id,
        "Contact.Created",
        &[],
        json!({"contact": {"email": email, "first_name": "Ana"}, "source": "sso"}),
    )
}

fn mailchimp_problem(status: u16, title: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({"type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title, "status": status, "detail": detail, "instance": "2f3c",
        "errors": [{"field": "email_address", "message": "This value should be a valid email."}]}),
    )
}

#[tokio::test]
async fn mailchimp_members_are_upserted_and_tagged_with_the_connections_key() {
    let mailchimp = MockServer::start().await;
    let member = format!("/3.0/lists/L1/members/{ANA_HASH}");
    Mock::given(method("PUT"))
        .and(path(member.as_str()))
        .and(header("authorization", basic(MC_KEY).as_str()))
        .and(body_partial_json(
            json!({"email_address": "Ana@Example.com", "status_if_new": "subscribed",
            "merge_fields": {"FNAME": "Ana"}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": ANA_HASH,
            "email_address": "ana@example.com", "status": "subscribed", "list_id": "L1"})))
        .expect(1)
        .mount(&mailchimp)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{member}/tags").as_str()))
        .and(header("authorization", basic(MC_KEY).as_str()))
        .and(body_partial_json(
            json!({"tags": [{"name": "hookflow", "status": "active"},
            {"name": "sso", "status": "active"}, {"name": "lapsed", "status": "inactive"}]}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&mailchimp)
        .await;
    let stack = Stack::start(vec![mailchimp_workflow()]).await;
    let created = create_connection(
        &stack,
        json!({"name": "mc", "app": "mailchimp", "credentials": {"api_key": MC_KEY}, "base_url": mailchimp.uri()}),
    )
    .await;
    assert_eq!(created["credentials"], json!({"api_key": "set"}));

    let (status, body) = stack.post_event(&contact_created("evt-mc-1", "Ana@Example.com")).await;
    assert_eq!(status, 202, "{body}");
    let run = &stack.wait_for_finished_runs(1).await[0];
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let steps = run["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps[0]["output"]["status"], "subscribed", "{run:#}");
    assert_eq!(steps[0]["output"]["subscriber_hash"], ANA_HASH);
    assert_eq!(steps[1]["output"]["added"], json!(["hookflow", "sso"]));
    assert!(!run.to_string().contains(MC_KEY), "the run log holds the key: {run}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_rotated_key_is_read_again_on_401_and_mailchimps_refusal_names_the_field() {
    let mailchimp = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(header("authorization", basic(MC_KEY).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "subscribed"})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&mailchimp)
        .await;
    let workflow = json!({"id": "wf_mc1", "workspace_id": WS, "name": "subscribe", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Contact.Created"}, "start": "subscribe",
        "steps": {"subscribe": {"action": {"type": "MailchimpUpsertSubscriber", "connection": "mc",
            "list_id": "L1", "email": "{{ contact.email }}"}}}});
    let stack = Stack::start(vec![workflow]).await;
    create_connection(
        &stack,
        json!({"name": "mc", "app": "mailchimp", "credentials": {"api_key": MC_KEY}, "base_url": mailchimp.uri()}),
    )
    .await;
    stack.post_event(&contact_created("evt-rot-1", "ana@example.com")).await;
    assert_eq!(stack.wait_for_finished_runs(1).await[0]["status"], "succeeded");

    // The key is rotated: the old one is refused from now on, and the step
    // function still holds it.
    let (status, rotated) = stack
        .call(
            Method::POST,
            &format!("/v1/workspaces/{WS}/connections/mc/rotate"),
            Some(json!({"credentials": {"api_key": MC_KEY_ROTATED}})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["rotated_at"], rotated["created_at"]);
    Mock::given(method("PUT"))
        .and(header("authorization", basic(MC_KEY).as_str()))
        .respond_with(mailchimp_problem(
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        ))
        .mount(&mailchimp)
        .await;
    Mock::given(method("PUT"))
        .and(header("authorization", basic(MC_KEY_ROTATED).as_str()))
        .and(body_partial_json(json!({"email_address": "bob@example.com"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "subscribed"})))
        .expect(1)
        .mount(&mailchimp)
        .await;
    Mock::given(method("PUT"))
        .and(header("authorization", basic(MC_KEY_ROTATED).as_str()))
        .and(body_partial_json(json!({"email_address": "not-an-email"})))
        .respond_with(mailchimp_problem(
            400,
            "Invalid Resource",
            "Please provide a valid email address.",
        ))
        .expect(1)
        .mount(&mailchimp)
        .await;
    stack.post_event(&contact_created("evt-rot-2", "bob@example.com")).await;
    stack.post_event(&contact_created("evt-rot-3", "not-an-email")).await;
    let runs = stack.wait_for_finished_runs(3).await;
    let attempts = |run: &Value| run["steps"].as_array().map_or(0, Vec::len);
    assert_eq!(
        runs[1]["status"], "succeeded",
        "the new key is read after one 401: {:#}",
        runs[1]
    );
    assert_eq!(attempts(&runs[1]), 1, "in one attempt: {:#}", runs[1]);
    assert_eq!(runs[2]["status"], "failed", "{:#}", runs[2]);
    assert_eq!(attempts(&runs[2]), 1, "a 400 is terminal: {:#}", runs[2]);
    let error = runs[2]["steps"][0]["error"].as_str().unwrap_or_default();
    for words in [
        "mailchimp answered HTTP 400",
        "Invalid Resource",
        "valid email",
        "email_address",
    ] {
        assert!(error.contains(words), "{words:?} is missing from {error:?}");
    }
    for run in &runs {
        for key in [MC_KEY, MC_KEY_ROTATED] {
            assert!(!run.to_string().contains(key), "the run log holds a key: {run}");
        }
    }
    stack.shutdown().await;
}

/// Answers `template`, noting when each request arrived.
struct Stamped(Arc<Mutex<Vec<Instant>>>, ResponseTemplate);

impl Respond for Stamped {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().expect("arrivals").push(Instant::now());
        self.1.clone()
    }
}

fn braze_workflow() -> Value {
    json!({"id": "wf_braze", "workspace_id": WS, "name": "track", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "track",
        "steps": {"track": {"action": {"type": "BrazeTrackUser", "connection": "braze", "external_id": "{{ user }}",
            "attributes": {"first_name": "{{ name }}"},
            "events": [{"name": "prize_won", "properties": {"prize": "{{ prize }}"}}]},
            "retry": {"max_attempts": 3, "initial_interval_s": 0.1, "jitter": "none"}, "next": "alias"},
          "alias": {"action": {"type": "BrazeTrackUser", "connection": "braze", "email": "{{ email }}",
            "attributes": {"prize": "{{ prize }}"}}, "retry": {"max_attempts": 1}}}})
}

#[tokio::test]
async fn braze_tracks_users_waits_out_its_rate_limit_and_fails_on_refused_objects() {
    let braze = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(vec![]));
    let reset = chrono::Utc::now().timestamp() + 2;
    // The first call is over the rate limit; Braze says when it resets.
    Mock::given(method("POST"))
        .and(path("/users/track"))
        .respond_with(Stamped(
            arrivals.clone(),
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Reset", reset.to_string().as_str())
                .set_body_json(json!({"message": "rate limit exceeded"})),
        ))
        .up_to_n_times(1)
        .mount(&braze)
        .await;
    Mock::given(method("POST"))
        .and(path("/users/track"))
        .and(header("authorization", format!("Bearer {BRAZE_KEY}").as_str()))
        .and(body_partial_json(
            json!({"attributes": [{"external_id": "u-7", "first_name": "Ana"}],
            "events": [{"external_id": "u-7", "name": "prize_won", "properties": {"prize": "cup"},
                "time": "2026-11-23T10:00:00Z"}]}),
        ))
        .respond_with(Stamped(
            arrivals.clone(),
            ResponseTemplate::new(201).set_body_json(json!({"message": "success",
                "attributes_processed": 1, "events_processed": 1})),
        ))
        .expect(1)
        .mount(&braze)
        .await;
    // By email alias: Braze refuses the object in a 201.
    Mock::given(method("POST"))
        .and(path("/users/track"))
        .and(body_partial_json(
            json!({"attributes": [{"user_alias": {"alias_name": "ana@example.com",
            "alias_label": "email"}, "_update_existing_only": false, "prize": "cup"}]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"message": "success",
            "errors": [{"type": "'prize' is a reserved attribute", "input_array": "attributes", "index": 0}]})))
        .expect(1)
        .mount(&braze)
        .await;
    let stack = Stack::start(vec![braze_workflow()]).await;
    create_connection(
        &stack,
        json!({"name": "braze", "app": "braze", "credentials": {"api_key": BRAZE_KEY}, "base_url": braze.uri()}),
    )
    .await;
    let data = json!({"user": "u-7", "name": "Ana", "prize": "cup", "email": "Ana@Example.com"});
    stack.post_event(&event("evt-braze", "Prize.Won", &[], data)).await;
    let run = &stack.wait_for_finished_runs(1).await[0];
    let steps = run["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps.len(), 3, "429, then tracked, then the alias refused: {run:#}");
    assert!(
        steps[0]["error"].as_str().unwrap_or_default().contains("429"),
        "{run:#}"
    );
    assert_eq!(
        steps[1]["output"],
        json!({"attributes_processed": 1, "events_processed": 1, "purchases_processed": 0})
    );
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        steps[2]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("reserved attribute"),
        "{run:#}"
    );

    // The retry waited for the reset Braze named, not the policy's 0.1 s.
    let arrivals = arrivals.lock().expect("arrivals").clone();
    let gap = arrivals[1] - arrivals[0];
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    assert!(!run.to_string().contains(BRAZE_KEY));
    stack.shutdown().await;
}

#[tokio::test]
async fn a_step_naming_a_missing_or_foreign_connection_fails_terminally() {
    let stack = Stack::start(vec![braze_workflow()]).await;
    let data = json!({"user": "u", "name": "Ana", "prize": "cup", "email": "a@b.c"});
    stack
        .post_event(&event("evt-none", "Prize.Won", &[], data.clone()))
        .await;
    stack.wait_for_finished_runs(1).await;
    // A Mailchimp connection under the name the Braze step uses.
    create_connection(
        &stack,
        json!({"name": "braze", "app": "mailchimp", "credentials": {"api_key": MC_KEY}}),
    )
    .await;
    stack.post_event(&event("evt-foreign", "Prize.Won", &[], data)).await;
    let runs = stack.wait_for_finished_runs(2).await;
    let expected = [
        "no connection named \"braze\"",
        "connection \"braze\" is a mailchimp connection; this step needs a braze one",
    ];
    for (run, words) in runs.iter().zip(expected) {
        assert_eq!(run["status"], "failed");
        let attempts = run["steps"].as_array().map_or(0, Vec::len);
        assert_eq!(attempts, 1, "not retried: {run:#}");
        let error = run["steps"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{words:?} missing from {error:?}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_connections_api_never_answers_credentials_and_names_what_is_wrong() {
    let stack = Stack::start(vec![]).await;
    let connections = format!("/v1/workspaces/{WS}/connections");
    let mut answers = vec![];
    let cases = [
        (
            json!({"name": "mc", "app": "mailchimp", "credentials": {"api_key": "no-data-centre-"}}),
            422,
            "data centre",
        ),
        (
            json!({"name": "b", "app": "braze", "credentials": {"api_key": BRAZE_KEY}}),
            422,
            "base_url is required",
        ),
        (
            json!({"name": "b", "app": "braze", "credentials": {"api_key": BRAZE_KEY},
            "base_url": "http://rest.example.com"}),
            422,
            "https",
        ),
        (
            json!({"name": "Bad Name", "app": "mailchimp", "credentials": {"api_key": MC_KEY}}),
            422,
            "name",
        ),
        (
            json!({"name": "x", "app": "hubspot", "credentials": {"api_key": MC_KEY}}),
            400,
            "invalid_body",
        ),
        (
            json!({"name": "s", "app": "salesforce", "credentials": {"client_id": "c"}}),
            422,
            "client_secret is required",
        ),
        (
            json!({"name": "x", "app": "mailchimp", "credentials": MC_KEY}),
            400,
            "credentials",
        ),
        (
            json!({"name": "x", "app": "mailchimp", "credentials": {"api_key": MC_KEY, "extra": "y"}}),
            422,
            "extra",
        ),
    ];
    for (body, status, words) in cases {
        let (got, answer) = stack.call(Method::POST, &connections, Some(body.clone())).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(answer.to_string().contains(words), "{words:?} missing from {answer}");
        answers.push(answer);
    }
    let created = create_connection(
        &stack,
        json!({"name": "mc", "app": "mailchimp", "credentials": {"api_key": MC_KEY}}),
    )
    .await;
    assert_eq!(created["base_url"], Value::Null);
    let (status, taken) = stack
        .call(
            Method::POST,
            &connections,
            Some(json!({"name": "mc", "app": "mailchimp", "credentials": {"api_key": MC_KEY}})),
        )
        .await;
    assert_eq!(
        (status, taken["error"]["code"].as_str()),
        (409, Some("connection_exists")),
        "{taken}"
    );
    answers.push(taken);
    for path in [connections.clone(), format!("{connections}/mc")] {
        let (status, answer) = stack.call(Method::GET, &path, None).await;
        assert_eq!(status, 200);
        answers.push(answer);
    }
    let (status, _) = stack.call(Method::DELETE, &format!("{connections}/mc"), None).await;
    assert_eq!(status, 204);
    let (status, gone) = stack.call(Method::GET, &format!("{connections}/mc"), None).await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("connection_not_found"))
    );
    for answer in answers {
        assert!(
            !answer.to_string().contains(MC_KEY),
            "an answer holds the key: {answer}"
        );
        assert!(
            !answer.to_string().contains(BRAZE_KEY),
            "an answer holds the key: {answer}"
        );
    }
    stack.shutdown().await;
}

/// On AWS the credentials are in Secrets Manager and nowhere in DynamoDB;
/// a rotation leaves one secret, a deletion none.
#[tokio::test]
async fn on_aws_credentials_live_in_secrets_manager_only() {
    let braze = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/users/track$"))
        .and(header("authorization", format!("Bearer {BRAZE_KEY}").as_str()))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"message": "success", "attributes_processed": 1})),
        )
        .mount(&braze)
        .await;
    let workflow = json!({"id": "wf_b", "workspace_id": WS, "name": "track", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Prize.Won"}, "start": "track",
        "steps": {"track": {"action": {"type": "BrazeTrackUser", "connection": "braze", "external_id": "{{ user }}",
            "attributes": {"prize": "{{ prize }}"}}}}});
    let stack = Stack::start_aws(vec![workflow]).await;
    create_connection(
        &stack,
        json!({"name": "braze", "app": "braze", "credentials": {"api_key": BRAZE_KEY}, "base_url": braze.uri()}),
    )
    .await;
    stack
        .post_event(&event(
            "evt-aws-b",
            "Prize.Won",
            &[],
            json!({"user": "u-1", "prize": "cup"}),
        ))
        .await;
    let run = &stack.wait_for_finished_runs(1).await[0];
    assert_eq!(run["status"], "succeeded", "{run:#}");

    let config = hookflow_aws::sdk_config_loader().load().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let ours = || async {
        let listed = secrets.list_secrets().send().await.expect("list secrets");
        let mut values = vec![];
        for secret in listed.secret_list() {
            let name = secret.name().unwrap_or_default();
            if name.starts_with(&format!("hookflow/hookflow/{WS}/")) {
                let value = secrets
                    .get_secret_value()
                    .secret_id(name)
                    .send()
                    .await
                    .expect("get secret");
                values.push(value.secret_string().unwrap_or_default().to_owned());
            }
        }
        values
    };
    assert!(
        ours().await.iter().any(|v| v.contains(BRAZE_KEY)),
        "the key is in Secrets Manager"
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("HOOKFLOW_WORKFLOWS_TABLE").expect("the stack's table");
    let scanned = dynamo.scan().table_name(table).send().await.expect("scan");
    assert!(
        !format!("{:?}", scanned.items()).contains(BRAZE_KEY),
        "the table holds the key"
    );

    let before = ours().await.len();
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/v1/workspaces/{WS}/connections/braze/rotate"),
            Some(json!({"credentials": {"api_key": "braze-rotated-key-99"}})),
        )
        .await;
    assert_eq!(status, 200);
    let after = ours().await;
    assert_eq!(after.len(), before, "the old secret is deleted");
    assert!(!after.iter().any(|v| v.contains(BRAZE_KEY)));
    let (status, _) = stack
        .call(Method::DELETE, &format!("/v1/workspaces/{WS}/connections/braze"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        ours().await.len(),
        before - 1,
        "deleting a connection deletes its secret"
    );
    stack.shutdown().await;
}

const SF_SECRET: &str = "sf-client-secret-8c1d9e";

fn lead_workflow() -> Value {
    // The seed's field mapping for a Salesforce Lead; an existing lead (by
    // email) is updated instead of created again.
    let mapping = json!({"Email": "{{ contact.email }}", "FirstName": "{{ contact.first_name }}",
        "LastName": "{{ contact.last_name }}", "Company": "{{ form_fields.company }}", "LeadSource": "{{ card.name }}"});
    json!({"id": "wf_leads", "workspace_id": WS, "name": "leads to Salesforce", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Gameplay.DataCaptured"}, "start": "find",
        "steps": {
          "find": {"action": {"type": "SalesforceGetObject", "connection": "sf",
            "query": "SELECT Id FROM Lead WHERE Email = :email LIMIT 1", "params": {"email": "{{ contact.email }}"}},
            "next": "route"},
          "route": {"action": {"type": "Decision", "default": "update",
            "branches": [{"when": {"path": "steps.find.totalSize", "op": "eq", "value": 0}, "next": "create"}]}},
          "create": {"action": {"type": "SalesforceCreateObject", "connection": "sf", "object": "Lead", "fields": mapping}},
          "update": {"action": {"type": "SalesforceUpdateObject", "connection": "sf", "object": "Lead",
            "id": "{{ steps.find.records.[0].Id }}", "fields": {"Company": "{{ form_fields.company }}"}},
            "retry": {"max_attempts": 3, "initial_interval_s": 0.1, "jitter": "none"}}}})
}

fn data_captured(id: &str, email: &str, last_name: &str) -> Value {
    event(
        id,
        "Gameplay.DataCaptured",
        &[],
        json!({"contact": {"email": email, "first_name": "Ana",
        "last_name": last_name}, "form_fields": {"company": "Acme"}, "card": {"name": "Sponsor A quiz"}}),
    )
}

fn sf_errors(status: u16, code: &str, message: &str, fields: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!([{"message": message, "errorCode": code, "fields": fields}]))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn salesforce_leads_are_found_created_and_updated_with_a_refreshed_token() {
    let salesforce = MockServer::start().await;
    let api = "/services/data/v61.0";
    for token in ["sf-token-one-1111", "sf-token-two-2222"] {
        Mock::given(method("POST"))
            .and(path("/services/oauth2/token"))
            .and(wiremock::matchers::body_string_contains(
                "grant_type=client_credentials",
            ))
            .and(wiremock::matchers::body_string_contains(
                format!("client_secret={SF_SECRET}").as_str(),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": token,
                "instance_url": salesforce.uri(), "token_type": "Bearer"})))
            .up_to_n_times(1)
            .expect(1)
            .mount(&salesforce)
            .await;
    }
    // Ana is new: found nowhere, then created with the seed's mapping.
    Mock::given(method("GET"))
        .and(path(format!("{api}/query").as_str()))
        .and(wiremock::matchers::query_param(
            "q",
            "SELECT Id FROM Lead WHERE Email = 'ana@example.com' LIMIT 1",
        ))
        .and(header("authorization", bearer("sf-token-one-1111").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"totalSize": 0, "done": true, "records": []})))
        .expect(1)
        .mount(&salesforce)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{api}/sobjects/Lead").as_str()))
        .and(header("authorization", bearer("sf-token-one-1111").as_str()))
        .and(body_partial_json(
            json!({"Email": "ana@example.com", "FirstName": "Ana", "LastName": "Lima",
            "Company": "Acme", "LeadSource": "Sponsor A quiz"}),
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": "00Q000001", "success": true, "errors": []})),
        )
        .expect(1)
        .mount(&salesforce)
        .await;
    let stack = Stack::start(vec![lead_workflow()]).await;
    create_connection(
        &stack,
        json!({"name": "sf", "app": "salesforce", "base_url": salesforce.uri(),
            "credentials": {"client_id": "3MVG9-client", "client_secret": SF_SECRET}}),
    )
    .await;
    stack
        .post_event(&data_captured("evt-sf-1", "ana@example.com", "Lima"))
        .await;
    let first = &stack.wait_for_finished_runs(1).await[0];
    assert_eq!(first["status"], "succeeded", "{first:#}");
    let created = first["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step_id"] == "create"))
        .cloned();
    assert_eq!(
        created.map(|s| s["output"].clone()),
        Some(json!({"id": "00Q000001", "object": "Lead", "success": true}))
    );
    // The token was written back with the credentials.
    let vault = stack.server.memory.as_ref().expect("in memory").vault.snapshot();
    assert!(vault
        .values()
        .any(|c| c.get("access_token") == Some("sf-token-one-1111")));

    // The session expired: the next call is refused once, a new token is
    // obtained, and the org's request limit is waited out.
    Mock::given(header("authorization", bearer("sf-token-one-1111").as_str()))
        .respond_with(sf_errors(
            401,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
            json!([]),
        ))
        .with_priority(1)
        .mount(&salesforce)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{api}/query").as_str()))
        .and(header("authorization", bearer("sf-token-two-2222").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"totalSize": 1, "done": true,
            "records": [{"attributes": {"type": "Lead"}, "Id": "00Q000001"}]})),
        )
        .mount(&salesforce)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{api}/sobjects/Lead/00Q000001").as_str()))
        .respond_with(sf_errors(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            json!([]),
        ))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&salesforce)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{api}/sobjects/Lead/00Q000001").as_str()))
        .and(header("authorization", bearer("sf-token-two-2222").as_str()))
        .and(body_partial_json(json!({"Company": "Acme"})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&salesforce)
        .await;
    stack
        .post_event(&data_captured("evt-sf-2", "ana@example.com", "Lima"))
        .await;
    let second = &stack.wait_for_finished_runs(2).await[1];
    assert_eq!(second["status"], "succeeded", "{second:#}");
    let updates: Vec<&Value> = second["steps"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["step_id"] == "update").collect())
        .unwrap_or_default();
    assert_eq!(updates.len(), 2, "the request limit is retried: {second:#}");
    assert!(updates[0]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("REQUEST_LIMIT_EXCEEDED"));

    // A refused record fails the run with Salesforce's words.
    Mock::given(method("GET"))
        .and(path(format!("{api}/query").as_str()))
        .and(wiremock::matchers::query_param(
            "q",
            "SELECT Id FROM Lead WHERE Email = 'bo\\'b@example.com' LIMIT 1",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"totalSize": 0, "done": true, "records": []})))
        .with_priority(2)
        .mount(&salesforce)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{api}/sobjects/Lead").as_str()))
        .respond_with(sf_errors(
            400,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
            json!(["LastName"]),
        ))
        .with_priority(2)
        .mount(&salesforce)
        .await;
    stack
        .post_event(&data_captured("evt-sf-3", "bo'b@example.com", ""))
        .await;
    let third = &stack.wait_for_finished_runs(3).await[2];
    assert_eq!(third["status"], "failed", "{third:#}");
    let error = third["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] ([\"LastName\"])"),
        "{error}"
    );
    for run in [first, second, third] {
        for secret in [SF_SECRET, "sf-token-one-1111", "sf-token-two-2222"] {
            assert!(!run.to_string().contains(secret), "the run log holds {secret}: {run}");
        }
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_refused_salesforce_client_fails_the_step_with_the_oauth_error() {
    let salesforce = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .and(wiremock::matchers::body_string_contains("grant_type=refresh_token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant",
            "error_description": "expired access/refresh token"})),
        )
        .expect(1)
        .mount(&salesforce)
        .await;
    let stack = Stack::start(vec![lead_workflow()]).await;
    create_connection(
        &stack,
        json!({"name": "sf", "app": "salesforce", "base_url": salesforce.uri(),
            "credentials": {"client_id": "3MVG9-client", "client_secret": SF_SECRET, "refresh_token": "5Aep861-refresh"}}),
    )
    .await;
    stack
        .post_event(&data_captured("evt-sf-denied", "ana@example.com", "Lima"))
        .await;
    let run = &stack.wait_for_finished_runs(1).await[0];
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"].as_array().map_or(0, Vec::len), 1, "not retried: {run:#}");
    let error = run["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "getting an access token: salesforce answered HTTP 400: invalid_grant: expired access/refresh token"
        ),
        "{error}"
    );
    stack.shutdown().await;
}
