//! Fan-out (an event becomes one message per subscribed endpoint) and
//! delivery (one attempt per [`DeliveryOrder`], then the next one scheduled).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    signature_header, AttemptOutcome, DeliveryAttempt, DeliveryOrder, DeliveryTarget, Disabled, DisabledBecause,
    Endpoint, MessageStatus, OutboundMessage, OutboundStore, ATTEMPT_TIMEOUT, ENDPOINT_DISABLED, FAILING_LIMIT,
    MAX_PAYLOAD_BYTES, RESPONSE_EXCERPT_BYTES, RETRY_SCHEDULE, RUN_FAILED, RUN_SUCCEEDED,
};
use crate::engine::{EngineError, MAX_QUEUE_DELAY};
use crate::event::TriggerEvent;
use crate::metrics::{Counter, Metrics, Subject};
use crate::ports::{
    message_body, Clock, EventSink, FollowRedirects, HttpCall, HttpClient, HttpErrorKind, PortError, Queue,
};
use crate::run::{RunRecord, RunStatus};

/// How long past the attempt's timeout a claim is held: a delivery finding
/// it older takes the attempt over.
const CLAIM_MARGIN: Duration = Duration::from_secs(45);
/// The shortest slow-down after a 429, 502 or 504, and the longest.
const MIN_THROTTLE: Duration = Duration::from_secs(5);
const MAX_THROTTLE: Duration = Duration::from_secs(3600);
/// Failures further apart than this are not one streak.
const STREAK_GAP: Duration = Duration::from_secs(24 * 3600);

/// How long a process reuses a workspace's endpoint listing: the
/// dispatcher's subscription lookups are all it reads per event, and a new
/// endpoint (or a change of its event types) is seen within this.
pub const ENDPOINT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Workspaces whose listings one process keeps; past it, all are forgotten.
const ENDPOINT_CACHE_WORKSPACES: usize = 10_000;

type EndpointCache = std::collections::HashMap<String, (Instant, Arc<Vec<Endpoint>>)>;

/// Turns events into messages and first orders. Runs in the dispatcher (for
/// trigger events) and the step executor (for ended runs).
pub struct FanOut {
    store: Arc<dyn OutboundStore>,
    steps: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    endpoints: std::sync::Mutex<EndpointCache>,
}

impl FanOut {
    pub fn new(store: Arc<dyn OutboundStore>, steps: Arc<dyn Queue>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            steps,
            clock,
            endpoints: std::sync::Mutex::default(),
        }
    }

    /// The workspace's endpoints, read at most every [`ENDPOINT_CACHE_TTL`].
    /// A stale listing costs nothing wrong: the deliverer reads the endpoint
    /// itself before each attempt (a disabled or deleted one fails the
    /// message for `recover`).
    async fn endpoints_of(&self, workspace_id: &str) -> Result<Arc<Vec<Endpoint>>, EngineError> {
        let cached = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(workspace_id)
            .filter(|(read_at, _)| read_at.elapsed() < ENDPOINT_CACHE_TTL)
            .map(|(_, endpoints)| endpoints.clone());
        if let Some(endpoints) = cached {
            return Ok(endpoints);
        }
        let endpoints = Arc::new(self.store.list_endpoints(workspace_id).await?);
        let mut cache = self.endpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= ENDPOINT_CACHE_WORKSPACES {
            cache.clear();
        }
        cache.insert(workspace_id.to_owned(), (Instant::now(), endpoints.clone()));
        Ok(endpoints)
    }

    /// An ingested trigger event, its CloudEvent as `data`.
    pub async fn event(&self, event: &TriggerEvent) -> Result<usize, EngineError> {
        let data = serde_json::to_value(event).map_err(|e| PortError::terminal("encode_event", e.to_string()))?;
        self.publish(&event.workspaceid, &event.event_type, &event.identity(), data)
            .await
    }

    /// Announces that `run` is ending `status` now. The callers (the step
    /// executor, the reaper, dead-letter parking) call it before they end
    /// the run: a crash in between announces it and leaves the run to a
    /// redelivery, where the other order could lose the announcement. (A
    /// cancel racing the end may thus be announced as the end it raced.)
    pub async fn run_ending(
        &self,
        run: &RunRecord,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<usize, EngineError> {
        let ended = RunRecord {
            status,
            error: error.map(str::to_owned),
            ended_at: Some(self.clock.now()),
            ..run.clone()
        };
        // A retryable failure brings the caller's message back; a terminal
        // one (an endpoint item that cannot be read) must not keep the run
        // from ending, nor stop the reaper's pass.
        match self.run_ended(&ended).await {
            Ok(sent) => Ok(sent),
            Err(err) if err.is_retryable() => Err(err),
            Err(err) => {
                tracing::error!(run_id = %run.run_id, error = %err,
                    "the run's end could not be announced to webhook endpoints");
                Ok(0)
            }
        }
    }

    /// `Run.Succeeded` or `Run.Failed` for a run that ended (a live test's
    /// run sends nothing).
    pub async fn run_ended(&self, run: &RunRecord) -> Result<usize, EngineError> {
        let event_type = match run.status {
            RunStatus::Succeeded => RUN_SUCCEEDED,
            RunStatus::Failed => RUN_FAILED,
            _ => return Ok(0),
        };
        if run.test {
            return Ok(0);
        }
        let data = json!({
            "run_id": run.run_id,
            "workflow_id": run.workflow_id,
            "workflow_version": run.workflow_version,
            "status": run.status,
            "trigger_type": run.trigger_type,
            "event_id": run.event_id,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "error": run.error,
        });
        // A replay that fails again is another event.
        let identity = format!("run|{}|{}|{}", run.run_id, run.replays, event_type);
        self.publish(&run.workspace_id, event_type, &identity, data).await
    }

    /// Whether a listed endpoint that was disabled still is: a listing up to
    /// [`ENDPOINT_CACHE_TTL`] old must not fail the events of an endpoint
    /// re-enabled since (an operator's `recover` would miss them).
    async fn still_disabled(&self, listed: &Endpoint) -> Result<bool, EngineError> {
        let current = self.store.get_endpoint(&listed.workspace_id, &listed.id).await?;
        Ok(current.is_none_or(|endpoint| endpoint.disabled.is_some()))
    }

    /// One message per endpoint of the workspace subscribed to `event_type`,
    /// created once per (endpoint, identity), and its first order. A
    /// disabled endpoint's message is made failed, for `recover` once it is
    /// enabled again. Returns how many orders went out.
    pub async fn publish(
        &self,
        workspace_id: &str,
        event_type: &str,
        identity: &str,
        data: Value,
    ) -> Result<usize, EngineError> {
        let endpoints = self.endpoints_of(workspace_id).await?;
        let mut sent = 0;
        for endpoint in endpoints.iter().filter(|e| e.subscribes_to(event_type)) {
            let now = self.clock.now();
            let mut message = new_message(endpoint, event_type, identity, &data, now)?;
            if endpoint.disabled.is_some() && self.still_disabled(endpoint).await? {
                message.status = MessageStatus::Failed;
                message.last_error = Some("the endpoint was disabled when the event came".to_owned());
                // The index first: an entry without its message is skipped.
                self.store.index_failed(&message, true).await?;
                if let Some(existing) = self.store.create_message(&message).await? {
                    // A redelivered event: the entry just written is not the
                    // existing message's (its creation time differs).
                    self.store.index_failed(&message, false).await?;
                    if existing.status == MessageStatus::Failed {
                        self.store.index_failed(&existing, true).await?;
                    }
                }
                continue;
            }
            match self.store.create_message(&message).await? {
                None => {}
                // An earlier delivery of the event created it and may have
                // died before sending the order; a duplicate order is absorbed.
                Some(existing) if existing.status == MessageStatus::Pending && existing.attempts == 0 => {}
                Some(_) => continue,
            }
            let order = DeliveryTarget {
                workspace_id: workspace_id.to_owned(),
                endpoint_id: endpoint.id.clone(),
                message_id: message.id.clone(),
                attempt: 1,
                due_at: now,
                manual: false,
            };
            send_order(self.steps.as_ref(), order, Duration::ZERO).await?;
            sent += 1;
        }
        Ok(sent)
    }
}

fn new_message(
    endpoint: &Endpoint,
    event_type: &str,
    identity: &str,
    data: &Value,
    now: DateTime<Utc>,
) -> Result<OutboundMessage, EngineError> {
    let payload = json!({
        "type": event_type,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    let payload = serde_json::to_string(&payload).map_err(|e| PortError::terminal("encode_message", e.to_string()))?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(PortError::terminal(
            "webhook_payload",
            format!(
                "the {event_type} payload is {} bytes, over the limit of {MAX_PAYLOAD_BYTES}",
                payload.len()
            ),
        )
        .into());
    }
    Ok(OutboundMessage {
        id: message_id(&endpoint.id, identity),
        workspace_id: endpoint.workspace_id.clone(),
        endpoint_id: endpoint.id.clone(),
        event_type: event_type.to_owned(),
        payload,
        created_at: now,
        status: MessageStatus::Pending,
        attempts: 0,
        in_flight_until: None,
        next_attempt_at: Some(now),
        last_error: None,
        version: 1,
    })
}

/// `msg_` and 26 hex digits of the digest of endpoint and event identity.
pub(super) fn message_id(endpoint_id: &str, identity: &str) -> String {
    let digest = Sha256::digest(format!("{endpoint_id}\n{identity}").as_bytes());
    let hex: String = digest.iter().take(13).map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

pub(super) async fn send_order(steps: &dyn Queue, target: DeliveryTarget, delay: Duration) -> Result<(), EngineError> {
    let body = message_body(&DeliveryOrder {
        webhook_delivery: target,
    })
    .map_err(|e| PortError::terminal("encode_order", e.to_string()))?;
    steps.send(body, delay.min(MAX_QUEUE_DELAY)).await?;
    Ok(())
}

/// What handling one order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryReport {
    /// Nothing to do: a duplicate order, a settled or vanished message.
    Skipped(&'static str),
    /// Not due yet (or the endpoint is slowed down): the order went back on the queue.
    Deferred {
        until: DateTime<Utc>,
    },
    /// The message failed without an attempt: its endpoint is disabled or deleted.
    Abandoned,
    Attempted(AttemptOutcome),
}

/// What the receiver's answer means.
enum Verdict {
    Delivered,
    Gone,
    /// 429, 502, 504: the endpoint is slowed down, with its `Retry-After`.
    SlowDown(Option<f64>),
    Failed,
    /// Refused before sending: failed with no attempt after it.
    Refused,
}

/// One attempt's exchange, for the log.
struct Exchange {
    status: Option<u16>,
    error: Option<String>,
    /// The request was refused before it left (the SSRF guard, a bad URL):
    /// no later attempt would fare better.
    refused: bool,
    response: Option<String>,
    retry_after: Option<f64>,
    duration_ms: u64,
}

impl Exchange {
    fn verdict(&self) -> Verdict {
        if self.refused {
            return Verdict::Refused;
        }
        match self.status {
            Some(200..=299) => Verdict::Delivered,
            Some(410) => Verdict::Gone,
            Some(429 | 502 | 504) => Verdict::SlowDown(self.retry_after),
            _ => Verdict::Failed,
        }
    }

    fn problem(&self) -> String {
        match (&self.error, self.status) {
            (Some(error), _) => error.clone(),
            (None, Some(status)) => format!("the endpoint answered {status}"),
            (None, None) => "no answer".to_owned(),
        }
    }
}

/// Makes the attempts: runs in the step function (and `hookflow dev`),
/// which consume the steps queue the orders are on.
pub struct WebhookDeliverer {
    store: Arc<dyn OutboundStore>,
    steps: Arc<dyn Queue>,
    http: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    /// Where the operational `WebhookEndpoint.Disabled` goes: ingest.
    events: Arc<dyn EventSink>,
}

impl WebhookDeliverer {
    pub fn new(
        store: Arc<dyn OutboundStore>,
        steps: Arc<dyn Queue>,
        http: Arc<dyn HttpClient>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
        events: Arc<dyn EventSink>,
    ) -> Self {
        Self {
            store,
            steps,
            http,
            clock,
            metrics,
            events,
        }
    }

    #[tracing::instrument(skip_all, fields(workspace_id = %target.workspace_id, endpoint_id = %target.endpoint_id,
        message_id = %target.message_id, attempt = target.attempt))]
    pub async fn deliver(&self, target: &DeliveryTarget) -> Result<DeliveryReport, EngineError> {
        let now = self.clock.now();
        let Some(message) = self
            .store
            .get_message(&target.workspace_id, &target.endpoint_id, &target.message_id)
            .await?
        else {
            return Ok(DeliveryReport::Skipped(
                "the message is gone (deleted endpoint, or past retention)",
            ));
        };
        if let Some(skip) = self.already_handled(&message, target, now)? {
            return Ok(skip);
        }
        if target.due_at > now {
            return self.defer(target, target.due_at, now).await;
        }
        let endpoint = self
            .store
            .get_endpoint(&target.workspace_id, &target.endpoint_id)
            .await?;
        let endpoint = match endpoint {
            Some(endpoint) if endpoint.disabled.is_none() => endpoint,
            Some(_) => return self.abandon(message, "the endpoint is disabled").await,
            None => return self.abandon(message, "the endpoint was deleted").await,
        };
        if let Some(until) = endpoint.throttled_until.filter(|until| *until > now) {
            return self
                .defer(target, spread_out(until, now, &target.message_id), now)
                .await;
        }
        let mut claimed = message.clone();
        claimed.attempts = target.attempt;
        claimed.status = MessageStatus::Pending;
        claimed.in_flight_until = Some(now + ATTEMPT_TIMEOUT + CLAIM_MARGIN);
        claimed.version += 1;
        if !self.store.replace_message(&claimed, message.version).await? {
            return Ok(DeliveryReport::Skipped("another delivery claimed the attempt"));
        }
        let exchange = self.send(&endpoint, &claimed).await;
        self.settle(endpoint, claimed, target, exchange).await
    }

    /// `Some` when this order has nothing left to do; an error (retryable)
    /// while another delivery holds a live claim on the same attempt.
    fn already_handled(
        &self,
        message: &OutboundMessage,
        target: &DeliveryTarget,
        now: DateTime<Utc>,
    ) -> Result<Option<DeliveryReport>, EngineError> {
        if message.attempts > target.attempt {
            return Ok(Some(DeliveryReport::Skipped("the attempt was made")));
        }
        // No second POST while one is in flight, whichever attempt this is.
        if let Some(until) = message.in_flight_until.filter(|until| *until > now) {
            return Err(EngineError::DeliveryInProgress {
                message_id: message.id.clone(),
                attempt: message.attempts,
                until,
            });
        }
        if message.attempts == target.attempt {
            // A claim that outlived its delivery is taken over.
            return Ok(message
                .in_flight_until
                .is_none()
                .then_some(DeliveryReport::Skipped("the attempt was made")));
        }
        // A scheduled attempt is for a message still pending; an operator's
        // resend is for one that settled (or got stuck).
        if !target.manual && message.status != MessageStatus::Pending {
            return Ok(Some(DeliveryReport::Skipped("the message was settled")));
        }
        Ok(None)
    }

    async fn defer(
        &self,
        target: &DeliveryTarget,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DeliveryReport, EngineError> {
        let wait = (until - now).to_std().unwrap_or_default();
        let mut order = target.clone();
        order.due_at = until;
        send_order(self.steps.as_ref(), order, wait).await?;
        Ok(DeliveryReport::Deferred { until })
    }

    /// Fails the message without an attempt; `recover` sends it later.
    async fn abandon(&self, message: OutboundMessage, why: &str) -> Result<DeliveryReport, EngineError> {
        let mut failed = message.clone();
        failed.status = MessageStatus::Failed;
        failed.in_flight_until = None;
        failed.next_attempt_at = None;
        failed.last_error = Some(why.to_owned());
        failed.version += 1;
        self.store.index_failed(&failed, true).await?;
        self.store.replace_message(&failed, message.version).await?;
        tracing::info!(reason = why, "message failed without an attempt");
        Ok(DeliveryReport::Abandoned)
    }

    async fn send(&self, endpoint: &Endpoint, message: &OutboundMessage) -> Exchange {
        let now = self.clock.now();
        let signature = signature_header(
            &endpoint.signing_secrets(now),
            &message.id,
            now.timestamp(),
            message.payload.as_bytes(),
        );
        let call = HttpCall {
            method: "POST".to_owned(),
            url: endpoint.url.clone(),
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("user-agent".to_owned(), "Hookflow-Webhooks/1".to_owned()),
                ("webhook-id".to_owned(), message.id.clone()),
                ("webhook-timestamp".to_owned(), now.timestamp().to_string()),
                ("webhook-signature".to_owned(), signature),
            ],
            body: Some(message.payload.clone().into_bytes()),
            timeout: ATTEMPT_TIMEOUT,
            follow_redirects: FollowRedirects::None,
            secret_headers: vec!["webhook-signature".to_owned()],
        };
        let started = Instant::now();
        let result = self.http.send(call).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(reply) => Exchange {
                status: Some(reply.status),
                error: None,
                refused: false,
                response: Some(excerpt(&reply.body)),
                retry_after: reply
                    .header("retry-after")
                    .and_then(crate::actions::http_request::parse_retry_after),
                duration_ms,
            },
            Err(err) => Exchange {
                status: None,
                refused: err.kind == HttpErrorKind::Invalid,
                error: Some(err.to_string()),
                response: None,
                retry_after: None,
                duration_ms,
            },
        }
    }

    /// Schedules the next attempt and settles the message, then records the
    /// attempt and moves the endpoint's health. The next order goes out
    /// before the message is settled: a crash in between leaves a claim that
    /// expires, never a message nothing will deliver. The log and the health
    /// come after, best effort: a failure there must not make the receiver
    /// get the message again.
    async fn settle(
        &self,
        endpoint: Endpoint,
        claimed: OutboundMessage,
        target: &DeliveryTarget,
        exchange: Exchange,
    ) -> Result<DeliveryReport, EngineError> {
        let now = self.clock.now();
        let verdict = exchange.verdict();
        let next_at = match verdict {
            Verdict::Delivered | Verdict::Gone | Verdict::Refused => None,
            Verdict::SlowDown(retry_after) => self.next_attempt_at(target, &claimed.id, retry_after, now),
            Verdict::Failed => self.next_attempt_at(target, &claimed.id, exchange.retry_after, now),
        };
        let outcome = match (&verdict, next_at) {
            (Verdict::Delivered, _) => AttemptOutcome::Delivered,
            (Verdict::Gone, _) => AttemptOutcome::EndpointDisabled,
            (_, Some(_)) => AttemptOutcome::WillRetry,
            (_, None) => AttemptOutcome::Failed,
        };
        if let Some(at) = next_at {
            let mut order = target.clone();
            order.attempt += 1;
            order.due_at = at;
            send_order(self.steps.as_ref(), order, (at - now).to_std().unwrap_or_default()).await?;
        }
        self.settle_message(&claimed, outcome, next_at, &exchange).await?;
        tracing::info!(status = exchange.status.unwrap_or(0), outcome = ?outcome,
            duration_ms = exchange.duration_ms, "webhook attempt");
        let attempt = DeliveryAttempt {
            workspace_id: claimed.workspace_id.clone(),
            endpoint_id: claimed.endpoint_id.clone(),
            message_id: claimed.id.clone(),
            event_type: claimed.event_type.clone(),
            attempt: target.attempt,
            at: now,
            status_code: exchange.status,
            error: exchange.error.clone(),
            response: exchange.response.clone(),
            duration_ms: exchange.duration_ms,
            outcome,
            next_attempt_at: next_at,
            manual: target.manual,
        };
        if let Err(err) = self.store.record_attempt(&attempt).await {
            tracing::warn!(error = %err, "the attempt was made but could not be logged");
        }
        if let Err(err) = self.update_health(endpoint, &verdict, &exchange).await {
            tracing::warn!(error = %err, "the endpoint's health could not be updated after the attempt");
        }
        Ok(DeliveryReport::Attempted(outcome))
    }

    async fn settle_message(
        &self,
        claimed: &OutboundMessage,
        outcome: AttemptOutcome,
        next_at: Option<DateTime<Utc>>,
        exchange: &Exchange,
    ) -> Result<(), EngineError> {
        let mut settled = claimed.clone();
        settled.in_flight_until = None;
        settled.next_attempt_at = next_at;
        settled.version += 1;
        match outcome {
            AttemptOutcome::Delivered => {
                settled.status = MessageStatus::Delivered;
                settled.last_error = None;
            }
            AttemptOutcome::WillRetry => settled.last_error = Some(exchange.problem()),
            AttemptOutcome::Failed | AttemptOutcome::EndpointDisabled => {
                settled.status = MessageStatus::Failed;
                settled.last_error = Some(exchange.problem());
                // The index first: a crash between the two leaves an entry
                // `recover` skips, never a failed message it cannot find.
                self.store.index_failed(&settled, true).await?;
            }
        }
        self.store.replace_message(&settled, claimed.version).await?;
        if outcome == AttemptOutcome::Delivered {
            // A resent message may be in the failed index (`recover` also
            // cleans up an entry left behind).
            if let Err(err) = self.store.index_failed(&settled, false).await {
                tracing::warn!(error = %err, "a delivered message stays in the failed index");
            }
        }
        Ok(())
    }

    /// When the next attempt is due, or `None` when none follows (a manual
    /// resend, or the schedule's end). Jitter of ±10 % is derived from the
    /// message and attempt, so a redelivered order schedules the same time;
    /// `Retry-After` is a floor.
    fn next_attempt_at(
        &self,
        target: &DeliveryTarget,
        message_id: &str,
        retry_after: Option<f64>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if target.manual {
            return None;
        }
        let index = usize::try_from(target.attempt).ok()?.checked_sub(1)?;
        let wait = RETRY_SCHEDULE.get(index)?;
        let digest = Sha256::digest(format!("{message_id}#{}", target.attempt).as_bytes());
        let fraction = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / f64::from(u16::MAX);
        let jittered = wait.as_secs_f64() * (0.9 + 0.2 * fraction);
        let floor = retry_after.unwrap_or(0.0).clamp(0.0, MAX_THROTTLE.as_secs_f64());
        let wait = Duration::from_secs_f64(jittered.max(floor));
        Some(now + chrono::Duration::from_std(wait).ok()?)
    }

    /// Moves the endpoint's health ([`health_after`]); written only when it
    /// changes, conditional on the revision read (re-read on a lost race).
    async fn update_health(
        &self,
        endpoint: Endpoint,
        verdict: &Verdict,
        exchange: &Exchange,
    ) -> Result<(), EngineError> {
        let mut current = endpoint;
        for _ in 0..5 {
            let now = self.clock.now();
            let mut changed = health_after(&current, verdict, exchange, now);
            if changed == current {
                return Ok(());
            }
            let newly_disabled = current.disabled.is_none() && changed.disabled.is_some();
            changed.revision += 1;
            changed.updated_at = now;
            // The event before the write: if it cannot be sent, the endpoint
            // stays enabled and the next failure tries again.
            if newly_disabled {
                self.announce_disabled(&changed).await?;
            }
            if self.store.replace_endpoint(&changed, current.revision).await? {
                if newly_disabled {
                    self.count_disabled(&changed);
                }
                return Ok(());
            }
            match self.store.get_endpoint(&current.workspace_id, &current.id).await? {
                Some(read) => current = read,
                None => return Ok(()),
            }
        }
        Err(PortError::retryable("replace_endpoint", "the endpoint kept changing under the update").into())
    }

    /// The metric the stack's alarm watches, and an error log line.
    fn count_disabled(&self, endpoint: &Endpoint) {
        let because = endpoint.disabled.as_ref().map(|d| d.because);
        tracing::error!(workspace_id = %endpoint.workspace_id, endpoint_id = %endpoint.id, because = ?because,
            "webhook endpoint disabled");
        self.metrics.count(
            Counter::WebhookEndpointsDisabled,
            &Subject {
                workspace_id: &endpoint.workspace_id,
                workflow_id: "",
                run_id: "",
            },
        );
    }

    /// The operational event, through ingest, so endpoints subscribed to
    /// `WebhookEndpoint.Disabled` receive it.
    async fn announce_disabled(&self, endpoint: &Endpoint) -> Result<(), EngineError> {
        let Some(disabled) = &endpoint.disabled else {
            return Ok(());
        };
        let event = TriggerEvent {
            specversion: "1.0".to_owned(),
            // The revision that disabled it: deliverers racing to disable
            // the same state announce one event.
            id: format!("{}:disabled:r{}", endpoint.id, endpoint.revision),
            source: "hookflow/webhook-endpoints".to_owned(),
            event_type: ENDPOINT_DISABLED.to_owned(),
            time: Some(disabled.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            datacontenttype: Some("application/json".to_owned()),
            data: json!({
                "endpoint_id": endpoint.id,
                "url": endpoint.url,
                "because": disabled.because,
                "detail": disabled.detail,
                "disabled_at": disabled.at,
            }),
            workspaceid: endpoint.workspace_id.clone(),
            siteid: None,
            cardid: None,
            contactid: None,
            depth: 0,
        };
        self.events.emit(&[event]).await?;
        Ok(())
    }
}

pub(super) fn disable(endpoint: &mut Endpoint, because: DisabledBecause, detail: &str, now: DateTime<Utc>) {
    if endpoint.disabled.is_none() {
        endpoint.disabled = Some(Disabled {
            at: now,
            because,
            detail: detail.to_owned(),
        });
    }
    endpoint.throttled_until = None;
}

/// A success clears the endpoint's failing streak; a failure starts it (or
/// goes on with it, unless a day passed without one), and disables the
/// endpoint once it is [`FAILING_LIMIT`] old; a 410 disables it at once;
/// 429/502/504 slow it down.
fn health_after(endpoint: &Endpoint, verdict: &Verdict, exchange: &Exchange, now: DateTime<Utc>) -> Endpoint {
    let mut changed = endpoint.clone();
    match verdict {
        Verdict::Delivered => {
            changed.failing_since = None;
            changed.last_failure_at = None;
            changed.throttled_until = None;
        }
        Verdict::Gone => disable(
            &mut changed,
            DisabledBecause::Gone,
            "the endpoint answered 410 Gone",
            now,
        ),
        Verdict::SlowDown(_) | Verdict::Failed | Verdict::Refused => {
            let quiet = changed
                .last_failure_at
                .is_none_or(|last| (now - last).to_std().unwrap_or_default() > STREAK_GAP);
            if quiet || changed.failing_since.is_none() {
                changed.failing_since = Some(now);
            }
            changed.last_failure_at = Some(now);
            if let Verdict::SlowDown(retry_after) = verdict {
                let wait = retry_after
                    .unwrap_or(0.0)
                    .clamp(MIN_THROTTLE.as_secs_f64(), MAX_THROTTLE.as_secs_f64());
                changed.throttled_until = chrono::Duration::from_std(Duration::from_secs_f64(wait))
                    .ok()
                    .map(|wait| now + wait);
            }
            let since = changed.failing_since.unwrap_or(now);
            if (now - since).to_std().unwrap_or_default() >= FAILING_LIMIT {
                let detail = format!(
                    "deliveries failed since {} without a success (last: {})",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    exchange.problem()
                );
                disable(&mut changed, DisabledBecause::FailingTooLong, &detail, now);
            }
        }
    }
    changed
}

/// A deferred order's time: `until`, plus up to a tenth of the wait (at
/// least a second's spread), derived from the message, so that the orders
/// held back by a slow-down do not all arrive at once.
fn spread_out(until: DateTime<Utc>, now: DateTime<Utc>, message_id: &str) -> DateTime<Utc> {
    let wait = (until - now).to_std().unwrap_or_default();
    let spread = (wait / 10).max(Duration::from_secs(1));
    let digest = Sha256::digest(message_id.as_bytes());
    let fraction = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / f64::from(u16::MAX);
    until + chrono::Duration::from_std(spread.mul_f64(fraction)).unwrap_or_default()
}

/// The start of an answer as text, cut at a character boundary.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_EXCERPT_BYTES)]);
    text.trim_end_matches('\u{fffd}').to_owned()
}
