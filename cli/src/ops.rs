//! Operator tools: `hookflow dlq list|redrive` (runs are replayed and
//! cancelled through the runs API: `hookflow runs`).
//!
//! Two backends: the operator routes of a running `hookflow dev` server
//! (`--server URL`), or SQS directly (`--aws`), through the same use cases
//! (`redrive`, `Queue::peek`).

use std::sync::Arc;
use std::time::Duration;

use hookflow_core::dead_letter::{ParkedMessage, QueueKind};
use hookflow_core::engine::{redrive, LeftParked, RedriveTo};
use hookflow_core::ports::{PortError, Queue};
use serde::{Deserialize, Serialize};
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

/// (dead-letter queue, the queue its messages came from).
fn queues(ports: &Ports, queue: QueueKind) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
    match queue {
        QueueKind::Triggers => (ports.triggers_dlq.clone(), ports.triggers.clone()),
        QueueKind::Steps => (ports.steps_dlq.clone(), ports.steps.clone()),
    }
}

/// A queue name on the command line.
pub fn parse_queue(name: &str) -> Result<QueueKind, String> {
    QueueKind::parse(name).ok_or_else(|| format!("unknown queue {name:?}; expected triggers or steps"))
}

/// What `dlq list` shows of one queue: the messages parked by its consumers,
/// and any still waiting in its dead-letter queue (before its consumer took
/// them, or with the consumer off).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterListing {
    pub queue: QueueKind,
    pub parked: Vec<ParkedMessage>,
    /// Bodies, parsed as JSON where they parse.
    pub waiting: Vec<Value>,
}

/// What one `dlq redrive` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedriveReport {
    pub queue: QueueKind,
    /// Messages moved from the dead-letter queue back to their queue.
    pub moved: usize,
    /// Parked messages sent on: trigger events re-sent, step messages'
    /// runs replayed from the step they stopped at.
    pub redriven: usize,
    /// Parked messages that stay parked, and why.
    pub left: Vec<LeftParked>,
}

/// Up to [`PEEK_MAX`] parked and [`PEEK_MAX`] waiting dead letters; nothing is taken.
pub async fn list_dead_letters(ports: &Ports, queue: QueueKind) -> Result<DeadLetterListing, OpsError> {
    let (dead_letters, _) = queues(ports, queue);
    let waiting = dead_letters.peek(PEEK_MAX).await?;
    let mut parked = ports
        .stores
        .dead_letters(queue, ports.steps.clone())
        .list()
        .await
        .map_err(failed)?;
    parked.truncate(PEEK_MAX);
    Ok(DeadLetterListing {
        queue,
        parked,
        waiting: waiting.into_iter().map(parse_body).collect(),
    })
}

/// Moves up to [`REDRIVE_MAX`] waiting dead letters back to their queue, and
/// sends up to [`REDRIVE_MAX`] parked ones on.
pub async fn redrive_dead_letters(ports: &Ports, queue: QueueKind) -> Result<RedriveReport, OpsError> {
    let (dead_letters, source) = queues(ports, queue);
    let moved = redrive(dead_letters.as_ref(), source.as_ref(), REDRIVE_MAX).await?;
    let recovery = ports.stores.recovery(ports.steps.clone());
    let to = match queue {
        QueueKind::Triggers => RedriveTo::Triggers(ports.triggers.as_ref()),
        QueueKind::Steps => RedriveTo::Steps(&recovery),
    };
    let parked = ports
        .stores
        .dead_letters(queue, ports.steps.clone())
        .redrive(to, REDRIVE_MAX)
        .await
        .map_err(failed)?;
    Ok(RedriveReport {
        queue,
        moved,
        redriven: parked.redriven,
        left: parked.left,
    })
}

fn failed(err: impl std::fmt::Display) -> OpsError {
    OpsError::Failed(err.to_string())
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
    truncate(&one_line(&raw), RAW_CHARS)
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
pub fn render_list(listing: &DeadLetterListing) -> String {
    let mut out = String::new();
    for parked in &listing.parked {
        let body = parse_body(parked.body.clone());
        out.push_str(&format!(
            "parked {} {}\n    {}\n",
            parked.parked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            describe(&body),
            truncate(&one_line(&parked.reason), RAW_CHARS * 2)
        ));
    }
    for message in &listing.waiting {
        out.push_str(&format!("waiting {}\n", describe(message)));
    }
    out.push_str(&format!(
        "{} parked, {} waiting in the {} dead-letter queue",
        listing.parked.len(),
        listing.waiting.len(),
        listing.queue
    ));
    out
}

/// What `dlq redrive` prints.
pub fn render_redrive(report: &RedriveReport) -> String {
    let queue = report.queue;
    let sent = match queue {
        QueueKind::Triggers => "re-sent to triggers",
        QueueKind::Steps => "runs replayed from the step they stopped at",
    };
    let mut out = format!(
        "moved {} message(s) from {queue}-dlq back to {queue}; {} parked message(s) {sent}",
        report.moved, report.redriven
    );
    for left in &report.left {
        out.push_str(&format!("\nleft parked {}: {}", left.id, one_line(&left.reason)));
    }
    out
}

fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
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
    Direct(Box<Ports>),
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
            backend: Backend::Direct(Box::new(ports)),
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

    /// The dead letters of `queue`, parked and waiting.
    pub async fn dlq_list(&self, queue: QueueKind) -> Result<DeadLetterListing, OpsError> {
        match &self.backend {
            Backend::Direct(ports) => list_dead_letters(ports, queue).await,
            Backend::Server { base, http } => {
                let body = call(http, base, reqwest::Method::GET, &["dev", "dlq", queue.as_str()]).await?;
                answer_as(base, body, "a dead-letter listing")
            }
        }
    }

    /// Sends the dead letters of `queue` on.
    pub async fn dlq_redrive(&self, queue: QueueKind) -> Result<RedriveReport, OpsError> {
        match &self.backend {
            Backend::Direct(ports) => redrive_dead_letters(ports, queue).await,
            Backend::Server { base, http } => {
                let path = ["dev", "dlq", queue.as_str(), "redrive"];
                let body = call(http, base, reqwest::Method::POST, &path).await?;
                answer_as(base, body, "a redrive report")
            }
        }
    }
}

/// The server's answer as `T`, or an error saying what came instead.
fn answer_as<T: serde::de::DeserializeOwned>(base: &str, body: Value, what: &str) -> Result<T, OpsError> {
    let shown = truncate(&body.to_string(), RAW_CHARS);
    serde_json::from_value(body).map_err(|e| {
        OpsError::Failed(format!(
            "{base} answered with something other than {what} ({e}): {shown}"
        ))
    })
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
