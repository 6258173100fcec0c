//! Operator tools: `hookflow dlq list|redrive` (runs are replayed and
//! cancelled through the runs API: `hookflow runs`).
//!
//! Two backends: the operator routes of a running `hookflow dev` server
//! (`--server URL`), or SQS directly (`--aws`), through the same use cases
//! (`redrive`, `Queue::peek`).

use std::sync::Arc;
use std::time::Duration;

use hookflow_core::engine::redrive;
use hookflow_core::ports::{PortError, Queue};
use serde_json::Value;

use crate::dev::DEFAULT_VISIBILITY_TIMEOUT;
use crate::ports::Ports;

/// Where `--server` points by default: `hookflow dev`'s default address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3000";
/// Dead letters shown by `dlq list`.
pub const PEEK_MAX: usize = 100;
/// Dead letters moved by one `dlq redrive`.
pub const REDRIVE_MAX: usize = 1000;
/// Longest line of a message that is neither a step nor a trigger message.
const RAW_CHARS: usize = 200;

/// A queue with a dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueKind {
    Triggers,
    Steps,
}

impl QueueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Triggers => "triggers",
            QueueKind::Steps => "steps",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "triggers" => Some(QueueKind::Triggers),
            "steps" => Some(QueueKind::Steps),
            _ => None,
        }
    }

    /// (dead-letter queue, the queue its messages came from).
    pub fn queues(self, ports: &Ports) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
        match self {
            QueueKind::Triggers => (ports.triggers_dlq.clone(), ports.triggers.clone()),
            QueueKind::Steps => (ports.steps_dlq.clone(), ports.steps.clone()),
        }
    }
}

impl std::fmt::Display for QueueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Up to [`PEEK_MAX`] dead letters, each parsed as JSON if it parses, else
/// kept as a string. Nothing is taken off the queue.
pub async fn peek_dead_letters(ports: &Ports, queue: QueueKind) -> Result<Vec<Value>, PortError> {
    let (dead_letters, _) = queue.queues(ports);
    let bodies = dead_letters.peek(PEEK_MAX).await?;
    Ok(bodies.into_iter().map(parse_body).collect())
}

/// Moves up to [`REDRIVE_MAX`] dead letters back to their queue.
pub async fn redrive_dead_letters(ports: &Ports, queue: QueueKind) -> Result<usize, PortError> {
    let (dead_letters, source) = queue.queues(ports);
    redrive(dead_letters.as_ref(), source.as_ref(), REDRIVE_MAX).await
}

fn parse_body(body: String) -> Value {
    match serde_json::from_str::<Value>(&body) {
        Ok(value) => value,
        Err(_) => Value::String(body),
    }
}

/// One line for a dead letter: the ids of a step or trigger message, else the
/// raw body (cut at 200 characters, on one line).
pub fn describe(message: &Value) -> String {
    let field = |key: &str| match message.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    if let (Some(run), Some(step), Some(attempt), Some(workflow)) = (
        field("run_id"),
        field("step_id"),
        field("attempt"),
        field("workflow_id"),
    ) {
        return format!("run={run} step={step} attempt={attempt} workflow={workflow}");
    }
    if let (Some(event), Some(event_type), Some(workspace)) = (field("id"), field("type"), field("workspaceid")) {
        return format!("event={event} type={event_type} workspace={workspace}");
    }
    let raw = match message {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line: String = raw.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    truncate(&one_line, RAW_CHARS)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars).collect();
    cut.push('…');
    cut
}

/// What `dlq list` prints (without `--json`).
pub fn render_list(queue: QueueKind, messages: &[Value]) -> String {
    let mut out = String::new();
    for message in messages {
        out.push_str(&describe(message));
        out.push('\n');
    }
    out.push_str(&format!(
        "{} message(s) in the {queue} dead-letter queue",
        messages.len()
    ));
    out
}

/// What `dlq redrive` prints.
pub fn render_redrive(queue: QueueKind, moved: usize) -> String {
    format!("moved {moved} message(s) from {queue}-dlq back to {queue}")
}

/// Why an operator command failed; the message is what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "cannot reach the hookflow dev server at {url}: {reason}\n\
         is it running? start it with `hookflow dev`, or pass --server URL (or --aws to act on DynamoDB and SQS)"
    )]
    Unreachable { url: String, reason: String },
    /// The server refused.
    #[error("{message}")]
    Refused { status: u16, code: String, message: String },
    #[error("{0}")]
    Failed(String),
}

impl From<PortError> for OpsError {
    fn from(err: PortError) -> Self {
        OpsError::Failed(err.to_string())
    }
}

enum Backend {
    Server { base: String, http: reqwest::Client },
    Direct(Ports),
}

/// The operator commands on one backend.
pub struct Operator {
    backend: Backend,
}

impl Operator {
    /// Through the operator routes of the `hookflow dev` server at `base`.
    pub fn server(base: &str) -> Result<Self, OpsError> {
        reqwest::Url::parse(base).map_err(|e| OpsError::Failed(format!("--server {base:?} is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| OpsError::Failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            backend: Backend::Server {
                base: base.trim_end_matches('/').to_owned(),
                http,
            },
        })
    }

    /// Directly on these ports.
    pub fn direct(ports: Ports) -> Self {
        Self {
            backend: Backend::Direct(ports),
        }
    }

    /// DynamoDB and SQS from the environment, as `hookflow dev --aws` reads it
    /// (queue URLs from `HOOKFLOW_*_URL`, nothing is created).
    pub async fn aws() -> Result<Self, OpsError> {
        let ports = Ports::aws(false, DEFAULT_VISIBILITY_TIMEOUT)
            .await
            .map_err(|e| OpsError::Failed(format!("cannot use DynamoDB and SQS: {e:#}")))?;
        Ok(Self::direct(ports))
    }

    /// The dead letters of `queue` (at most [`PEEK_MAX`]).
    pub async fn dlq_list(&self, queue: QueueKind) -> Result<Vec<Value>, OpsError> {
        match &self.backend {
            Backend::Direct(ports) => Ok(peek_dead_letters(ports, queue).await?),
            Backend::Server { base, http } => {
                let body = call(http, base, reqwest::Method::GET, &["dev", "dlq", queue.as_str()]).await?;
                match body.get("messages") {
                    Some(Value::Array(messages)) => Ok(messages.clone()),
                    _ => Err(OpsError::Failed(format!(
                        "{base} answered without a list of messages: {}",
                        truncate(&body.to_string(), RAW_CHARS)
                    ))),
                }
            }
        }
    }

    /// Moves the dead letters of `queue` back to it; returns how many moved.
    pub async fn dlq_redrive(&self, queue: QueueKind) -> Result<usize, OpsError> {
        match &self.backend {
            Backend::Direct(ports) => Ok(redrive_dead_letters(ports, queue).await?),
            Backend::Server { base, http } => {
                let body = call(
                    http,
                    base,
                    reqwest::Method::POST,
                    &["dev", "dlq", queue.as_str(), "redrive"],
                )
                .await?;
                body.get("moved")
                    .and_then(Value::as_u64)
                    .map(|n| n as usize)
                    .ok_or_else(|| {
                        OpsError::Failed(format!(
                            "{base} answered without a count of moved messages: {}",
                            truncate(&body.to_string(), RAW_CHARS)
                        ))
                    })
            }
        }
    }
}

/// One request to the dev server's operator routes; the JSON body of a 2xx,
/// else the server's error message.
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    segments: &[&str],
) -> Result<Value, OpsError> {
    let mut url =
        reqwest::Url::parse(base).map_err(|e| OpsError::Failed(format!("--server {base:?} is not a URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| OpsError::Failed(format!("--server {base:?} cannot have a path")))?
        .pop_if_empty()
        .extend(segments);
    let unreachable = |err: reqwest::Error| OpsError::Unreachable {
        url: base.to_owned(),
        reason: error_chain(&err),
    };
    let response = http.request(method, url.clone()).send().await.map_err(unreachable)?;
    let status = response.status();
    let text = response.text().await.map_err(unreachable)?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
    let message = match body["error"]["message"].as_str() {
        Some(message) if code == "not_found" => {
            format!("{message} ({url} answered {status}; is {base} a `hookflow dev` server with the operator routes?)")
        }
        Some(message) => message.to_owned(),
        None => format!("{url} answered {status}: {}", truncate(text.trim(), RAW_CHARS)),
    };
    Err(OpsError::Refused {
        status: status.as_u16(),
        code,
        message,
    })
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
