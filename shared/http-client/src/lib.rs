//! The reqwest adapter behind [`hookflow_core::ports::HttpClient`].

use std::time::Duration;

use async_trait::async_trait;
use hookflow_core::ports::{HttpCall, HttpClient, HttpError, HttpErrorKind, HttpReply};

/// Responses larger than this are cut off and the step fails: run state
/// travels in queue messages and must stay small.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;

#[derive(Clone)]
pub struct ReqwestHttpClient {
    client: reqwest::Client,
}

impl ReqwestHttpClient {
    pub fn new() -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("hookflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError {
                kind: HttpErrorKind::Invalid,
                message: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(Self { client })
    }
}

fn classify(err: &reqwest::Error) -> HttpErrorKind {
    if err.is_timeout() {
        HttpErrorKind::Timeout
    } else if err.is_builder() || err.is_redirect() {
        HttpErrorKind::Invalid
    } else {
        HttpErrorKind::Network
    }
}

fn describe(err: reqwest::Error) -> String {
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
        let mut request = self.client.request(method, &call.url).timeout(call.timeout);
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
        let client = ReqwestHttpClient::new().unwrap();
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
        let client = ReqwestHttpClient::new().unwrap();
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
