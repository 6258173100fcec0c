//! `POST /v1/hooks/{hook_id}`: the public door. Nothing about a hook shows
//! before its sender authenticated: an unknown id, a disabled hook and a
//! failed check are one refusal, and the body limit, the rate limit and the
//! body's format are looked at only after the check passed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::{header, spend_like_a_check, verify, AuthFailure};
use super::body::{parse, BodyError, HookBody};
use super::manage::is_hook_id;
use super::{EventIdSource, Hook, HookStatus, HookStore};
use crate::engine::{EngineError, Ingest};
use crate::event::TriggerEvent;
use crate::ports::Clock;

/// Requests per second a hook takes when it names no limit.
pub const DEFAULT_RATE_LIMIT: u32 = 50;
/// An event id longer than this (in bytes) is replaced by its SHA-256; ids
/// elsewhere are at most 256 bytes.
const MAX_EVENT_ID_BYTES: usize = 200;
/// The prefix of a hashed id. A sender's own id that starts with it is
/// hashed too, so it cannot equal the hash of another id.
const HASHED_ID_PREFIX: &str = "sha256:";
/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// 401, the same body for all: unknown id, disabled hook, failed check.
    #[error("the request did not authenticate ({0})")]
    Unauthorized(String),
    /// 429 with `Retry-After`.
    #[error("the hook's rate limit of {limit}/s is exceeded")]
    RateLimited { limit: u32, retry_after_s: u64 },
    /// 413: over the hook's body limit.
    #[error("the body is over this hook's limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// 400 or 415.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// 413: the body fits the hook's limit, but not a queue message once
    /// wrapped as an event.
    #[error("the event would be {bytes} bytes as a queue message, over the limit of {limit}")]
    EventTooLarge { bytes: usize, limit: usize },
    /// 503: nothing was enqueued; the sender should retry.
    #[error("the event could not be accepted now: {0}")]
    Unavailable(String),
    /// 500: a fault a retry will not fix; nothing was enqueued.
    #[error("the event could not be accepted: {0}")]
    Internal(String),
}

/// An accepted request.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub hook: Hook,
    pub event_id: String,
    /// The same event (per hook) was accepted before: nothing was enqueued.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

pub struct HookReceiver {
    hooks: Arc<dyn HookStore>,
    ingest: Ingest,
    clock: Arc<dyn Clock>,
    /// One token bucket per hook, in this process: a noisy sender exhausts
    /// its own hook's bucket and nobody else's.
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl From<EngineError> for Refusal {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::EventTooLarge { bytes, limit } => Refusal::EventTooLarge { bytes, limit },
            retryable if retryable.is_retryable() => Refusal::Unavailable(retryable.to_string()),
            other => Refusal::Internal(other.to_string()),
        }
    }
}

impl HookReceiver {
    pub fn new(hooks: Arc<dyn HookStore>, ingest: Ingest, clock: Arc<dyn Clock>) -> Self {
        Self {
            hooks,
            ingest,
            clock,
            buckets: Mutex::default(),
        }
    }

    #[tracing::instrument(skip_all, fields(hook_id = %hook_id.chars().take(40).collect::<String>()))]
    pub async fn receive(&self, hook_id: &str, headers: &[(String, String)], body: &[u8]) -> Result<Received, Refusal> {
        let hook = self.authenticate(hook_id, headers, body).await?;
        if body.len() > hook.max_body_bytes {
            return Err(Refusal::TooLarge {
                limit: hook.max_body_bytes,
            });
        }
        self.take_token(&hook)?;
        let content_type = header(headers, "Content-Type");
        let parsed = parse(hook.kind, content_type, body)?;
        let event = self.event(&hook, headers, parsed);
        let receipt = self.ingest.accept(std::slice::from_ref(&event)).await?;
        let duplicate = receipt.first().is_some_and(|r| r.duplicate);
        tracing::info!(workspace_id = %hook.workspace_id, event_id = %event.id, duplicate, "hook request accepted");
        Ok(Received {
            event_id: event.id,
            duplicate,
            hook,
        })
    }

    async fn authenticate(&self, hook_id: &str, headers: &[(String, String)], body: &[u8]) -> Result<Hook, Refusal> {
        let refuse = |why: String| {
            tracing::warn!(reason = %why, "hook request refused");
            Refusal::Unauthorized(why)
        };
        if !is_hook_id(hook_id) {
            spend_like_a_check(body);
            return Err(refuse("not a hook id".into()));
        }
        let found = match self.hooks.get_hook(hook_id).await {
            Ok(found) => found,
            Err(err) if err.retryable => return Err(Refusal::Unavailable(err.to_string())),
            // An unreadable hook is refused like a missing one: a distinct
            // answer would tell that the id exists.
            Err(err) => {
                tracing::error!(error = %err, "hook cannot be read");
                None
            }
        };
        let Some(hook) = found else {
            spend_like_a_check(body);
            return Err(refuse("no such hook".into()));
        };
        if hook.status == HookStatus::Disabled {
            spend_like_a_check(body);
            return Err(refuse("the hook is disabled".into()));
        }
        verify(&hook, headers, body, self.clock.now()).map_err(|failure: AuthFailure| refuse(failure.to_string()))?;
        Ok(hook)
    }

    fn take_token(&self, hook: &Hook) -> Result<(), Refusal> {
        let now = self.clock.now();
        let rate = f64::from(hook.rate_limit);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // Idle buckets are full again: dropping them changes nothing.
            buckets.retain(|_, b| (now - b.at).num_seconds() < 60);
        }
        let bucket = buckets
            .entry(hook.id.clone())
            .or_insert(Bucket { tokens: rate, at: now });
        let elapsed = (now - bucket.at).num_milliseconds().max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let retry_after_s = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64;
            tracing::warn!(limit = hook.rate_limit, "hook rate limit exceeded");
            return Err(Refusal::RateLimited {
                limit: hook.rate_limit,
                retry_after_s,
            });
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    fn event(&self, hook: &Hook, headers: &[(String, String)], parsed: HookBody) -> TriggerEvent {
        let id = event_id(&hook.event_id, headers, &parsed).unwrap_or_else(|| ulid::Ulid::new().to_string());
        TriggerEvent {
            specversion: "1.0".into(),
            id,
            source: hook.event_source(),
            event_type: hook.trigger_type.clone(),
            time: Some(self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            datacontenttype: Some("application/json".into()),
            data: parsed.data,
            workspaceid: hook.workspace_id.clone(),
            siteid: hook.siteid.clone(),
            cardid: hook.cardid.clone(),
            contactid: None,
            depth: 0,
        }
    }
}

/// The event id from the hook's source, if the request carries one.
fn event_id(source: &EventIdSource, headers: &[(String, String)], parsed: &HookBody) -> Option<String> {
    let found = match source {
        EventIdSource::Header(name) => header(headers, name).map(str::to_owned),
        EventIdSource::JsonPath(path) => {
            let path = path.trim_start_matches("$.");
            let value = path.split('.').try_fold(&parsed.data, |value, key| value.get(key))?;
            match value {
                Value::String(text) => Some(text.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        }
        EventIdSource::MessageId => parsed.message_id.clone(),
        EventIdSource::Generated => None,
    }?;
    let found = found.trim().to_owned();
    if found.is_empty() {
        return None;
    }
    if found.len() > MAX_EVENT_ID_BYTES || found.chars().any(char::is_control) || found.starts_with(HASHED_ID_PREFIX) {
        let digest = Sha256::digest(found.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        return Some(format!("{HASHED_ID_PREFIX}{hex}"));
    }
    Some(found)
}
