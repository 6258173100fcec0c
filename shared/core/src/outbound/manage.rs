//! The management API's use case: endpoints (create, list, show, update,
//! rotate, delete), the operator controls (resend one message, recover
//! everything failed since a time) and the attempt log.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::deliver::{disable, send_order};
use super::{
    check_event_type, is_attempt_position, is_endpoint_id, is_message_id, new_signing_secret, AttemptPage,
    DeliveryTarget, DisabledBecause, Endpoint, MessageStatus, OutboundMessage, OutboundStore, SigningSecret,
    MAX_ENDPOINTS, ROTATION_OVERLAP,
};
use crate::engine::EngineError;
use crate::ports::{Clock, PortError, Queue};

/// The most event types one endpoint subscribes to.
pub const MAX_EVENT_TYPES: usize = 100;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_DESCRIPTION_BYTES: usize = 512;
/// The most messages one `recover` sends again; the report says when more remain.
pub const MAX_RECOVER: usize = 1000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EndpointError {
    #[error("{0}")]
    Invalid(String),
    #[error("no webhook endpoint {0:?}")]
    NotFound(String),
    #[error("no message {0:?} for this endpoint (messages are kept 30 days)")]
    MessageNotFound(String),
    #[error("message {0:?} still has an attempt scheduled; resend it once it has failed or been delivered")]
    MessagePending(String),
    #[error("the workspace has {MAX_ENDPOINTS} webhook endpoints, the most it may have")]
    TooMany,
    #[error("{0:?} changed while this request ran; try again")]
    Changed(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl EndpointError {
    pub fn code(&self) -> &'static str {
        match self {
            EndpointError::Invalid(_) => "invalid_webhook_endpoint",
            EndpointError::NotFound(_) => "webhook_endpoint_not_found",
            EndpointError::MessageNotFound(_) => "message_not_found",
            EndpointError::MessagePending(_) => "message_pending",
            EndpointError::TooMany => "too_many_webhook_endpoints",
            EndpointError::Changed(_) => "webhook_endpoint_changed",
            EndpointError::Port(_) => "store_unavailable",
        }
    }
}

impl From<EngineError> for EndpointError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Port(port) => EndpointError::Port(port),
            other => EndpointError::Port(PortError::terminal("send_order", other.to_string())),
        }
    }
}

pub type EndpointResult<T> = Result<T, EndpointError>;

/// `POST …/webhook-endpoints`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// `PATCH …/webhook-endpoints/{id}`: what is given changes. `enabled: true`
/// re-enables a disabled endpoint and forgets its failing streak.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// What `recover` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverReport {
    /// Messages sent again (one attempt each).
    pub resent: Vec<String>,
    /// True when [`MAX_RECOVER`] were sent and more failed messages remain.
    pub more: bool,
}

pub struct WebhookEndpoints {
    store: Arc<dyn OutboundStore>,
    steps: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
}

impl WebhookEndpoints {
    pub fn new(store: Arc<dyn OutboundStore>, steps: Arc<dyn Queue>, clock: Arc<dyn Clock>) -> Self {
        Self { store, steps, clock }
    }

    /// The endpoint, and its secret (the only answer besides `rotate` that carries one).
    pub async fn create(&self, workspace_id: &str, request: EndpointRequest) -> EndpointResult<(Endpoint, String)> {
        check_url(&request.url)?;
        let event_types = check_event_types(request.event_types)?;
        check_description(&request.description)?;
        if self.store.list_endpoints(workspace_id).await?.len() >= MAX_ENDPOINTS {
            return Err(EndpointError::TooMany);
        }
        let now = self.clock.now();
        let secret = new_signing_secret()?;
        let endpoint = Endpoint {
            id: format!("ep_{}", ulid::Ulid::new().to_string().to_lowercase()),
            workspace_id: workspace_id.to_owned(),
            url: request.url,
            description: request.description,
            event_types,
            disabled: None,
            secrets: vec![SigningSecret {
                value: secret.clone(),
                created_at: now,
                expires_at: None,
            }],
            failing_since: None,
            last_failure_at: None,
            throttled_until: None,
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        if !self.store.create_endpoint(&endpoint).await? {
            return Err(EndpointError::Changed(endpoint.id));
        }
        Ok((endpoint, secret))
    }

    pub async fn list(&self, workspace_id: &str) -> EndpointResult<Vec<Endpoint>> {
        let mut endpoints = self.store.list_endpoints(workspace_id).await?;
        endpoints.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(endpoints)
    }

    pub async fn get(&self, workspace_id: &str, endpoint_id: &str) -> EndpointResult<Endpoint> {
        if !is_endpoint_id(endpoint_id) {
            return Err(EndpointError::NotFound(endpoint_id.to_owned()));
        }
        self.store
            .get_endpoint(workspace_id, endpoint_id)
            .await?
            .ok_or_else(|| EndpointError::NotFound(endpoint_id.to_owned()))
    }

    pub async fn update(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        update: EndpointUpdate,
    ) -> EndpointResult<Endpoint> {
        if let Some(url) = &update.url {
            check_url(url)?;
        }
        let event_types = update.event_types.map(check_event_types).transpose()?;
        if let Some(description) = &update.description {
            check_description(description)?;
        }
        self.change(workspace_id, endpoint_id, |endpoint, now| {
            if let Some(url) = &update.url {
                endpoint.url.clone_from(url);
            }
            if let Some(types) = &event_types {
                endpoint.event_types.clone_from(types);
            }
            if let Some(description) = &update.description {
                endpoint.description.clone_from(description);
            }
            match update.enabled {
                Some(true) => {
                    endpoint.disabled = None;
                    endpoint.failing_since = None;
                    endpoint.last_failure_at = None;
                }
                Some(false) => disable(endpoint, DisabledBecause::Operator, "disabled by an operator", now),
                None => {}
            }
        })
        .await
    }

    /// A new secret; the old one keeps signing for [`ROTATION_OVERLAP`],
    /// so both signatures go out meanwhile. Returns the endpoint and the new secret.
    pub async fn rotate(&self, workspace_id: &str, endpoint_id: &str) -> EndpointResult<(Endpoint, String)> {
        let secret = new_signing_secret()?;
        let endpoint = self
            .change(workspace_id, endpoint_id, |endpoint, now| {
                let overlap =
                    chrono::Duration::from_std(ROTATION_OVERLAP).unwrap_or_else(|_| chrono::Duration::hours(24));
                endpoint.secrets.retain(|s| s.expires_at.is_none_or(|at| at > now));
                for old in endpoint.secrets.iter_mut().filter(|s| s.expires_at.is_none()) {
                    old.expires_at = Some(now + overlap);
                }
                endpoint.secrets.insert(
                    0,
                    SigningSecret {
                        value: secret.clone(),
                        created_at: now,
                        expires_at: None,
                    },
                );
            })
            .await?;
        Ok((endpoint, secret))
    }

    pub async fn delete(&self, workspace_id: &str, endpoint_id: &str) -> EndpointResult<()> {
        self.get(workspace_id, endpoint_id).await?;
        self.store.delete_endpoint(workspace_id, endpoint_id).await?;
        Ok(())
    }

    /// One more attempt of a delivered or failed message, now, with the
    /// same `webhook-id` and body.
    pub async fn resend(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        message_id: &str,
    ) -> EndpointResult<OutboundMessage> {
        self.get(workspace_id, endpoint_id).await?;
        if !is_message_id(message_id) {
            return Err(EndpointError::MessageNotFound(message_id.to_owned()));
        }
        let message = self
            .store
            .get_message(workspace_id, endpoint_id, message_id)
            .await?
            .ok_or_else(|| EndpointError::MessageNotFound(message_id.to_owned()))?;
        self.resend_message(message).await
    }

    /// Sends again every message that failed (and is still failed) created
    /// at or after `since`, oldest first, at most [`MAX_RECOVER`].
    pub async fn recover(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
    ) -> EndpointResult<RecoverReport> {
        self.get(workspace_id, endpoint_id).await?;
        let ids = self
            .store
            .failed_since(workspace_id, endpoint_id, since, MAX_RECOVER + 1)
            .await?;
        let mut report = RecoverReport {
            resent: vec![],
            more: ids.len() > MAX_RECOVER,
        };
        for id in ids.into_iter().take(MAX_RECOVER) {
            let Some(message) = self.store.get_message(workspace_id, endpoint_id, &id).await? else {
                continue;
            };
            if message.status != MessageStatus::Failed {
                // Delivered by a resend since: an entry left behind.
                self.store.index_failed(&message, false).await?;
                continue;
            }
            match self.resend_message(message).await {
                Ok(_) => report.resent.push(id),
                Err(EndpointError::Changed(_) | EndpointError::MessagePending(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(report)
    }

    /// The endpoint's attempt log, newest first.
    pub async fn attempts(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> EndpointResult<AttemptPage> {
        self.get(workspace_id, endpoint_id).await?;
        if before.is_some_and(|position| !is_attempt_position(position)) {
            return Err(EndpointError::Invalid("cursor is not one this API returned".into()));
        }
        Ok(self
            .store
            .list_attempts(workspace_id, endpoint_id, limit.clamp(1, 100), before)
            .await?)
    }

    /// Orders one manual attempt, numbered after the last. Nothing is
    /// written first: the deliverer claims the attempt, so two resends make
    /// one attempt and a lost order changes nothing. A pending message is
    /// refused while its schedule is alive; one whose next attempt is long
    /// overdue with no live claim (its order was lost) may be resent.
    async fn resend_message(&self, message: OutboundMessage) -> EndpointResult<OutboundMessage> {
        let now = self.clock.now();
        if message.status == MessageStatus::Pending && !is_stuck(&message, now) {
            return Err(EndpointError::MessagePending(message.id));
        }
        let order = DeliveryTarget {
            workspace_id: message.workspace_id.clone(),
            endpoint_id: message.endpoint_id.clone(),
            message_id: message.id.clone(),
            attempt: message.attempts + 1,
            due_at: now,
            manual: true,
        };
        send_order(self.steps.as_ref(), order, std::time::Duration::ZERO).await?;
        Ok(message)
    }

    /// Applies `edit` to the endpoint, conditional on the revision read;
    /// a lost race is read and edited again (a failing endpoint's health
    /// changes with every attempt), a few times, then answered `Changed`.
    async fn change(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        edit: impl Fn(&mut Endpoint, DateTime<Utc>),
    ) -> EndpointResult<Endpoint> {
        for _ in 0..5 {
            let read = self.get(workspace_id, endpoint_id).await?;
            let now = self.clock.now();
            let mut changed = read.clone();
            edit(&mut changed, now);
            changed.revision += 1;
            changed.updated_at = now;
            if self.store.replace_endpoint(&changed, read.revision).await? {
                return Ok(changed);
            }
        }
        Err(EndpointError::Changed(endpoint_id.to_owned()))
    }
}

/// How long past its due time a pending message's attempt may be before
/// it counts as lost: past the queue's redeliveries of a 15-minute hop.
const STUCK_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// A pending message no order will move: its next attempt is long overdue
/// and no delivery holds a live claim on it.
fn is_stuck(message: &OutboundMessage, now: DateTime<Utc>) -> bool {
    let claim_lapsed = message.in_flight_until.is_none_or(|until| until < now);
    let overdue = message.next_attempt_at.is_none_or(|due| due + STUCK_AFTER < now);
    claim_lapsed && overdue
}

fn check_url(url: &str) -> EndpointResult<()> {
    let invalid = |why: String| Err(EndpointError::Invalid(why));
    if url.len() > MAX_URL_BYTES {
        return invalid(format!("url is longer than {MAX_URL_BYTES} bytes"));
    }
    let parsed = crate::web_url::https_or_loopback(url, "url").map_err(EndpointError::Invalid)?;
    if crate::web_url::has_credentials(&parsed) {
        return invalid("url must not carry credentials: receivers verify our signature instead".into());
    }
    if parsed.fragment().is_some() {
        return invalid("url must not have a fragment".into());
    }
    Ok(())
}

fn check_event_types(types: Vec<String>) -> EndpointResult<Vec<String>> {
    if types.is_empty() || types.len() > MAX_EVENT_TYPES {
        return Err(EndpointError::Invalid(format!(
            "event_types: give 1 to {MAX_EVENT_TYPES} event types"
        )));
    }
    let mut seen = BTreeSet::new();
    for (index, name) in types.iter().enumerate() {
        check_event_type(name).map_err(|why| EndpointError::Invalid(format!("event_types[{index}]: {why}")))?;
        seen.insert(name.clone());
    }
    Ok(seen.into_iter().collect())
}

fn check_description(description: &str) -> EndpointResult<()> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(EndpointError::Invalid(format!(
            "description: longer than {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    Ok(())
}
