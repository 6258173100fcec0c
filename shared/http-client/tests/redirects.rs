//! Redirects and credentials, against two wiremock servers on loopback
//! (two ports: two origins). reqwest on its own forwards `X-Api-Key` and
//! any custom credential header to whatever origin a redirect names, and
//! re-sends a POST body on a 307 anywhere.

use std::time::Duration;

use hookflow_core::ports::{FollowRedirects, HttpCall, HttpClient};
use hookflow_http_client::{NetworkPolicy, ReqwestHttpClient};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CREDENTIALS: [(&str, &str); 4] = [
    ("Authorization", "Bearer tok-123"),
    ("X-Api-Key", "key-456"),
    // A step's `api_key` auth header, and a header the step marks secret.
    ("X-Partner", "partner-789"),
    ("X-Signature", "sig-abc"),
];

fn call(method: &str, url: String, body: Option<&str>, follow: FollowRedirects) -> HttpCall {
    let mut headers: Vec<(String, String)> = CREDENTIALS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    headers.push(("X-Trace".into(), "trace-1".into()));
    if body.is_some() {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    HttpCall {
        method: method.into(),
        url,
        headers,
        body: body.map(|b| b.as_bytes().to_vec()),
        timeout: Duration::from_secs(5),
        follow_redirects: follow,
        secret_headers: vec!["X-Partner".into(), "x-signature".into()],
    }
}

fn client() -> ReqwestHttpClient {
    ReqwestHttpClient::with_policy(NetworkPolicy::allow_all()).expect("client")
}

/// A server that redirects `/go` with `status` to `to`, and answers 200 elsewhere.
async fn redirecting(status: u16, to: String) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/go"))
        .respond_with(ResponseTemplate::new(status).insert_header("Location", to))
        .mount(&server)
        .await;
    Mock::given(path("/here"))
        .respond_with(ResponseTemplate::new(200).set_body_string("same origin"))
        .mount(&server)
        .await;
    server
}

async fn landing() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("landed"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_string("posted"))
        .mount(&server)
        .await;
    server
}

async fn only_request(server: &MockServer) -> Request {
    let mut received = server.received_requests().await.expect("recording");
    assert_eq!(received.len(), 1, "{received:?}");
    received.remove(0)
}

fn credentials_in(request: &Request) -> Vec<&'static str> {
    CREDENTIALS
        .iter()
        .filter(|(name, _)| request.headers.contains_key(*name))
        .map(|(name, _)| *name)
        .collect()
}

#[tokio::test]
async fn credentials_stay_home_when_a_redirect_leaves_the_origin() {
    let elsewhere = landing().await;
    let origin = redirecting(302, format!("{}/landing", elsewhere.uri())).await;
    let reply = client()
        .send(call("GET", format!("{}/go", origin.uri()), None, FollowRedirects::Any))
        .await
        .expect("followed");
    assert_eq!((reply.status, reply.body.as_slice()), (200, b"landed".as_slice()));
    let landed = only_request(&elsewhere).await;
    assert_eq!(
        credentials_in(&landed),
        Vec::<&str>::new(),
        "no credential crossed: {landed:?}"
    );
    assert_eq!(
        landed.headers.get("x-trace").map(|v| v.as_bytes()),
        Some(b"trace-1".as_slice())
    );
}

#[tokio::test]
async fn credentials_follow_a_redirect_within_the_origin() {
    let origin = MockServer::start().await;
    Mock::given(path("/go"))
        .respond_with(ResponseTemplate::new(301).insert_header("Location", "/here"))
        .mount(&origin)
        .await;
    Mock::given(path("/here"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&origin)
        .await;
    let reply = client()
        .send(call("GET", format!("{}/go", origin.uri()), None, FollowRedirects::Any))
        .await
        .expect("followed");
    assert_eq!(reply.status, 200);
    let received = origin.received_requests().await.expect("recording");
    assert_eq!(
        credentials_in(&received[1]).len(),
        CREDENTIALS.len(),
        "{:?}",
        received[1]
    );
}

#[tokio::test]
async fn a_body_is_not_sent_to_another_origin_unless_the_step_allows_it() {
    let elsewhere = landing().await;
    let origin = redirecting(307, format!("{}/landing", elsewhere.uri())).await;
    let url = format!("{}/go", origin.uri());

    // same_origin (the default for a request with a body): the 307 is the reply.
    let reply = client()
        .send(call(
            "POST",
            url.clone(),
            Some("{\"pii\": 1}"),
            FollowRedirects::SameOrigin,
        ))
        .await
        .expect("answered");
    assert_eq!(reply.status, 307);
    assert!(elsewhere.received_requests().await.expect("recording").is_empty());

    // any: the POST and its body go on, the credentials do not.
    let reply = client()
        .send(call("POST", url, Some("{\"pii\": 1}"), FollowRedirects::Any))
        .await
        .expect("followed");
    assert_eq!(reply.status, 201);
    let landed = only_request(&elsewhere).await;
    assert_eq!(landed.method.as_str(), "POST");
    assert_eq!(landed.body, b"{\"pii\": 1}");
    assert_eq!(credentials_in(&landed), Vec::<&str>::new());
}

#[tokio::test]
async fn a_post_redirected_by_302_goes_on_as_a_get_without_its_body() {
    let elsewhere = landing().await;
    let origin = redirecting(302, format!("{}/landing", elsewhere.uri())).await;
    let reply = client()
        .send(call(
            "POST",
            format!("{}/go", origin.uri()),
            Some("{}"),
            FollowRedirects::Any,
        ))
        .await
        .expect("followed");
    assert_eq!(reply.status, 200);
    let landed = only_request(&elsewhere).await;
    assert_eq!(landed.method.as_str(), "GET");
    assert!(
        landed.body.is_empty() && !landed.headers.contains_key("content-type"),
        "{landed:?}"
    );
}

#[tokio::test]
async fn follow_none_answers_with_the_redirect() {
    let elsewhere = landing().await;
    let origin = redirecting(302, format!("{}/landing", elsewhere.uri())).await;
    let reply = client()
        .send(call("GET", format!("{}/go", origin.uri()), None, FollowRedirects::None))
        .await
        .expect("answered");
    assert_eq!(reply.status, 302);
    assert!(elsewhere.received_requests().await.expect("recording").is_empty());
}
