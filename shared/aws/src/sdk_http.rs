//! The AWS SDK's configuration and HTTP client, on the same reqwest and
//! rustls (ring, with the Mozilla roots compiled in) that the HTTP actions
//! use.
//!
//! The SDK's own default client brings a second TLS stack (aws-lc-rs, h2)
//! into every bootstrap and parses the platform's root certificates when
//! its first client is built, which was most of a function's start-up
//! before the first poll. One stack, whose roots need no parsing, removes
//! both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// How long an idle pooled connection is kept; below the 60-s idle timeout
/// of AWS's load balancers, so a reused connection is not one they closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// The SDK configuration loader every Hookflow process starts from: the
/// standard AWS environment (region, credentials, `AWS_ENDPOINT_URL`), and
/// this module's HTTP client.
///
/// Where the environment holds the region and the credentials (always, on
/// Lambda), they are taken from it directly. The default chains would take
/// them from there too, since the environment comes first in both, but
/// building the chains builds an STS client for web identity and an IMDS
/// client, which cost a function a fifth of its start-up and are never used.
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(sdk_http_client());
    // Blank counts as unset, as the environment providers read it.
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
    }
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    loader
}

/// An HTTP client for the AWS SDK. It keeps one connection pool per set of
/// timeouts the SDK asks for (in practice one).
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestSdkClient::default())
}

type TimeoutKey = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct ReqwestSdkClient {
    connectors: Mutex<HashMap<TimeoutKey, SharedHttpConnector>>,
}

impl HttpClient for ReqwestSdkClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        // A panic elsewhere cannot leave the map half-written: entries are
        // inserted whole, so a poisoned lock's contents are still good.
        let mut connectors = self.connectors.lock().unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(ReqwestConnector::new(key)))
            .clone()
    }
}

#[derive(Debug, Clone)]
struct ReqwestConnector {
    client: Result<reqwest::Client, Arc<reqwest::Error>>,
}

impl ReqwestConnector {
    fn new((connect_timeout, read_timeout): TimeoutKey) -> Self {
        let mut builder = reqwest::Client::builder()
            // The SDK retries and signs each request itself; a redirect
            // would send a signed request somewhere it was not signed for.
            .redirect(reqwest::redirect::Policy::none())
            // As with the SDK's own client, no proxy unless configured: an
            // HTTP(S)_PROXY meant for other tools must not reroute AWS calls.
            .no_proxy()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        if let Some(timeout) = connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = read_timeout {
            builder = builder.read_timeout(timeout);
        }
        Self {
            client: builder.build().map_err(Arc::new),
        }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|error| ConnectorError::user(Box::new(SharedError(error))))?;
            let request = to_reqwest(request)?;
            let response = client.execute(request).await.map_err(classify)?;
            from_reqwest(response)
        })
    }
}

fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|error| ConnectorError::user(error.into()))?;
    let (parts, body) = request.into_parts();
    // Every service Hookflow calls sends its whole body at once; a streamed
    // body (an S3 upload) would need a streaming bridge this client lacks.
    let bytes = body
        .bytes()
        .ok_or_else(|| {
            ConnectorError::user("a streamed request body is not supported by Hookflow's SDK client".into())
        })?
        .to_vec();
    let request = http::Request::from_parts(parts, bytes);
    reqwest::Request::try_from(request).map_err(|error| ConnectorError::user(error.into()))
}

/// The body goes on as a stream, as with the SDK's own client: the SDK
/// reads it, so a body cut off is a response error it retries, and its
/// stalled-stream protection watches the read.
fn from_reqwest(response: reqwest::Response) -> Result<HttpResponse, ConnectorError> {
    let response: http::Response<reqwest::Body> = response.into();
    HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
        .map_err(|error| ConnectorError::other(error.into(), None))
}

/// The SDK retries timeouts and I/O failures (a refused or reset
/// connection, a request that could not be sent); anything else is final.
fn classify(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

/// A client that failed to build, shared by every request that would use it.
#[derive(Debug)]
struct SharedError(Arc<reqwest::Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "building the SDK's HTTP client: {}", self.0)
    }
}

impl std::error::Error for SharedError {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use wiremock::matchers::{body_string, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn connector(read_timeout: Option<Duration>) -> ReqwestConnector {
        ReqwestConnector::new((Some(Duration::from_secs(2)), read_timeout))
    }

    fn post(uri: &str, body: &str) -> HttpRequest {
        let request = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("x-amz-target", "DynamoDB_20120810.GetItem")
            .body(SdkBody::from(body.to_owned()))
            .expect("a request");
        HttpRequest::try_from(request).expect("an SDK request")
    }

    #[tokio::test]
    async fn carries_the_request_and_the_whole_response() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/tables"))
            .and(header("x-amz-target", "DynamoDB_20120810.GetItem"))
            .and(body_string("{\"Key\":1}"))
            .respond_with(
                ResponseTemplate::new(400)
                    .insert_header("x-amzn-requestid", "r-1")
                    .set_body_string("{\"__type\":\"ValidationException\"}"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let response = connector(None)
            .call(post(&format!("{}/tables", server.uri()), "{\"Key\":1}"))
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("r-1"));
        let body = response.into_body().collect().await.expect("the whole body").to_bytes();
        assert_eq!(&body[..], b"{\"__type\":\"ValidationException\"}");
    }

    #[tokio::test]
    async fn a_redirect_is_answered_not_followed() {
        let server = MockServer::start().await;
        Mock::given(path("/moved"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", "http://127.0.0.1:9/elsewhere"))
            .mount(&server)
            .await;
        let response = connector(None)
            .call(post(&format!("{}/moved", server.uri()), "{}"))
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 307);
    }

    /// The SDK retries I/O failures and timeouts; the kinds must say which.
    #[tokio::test]
    async fn a_refused_connection_is_io_and_a_slow_answer_a_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let closed = format!("http://{}/", listener.local_addr().expect("its address"));
        drop(listener);
        let refused = connector(None).call(post(&closed, "{}")).await.expect_err("refused");
        assert!(refused.is_io(), "{refused:?}");

        let server = MockServer::start().await;
        Mock::given(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let slow = connector(Some(Duration::from_millis(200)))
            .call(post(&format!("{}/slow", server.uri()), "{}"))
            .await
            .expect_err("timed out");
        assert!(slow.is_timeout(), "{slow:?}");
    }

    /// Reads one HTTP/1.1 request (headers and a `content-length` body).
    async fn read_request(socket: &mut tokio::net::TcpStream) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = socket.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            seen.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return Ok(());
                }
            }
        }
    }

    /// A response body cut off half-way is a failure the SDK retries, as
    /// with its own client: the body reaches the SDK as a stream.
    #[tokio::test]
    async fn the_sdk_retries_a_response_cut_off_half_way() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        let served = tokio::spawn(async move {
            let whole = r#"{"TableNames":["t"]}"#;
            let answer = |declared: usize, body: &str| {
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {declared}\r\n\r\n{body}")
            };
            for answer in [answer(100, &whole[..9]), answer(whole.len(), whole)] {
                let (mut socket, _) = listener.accept().await.expect("a connection");
                read_request(&mut socket).await.expect("a request");
                socket.write_all(answer.as_bytes()).await.expect("written");
                socket.shutdown().await.expect("closed");
            }
        });
        let config = sdk_config_loader()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("a", "b", None, None, "test"))
            .load()
            .await;
        let tables = aws_sdk_dynamodb::Client::new(&config)
            .list_tables()
            .send()
            .await
            .expect("answered on the second attempt");
        assert_eq!(tables.table_names(), ["t"]);
        served.await.expect("both answers served");
    }
}
