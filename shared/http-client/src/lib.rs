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
//! - Redirects (at most five) are re-checked the same way.
//! - Under a denying policy, proxies from the environment are not used (a
//!   proxy would resolve names out of the guard's sight).
//!
//! Refusals fail with [`HttpErrorKind::Invalid`], naming the address class, and
//! are never retried.

mod guard;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookflow_core::ports::{HttpCall, HttpClient, HttpError, HttpErrorKind, HttpReply};

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
            .redirect(guard::redirect_policy(policy.clone(), MAX_REDIRECTS))
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

#[async_trait]
impl HttpClient for ReqwestHttpClient {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, HttpError> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|_| HttpError {
            kind: HttpErrorKind::Invalid,
            message: format!("invalid method {:?}", call.method),
        })?;
        let url = reqwest::Url::parse(&call.url).map_err(|e| HttpError {
            kind: HttpErrorKind::Invalid,
            message: format!("invalid URL: {e}"),
        })?;
        if let Err(reason) = guard::check_url(&self.policy, &url) {
            return Err(HttpError {
                kind: HttpErrorKind::Invalid,
                message: format!("refused: {reason}"),
            });
        }
        let mut request = self.client.request(method, url).timeout(call.timeout);
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        if let Some(body) = call.body {
            request = request.body(body);
        }
        let err = |e: reqwest::Error| HttpError {
            kind: classify(&e),
            message: describe(e),
        };
        let mut response = request.send().await.map_err(err)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(err)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError {
                    kind: HttpErrorKind::Invalid,
                    message: format!("response body exceeds {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpReply { status, headers, body })
    }
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
}
