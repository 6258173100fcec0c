//! The reqwest adapter behind [`hookflow_core::ports::HttpClient`].
//!
//! # SSRF guard
//!
//! Step URLs come from workflow authors, so calls go through a guard set by a
//! [`NetworkPolicy`]. [`ReqwestHttpClient::new`] uses
//! [`NetworkPolicy::deny_private`]: only public addresses are reached. Denied
//! are loopback, private (RFC 1918), shared (CGNAT), link-local (including the
//! metadata service at 169.254.169.254), unspecified, multicast, broadcast,
//! documentation and reserved ranges, their IPv6 counterparts, and IPv6 forms
//! that embed a denied IPv4 address (IPv4-mapped, IPv4-compatible, NAT64,
//! 6to4); see [`is_denied`]. [`NetworkPolicy::allowed`] lists exact addresses
//! let through anyway; [`NetworkPolicy::allow_all`] turns the guard off (local
//! development).
//!
//! - Only `http` and `https` URLs are sent.
//! - IP-literal hosts are checked before the request is built.
//! - Host names are resolved once, by the client's own resolver, which drops
//!   denied addresses and refuses the name if none remain; the connection goes
//!   to exactly the checked addresses, so DNS rebinding cannot slip a private
//!   address in between check and connect.
//! - Redirects (at most five) are followed here, each hop checked the same
//!   way. A step's `follow_redirects` says which: `none`, `same_origin` (the
//!   default for a request with a body) or `any`. Across origins every
//!   credential header is stripped (the redaction list, the step's `api_key`
//!   header, the headers it marks secret); reqwest alone would strip only
//!   `Authorization`, `Cookie` and `Proxy-Authorization`.
//! - Under a denying policy, proxies from the environment are not used (a
//!   proxy would resolve names out of the guard's sight).
//!
//! Refusals fail with [`HttpErrorKind::Invalid`], naming the address class, and
//! are never retried.

mod guard;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookflow_core::ports::{FollowRedirects, HttpCall, HttpClient, HttpError, HttpErrorKind, HttpReply};

pub use guard::{is_denied, NetworkPolicy};

/// Responses larger than this are cut off and the step fails: run state
/// travels in queue messages and must stay small.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;

#[derive(Clone)]
pub struct ReqwestHttpClient {
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
}

impl ReqwestHttpClient {
    /// A client that reaches public addresses only
    /// ([`NetworkPolicy::deny_private`]).
    pub fn new() -> Result<Self, HttpError> {
        Self::with_policy(NetworkPolicy::deny_private())
    }

    /// A client that reaches what `policy` allows.
    pub fn with_policy(policy: NetworkPolicy) -> Result<Self, HttpError> {
        let policy = Arc::new(policy);
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(guard::GuardedResolver::new(policy.clone())))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("hookflow/", env!("CARGO_PKG_VERSION")));
        if !policy.allow_private {
            // A proxy resolves names itself, where the guard cannot see.
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| HttpError {
            kind: HttpErrorKind::Invalid,
            message: format!("cannot build HTTP client: {e}"),
        })?;
        Ok(Self { client, policy })
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }
}

fn classify(err: &reqwest::Error) -> HttpErrorKind {
    if guard::find_refused(err).is_some() {
        // The guard refused the resolved address or a redirect: not retryable.
        HttpErrorKind::Invalid
    } else if err.is_timeout() {
        HttpErrorKind::Timeout
    } else if err.is_builder() || err.is_redirect() {
        HttpErrorKind::Invalid
    } else {
        HttpErrorKind::Network
    }
}

fn describe(err: reqwest::Error) -> String {
    if let Some(refused) = guard::find_refused(&err) {
        return refused.to_string();
    }
    // The URL may carry credentials in its query; report the failure without it.
    let kind = match classify(&err) {
        HttpErrorKind::Timeout => "request timed out",
        HttpErrorKind::Invalid => "request refused",
        HttpErrorKind::Network => "network error",
    };
    let err = err.without_url();
    let mut message = format!("{kind}: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// One request of a call: the first, or one a redirect leads to.
struct Hop {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

fn invalid(message: impl Into<String>) -> HttpError {
    HttpError {
        kind: HttpErrorKind::Invalid,
        message: message.into(),
    }
}

/// Redirects are followed here, not by reqwest, so each hop decides which
/// headers and body go on: across origins, credentials never do.
#[async_trait]
impl HttpClient for ReqwestHttpClient {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, HttpError> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|_| invalid(format!("invalid method {:?}", call.method)))?;
        let url = reqwest::Url::parse(&call.url).map_err(|e| invalid(format!("invalid URL: {e}")))?;
        guard::check_url(&self.policy, &url).map_err(|reason| invalid(format!("refused: {reason}")))?;
        let deadline = tokio::time::Instant::now() + call.timeout;
        let origin = url.origin();
        let mut hop = Hop {
            method,
            url,
            headers: call.headers.clone(),
            body: call.body.clone(),
        };
        let mut redirects = 0;
        loop {
            let response = self.send_hop(&hop, deadline).await.map_err(|mut err| {
                if redirects > 0 {
                    err.message = format!("after {redirects} redirect(s): {}", err.message);
                }
                err
            })?;
            match next_hop(&self.policy, &call, &origin, &hop, &response, redirects)? {
                Some(next) => {
                    hop = next;
                    redirects += 1;
                }
                None => return read_reply(response).await,
            }
        }
    }
}

impl ReqwestHttpClient {
    async fn send_hop(&self, hop: &Hop, deadline: tokio::time::Instant) -> Result<reqwest::Response, HttpError> {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(HttpError {
                kind: HttpErrorKind::Timeout,
                message: "request timed out".into(),
            });
        }
        let mut request = self
            .client
            .request(hop.method.clone(), hop.url.clone())
            .timeout(remaining);
        for (name, value) in &hop.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &hop.body {
            request = request.body(body.clone());
        }
        request.send().await.map_err(|e| HttpError {
            kind: classify(&e),
            message: describe(e),
        })
    }
}

/// Where `response` leads, if the call follows it: `None` makes the
/// response the reply (not a redirect, not followed, or leaving the origin
/// under `same_origin`).
fn next_hop(
    policy: &NetworkPolicy,
    call: &HttpCall,
    origin: &url::Origin,
    hop: &Hop,
    response: &reqwest::Response,
    redirects: usize,
) -> Result<Option<Hop>, HttpError> {
    let status = response.status().as_u16();
    if !matches!(status, 301 | 302 | 303 | 307 | 308) || call.follow_redirects == FollowRedirects::None {
        return Ok(None);
    }
    let Some(target) = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| hop.url.join(location).ok())
    else {
        return Ok(None);
    };
    if redirects >= MAX_REDIRECTS {
        return Err(invalid(format!("too many redirects (more than {MAX_REDIRECTS})")));
    }
    guard::check_url(policy, &target).map_err(|reason| invalid(format!("refused redirect: {reason}")))?;
    if hop.url.scheme() == "https" && target.scheme() == "http" {
        tracing::info!(status, "redirect from https to http not followed");
        return Ok(None);
    }
    let crosses = target.origin() != *origin;
    if crosses && call.follow_redirects == FollowRedirects::SameOrigin {
        tracing::info!(
            status,
            "redirect to another origin not followed (follow_redirects: same_origin)"
        );
        return Ok(None);
    }
    // As browsers do: 303 always, and 301/302 after a POST, go on as GET
    // without the body; 307/308 repeat the request as it was.
    let rewrite = status == 303 || (matches!(status, 301 | 302) && hop.method == reqwest::Method::POST);
    let (method, body) = if rewrite && hop.method != reqwest::Method::HEAD {
        (reqwest::Method::GET, None)
    } else {
        (hop.method.clone(), hop.body.clone())
    };
    let headers = hop
        .headers
        .iter()
        .filter(|(name, _)| !(crosses && call.is_secret_header(name)))
        .filter(|(name, _)| body.is_some() || !is_body_header(name))
        .cloned()
        .collect();
    Ok(Some(Hop {
        method,
        url: target,
        headers,
        body,
    }))
}

fn is_body_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("content-length")
}

/// The status, headers and body (read up to [`MAX_RESPONSE_BYTES`], never
/// more: a larger body fails the call before it is held whole).
async fn read_reply(mut response: reqwest::Response) -> Result<HttpReply, HttpError> {
    let too_large = || invalid(format!("response body exceeds {MAX_RESPONSE_BYTES} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| HttpError {
        kind: classify(&e),
        message: describe(e),
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpReply { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn call(url: String, timeout: Duration) -> HttpCall {
        HttpCall {
            method: "POST".into(),
            url,
            headers: vec![("X-Test".into(), "1".into())],
            body: Some(b"{}".to_vec()),
            timeout,
            follow_redirects: hookflow_core::ports::FollowRedirects::Any,
            secret_headers: vec![],
        }
    }

    #[tokio::test]
    async fn sends_and_reads_the_reply() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/x"))
            .and(header("x-test", "1"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"ok": true})))
            .expect(1)
            .mount(&server)
            .await;
        let client = ReqwestHttpClient::with_policy(NetworkPolicy::allow_all()).unwrap();
        let reply = client
            .send(call(format!("{}/x", server.uri()), Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.body, br#"{"ok":true}"#);
    }

    #[tokio::test]
    async fn classifies_timeouts_and_network_errors() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
            .mount(&server)
            .await;
        let client = ReqwestHttpClient::with_policy(NetworkPolicy::allow_all()).unwrap();
        let err = client
            .send(call(server.uri(), Duration::from_millis(50)))
            .await
            .unwrap_err();
        assert_eq!(err.kind, HttpErrorKind::Timeout, "{err}");
        // Nothing listens on port 9 of loopback.
        let err = client
            .send(call("http://127.0.0.1:9/".into(), Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert_eq!(err.kind, HttpErrorKind::Network, "{err}");
    }

    #[test]
    fn a_redirect_from_https_to_http_is_not_followed() {
        let answer = |location: &str| {
            reqwest::Response::from(
                http::Response::builder()
                    .status(307)
                    .header("location", location)
                    .body(Vec::<u8>::new())
                    .unwrap(),
            )
        };
        let hop = Hop {
            method: reqwest::Method::GET,
            url: reqwest::Url::parse("https://api.example.com/a").unwrap(),
            headers: vec![],
            body: None,
        };
        let origin = hop.url.origin();
        let mut get = call("https://api.example.com/a".into(), Duration::from_secs(1));
        get.follow_redirects = FollowRedirects::Any;
        let policy = NetworkPolicy::allow_all();
        let next = |location: &str| next_hop(&policy, &get, &origin, &hop, &answer(location), 0).unwrap();
        assert!(next("http://api.example.com/b").is_none(), "a downgrade is the reply");
        assert!(
            next("https://api.example.com/b").is_some(),
            "the same origin is followed"
        );
    }
}
