//! Runs, step records, the step message and the template context.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::event::TriggerEvent;

/// Context keys the engine owns; event data may not shadow them.
pub const RESERVED_CONTEXT_KEYS: &[&str] = &["event", "steps", "vars", "run", "error"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// Stopped by an operator (`POST …/runs/{id}/cancel`): the run's next
    /// message sees it and is acknowledged without running anything.
    Cancelled,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running)
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(Value::String(text.to_owned())).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub workspace_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub event_id: String,
    pub trigger_type: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub error: Option<String>,
    /// How many times the run was replayed (`hookflow runs replay`).
    #[serde(default)]
    pub replays: u32,
    /// A live test's run (`POST …/workflows/{id}/test` with `dry_run:
    /// false`): listed apart from production runs, never counted with them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub test: bool,
    /// A replay from the start: the failed run it replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// While running: when the latest step message sent for the run became
    /// (or becomes) visible, up to [`DUE_SLACK`] early. Every delivery of
    /// that message begins within the steps queue's redelivery horizon
    /// after it, so a run past both, with no live claim, is stuck: the
    /// reaper ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// The contact the trigger event was about (its `contactid`): erasing
    /// that contact erases what the run holds about people
    /// ([`crate::ports::RunLog::erase_run_data`]) and keeps this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// When the run's personal data was erased: its event, step outputs,
    /// requests and errors are gone, its ids, statuses and times are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
}

/// What an erased run's error, and each of its attempts' errors, read.
pub const ERASED: &str = "[erased]";

/// How far a run's recorded [`RunRecord::due_at`] may lag its latest
/// message: a send moves it only when it would move further, so a run
/// whose steps follow quickly writes it once, at its start.
pub const DUE_SLACK: std::time::Duration = std::time::Duration::from_secs(600);

fn is_false(flag: &bool) -> bool {
    !*flag
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Succeeded,
    Failed,
}

/// One attempt of one step: keyed by (run, step, attempt), written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub run_id: String,
    pub step_id: String,
    pub action: crate::actions::ActionKind,
    pub status: StepStatus,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// Where the run goes after a success (Decision branch, `next`); `None` ends it.
    #[serde(default)]
    pub next: Option<String>,
    /// For failures: whether the retry policy may try again, and the peer's `Retry-After`.
    #[serde(default)]
    pub retryable: bool,
    #[serde(default)]
    pub retry_after_s: Option<f64>,
    /// An HTTP attempt's request as sent ([`crate::engine::RenderedRequest`]:
    /// credentials redacted, body cut to 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
}

/// What travels on the steps queue. State lives in the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMessage {
    pub run_id: String,
    pub workspace_id: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub step_id: String,
    pub attempt: u32,
    /// `null` when the context was claim-checked into the run log.
    #[serde(default)]
    pub context: Value,
    /// Where the context is in the run log when it was too large to carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_ref: Option<String>,
    /// Set while a `Delay` step waits: when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<DateTime<Utc>>,
    /// The replay of the run this message belongs to (0 before any): a
    /// message from before a replay is stale and ignored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replay: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A time as text that sorts like the time: fixed width, nanoseconds, UTC.
pub fn sortable_time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Where a run sits in a newest-first listing: its start, then its id (so
/// two runs started in the same nanosecond still have an order). The
/// DynamoDB runs indexes sort on exactly this text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunPosition(String);

impl RunPosition {
    pub fn of(run: &RunRecord) -> Self {
        Self(format!("{}#{}", sortable_time(&run.started_at), run.run_id))
    }

    /// The bound of a time window: every run started at `at` or later sorts
    /// at or after it, every run started earlier sorts before it.
    pub fn at(at: &DateTime<Utc>) -> Self {
        Self(sortable_time(at))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The run this position is of; `None` for a window bound.
    pub fn run_id(&self) -> Option<&str> {
        self.0.split_once('#').map(|(_, id)| id)
    }

    /// The opaque `cursor` of a listing's next page.
    pub fn to_cursor(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// A cursor this server made: `None` for anything else, so a forged or
    /// garbled cursor is refused instead of reaching a query.
    pub fn from_cursor(cursor: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
        Self::from_sort_key(&String::from_utf8(bytes).ok()?)
    }

    /// The position an index's sort key holds (`gsi1sk`), if well formed.
    pub fn from_sort_key(text: &str) -> Option<Self> {
        let (time, run_id) = text.split_once('#')?;
        let started = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
        let well_formed = sortable_time(&started) == time
            && !run_id.is_empty()
            && run_id.len() <= 64
            && run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        well_formed.then(|| Self(text.to_owned()))
    }
}

/// The run id is a function of (workspace, event identity, workflow): a
/// redelivered trigger computes the same id and cannot start a second run,
/// while two senders' events that share an id (different `source`s) start
/// two. Each part is length-prefixed, so no separator can make two collide.
pub fn run_id_for(event: &TriggerEvent, workflow_id: &str) -> String {
    run_id_of(&event.workspaceid, &event.source, &event.id, workflow_id)
}

/// [`run_id_for`] from the event's `source` and `id`.
pub fn run_id_of(workspace_id: &str, source: &str, event_id: &str, workflow_id: &str) -> String {
    format!("run_{}", digest_id(&[workspace_id, source, event_id, workflow_id]))
}

/// 26 hex digits of the SHA-256 of `parts`, each length-prefixed so no
/// separator can make two lists collide: ids that a retry computes again.
pub(crate) fn digest_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(13).map(|b| format!("{b:02x}")).collect()
}

/// The header value receivers dedupe on.
pub fn idempotency_key(run_id: &str, step_id: &str) -> String {
    format!("{run_id}:{step_id}")
}

/// A stable seed for retry jitter of one (run, step, attempt).
pub fn jitter_seed(run_id: &str, step_id: &str, attempt: u32) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(run_id.as_bytes());
    hasher.update([0]);
    hasher.update(step_id.as_bytes());
    hasher.update(attempt.to_be_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// What `{{ … }}` sees at the start of a run: the event's `data` spread at
/// the top level, plus `event`, `steps`, `vars` and `run`.
pub fn initial_context(event: &TriggerEvent, run_id: &str, workflow_id: &str, workflow_version: u32) -> Value {
    let mut context = Map::new();
    match &event.data {
        Value::Object(data) => {
            for (k, v) in data {
                if !RESERVED_CONTEXT_KEYS.contains(&k.as_str()) {
                    context.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Null => {}
        other => {
            context.insert("data".into(), other.clone());
        }
    }
    context.insert(
        "event".into(),
        json!({"id": event.id, "type": event.event_type, "source": event.source, "time": event.time,
               "workspaceid": event.workspaceid, "siteid": event.siteid, "cardid": event.cardid,
               "contactid": event.contactid, "depth": event.depth}),
    );
    context.insert("steps".into(), json!({}));
    context.insert("vars".into(), json!({}));
    let mut context = Value::Object(context);
    set_run(&mut context, run_id, workflow_id, workflow_version);
    context
}

/// The context a dispatcher evaluates trigger filters against: the same
/// shape as a run's, before any run exists.
pub fn filter_context(event: &TriggerEvent) -> Value {
    initial_context(event, "", "", 0)
}

/// Makes an event's context (from [`filter_context`]) the one a run of it
/// starts with: what [`initial_context`] would build, without building the
/// event's part again.
pub(crate) fn set_run(context: &mut Value, run_id: &str, workflow_id: &str, workflow_version: u32) {
    if let Value::Object(context) = context {
        context.insert(
            "run".into(),
            json!({"id": run_id, "workflow_id": workflow_id, "version": workflow_version}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_deterministic_and_distinct() {
        let a = run_id_of("ws", "src", "evt", "wf");
        assert_eq!(a, run_id_of("ws", "src", "evt", "wf"));
        assert_ne!(a, run_id_of("ws", "src", "evt", "wf2"));
        assert_ne!(a, run_id_of("ws", "other", "evt", "wf"), "one id from two sources");
        assert_ne!(run_id_of("ws", "s", "ab", "c"), run_id_of("ws", "s", "a", "bc"));
        assert_eq!(a.len(), 4 + 26);
    }

    #[test]
    fn an_events_filter_context_becomes_a_runs_initial_one_key_order_and_all() {
        let event: TriggerEvent = serde_json::from_value(json!({"specversion": "1.0", "id": "e", "source": "s",
            "type": "Prize.Won", "workspaceid": "w", "data": {"zeta": 1, "alpha": {"b": 2, "a": 1}}}))
        .unwrap();
        let mut context = filter_context(&event);
        set_run(&mut context, "run_1", "wf", 3);
        let built = initial_context(&event, "run_1", "wf", 3);
        assert_eq!(context, built);
        assert_eq!(
            serde_json::to_string(&context).unwrap(),
            serde_json::to_string(&built).unwrap()
        );
    }

    #[test]
    fn context_spreads_data_and_protects_reserved_keys() {
        let event: TriggerEvent = serde_json::from_value(json!({"specversion": "1.0", "id": "e", "source": "s",
            "type": "Prize.Won", "workspaceid": "w", "data": {"contact": {"email": "a@b"}, "steps": "evil"}}))
        .unwrap();
        let ctx = initial_context(&event, "run_1", "wf", 3);
        assert_eq!(ctx["contact"]["email"], "a@b");
        assert_eq!(ctx["steps"], json!({}));
        assert_eq!(ctx["run"]["version"], 3);
        assert_eq!(ctx["event"]["type"], "Prize.Won");
    }

    #[test]
    fn positions_sort_newest_last_and_cursors_round_trip() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let run = |id: &str, started: &str| RunRecord {
            run_id: id.into(),
            workspace_id: "w".into(),
            workflow_id: "f".into(),
            workflow_version: 1,
            event_id: "e".into(),
            trigger_type: "Prize.Won".into(),
            status: RunStatus::Running,
            started_at: at(started),
            ended_at: None,
            error: None,
            replays: 0,
            test: false,
            replay_of: None,
            due_at: None,
            contact_id: None,
            erased_at: None,
        };
        let early = RunPosition::of(&run("run_b", "2026-12-01T09:59:59.999Z"));
        let late = RunPosition::of(&run("run_a", "2026-12-01T10:00:00Z"));
        assert!(early < RunPosition::at(&at("2026-12-01T10:00:00Z")));
        assert!(RunPosition::at(&at("2026-12-01T10:00:00Z")) < late);
        assert_eq!(RunPosition::from_cursor(&late.to_cursor()), Some(late.clone()));
        assert_eq!(late.run_id(), Some("run_a"));
        for forged in [
            "",
            "!!",
            "bm90LWEtcG9zaXRpb24",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("2026-12-01T10:00:00Z#run_a"),
        ] {
            assert_eq!(RunPosition::from_cursor(forged), None, "{forged}");
        }
    }

    #[test]
    fn messages_round_trip() {
        let m = StepMessage {
            run_id: "r".into(),
            workspace_id: "w".into(),
            workflow_id: "f".into(),
            workflow_version: 1,
            step_id: "s".into(),
            attempt: 2,
            context: json!({"a": 1}),
            context_ref: None,
            resume_at: None,
            replay: 0,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("resume_at") && !text.contains("context_ref") && !text.contains("replay"));
        assert_eq!(serde_json::from_str::<StepMessage>(&text).unwrap(), m);
    }
}
