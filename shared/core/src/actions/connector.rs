//! What every connector action shares: resolving its connection, sending
//! with the connection's credentials (never rendered into the context, and
//! added to the step's secrets so no echo of them reaches the run log),
//! one fresh read of the credentials when the app answers 401, and the
//! classification of an app's answer: 429 and 5xx are retryable, with the
//! app's `Retry-After` (or `X-RateLimit-Reset`), everything else terminal.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{ActionCall, Failure, FailureClass, Outcome, Performed};
use crate::connections::{App, ResolveError, ResolvedConnection};
use crate::ports::{HttpCall, HttpReply};
use crate::retry::RetryOn;

/// The app's answer, and the request as the run log shows it.
pub(super) struct Sent {
    pub reply: HttpReply,
    pub request: Option<Value>,
}

/// Sends what `build` makes of the step's connection. A 401 may mean the
/// credentials were rotated since they were read: they are read again and
/// the request sent once more; a second 401 is the app's answer.
pub(super) async fn send(
    call: &mut ActionCall<'_>,
    app: App,
    connection: &str,
    build: impl Fn(&ResolvedConnection) -> Result<HttpCall, String>,
) -> Result<Sent, Performed> {
    let resolver = call.ports.connections.clone();
    let mut reread = false;
    loop {
        let resolved = resolve(call, app, connection).await?;
        let prepared = build(&resolved).map_err(terminal)?;
        let sent = send_call(call, prepared).await?;
        if sent.reply.status == 401 && !reread {
            tracing::info!(connection, %app, "credentials refused; reading them again");
            resolver.forget(call.workspace_id, connection);
            reread = true;
            continue;
        }
        return Ok(sent);
    }
}

/// The step's connection, its credentials added to the step's secrets.
pub(super) async fn resolve(
    call: &mut ActionCall<'_>,
    app: App,
    connection: &str,
) -> Result<Arc<ResolvedConnection>, Performed> {
    let resolved = call
        .ports
        .connections
        .resolve(call.workspace_id, connection, app)
        .await
        .map_err(|err| Performed::from(resolve_failure(err)))?;
    for value in resolved.credentials.values() {
        call.secrets.add(value);
    }
    Ok(resolved)
}

/// Sends one call, recording it as the run log will show it.
pub(super) async fn send_call(call: &mut ActionCall<'_>, prepared: HttpCall) -> Result<Sent, Performed> {
    call.secrets.add_call(&prepared);
    let request = serde_json::to_value(crate::engine::RenderedRequest::of(&prepared, call.secrets)).ok();
    match call.ports.http.send(prepared).await {
        Ok(reply) => Ok(Sent { reply, request }),
        Err(err) => Err(Performed {
            outcome: super::http_request::transport_failure(err),
            request,
        }),
    }
}

/// A step that cannot be sent as configured: never retried.
pub(super) fn terminal(message: impl ToString) -> Performed {
    Performed::from(Outcome::Failed(Failure::terminal(message)))
}

fn resolve_failure(err: ResolveError) -> Outcome {
    match err {
        ResolveError::Port(port) => Outcome::Interrupted(port),
        refused => Outcome::Failed(Failure::terminal(refused)),
    }
}

/// A call to `base_url` followed by `segments`, each percent-encoded as one
/// path segment, so a rendered value cannot climb out of its place.
pub(super) fn url(base_url: &str, segments: &[&str]) -> Result<String, String> {
    // The URL parser drops tabs and line breaks and then reads `..`: a
    // rendered `.\t.` would climb out of its segment.
    if let Some(bad) = segments
        .iter()
        .find(|s| s.is_empty() || matches!(**s, "." | "..") || s.chars().any(char::is_control))
    {
        return Err(format!("{bad:?} cannot be a path segment of the request"));
    }
    let mut url = url::Url::parse(base_url).map_err(|e| format!("base_url: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| "base_url cannot have a path".to_owned())?
        .pop_if_empty()
        .extend(segments);
    Ok(url.to_string())
}

/// A JSON request with the given credentials header.
pub(super) fn json_call(method: &str, url: String, authorization: String, body: Option<&Value>) -> HttpCall {
    let mut headers = vec![("Authorization".to_owned(), authorization)];
    if body.is_some() {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    headers.push(("Accept".into(), "application/json".into()));
    HttpCall {
        method: method.to_owned(),
        url,
        headers,
        body: body.map(|b| b.to_string().into_bytes()),
        timeout: std::time::Duration::from_secs_f64(super::DEFAULT_TIMEOUT_S),
        // Credentials never follow a redirect: an app's API does not move.
        follow_redirects: crate::ports::FollowRedirects::None,
        secret_headers: vec![],
    }
}

/// The reply's body as JSON (text when it is not), `null` when empty.
pub(super) fn body(reply: &HttpReply) -> Value {
    let text = String::from_utf8_lossy(&reply.body);
    if text.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
}

/// A refusal from the app: `explain` turns the app's error body into words.
pub(super) fn failure(
    app: App,
    reply: &HttpReply,
    now: DateTime<Utc>,
    explain: fn(&Value) -> Option<String>,
) -> Failure {
    let body = body(reply);
    let class = match reply.status {
        429 => FailureClass::Retryable(RetryOn::TooManyRequests),
        500..=599 => FailureClass::Retryable(RetryOn::ServerError),
        _ => FailureClass::Terminal,
    };
    let detail = explain(&body).unwrap_or_else(|| "no error detail".into());
    Failure {
        message: format!("{app} answered HTTP {}: {detail}", reply.status),
        class,
        retry_after_s: retry_after(reply, now),
        output: Some(json!({"status": reply.status, "body": body})),
    }
}

/// `Retry-After`, else a rate limit's reset time (`X-RateLimit-Reset`, in
/// epoch seconds, as Braze sends it).
fn retry_after(reply: &HttpReply, now: DateTime<Utc>) -> Option<f64> {
    if let Some(seconds) = reply
        .header("retry-after")
        .and_then(super::http_request::parse_retry_after)
    {
        return Some(seconds);
    }
    let reset: i64 = reply.header("x-ratelimit-reset")?.trim().parse().ok()?;
    Some(((reset - now.timestamp()) as f64).max(0.0))
}

/// Problems every connector step shares: a connection name.
pub(super) fn connection_problems(connection: &str) -> Vec<(String, String)> {
    if crate::connections::is_connection_name(connection) {
        vec![]
    } else {
        vec![(
            "connection".into(),
            "must name a connection: 1 to 64 of a-z 0-9 - _ (see `hookflow connections list`)".into(),
        )]
    }
}

/// A required template that must not be empty.
pub(super) fn required(field: &str, value: &str) -> Vec<(String, String)> {
    if value.trim().is_empty() {
        vec![(field.to_owned(), "is required".into())]
    } else {
        vec![]
    }
}
