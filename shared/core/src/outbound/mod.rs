//! Outbound webhooks (Standard Webhooks): a workspace's endpoints receive
//! the ingested trigger events whose type they subscribe to (Komo's
//! server-side event stream), `Run.Succeeded` and `Run.Failed`, and the
//! operational `WebhookEndpoint.Disabled`.
//!
//! An event becomes one [`OutboundMessage`] per subscribed endpoint, its id
//! (the `webhook-id`) derived from the endpoint and the event, so a
//! redelivered event makes no second message. Each attempt to deliver it is
//! a [`DeliveryOrder`] on the steps queue; a wait longer than a queue delay
//! hops through the queue. What each attempt got back is kept in the
//! endpoint's attempt log.

mod deliver;
mod manage;
mod sign;

pub use deliver::{DeliveryReport, FanOut, WebhookDeliverer};
pub use manage::{EndpointError, EndpointRequest, EndpointUpdate, RecoverReport, WebhookEndpoints};
pub use sign::{new_signing_secret, signature_header};

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::PortResult;

/// The most endpoints one workspace may hold: fan-out reads them in one query.
pub const MAX_ENDPOINTS: usize = 50;
/// How long a rotated-out secret still signs: both signatures go out meanwhile.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// An endpoint whose deliveries have failed without a success for this long is disabled.
pub const FAILING_LIMIT: Duration = Duration::from_secs(5 * 24 * 3600);
/// Messages, the failed index and attempts are kept this long (TTL on DynamoDB).
pub const MESSAGE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// One attempt's whole HTTP exchange.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// The waits after attempts 1 to 7 (Standard Webhooks' reference schedule):
/// eight attempts in all, the first immediately.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// The largest payload sent: with its message's other fields it fits one
/// DynamoDB item (400 KB). An event over it is delivered to no endpoint
/// (and says so in the dispatcher's log).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// How many bytes of a receiver's answer the attempt log keeps.
pub const RESPONSE_EXCERPT_BYTES: usize = 512;

pub const RUN_SUCCEEDED: &str = "Run.Succeeded";
pub const RUN_FAILED: &str = "Run.Failed";
/// The operational event sent when an endpoint is disabled.
pub const ENDPOINT_DISABLED: &str = "WebhookEndpoint.Disabled";
/// Event types only endpoints subscribe to (workflows cannot).
pub const OUTBOUND_ONLY_TYPES: [&str; 3] = [RUN_SUCCEEDED, RUN_FAILED, ENDPOINT_DISABLED];

/// Accepts a catalogue type, `Hook.<name>`, or one of [`OUTBOUND_ONLY_TYPES`].
pub fn check_event_type(name: &str) -> Result<(), String> {
    if OUTBOUND_ONLY_TYPES.contains(&name) {
        return Ok(());
    }
    crate::catalogue::check_trigger_type(name).map_err(|err| err.to_string())
}

/// A `whsec_` secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub value: String,
    pub created_at: DateTime<Utc>,
    /// Set when a rotation replaced it: it signs until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSecret")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why an endpoint stopped receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledBecause {
    /// It answered 410 Gone.
    Gone,
    /// Its deliveries failed for [`FAILING_LIMIT`] without one success.
    FailingTooLong,
    /// An operator disabled it.
    Operator,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    pub at: DateTime<Utc>,
    pub because: DisabledBecause,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    #[serde(default)]
    pub description: String,
    pub event_types: Vec<String>,
    /// `None` while it receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
    /// Newest first; the first has no `expires_at`.
    pub secrets: Vec<SigningSecret>,
    /// When the current streak of failures began; cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// The streak's latest failure: a day without one ends the streak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Set by a 429, 502 or 504: no attempt goes to it before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change: replacements are conditional on it.
    pub revision: u64,
}

impl Endpoint {
    /// What the API answers: everything but the secrets' values.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "event_types": self.event_types,
            "status": if self.disabled.is_some() { "disabled" } else { "enabled" },
            "disabled": self.disabled,
            "failing_since": self.failing_since,
            "throttled_until": self.throttled_until,
            "secrets": self.secrets.iter().map(|s| serde_json::json!({
                "created_at": s.created_at,
                "expires_at": s.expires_at,
            })).collect::<Vec<_>>(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }

    /// The secrets that sign at `now`, newest first.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| s.value.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Attempts are still to come.
    Pending,
    Delivered,
    /// The schedule ran out, a manual resend failed, or the endpoint was
    /// disabled or deleted: `recover` sends it again.
    Failed,
}

/// One event for one endpoint: what every attempt sends, byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The `webhook-id`: `msg_` and a digest of the endpoint and the event.
    pub id: String,
    pub workspace_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// The JSON body as signed and sent.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub status: MessageStatus,
    /// Attempts claimed so far.
    pub attempts: u32,
    /// While an attempt is being made: a delivery finding the claim past
    /// this time takes the attempt over (the one before it died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Bumped by every change: replacements are conditional on it.
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Delivered,
    /// Another attempt is scheduled (`next_attempt_at`).
    WillRetry,
    /// No attempt follows: the schedule ran out, or it was a manual resend.
    Failed,
    /// The answer disabled the endpoint (410).
    EndpointDisabled,
}

/// One HTTP attempt, as the attempt log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub workspace_id: String,
    pub endpoint_id: String,
    pub message_id: String,
    pub event_type: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// A transport failure (timeout, refused connection, SSRF guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The first [`RESPONSE_EXCERPT_BYTES`] of the answer, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    pub duration_ms: u64,
    pub outcome: AttemptOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Made by an operator's resend or recover.
    #[serde(default)]
    pub manual: bool,
}

/// A page of the attempt log, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptPage {
    pub attempts: Vec<DeliveryAttempt>,
    /// Pass as `before` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The log's sort key of an attempt: time, then message and attempt, so
/// that a page ends at an exact position.
pub fn attempt_position(attempt: &DeliveryAttempt) -> String {
    format!(
        "{:020}#{}#{:03}",
        attempt.at.timestamp_micros().max(0),
        attempt.message_id,
        attempt.attempt
    )
}

/// `ep_` and a lower-case ULID, as [`WebhookEndpoints::create`] makes them.
pub fn is_endpoint_id(id: &str) -> bool {
    id.strip_prefix("ep_")
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

/// `msg_` and 26 lower-case hex digits, as fan-out makes them.
pub fn is_message_id(id: &str) -> bool {
    id.strip_prefix("msg_")
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// A position [`attempt_position`] made: what a cursor may hold.
pub fn is_attempt_position(position: &str) -> bool {
    let mut parts = position.split('#');
    let (Some(at), Some(message), Some(attempt), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    at.len() == 20
        && at.bytes().all(|b| b.is_ascii_digit())
        && is_message_id(message)
        && attempt.len() == 3
        && attempt.bytes().all(|b| b.is_ascii_digit())
}

/// One attempt to make: the steps queue's other kind of message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryOrder {
    pub webhook_delivery: DeliveryTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTarget {
    pub workspace_id: String,
    pub endpoint_id: String,
    pub message_id: String,
    pub attempt: u32,
    /// Not before then: an order that arrives early is sent on again.
    pub due_at: DateTime<Utc>,
    /// An operator's resend: one attempt, no schedule after it.
    #[serde(default)]
    pub manual: bool,
}

impl DeliveryOrder {
    /// Whether `body` is an order (well-formed or not). Step messages never
    /// start with this key, which [`crate::ports::message_body`] writes first.
    pub fn is_order(body: &str) -> bool {
        body.trim_start().starts_with("{\"webhook_delivery\"")
    }

    /// The order in `body`, if it is a well-formed one.
    pub fn from_body(body: &str) -> Option<Self> {
        Self::is_order(body).then(|| serde_json::from_str(body).ok()).flatten()
    }
}

/// Endpoints, their messages, the failed index and the attempt log.
#[async_trait]
pub trait OutboundStore: Send + Sync {
    /// False when an endpoint with that id exists.
    async fn create_endpoint(&self, endpoint: &Endpoint) -> PortResult<bool>;
    /// False when the stored revision is no longer `read_revision`.
    async fn replace_endpoint(&self, endpoint: &Endpoint, read_revision: u64) -> PortResult<bool>;
    async fn get_endpoint(&self, workspace_id: &str, endpoint_id: &str) -> PortResult<Option<Endpoint>>;
    /// Every endpoint of the workspace (at most [`MAX_ENDPOINTS`]): one read.
    async fn list_endpoints(&self, workspace_id: &str) -> PortResult<Vec<Endpoint>>;
    async fn delete_endpoint(&self, workspace_id: &str, endpoint_id: &str) -> PortResult<()>;

    /// `None` when created, else the message already there.
    async fn create_message(&self, message: &OutboundMessage) -> PortResult<Option<OutboundMessage>>;
    async fn get_message(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        message_id: &str,
    ) -> PortResult<Option<OutboundMessage>>;
    /// False when the stored version is no longer `read_version`.
    async fn replace_message(&self, message: &OutboundMessage, read_version: u64) -> PortResult<bool>;
    /// Adds the message to (or takes it out of) the endpoint's failed index,
    /// by its creation time.
    async fn index_failed(&self, message: &OutboundMessage, failed: bool) -> PortResult<()>;
    /// Ids of indexed failed messages created at or after `since`, oldest first.
    async fn failed_since(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<String>>;

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> PortResult<()>;
    /// Newest first, from before the position `before` when given.
    async fn list_attempts(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> PortResult<AttemptPage>;
}
