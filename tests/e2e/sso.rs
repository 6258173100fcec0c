//! SSO identify over real HTTP on `hookflow dev`, with keys and tokens made
//! by PyJWT (`tests/signers/jwt_tokens.py`): valid HS256, RS256 and ES256
//! tokens identify a contact and start the `Contact.Identified` workflow
//! once per token; every refused token gets a 401 naming its reason.

use hookflow_tests::{Stack, WS};
use serde_json::{json, Value};

const AUDIENCE: &str = "hookflow-tests";
const ISSUER: &str = "https://login.example";

fn pyjwt_material() -> Value {
    hookflow_tests::pyjwt_material(AUDIENCE, ISSUER)
}

async fn put_sso(stack: &Stack, ws: &str, site: &str, body: Value) -> (u16, Value) {
    let response = stack
        .client
        .put(format!("{}/v1/workspaces/{ws}/sites/{site}/sso", stack.base))
        .json(&body)
        .send()
        .await
        .expect("PUT sso");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn identify(stack: &Stack, site: &str, token: &str) -> (u16, Value) {
    let response = stack
        .client
        .post(format!("{}/v1/sites/{site}/identify", stack.base))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("identify");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn identified_workflow() -> Value {
    json!({"id": "welcome_sso", "workspace_id": WS, "name": "SSO welcome", "status": "active",
        "scope": {"workspace": true}, "trigger": {"type": "Contact.Identified"}, "start": "list",
        "steps": {"list": {"action": {"type": "AddToList", "list": "sso-users"}}}})
}

#[tokio::test]
async fn pyjwt_tokens_identify_contacts_and_every_bad_token_is_refused_by_name() {
    let material = pyjwt_material();
    let keys = &material["keys"];
    let tokens = &material["tokens"];
    let stack = Stack::start(vec![identified_workflow()]).await;
    let settings =
        json!({"algorithm": "RS256", "public_key": keys["rs256_public"], "issuer": ISSUER, "audience": AUDIENCE});
    let (status, view) = put_sso(&stack, WS, "site_rs", settings.clone()).await;
    assert_eq!(status, 200, "{view}");
    let (status, taken) = put_sso(&stack, "ws_intruder", "site_rs", settings).await;
    assert_eq!(
        (status, taken["error"]["code"].as_str()),
        (409, Some("site_taken")),
        "{taken}"
    );
    let (status, view) = put_sso(
        &stack,
        WS,
        "site_hs",
        json!({"algorithm": "HS256", "secret": keys["hs256_secret"], "issuer": ISSUER, "audience": AUDIENCE}),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert!(
        !view.to_string().contains(keys["hs256_secret"].as_str().unwrap_or("?")),
        "never shown"
    );
    assert_eq!(view["has_secret"], json!(true));
    let (status, _) = put_sso(
        &stack,
        WS,
        "site_es",
        json!({"algorithm": "ES256", "public_key": keys["es256_public"], "audience": AUDIENCE}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, bad) = put_sso(
        &stack,
        WS,
        "site_x",
        json!({"algorithm": "RS256", "public_key": "not a key"}),
    )
    .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("invalid_sso_settings")),
        "{bad}"
    );

    let token = |name: &str| tokens[name].as_str().expect("token").to_owned();
    let mut contact_ids = vec![];
    for (site, name) in [
        ("site_hs", "hs256"),
        ("site_rs", "rs256"),
        ("site_es", "es256"),
        ("site_rs", "within_leeway"),
    ] {
        let (status, answer) = identify(&stack, site, &token(name)).await;
        assert_eq!(status, 200, "{name}: {answer}");
        contact_ids.push(answer["contact_id"].as_str().expect("contact id").to_owned());
    }
    contact_ids.dedup();
    assert_eq!(contact_ids.len(), 1, "one person, found by `sub` on every site");
    let (status, again) = identify(&stack, "site_rs", &token("rs256")).await;
    assert_eq!((status, again["created"].as_bool()), (200, Some(false)));

    for (name, site, code) in [
        ("expired", "site_rs", "token_expired"),
        ("not_yet_valid", "site_rs", "token_not_yet_valid"),
        ("wrong_key", "site_rs", "invalid_signature"),
        ("alg_none", "site_rs", "unsigned_token"),
        ("wrong_audience", "site_rs", "wrong_audience"),
        ("wrong_issuer", "site_rs", "wrong_issuer"),
        ("no_exp", "site_rs", "missing_claim"),
        ("no_aud", "site_rs", "missing_claim"),
        ("no_iss", "site_rs", "missing_claim"),
        ("aud_number", "site_rs", "missing_claim"),
        ("long_lived", "site_rs", "token_lifetime_too_long"),
        ("hs256_with_public_key", "site_rs", "algorithm_not_allowed"),
        ("rs256", "site_hs", "algorithm_not_allowed"),
    ] {
        let (status, refused) = identify(&stack, site, &token(name)).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (401, Some(code)),
            "{name}: {refused}"
        );
    }
    let (status, conflict) = identify(&stack, "site_rs", &token("other_sub_same_email")).await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("identity_conflict")),
        "another sub with the same email is not linked to the first: {conflict}"
    );
    assert!(
        !conflict.to_string().contains("c_"),
        "no contact id is told: {conflict}"
    );
    let (status, unverified) = identify(&stack, "site_rs", &token("unverified_email")).await;
    assert_eq!(status, 200, "{unverified}");
    let (_, stranger) = stack
        .get(&format!(
            "/v1/workspaces/{WS}/contacts/{}",
            unverified["contact_id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        stranger["email"],
        Value::Null,
        "an unverified email is not stored: {stranger}"
    );
    let (status, bad_site) = put_sso(
        &stack,
        WS,
        "site%20with%20spaces",
        json!({"algorithm": "HS256", "secret": keys["hs256_secret"]}),
    )
    .await;
    assert_eq!(
        (status, bad_site["error"]["code"].as_str()),
        (400, Some("invalid_site_id")),
        "{bad_site}"
    );
    let (status, private) = put_sso(
        &stack,
        WS,
        "site_priv",
        json!({"algorithm": "RS256", "public_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"}),
    )
    .await;
    assert_eq!(
        (status, private["error"]["code"].as_str()),
        (422, Some("invalid_sso_settings")),
        "{private}"
    );
    let (status, refused) = identify(&stack, "site_rs", "not-a-jwt").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("malformed_token"))
    );
    let (status, missing) = identify(&stack, "site_unknown", &token("rs256")).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("sso_not_configured"))
    );
    release_and_reclaim(&stack, keys, &token("es256")).await;

    // Five distinct sign-ins (the four tokens of user-42 and user-77's):
    // five Contact.Identified runs; the repeat started none.
    let runs = stack.wait_for_finished_runs(5).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let (status, contact) = stack
        .get(&format!("/v1/workspaces/{WS}/contacts/{}", contact_ids[0]))
        .await;
    assert_eq!(status, 200, "{contact}");
    assert_eq!(contact["external_id"], json!("user-42"));
    assert_eq!(contact["email"], json!("Sso.User@Example.com"));
    assert_eq!(contact["properties"]["first_name"], json!("Sam"));
    assert_eq!(
        contact["lists"],
        json!(["sso-users"]),
        "the identified workflow ran for this contact"
    );
    stack.shutdown().await;
}

async fn delete_sso(stack: &Stack, ws: &str, site_and_query: &str) -> (u16, Value) {
    let path = format!("/v1/workspaces/{ws}/sites/{site_and_query}");
    stack.call(reqwest::Method::DELETE, &path, None).await
}

/// A site let go of: only its workspace can release it; then its tokens are
/// refused and other workspaces are held off (its pages may still post
/// tokens), except the one it is handed to.
async fn release_and_reclaim(stack: &Stack, keys: &Value, es256_token: &str) {
    let es256 = json!({"algorithm": "ES256", "public_key": keys["es256_public"], "audience": AUDIENCE});
    let (status, refused) = delete_sso(stack, "ws_intruder", "site_es/sso").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (404, Some("sso_not_configured")),
        "another workspace cannot release it: {refused}"
    );
    assert_eq!(identify(stack, "site_es", es256_token).await.0, 200, "still configured");
    assert_eq!(delete_sso(stack, WS, "site_es/sso").await.0, 204);
    let (status, gone) = identify(stack, "site_es", es256_token).await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("sso_not_configured")),
        "{gone}"
    );
    assert_eq!(delete_sso(stack, WS, "site_es/sso").await.0, 204, "a retried release");
    let (status, held) = put_sso(stack, "ws_intruder", "site_es", es256.clone()).await;
    assert_eq!(
        (status, held["error"]["code"].as_str()),
        (409, Some("site_taken")),
        "held against other workspaces: {held}"
    );
    assert_eq!(put_sso(stack, WS, "site_es", es256.clone()).await.0, 200, "reclaimed");
    for (query, code) in [
        ("?transfer_to=bad%20id", "invalid_transfer"),
        ("?to=ws_partner", "invalid_query"),
    ] {
        let (status, bad) = delete_sso(stack, WS, &format!("site_es/sso{query}")).await;
        assert_eq!((status, bad["error"]["code"].as_str()), (400, Some(code)), "{bad}");
    }
    assert_eq!(delete_sso(stack, WS, "site_es/sso?transfer_to=ws_partner").await.0, 204);
    let (_, audit) = stack.get(&format!("/v1/workspaces/{WS}/audit?limit=1")).await;
    assert_eq!(
        audit["entries"][0]["target"],
        json!(format!("/v1/workspaces/{WS}/sites/site_es/sso?transfer_to=ws_partner")),
        "the audit trail says whom the site was handed to: {audit}"
    );
    assert_eq!(put_sso(stack, "ws_intruder", "site_es", es256.clone()).await.0, 409);
    let (status, moved) = put_sso(stack, "ws_partner", "site_es", es256).await;
    assert_eq!(
        (status, moved["workspace_id"].as_str()),
        (200, Some("ws_partner")),
        "{moved}"
    );
}
