//! The SSRF guard: address classes, IP literals, host names, schemes and
//! redirects, against a wiremock server on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hookflow_core::ports::{HttpCall, HttpClient, HttpErrorKind};
use hookflow_http_client::{is_denied, NetworkPolicy, ReqwestHttpClient};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn get(url: impl Into<String>) -> HttpCall {
    HttpCall {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: None,
        timeout: Duration::from_secs(5),
        follow_redirects: hookflow_core::ports::FollowRedirects::Any,
        secret_headers: vec![],
    }
}

/// Private networks denied, except exactly 127.0.0.1 (where wiremock listens).
fn only_127_0_0_1() -> NetworkPolicy {
    NetworkPolicy::deny_private().allowing(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A server answering 200 "fine" to everything.
async fn fine_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
        .mount(&server)
        .await;
    server
}

#[test]
fn address_classes() {
    let cases: &[(&str, Option<&str>)] = &[
        // IPv4
        ("127.0.0.1", Some("loopback")),
        ("127.255.255.254", Some("loopback")),
        ("10.0.0.1", Some("private")),
        ("10.255.255.255", Some("private")),
        ("172.16.0.1", Some("private")),
        ("172.31.255.255", Some("private")),
        ("192.168.1.1", Some("private")),
        ("100.64.0.1", Some("shared (CGNAT)")),
        ("100.127.255.255", Some("shared (CGNAT)")),
        ("169.254.169.254", Some("link-local")),
        ("169.254.0.1", Some("link-local")),
        ("0.0.0.0", Some("unspecified")),
        ("0.1.2.3", Some("unspecified")),
        ("224.0.0.1", Some("multicast")),
        ("239.255.255.250", Some("multicast")),
        ("255.255.255.255", Some("broadcast")),
        ("240.0.0.1", Some("reserved")),
        ("255.255.255.254", Some("reserved")),
        ("192.0.0.1", Some("reserved")),
        ("198.18.0.1", Some("reserved")),
        ("192.0.2.1", Some("documentation")),
        ("198.51.100.7", Some("documentation")),
        ("203.0.113.9", Some("documentation")),
        // IPv6
        ("::1", Some("loopback")),
        ("::", Some("unspecified")),
        ("::ffff:127.0.0.1", Some("loopback")),
        ("::ffff:10.0.0.1", Some("private")),
        ("::ffff:169.254.169.254", Some("link-local")),
        ("::127.0.0.1", Some("loopback")),
        ("::8.8.8.8", Some("reserved")),
        ("fe80::1", Some("link-local")),
        ("febf::1", Some("link-local")),
        ("fec0::1", Some("site-local")),
        ("fc00::1", Some("unique-local")),
        ("fd12::1", Some("unique-local")),
        ("ff02::1", Some("multicast")),
        ("ff0e::1", Some("multicast")),
        ("64:ff9b::a00:1", Some("private")),
        ("64:ff9b::7f00:1", Some("loopback")),
        ("64:ff9b:1::1", Some("reserved")),
        ("2002:a00:1::", Some("private")),
        ("2002:7f00:1::1", Some("loopback")),
        ("2002:a9fe:a9fe::", Some("link-local")),
        ("2001:db8::1", Some("documentation")),
        ("100::1", Some("reserved")),
        // Public
        ("93.184.216.34", None),
        ("1.1.1.1", None),
        ("8.8.8.8", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("192.0.0.9", None),
        ("2606:4700::1111", None),
        ("2a00:1450:4001:80b::200e", None),
        ("::ffff:1.1.1.1", None),
        ("64:ff9b::101:101", None),
        ("2002:101:101::1", None),
    ];
    for (ip, expected) in cases {
        let parsed: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
        assert_eq!(is_denied(parsed), *expected, "{ip}");
    }
}

#[test]
fn policies() {
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let other_loopback: IpAddr = "127.0.0.2".parse().unwrap();
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    let public: IpAddr = "1.1.1.1".parse().unwrap();

    let deny = NetworkPolicy::deny_private();
    assert_eq!(deny, NetworkPolicy::default());
    assert_eq!(deny.denies(loopback), Some("loopback"));
    assert_eq!(deny.denies(public), None);

    let only = only_127_0_0_1();
    assert_eq!(only.denies(loopback), None);
    assert_eq!(only.denies(mapped), None);
    assert_eq!(only.denies(other_loopback), Some("loopback"));
    assert_eq!(only.denies("::1".parse().unwrap()), Some("loopback"));

    let all = NetworkPolicy::allow_all();
    assert_eq!(all.denies(loopback), None);
    assert_eq!(all.denies("169.254.169.254".parse().unwrap()), None);
}

#[tokio::test]
async fn loopback_literal_is_refused_without_a_request() {
    let server = fine_server().await;
    let client = ReqwestHttpClient::new().unwrap();
    let err = client.send(get(format!("{}/", server.uri()))).await.unwrap_err();
    assert_eq!(err.kind, HttpErrorKind::Invalid, "{err}");
    assert!(err.message.contains("loopback"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn denied_literals_are_refused_before_connecting() {
    let server = fine_server().await;
    let port = server.address().port();
    let client = ReqwestHttpClient::new().unwrap();
    let cases = [
        (format!("http://[::1]:{port}/"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/"), "loopback"),
        (format!("http://2130706433:{port}/"), "loopback"),
        (format!("http://127.1:{port}/"), "loopback"),
        (format!("http://0.0.0.0:{port}/"), "unspecified"),
        ("http://169.254.169.254/latest/meta-data".to_owned(), "link-local"),
        ("http://[fe80::1]/".to_owned(), "link-local"),
        ("http://10.0.0.5:8080/".to_owned(), "private"),
        ("https://192.168.0.1/".to_owned(), "private"),
        ("http://100.64.0.1/".to_owned(), "shared (CGNAT)"),
        ("https://[fd00::1]/".to_owned(), "unique-local"),
    ];
    for (url, class) in cases {
        // A connection attempt would end as a Network error (or a reply);
        // a refusal is Invalid and names the address class.
        let err = client.send(get(url.clone())).await.unwrap_err();
        assert_eq!(err.kind, HttpErrorKind::Invalid, "{url}: {err}");
        assert!(err.message.contains(class), "{url}: {err}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn host_names_are_checked_after_resolution() {
    let server = fine_server().await;
    let port = server.address().port();
    let url = format!("http://localhost:{port}/");

    let err = ReqwestHttpClient::new()
        .unwrap()
        .send(get(url.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, HttpErrorKind::Invalid, "{err}");
    assert!(err.message.contains("localhost"), "{err}");
    assert!(err.message.contains("loopback"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 0);

    // With 127.0.0.1 allowed, localhost's other addresses (::1) are dropped
    // and the call goes to 127.0.0.1.
    let client = ReqwestHttpClient::with_policy(only_127_0_0_1()).unwrap();
    let reply = client.send(get(url)).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn only_http_and_https_are_sent() {
    let client = ReqwestHttpClient::with_policy(NetworkPolicy::allow_all()).unwrap();
    for url in ["ftp://example.com/", "file:///etc/passwd", "gopher://example.com/"] {
        let err = client.send(get(url)).await.unwrap_err();
        assert_eq!(err.kind, HttpErrorKind::Invalid, "{url}: {err}");
        assert!(err.message.contains("scheme"), "{url}: {err}");
    }
    let err = client.send(get("not a url")).await.unwrap_err();
    assert_eq!(err.kind, HttpErrorKind::Invalid, "{err}");
}

#[tokio::test]
async fn exceptions_and_allow_all_let_loopback_through() {
    let server = fine_server().await;
    let port = server.address().port();

    let only = ReqwestHttpClient::with_policy(only_127_0_0_1()).unwrap();
    let reply = only.send(get(format!("http://127.0.0.1:{port}/x"))).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"fine");
    let err = only.send(get(format!("http://127.0.0.2:{port}/x"))).await.unwrap_err();
    assert_eq!(err.kind, HttpErrorKind::Invalid, "{err}");
    assert!(err.message.contains("127.0.0.2"), "{err}");

    let all = ReqwestHttpClient::with_policy(NetworkPolicy::allow_all()).unwrap();
    let reply = all.send(get(format!("http://127.0.0.1:{port}/y"))).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn redirects_are_checked_again() {
    let server = MockServer::start().await;
    let port = server.address().port();
    let redirect = |to: String| ResponseTemplate::new(302).insert_header("Location", to);
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
        .mount(&server)
        .await;
    Mock::given(path("/to-ok"))
        .respond_with(redirect(format!("http://127.0.0.1:{port}/ok")))
        .mount(&server)
        .await;
    Mock::given(path("/to-other-loopback"))
        .respond_with(redirect(format!("http://127.0.0.2:{port}/x")))
        .mount(&server)
        .await;
    Mock::given(path("/to-ipv6-loopback"))
        .respond_with(redirect(format!("http://[::1]:{port}/x")))
        .mount(&server)
        .await;
    Mock::given(path("/to-metadata"))
        .respond_with(redirect("http://169.254.169.254/latest/meta-data".to_owned()))
        .mount(&server)
        .await;
    // (A `file:///` Location has no authority, so it is not even a redirect
    // target: the 302 itself would be the reply.)
    Mock::given(path("/to-ftp"))
        .respond_with(redirect("ftp://127.0.0.1/etc/passwd".to_owned()))
        .mount(&server)
        .await;
    let client = ReqwestHttpClient::with_policy(only_127_0_0_1()).unwrap();

    let reply = client.send(get(format!("{}/to-ok", server.uri()))).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"fine");

    for (from, expected) in [
        ("/to-other-loopback", "127.0.0.2"),
        ("/to-ipv6-loopback", "loopback"),
        ("/to-metadata", "link-local"),
        ("/to-ftp", "scheme"),
    ] {
        let err = client.send(get(format!("{}{from}", server.uri()))).await.unwrap_err();
        assert_eq!(err.kind, HttpErrorKind::Invalid, "{from}: {err}");
        assert!(err.message.contains("redirect"), "{from}: {err}");
        assert!(err.message.contains(expected), "{from}: {err}");
    }
    // /to-ok and /ok, then one request per refused redirect: the targets were never called.
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}

#[tokio::test]
async fn at_most_five_redirects() {
    let server = MockServer::start().await;
    for n in 1..=6 {
        Mock::given(path(format!("/hop/{n}")))
            .respond_with(
                ResponseTemplate::new(302).insert_header("Location", format!("{}/hop/{}", server.uri(), n - 1)),
            )
            .mount(&server)
            .await;
    }
    Mock::given(path("/hop/0"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = ReqwestHttpClient::with_policy(only_127_0_0_1()).unwrap();

    let reply = client.send(get(format!("{}/hop/5", server.uri()))).await.unwrap();
    assert_eq!(reply.status, 200);

    let err = client.send(get(format!("{}/hop/6", server.uri()))).await.unwrap_err();
    assert_eq!(err.kind, HttpErrorKind::Invalid, "{err}");
    assert!(err.message.contains("too many redirects"), "{err}");
}
