//! Capability traits: everything the use cases need from the outside world.
//! Each has an in-memory twin ([`crate::memory`]) and, later, an AWS adapter.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::dead_letter::{ParkedMessage, QueueKind};
use crate::run::{RunPosition, RunRecord, RunStatus, StepRecord};
use crate::subscription::Subscription;
use crate::workflow::{Scope, WorkflowDefinition};

/// A failure of a port. Retryable failures (throttling, timeouts) are worth
/// trying again; terminal ones (access denied, bad data) are not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct PortError {
    pub operation: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl PortError {
    pub fn retryable(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            retryable: true,
        }
    }

    pub fn terminal(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            retryable: false,
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores an immutable version. Storing the same version again with the
    /// same content is a no-op; with other content it is refused.
    async fn put_version(&self, workflow: &WorkflowDefinition) -> PortResult<()>;
    async fn get_version(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        version: u32,
    ) -> PortResult<Option<Arc<WorkflowDefinition>>>;
}

#[async_trait]
pub trait SubscriptionIndex: Send + Sync {
    /// Adds the subscription, or replaces the one it is
    /// [`replaced_by`](Subscription::replaced_by). A workflow moving to
    /// another scope or trigger type goes through the lifecycle, which
    /// removes its old subscription in the same commit.
    async fn put(&self, subscription: &Subscription) -> PortResult<()>;
    async fn remove(&self, subscription: &Subscription) -> PortResult<()>;
    /// The subscriptions of a workspace to a trigger type in exactly
    /// `scope`: one lookup per scope an event is in (`Scope::of_event`), so
    /// what is read follows what could match, not how many workflows exist.
    async fn find(&self, workspace_id: &str, trigger_type: &str, scope: &Scope) -> PortResult<Vec<Subscription>>;
    /// Every subscription of a workspace to a trigger type, whatever its
    /// scope: for checks of the index, never for dispatch.
    async fn list(&self, workspace_id: &str, trigger_type: &str) -> PortResult<Vec<Subscription>>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateRun {
    Created,
    AlreadyExists(Box<RunRecord>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PutStep {
    Recorded,
    /// Another delivery recorded this attempt first; its outcome wins.
    AlreadyRecorded(Box<StepRecord>),
}

/// A worker's claim on one step attempt while it executes the action, in
/// the shape of Powertools' idempotency records: the attempt is in progress
/// until its record is written (completed) or the claim expires (the worker
/// died) and another delivery may take it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepClaim {
    pub run_id: String,
    pub step_id: String,
    pub attempt: u32,
    /// Who holds it (one delivery), for logs.
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// This delivery may execute the action: no claim existed or the last one expired.
    Acquired,
    /// Another delivery is executing it now; try again after it had time to finish.
    InProgress { owner: String, expires_at: DateTime<Utc> },
    /// The attempt is recorded: replay its outcome.
    Completed(Box<StepRecord>),
}

/// What [`RunLog::list_step_outlines`] shows for an output kept apart.
pub const OUTPUT_STORED_APART: &str = "stored apart (over 300 KB): read the attempt for the whole output";

/// The most runs one page of a listing holds (brief §7).
pub const MAX_RUNS_PAGE: usize = 100;

/// Which runs to list, newest first. Every combination of `workflow_id` and
/// `status` is served by an index of its own, so a page costs one bounded
/// lookup however many runs the workspace has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQuery {
    pub workflow_id: Option<String>,
    pub status: Option<RunStatus>,
    /// Runs started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Runs started before this time.
    pub until: Option<DateTime<Utc>>,
    /// 1 to [`MAX_RUNS_PAGE`]; larger asks are served [`MAX_RUNS_PAGE`].
    pub limit: usize,
    /// Start after this run (the last run of the previous page).
    pub after: Option<RunPosition>,
    /// Live tests' runs instead of production runs: the two are never listed
    /// together.
    pub test: bool,
}

impl Default for RunQuery {
    fn default() -> Self {
        Self {
            workflow_id: None,
            status: None,
            since: None,
            until: None,
            limit: MAX_RUNS_PAGE,
            after: None,
            test: false,
        }
    }
}

impl RunQuery {
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_RUNS_PAGE)
    }

    /// Whether `run` belongs in this listing (the in-memory twin's filter;
    /// DynamoDB answers the same question with its indexes).
    pub fn matches(&self, workspace_id: &str, run: &RunRecord) -> bool {
        let position = RunPosition::of(run);
        run.workspace_id == workspace_id
            && run.test == self.test
            && self.workflow_id.as_ref().is_none_or(|w| *w == run.workflow_id)
            && self.status.is_none_or(|s| s == run.status)
            && self.since.is_none_or(|since| position >= RunPosition::at(&since))
            && self.until.is_none_or(|until| position < RunPosition::at(&until))
            && self.after.as_ref().is_none_or(|after| position < *after)
    }
}

/// One page of runs, newest first; `next` is where the next page starts,
/// absent on the last page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPage {
    pub runs: Vec<RunRecord>,
    pub next: Option<RunPosition>,
}

impl RunPage {
    /// The page from up to `page_size + 1` runs found in order: the extra
    /// one only tells that another page exists.
    pub fn from_lookahead(mut runs: Vec<RunRecord>, page_size: usize) -> Self {
        let more = runs.len() > page_size;
        runs.truncate(page_size);
        let next = if more { runs.last().map(RunPosition::of) } else { None };
        Self { runs, next }
    }
}

/// Every run of a listing, page after page, up to `max` runs: for the
/// tests and tools that need more than one page.
pub async fn collect_runs(
    log: &dyn RunLog,
    workspace_id: &str,
    query: &RunQuery,
    max: usize,
) -> PortResult<Vec<RunRecord>> {
    let mut query = query.clone();
    let mut runs = vec![];
    while runs.len() < max {
        let page = log.list_runs(workspace_id, &query).await?;
        runs.extend(page.runs);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    runs.truncate(max);
    Ok(runs)
}

#[async_trait]
pub trait RunLog: Send + Sync {
    /// Creates the run unless a run with its id exists.
    async fn create_run(&self, run: &RunRecord) -> PortResult<CreateRun>;
    async fn get_run(&self, run_id: &str) -> PortResult<Option<RunRecord>>;
    /// Moves a running run to a terminal status; false if it had already ended.
    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<String>,
        ended_at: DateTime<Utc>,
    ) -> PortResult<bool>;
    /// One page, newest first.
    async fn list_runs(&self, workspace_id: &str, query: &RunQuery) -> PortResult<RunPage>;
    /// Records one attempt unless that (run, step, attempt) is recorded already.
    async fn put_step(&self, record: &StepRecord) -> PortResult<PutStep>;
    async fn get_step(&self, run_id: &str, step_id: &str, attempt: u32) -> PortResult<Option<StepRecord>>;
    /// In execution order. Claims that are still in progress are not listed.
    async fn list_steps(&self, run_id: &str) -> PortResult<Vec<StepRecord>>;
    /// The timeline for people to read (the run detail, a replay's attempt
    /// count): like `list_steps`, except that an output a store keeps apart
    /// from its record, because it is large, is not loaded and reads
    /// [`OUTPUT_STORED_APART`]; `get_step` serves it whole.
    async fn list_step_outlines(&self, run_id: &str) -> PortResult<Vec<StepRecord>> {
        self.list_steps(run_id).await
    }
    /// Claims an attempt for execution; `now` decides whether a claim expired.
    async fn claim_step(&self, claim: &StepClaim, now: DateTime<Utc>) -> PortResult<ClaimOutcome>;
    /// Stores a large value of a run (a step context over the queue's budget,
    /// a run's resume point) under `key`, replacing what was there.
    async fn put_blob(&self, run_id: &str, key: &str, value: &str) -> PortResult<()>;
    async fn get_blob(&self, run_id: &str, key: &str) -> PortResult<Option<String>>;
    /// Moves a failed run back to running for a replay and counts the
    /// replay: the run's new `replays`, or `None` if it was not failed or
    /// its data was erased.
    /// `due_at` becomes the reopened run's [`RunRecord::due_at`].
    async fn reopen_run(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<Option<u32>>;
    /// Moves a running run's [`RunRecord::due_at`] to `due_at` if that is
    /// later; an ended run, or one due later already, is left as it is.
    async fn extend_due(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<()>;
    /// Up to `limit` ids of running runs (of any workspace) due before
    /// `cutoff`, earliest due first: an index query, never a scan.
    async fn list_overdue(&self, cutoff: DateTime<Utc>, limit: usize) -> PortResult<Vec<String>>;
    /// Whether a delivery holds an unexpired claim on one of the run's steps.
    async fn has_live_claim(&self, run_id: &str, now: DateTime<Utc>) -> PortResult<bool>;
    /// Notes that the message moving a run on to `key` (a step and attempt) was sent.
    async fn mark_handed_off(&self, run_id: &str, key: &str) -> PortResult<()>;
    async fn handed_off(&self, run_id: &str, key: &str) -> PortResult<bool>;
    /// One page of the workspace's runs (live tests' included) whose
    /// [`RunRecord::contact_id`] is `contact_id`, newest first, after
    /// `after`: an index query, never a scan.
    async fn list_contact_runs(
        &self,
        workspace_id: &str,
        contact_id: &str,
        after: Option<&RunPosition>,
        page_size: usize,
    ) -> PortResult<RunPage>;
    /// Erases what the run holds about people (a contact's erasure): its
    /// blobs (start and resume points, claim-checked contexts, large
    /// outputs) go, each recorded attempt keeps its step, status and times
    /// but loses its output and request, and every error reads
    /// [`crate::run::ERASED`]. The run keeps its ids, statuses and times and
    /// is marked [`RunRecord::erased_at`] (the first erasure's `at`).
    /// Repeatable: a second call erases what was written since. A claim
    /// still in progress is left to its delivery.
    async fn erase_run_data(&self, run_id: &str, at: DateTime<Utc>) -> PortResult<()>;
}

/// Where dead letters are parked (see [`crate::dead_letter`]).
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// Parks `message`; `true` when no message with its queue and id was
    /// parked. One that was is refreshed (time, reason, receive count): it
    /// came back, so a redrive that listed it before must not unpark it.
    async fn park(&self, message: &ParkedMessage) -> PortResult<bool>;
    /// Up to `limit` parked messages of `queue`, oldest first.
    async fn list_parked(&self, queue: QueueKind, limit: usize) -> PortResult<Vec<ParkedMessage>>;
    /// Removes a parked message (after a redrive sent it on) if it is still
    /// the one parked at `parked_at`; one parked again since stays, and
    /// removing one that is gone is not an error.
    async fn unpark(&self, queue: QueueKind, id: &str, parked_at: DateTime<Utc>) -> PortResult<()>;
}

/// Where events a step emits go (contact and loyalty changes): back
/// through ingest, like any other event, once per event identity.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn emit(&self, events: &[crate::event::TriggerEvent]) -> PortResult<()>;
}

#[async_trait]
/// Event identities ingest has accepted: `identity` is
/// [`crate::event::TriggerEvent::identity`], the event's source and id.
pub trait EventDedupe: Send + Sync {
    async fn seen(&self, workspace_id: &str, identity: &str) -> PortResult<bool>;
    async fn remember(&self, workspace_id: &str, identity: &str, ttl: Duration) -> PortResult<()>;
}

/// One received message. `receipt` acknowledges this delivery only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub receipt: String,
    pub body: String,
    pub receive_count: u32,
}

/// Serializes a queue message to JSON text that SQS accepts.
///
/// SQS refuses a body with a character outside `#x9 | #xA | #xD |
/// #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF` (`InvalidMessageContents`),
/// and moto does not, so only this function stands between a sender's
/// U+FFFE and a message that could never be sent. serde_json already escapes
/// control characters; U+FFFE and U+FFFF can only occur inside JSON strings,
/// where a `\uXXXX` escape decodes to the same text.
pub fn message_body<T: serde::Serialize>(message: &T) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string(message)?;
    // Both characters are EF BF BE/BF in UTF-8: a byte search (memchr)
    // clears nearly every body without decoding it (it was 1.5 % of the
    // pipeline's CPU when it looked at each char).
    if !text.as_bytes().contains(&0xEF) || !text.contains(['\u{fffe}', '\u{ffff}']) {
        return Ok(text);
    }
    Ok(text.replace('\u{fffe}', "\\ufffe").replace('\u{ffff}', "\\uffff"))
}

/// True when SQS accepts every character of `body`.
pub fn sqs_accepts(body: &str) -> bool {
    // ASCII, the common case, needs only the control characters checked.
    if body.is_ascii() {
        return body.bytes().all(|b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'));
    }
    body.chars().all(
        |c| matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..),
    )
}

/// An at-least-once queue with delayed sends and visibility timeouts, like SQS.
#[async_trait]
pub trait Queue: Send + Sync {
    fn name(&self) -> &str;
    async fn send(&self, body: String, delay: Duration) -> PortResult<()>;
    /// Up to `max` messages, waiting at most `wait` for the first one.
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<Delivery>>;
    async fn ack(&self, receipt: &str) -> PortResult<()>;
    /// Up to `max` stored bodies without taking them (for `hookflow dlq list`).
    /// Best effort on SQS, which has no true peek.
    async fn peek(&self, max: usize) -> PortResult<Vec<String>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// For the whole call, redirects included.
    pub timeout: Duration,
    pub follow_redirects: FollowRedirects,
    /// Headers that must not leave the call's origin, besides the
    /// credential headers every call protects
    /// ([`crate::redact::is_sensitive_header`]): a step's `api_key` auth
    /// header and the headers it marks secret.
    pub secret_headers: Vec<String>,
}

impl HttpCall {
    /// Whether `name` is stripped when a redirect leaves the call's origin.
    pub fn is_secret_header(&self, name: &str) -> bool {
        crate::redact::is_sensitive_header(name) || self.secret_headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// Which redirects a call follows. Across origins, credential headers are
/// always stripped; a 307/308 there re-sends the body only under `Any`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowRedirects {
    /// None: a 3xx is the reply.
    None,
    /// Within the call's origin (scheme, host and port) only; a redirect
    /// elsewhere is the reply.
    SameOrigin,
    /// Any checked redirect, at most five.
    #[default]
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    Timeout,
    /// DNS, connect, TLS, reset: the request may or may not have arrived.
    Network,
    /// The request could not be built or was refused before sending.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub kind: HttpErrorKind,
    pub message: String,
}

#[async_trait]
pub trait HttpClient: Send + Sync {
    async fn send(&self, call: HttpCall) -> Result<HttpReply, HttpError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_accepts_what_its_character_rule_allows_in_ascii_and_beyond() {
        for accepted in ["plain", "tab\tnew\nline\rreturn", "del\u{7f}", "é", "\u{fffd}", "😀"] {
            assert!(sqs_accepts(accepted), "{accepted:?}");
        }
        for refused in [
            "nul\u{0}",
            "bell\u{7}",
            "é\u{1}",
            "\u{fffe}",
            "\u{ffff}",
            "\u{d7ff}\u{b}",
        ] {
            assert!(!sqs_accepts(refused), "{refused:?}");
        }
    }

    #[test]
    fn message_bodies_escape_the_two_noncharacters_and_nothing_else() {
        let body = message_body(&serde_json::json!({"a": "x\u{fffe}y\u{ffff}", "b": "\u{f000}é"})).expect("encode");
        assert_eq!(body, "{\"a\":\"x\\ufffey\\uffff\",\"b\":\"\u{f000}é\"}");
        assert!(sqs_accepts(&body));
        let back: serde_json::Value = serde_json::from_str(&body).expect("decode");
        assert_eq!(back["a"], "x\u{fffe}y\u{ffff}");
    }
}
