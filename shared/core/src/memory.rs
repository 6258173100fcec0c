//! In-memory twins of every port: the embedded default of `hookflow dev` and
//! the fast half of the conformance suite. They keep the same promises as the
//! AWS adapters (conditional writes, visibility timeouts), not just the API.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

mod connections;
mod contacts;
mod outbound;
pub use connections::{MemoryConnections, MemoryVault};
pub use contacts::{MemoryContacts, MemorySites};
pub use outbound::MemoryOutbound;

use crate::access::{ApiKey, AuditEntry, AuditLog, AuditPage, KeyStore};
use crate::dead_letter::{ParkedMessage, QueueKind};
use crate::hooks::{Hook, HookStore};
use crate::lifecycle::{Commit, HeadChange, HeadWrite, WorkflowCatalog, WorkflowHead};
use crate::metrics::MemoryMetrics;
use crate::ports::*;
use crate::run::{RunPosition, RunRecord, RunStatus, StepRecord, ERASED};
use crate::subscription::Subscription;
use crate::workflow::{Scope, WorkflowDefinition};

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the
/// twins' invariants hold between statements, so the data is still sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Versions and, for the lifecycle, heads; a commit changes them and the
/// subscription index it was built with under one lock, as one transaction.
#[derive(Default)]
pub struct MemoryWorkflowStore {
    versions: Mutex<HashMap<(String, String, u32), Arc<WorkflowDefinition>>>,
    /// (workspace, workflow id) → head. Its lock also serialises commits.
    heads: Mutex<HashMap<(String, String), WorkflowHead>>,
    subscriptions: Arc<MemorySubscriptions>,
}

impl MemoryWorkflowStore {
    /// A store whose lifecycle commits change `subscriptions`.
    pub fn new(subscriptions: Arc<MemorySubscriptions>) -> Self {
        Self {
            subscriptions,
            ..Self::default()
        }
    }
}

#[async_trait]
impl WorkflowCatalog for MemoryWorkflowStore {
    async fn get_head(&self, workspace_id: &str, workflow_id: &str) -> PortResult<Option<WorkflowHead>> {
        Ok(lock(&self.heads)
            .get(&(workspace_id.to_owned(), workflow_id.to_owned()))
            .cloned())
    }

    async fn list_heads(&self, workspace_id: &str) -> PortResult<Vec<WorkflowHead>> {
        Ok(lock(&self.heads)
            .values()
            .filter(|h| h.workspace_id == workspace_id)
            .cloned()
            .collect())
    }

    async fn list_versions(&self, workspace_id: &str, workflow_id: &str) -> PortResult<Vec<Arc<WorkflowDefinition>>> {
        let mut found: Vec<Arc<WorkflowDefinition>> = lock(&self.versions)
            .iter()
            .filter(|((ws, id, _), _)| ws == workspace_id && id == workflow_id)
            .map(|(_, v)| v.clone())
            .collect();
        found.sort_by_key(|v| v.version);
        Ok(found)
    }

    async fn commit(&self, change: &HeadChange) -> PortResult<Commit> {
        let mut heads = lock(&self.heads);
        let key = (change.workspace_id.clone(), change.workflow_id.clone());
        if heads.get(&key).map(|h| h.revision) != change.expected_revision {
            return Ok(Commit::Conflict);
        }
        if let Some(version) = &change.new_version {
            let mut versions = lock(&self.versions);
            let version_key = (version.workspace_id.clone(), version.id.clone(), version.version);
            if versions.contains_key(&version_key) {
                return Ok(Commit::Conflict);
            }
            versions.insert(version_key, Arc::new(version.clone()));
        }
        {
            let mut index = lock(&self.subscriptions.by_trigger);
            if let Some(old) = &change.unsubscribe {
                remove_subscription(&mut index, old);
            }
            if let Some(sub) = &change.subscribe {
                put_subscription(&mut index, sub);
            }
        }
        match &change.head {
            HeadWrite::Put(head) => heads.insert(key, (**head).clone()),
            HeadWrite::Delete => heads.remove(&key),
        };
        Ok(Commit::Applied)
    }
}

#[async_trait]
impl WorkflowStore for MemoryWorkflowStore {
    async fn put_version(&self, workflow: &WorkflowDefinition) -> PortResult<()> {
        let key = (workflow.workspace_id.clone(), workflow.id.clone(), workflow.version);
        let mut versions = lock(&self.versions);
        match versions.get(&key) {
            Some(existing) if **existing != *workflow => Err(PortError::terminal(
                "put_version",
                format!(
                    "version {} of workflow {} exists with other content; versions are immutable",
                    workflow.version, workflow.id
                ),
            )),
            Some(_) => Ok(()),
            None => {
                versions.insert(key, Arc::new(workflow.clone()));
                Ok(())
            }
        }
    }

    async fn get_version(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        version: u32,
    ) -> PortResult<Option<Arc<WorkflowDefinition>>> {
        Ok(lock(&self.versions)
            .get(&(workspace_id.to_owned(), workflow_id.to_owned(), version))
            .cloned())
    }
}

/// (workspace, trigger type) → scope → workflow id → subscription.
type SubscriptionsByTrigger = HashMap<(String, String), HashMap<Scope, BTreeMap<String, Subscription>>>;

#[derive(Default)]
pub struct MemorySubscriptions {
    by_trigger: Mutex<SubscriptionsByTrigger>,
}

fn put_subscription(index: &mut SubscriptionsByTrigger, subscription: &Subscription) {
    index
        .entry((subscription.workspace_id.clone(), subscription.trigger_type.clone()))
        .or_default()
        .entry(subscription.scope.clone())
        .or_default()
        .insert(subscription.workflow_id.clone(), subscription.clone());
}

fn remove_subscription(index: &mut SubscriptionsByTrigger, subscription: &Subscription) {
    let key = (subscription.workspace_id.clone(), subscription.trigger_type.clone());
    if let Some(scopes) = index.get_mut(&key) {
        if let Some(subs) = scopes.get_mut(&subscription.scope) {
            subs.remove(&subscription.workflow_id);
        }
    }
}

#[async_trait]
impl SubscriptionIndex for MemorySubscriptions {
    async fn put(&self, subscription: &Subscription) -> PortResult<()> {
        put_subscription(&mut lock(&self.by_trigger), subscription);
        Ok(())
    }

    async fn remove(&self, subscription: &Subscription) -> PortResult<()> {
        remove_subscription(&mut lock(&self.by_trigger), subscription);
        Ok(())
    }

    async fn find(&self, workspace_id: &str, trigger_type: &str, scope: &Scope) -> PortResult<Vec<Subscription>> {
        Ok(lock(&self.by_trigger)
            .get(&(workspace_id.to_owned(), trigger_type.to_owned()))
            .and_then(|scopes| scopes.get(scope))
            .map(|subs| subs.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn list(&self, workspace_id: &str, trigger_type: &str) -> PortResult<Vec<Subscription>> {
        Ok(lock(&self.by_trigger)
            .get(&(workspace_id.to_owned(), trigger_type.to_owned()))
            .map(|scopes| scopes.values().flat_map(|subs| subs.values().cloned()).collect())
            .unwrap_or_default())
    }
}

/// How much history the in-memory run log keeps. A run that ended is
/// forgotten, with its steps, claims, blobs and hand-offs, once more than
/// `max_runs` runs are held or it ended over `max_age` ago; a running run is
/// never forgotten. Without it (`MemoryRunLog::default`) nothing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRetention {
    pub max_runs: usize,
    pub max_age: Duration,
}

impl RunRetention {
    /// `hookflow dev`'s default: the newest 2,000 runs of the last hour.
    pub const DEV: RunRetention = RunRetention {
        max_runs: 2_000,
        max_age: Duration::from_secs(3600),
    };
}

/// Everything kept about one run.
#[derive(Default)]
struct RunEntry {
    /// `None` only for a run whose steps or blobs were written before it.
    record: Option<RunRecord>,
    /// Step records in the order they were written.
    steps: Vec<StepRecord>,
    /// (step, attempt) → claim of an attempt being executed.
    claims: HashMap<(String, u32), StepClaim>,
    /// Large values by key.
    blobs: HashMap<String, String>,
    /// Keys of hand-offs sent.
    handoffs: HashSet<String>,
}

#[derive(Default)]
struct RunLogData {
    runs: HashMap<String, RunEntry>,
    /// (due at, run) of running runs: the reaper's index.
    due: BTreeSet<(DateTime<Utc>, String)>,
    /// (ended at, run) of ended runs: the order retention forgets them in.
    ended: BTreeSet<(DateTime<Utc>, String)>,
}

impl RunLogData {
    fn record(&self, run_id: &str) -> Option<&RunRecord> {
        self.runs.get(run_id).and_then(|entry| entry.record.as_ref())
    }

    fn entry(&mut self, run_id: &str) -> &mut RunEntry {
        self.runs.entry(run_id.to_owned()).or_default()
    }

    fn step(&self, run_id: &str, step_id: &str, attempt: u32) -> Option<&StepRecord> {
        self.runs
            .get(run_id)?
            .steps
            .iter()
            .find(|s| s.step_id == step_id && s.attempt == attempt)
    }

    /// Moves a run's place in the due index from `old` to its record's `due_at`.
    fn reindex_due(&mut self, run_id: &str, old: Option<DateTime<Utc>>) {
        if let Some(old) = old {
            self.due.remove(&(old, run_id.to_owned()));
        }
        if let Some(run) = self.record(run_id).filter(|r| r.status == RunStatus::Running) {
            if let Some(due) = run.due_at {
                self.due.insert((due, run_id.to_owned()));
            }
        }
    }

    /// Forgets ended runs past `retention`, oldest ending first.
    fn forget_past(&mut self, retention: RunRetention, now: DateTime<Utc>) {
        let max_age = chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
        while let Some((ended_at, run_id)) = self.ended.first().cloned() {
            let too_many = self.runs.len() > retention.max_runs;
            let too_old = now.signed_duration_since(ended_at) > max_age;
            if !too_many && !too_old {
                break;
            }
            self.ended.pop_first();
            self.runs.remove(&run_id);
        }
    }
}

#[derive(Default)]
pub struct MemoryRunLog {
    data: Mutex<RunLogData>,
    retention: Option<RunRetention>,
}

impl MemoryRunLog {
    /// A log that forgets ended runs past `retention`.
    pub fn with_retention(retention: RunRetention) -> Self {
        Self {
            data: Mutex::default(),
            retention: Some(retention),
        }
    }

    /// Runs held, ended or not (for tests of retention).
    pub fn held(&self) -> usize {
        lock(&self.data).runs.len()
    }
}

#[async_trait]
impl RunLog for MemoryRunLog {
    async fn create_run(&self, run: &RunRecord) -> PortResult<CreateRun> {
        let mut data = lock(&self.data);
        if let Some(existing) = data.record(&run.run_id) {
            return Ok(CreateRun::AlreadyExists(Box::new(existing.clone())));
        }
        data.entry(&run.run_id).record = Some(run.clone());
        match (run.status, run.ended_at) {
            (RunStatus::Running, _) => data.reindex_due(&run.run_id, None),
            (_, Some(ended_at)) => {
                data.ended.insert((ended_at, run.run_id.clone()));
            }
            (_, None) => {}
        }
        if let Some(retention) = self.retention {
            data.forget_past(retention, Utc::now());
        }
        Ok(CreateRun::Created)
    }

    async fn get_run(&self, run_id: &str) -> PortResult<Option<RunRecord>> {
        Ok(lock(&self.data).record(run_id).cloned())
    }

    async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<String>,
        ended_at: DateTime<Utc>,
    ) -> PortResult<bool> {
        let mut data = lock(&self.data);
        let Some(run) = data.runs.get_mut(run_id).and_then(|e| e.record.as_mut()) else {
            return Err(PortError::terminal(
                "finish_run",
                format!("run {run_id} does not exist"),
            ));
        };
        if run.status.is_terminal() {
            return Ok(false);
        }
        run.status = status;
        run.error = error;
        run.ended_at = Some(ended_at);
        let due = run.due_at;
        data.reindex_due(run_id, due);
        data.ended.insert((ended_at, run_id.to_owned()));
        if let Some(retention) = self.retention {
            data.forget_past(retention, Utc::now());
        }
        Ok(true)
    }

    async fn list_runs(&self, workspace_id: &str, query: &RunQuery) -> PortResult<RunPage> {
        let data = lock(&self.data);
        let mut runs: Vec<RunRecord> = data
            .runs
            .values()
            .filter_map(|entry| entry.record.as_ref())
            .filter(|r| query.matches(workspace_id, r))
            .cloned()
            .collect();
        runs.sort_by_cached_key(|r| std::cmp::Reverse(RunPosition::of(r)));
        runs.truncate(query.page_size() + 1);
        Ok(RunPage::from_lookahead(runs, query.page_size()))
    }

    async fn put_step(&self, record: &StepRecord) -> PortResult<PutStep> {
        let mut data = lock(&self.data);
        if let Some(existing) = data.step(&record.run_id, &record.step_id, record.attempt) {
            return Ok(PutStep::AlreadyRecorded(Box::new(existing.clone())));
        }
        let entry = data.entry(&record.run_id);
        entry.steps.push(record.clone());
        entry.claims.remove(&(record.step_id.clone(), record.attempt));
        Ok(PutStep::Recorded)
    }

    async fn get_step(&self, run_id: &str, step_id: &str, attempt: u32) -> PortResult<Option<StepRecord>> {
        Ok(lock(&self.data).step(run_id, step_id, attempt).cloned())
    }

    async fn list_steps(&self, run_id: &str) -> PortResult<Vec<StepRecord>> {
        Ok(lock(&self.data)
            .runs
            .get(run_id)
            .map(|entry| entry.steps.clone())
            .unwrap_or_default())
    }

    async fn claim_step(&self, claim: &StepClaim, now: DateTime<Utc>) -> PortResult<ClaimOutcome> {
        let mut data = lock(&self.data);
        if let Some(record) = data.step(&claim.run_id, &claim.step_id, claim.attempt) {
            return Ok(ClaimOutcome::Completed(Box::new(record.clone())));
        }
        let claims = &mut data.entry(&claim.run_id).claims;
        let key = (claim.step_id.clone(), claim.attempt);
        if let Some(held) = claims.get(&key).filter(|held| held.expires_at > now) {
            return Ok(ClaimOutcome::InProgress {
                owner: held.owner.clone(),
                expires_at: held.expires_at,
            });
        }
        claims.insert(key, claim.clone());
        Ok(ClaimOutcome::Acquired)
    }

    async fn put_blob(&self, run_id: &str, key: &str, value: &str) -> PortResult<()> {
        lock(&self.data)
            .entry(run_id)
            .blobs
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    async fn get_blob(&self, run_id: &str, key: &str) -> PortResult<Option<String>> {
        Ok(lock(&self.data)
            .runs
            .get(run_id)
            .and_then(|entry| entry.blobs.get(key).cloned()))
    }

    async fn reopen_run(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<Option<u32>> {
        let mut data = lock(&self.data);
        let Some(run) = data.runs.get_mut(run_id).and_then(|e| e.record.as_mut()) else {
            return Err(PortError::terminal(
                "reopen_run",
                format!("run {run_id} does not exist"),
            ));
        };
        if run.status != RunStatus::Failed || run.erased_at.is_some() {
            return Ok(None);
        }
        let ended_at = run.ended_at.take();
        run.status = RunStatus::Running;
        run.error = None;
        run.replays += 1;
        run.due_at = Some(due_at);
        let replays = run.replays;
        if let Some(ended_at) = ended_at {
            data.ended.remove(&(ended_at, run_id.to_owned()));
        }
        data.reindex_due(run_id, None);
        Ok(Some(replays))
    }

    async fn extend_due(&self, run_id: &str, due_at: DateTime<Utc>) -> PortResult<()> {
        let mut data = lock(&self.data);
        let Some(run) = data.runs.get_mut(run_id).and_then(|e| e.record.as_mut()) else {
            return Ok(());
        };
        if run.status == RunStatus::Running && run.due_at.is_none_or(|due| due < due_at) {
            let old = run.due_at.replace(due_at);
            data.reindex_due(run_id, old);
        }
        Ok(())
    }

    async fn list_overdue(&self, cutoff: DateTime<Utc>, limit: usize) -> PortResult<Vec<String>> {
        Ok(lock(&self.data)
            .due
            .iter()
            .take_while(|(due, _)| *due < cutoff)
            .take(limit)
            .map(|(_, run_id)| run_id.clone())
            .collect())
    }

    async fn has_live_claim(&self, run_id: &str, now: DateTime<Utc>) -> PortResult<bool> {
        Ok(lock(&self.data)
            .runs
            .get(run_id)
            .is_some_and(|entry| entry.claims.values().any(|claim| claim.expires_at > now)))
    }

    async fn mark_handed_off(&self, run_id: &str, key: &str) -> PortResult<()> {
        lock(&self.data).entry(run_id).handoffs.insert(key.to_owned());
        Ok(())
    }

    async fn handed_off(&self, run_id: &str, key: &str) -> PortResult<bool> {
        Ok(lock(&self.data)
            .runs
            .get(run_id)
            .is_some_and(|entry| entry.handoffs.contains(key)))
    }

    async fn list_contact_runs(
        &self,
        workspace_id: &str,
        contact_id: &str,
        after: Option<&RunPosition>,
        page_size: usize,
    ) -> PortResult<RunPage> {
        let data = lock(&self.data);
        let mut runs: Vec<RunRecord> = data
            .runs
            .values()
            .filter_map(|entry| entry.record.as_ref())
            .filter(|r| r.workspace_id == workspace_id && r.contact_id.as_deref() == Some(contact_id))
            .filter(|r| after.is_none_or(|after| RunPosition::of(r) < *after))
            .cloned()
            .collect();
        runs.sort_by_cached_key(|r| std::cmp::Reverse(RunPosition::of(r)));
        runs.truncate(page_size + 1);
        Ok(RunPage::from_lookahead(runs, page_size))
    }

    async fn erase_run_data(&self, run_id: &str, at: DateTime<Utc>) -> PortResult<()> {
        let mut data = lock(&self.data);
        let Some(entry) = data.runs.get_mut(run_id) else {
            return Ok(());
        };
        let erased = |error: &mut Option<String>| {
            if error.is_some() {
                *error = Some(ERASED.to_owned());
            }
        };
        entry.blobs.clear();
        for step in &mut entry.steps {
            step.output = None;
            step.request = None;
            erased(&mut step.error);
        }
        if let Some(run) = entry.record.as_mut() {
            erased(&mut run.error);
            run.erased_at.get_or_insert(at);
        }
        Ok(())
    }
}

type EventKey = (String, String);

#[derive(Default)]
struct Remembered {
    expires: HashMap<EventKey, Instant>,
    /// The same entries by expiry, so that expiry never scans.
    by_expiry: BTreeSet<(Instant, EventKey)>,
}

impl Remembered {
    fn forget_first(&mut self) {
        if let Some((_, key)) = self.by_expiry.pop_first() {
            self.expires.remove(&key);
        }
    }
}

/// Event identities remembered for their TTL, as DynamoDB's TTL keeps them.
/// With a capacity, the identities expiring soonest are forgotten first
/// when it is exceeded (`hookflow dev`, whose memory is bounded).
#[derive(Default)]
pub struct MemoryDedupe {
    remembered: Mutex<Remembered>,
    capacity: Option<usize>,
}

impl MemoryDedupe {
    /// Remembers at most `capacity` identities.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            remembered: Mutex::default(),
            capacity: Some(capacity),
        }
    }
}

#[async_trait]
impl EventDedupe for MemoryDedupe {
    async fn seen(&self, workspace_id: &str, identity: &str) -> PortResult<bool> {
        let key = (workspace_id.to_owned(), identity.to_owned());
        Ok(lock(&self.remembered)
            .expires
            .get(&key)
            .is_some_and(|expires| *expires > Instant::now()))
    }

    async fn remember(&self, workspace_id: &str, identity: &str, ttl: Duration) -> PortResult<()> {
        let mut remembered = lock(&self.remembered);
        let now = Instant::now();
        while remembered.by_expiry.first().is_some_and(|(expires, _)| *expires <= now) {
            remembered.forget_first();
        }
        let key = (workspace_id.to_owned(), identity.to_owned());
        if let Some(previous) = remembered.expires.insert(key.clone(), now + ttl) {
            remembered.by_expiry.remove(&(previous, key.clone()));
        }
        remembered.by_expiry.insert((now + ttl, key));
        while self
            .capacity
            .is_some_and(|capacity| remembered.expires.len() > capacity)
        {
            remembered.forget_first();
        }
        Ok(())
    }
}

/// API keys by id.
#[derive(Default)]
pub struct MemoryKeys {
    keys: Mutex<HashMap<String, ApiKey>>,
}

#[async_trait]
impl KeyStore for MemoryKeys {
    async fn put_key(&self, key: &ApiKey) -> PortResult<()> {
        let mut keys = lock(&self.keys);
        if keys.contains_key(&key.id) {
            return Err(PortError::terminal("put_key", format!("key {} exists already", key.id)));
        }
        keys.insert(key.id.clone(), key.clone());
        Ok(())
    }

    async fn get_key(&self, key_id: &str) -> PortResult<Option<ApiKey>> {
        Ok(lock(&self.keys).get(key_id).cloned())
    }

    async fn list_keys(&self, workspace_id: &str) -> PortResult<Vec<ApiKey>> {
        let mut keys: Vec<ApiKey> = lock(&self.keys)
            .values()
            .filter(|key| key.workspace_id == workspace_id)
            .cloned()
            .collect();
        keys.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, workspace_id: &str, key_id: &str, at: DateTime<Utc>) -> PortResult<Option<ApiKey>> {
        let mut keys = lock(&self.keys);
        let Some(key) = keys.get_mut(key_id).filter(|key| key.workspace_id == workspace_id) else {
            return Ok(None);
        };
        key.revoked_at.get_or_insert(at);
        Ok(Some(key.clone()))
    }
}

/// Hooks by id.
#[derive(Default)]
pub struct MemoryHooks {
    hooks: Mutex<HashMap<String, Hook>>,
}

#[async_trait]
impl HookStore for MemoryHooks {
    async fn create_hook(&self, hook: &Hook) -> PortResult<()> {
        let mut hooks = lock(&self.hooks);
        if hooks.contains_key(&hook.id) {
            return Err(PortError::terminal(
                "create_hook",
                format!("hook {} exists already", hook.id),
            ));
        }
        hooks.insert(hook.id.clone(), hook.clone());
        Ok(())
    }

    async fn get_hook(&self, hook_id: &str) -> PortResult<Option<Hook>> {
        Ok(lock(&self.hooks).get(hook_id).cloned())
    }

    async fn list_hooks(&self, workspace_id: &str) -> PortResult<Vec<Hook>> {
        let mut hooks: Vec<Hook> = lock(&self.hooks)
            .values()
            .filter(|hook| hook.workspace_id == workspace_id)
            .cloned()
            .collect();
        hooks.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(hooks)
    }

    async fn replace_hook(&self, hook: &Hook, expected_revision: u64) -> PortResult<bool> {
        let mut hooks = lock(&self.hooks);
        match hooks.get_mut(&hook.id) {
            Some(stored) if stored.revision == expected_revision && stored.workspace_id == hook.workspace_id => {
                *stored = hook.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_hook(&self, workspace_id: &str, hook_id: &str) -> PortResult<bool> {
        let mut hooks = lock(&self.hooks);
        if hooks.get(hook_id).is_some_and(|h| h.workspace_id == workspace_id) {
            hooks.remove(hook_id);
            return Ok(true);
        }
        Ok(false)
    }
}

/// The audit trail, ordered by list position per workspace.
#[derive(Default)]
pub struct MemoryAudit {
    entries: Mutex<BTreeMap<(String, String), AuditEntry>>,
}

#[async_trait]
impl AuditLog for MemoryAudit {
    async fn record(&self, entry: &AuditEntry) -> PortResult<()> {
        let key = (entry.workspace_id.clone(), entry.list_position());
        lock(&self.entries).insert(key, entry.clone());
        Ok(())
    }

    async fn list(&self, workspace_id: &str, limit: usize, cursor: Option<&str>) -> PortResult<AuditPage> {
        let entries = lock(&self.entries);
        let below = (
            workspace_id.to_owned(),
            cursor.map_or_else(|| "~".to_owned(), str::to_owned),
        );
        let mut page: Vec<AuditEntry> = entries
            .range((workspace_id.to_owned(), String::new())..below)
            .rev()
            .take(limit + 1)
            .map(|(_, entry)| entry.clone())
            .collect();
        let next_cursor = if page.len() > limit {
            page.truncate(limit);
            page.last().map(AuditEntry::list_position)
        } else {
            None
        };
        Ok(AuditPage {
            entries: page,
            next_cursor,
        })
    }
}

/// Settings of a queue, shared by the twin and the SQS resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    /// Deliveries after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
}

struct StoredMessage {
    body: String,
    visible_at: Instant,
    receive_count: u32,
    receipt: Option<String>,
}

#[derive(Default)]
struct QueueData {
    /// By id, which is send order.
    messages: BTreeMap<u64, StoredMessage>,
    /// (visible at, id) of every message: receiving never scans the invisible.
    by_visibility: BTreeSet<(Instant, u64)>,
    next_id: u64,
}

/// Behaves like an SQS standard queue: delayed sends, a message not
/// acknowledged within the visibility timeout is delivered again, and after
/// `max_receive_count` deliveries it moves to the dead-letter queue.
pub struct MemoryQueue {
    name: String,
    settings: QueueSettings,
    data: Mutex<QueueData>,
    arrived: Notify,
    dead_letters: Option<Arc<MemoryQueue>>,
}

impl MemoryQueue {
    pub fn new(name: impl Into<String>, settings: QueueSettings, dead_letters: Option<Arc<MemoryQueue>>) -> Self {
        Self {
            name: name.into(),
            settings,
            data: Mutex::new(QueueData::default()),
            arrived: Notify::new(),
            dead_letters,
        }
    }

    /// A queue with a dead-letter queue named `<name>-dlq`.
    pub fn with_dlq(name: &str, settings: QueueSettings) -> (Arc<Self>, Arc<Self>) {
        let dlq_settings = QueueSettings {
            max_receive_count: u32::MAX,
            ..settings
        };
        let dlq = Arc::new(Self::new(format!("{name}-dlq"), dlq_settings, None));
        (Arc::new(Self::new(name, settings, Some(dlq.clone()))), dlq)
    }

    /// Messages stored, visible or not (for tests and `dlq list`).
    pub fn len(&self) -> usize {
        lock(&self.data).messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, body: String, visible_at: Instant) {
        let mut data = lock(&self.data);
        let id = data.next_id;
        data.next_id += 1;
        data.messages.insert(
            id,
            StoredMessage {
                body,
                visible_at,
                receive_count: 0,
                receipt: None,
            },
        );
        data.by_visibility.insert((visible_at, id));
        drop(data);
        self.arrived.notify_waiters();
    }

    /// Takes what is visible now; returns the deliveries and when the next
    /// invisible message becomes visible.
    fn take_visible(&self, max: usize) -> (Vec<Delivery>, Option<Instant>) {
        let now = Instant::now();
        let mut data = lock(&self.data);
        let mut deliveries = vec![];
        let mut moved = vec![];
        // Re-indexed after the walk, so that a zero visibility timeout cannot
        // hand the same message out twice in one batch.
        let mut hidden = vec![];
        while deliveries.len() < max {
            let Some(&(visible_at, id)) = data.by_visibility.first() else {
                break;
            };
            if visible_at > now {
                break;
            }
            data.by_visibility.pop_first();
            let Some(message) = data.messages.get_mut(&id) else {
                continue;
            };
            if message.receive_count >= self.settings.max_receive_count && self.dead_letters.is_some() {
                if let Some(message) = data.messages.remove(&id) {
                    moved.push(message.body);
                }
                continue;
            }
            message.receive_count += 1;
            message.visible_at = now + self.settings.visibility_timeout;
            let receipt = format!("{}:{}:{}", self.name, id, message.receive_count);
            message.receipt = Some(receipt.clone());
            hidden.push((message.visible_at, id));
            deliveries.push(Delivery {
                receipt,
                body: message.body.clone(),
                receive_count: message.receive_count,
            });
        }
        data.by_visibility.extend(hidden);
        let next_visible = data.by_visibility.first().map(|(t, _)| *t).filter(|t| *t > now);
        drop(data);
        if let Some(dlq) = &self.dead_letters {
            for body in moved {
                tracing::warn!(queue = %self.name, "message exceeded max receive count; moved to dead-letter queue");
                dlq.push(body, now);
            }
        }
        (deliveries, next_visible)
    }

    /// The message id a receipt of this queue names (`<queue>:<id>:<count>`).
    fn receipt_id(receipt: &str) -> Option<u64> {
        receipt.rsplit(':').nth(1)?.parse().ok()
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, body: String, delay: Duration) -> PortResult<()> {
        // Refuse what SQS refuses, so the twin catches what moto would let through.
        if !crate::ports::sqs_accepts(&body) {
            return Err(PortError::terminal(
                "send",
                "InvalidMessageContents: a character SQS refuses",
            ));
        }
        self.push(body, Instant::now() + delay);
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (deliveries, next_visible) = self.take_visible(max.max(1));
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(vec![]);
            }
            let wake = next_visible.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                _ = &mut arrived => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, receipt: &str) -> PortResult<()> {
        let Some(id) = Self::receipt_id(receipt) else {
            return Ok(());
        };
        let mut data = lock(&self.data);
        // A stale receipt (the message was delivered again since) deletes
        // nothing, as in SQS after the visibility timeout.
        let current = data
            .messages
            .get(&id)
            .filter(|m| m.receipt.as_deref() == Some(receipt))
            .map(|m| m.visible_at);
        if let Some(visible_at) = current {
            data.messages.remove(&id);
            data.by_visibility.remove(&(visible_at, id));
        }
        Ok(())
    }

    async fn peek(&self, max: usize) -> PortResult<Vec<String>> {
        Ok(lock(&self.data)
            .messages
            .values()
            .take(max)
            .map(|m| m.body.clone())
            .collect())
    }
}

/// Parked dead letters, by (queue, id).
#[derive(Default)]
pub struct MemoryDeadLetters {
    parked: Mutex<BTreeMap<(QueueKind, String), ParkedMessage>>,
}

impl MemoryDeadLetters {
    /// Every parked message of `queue`, oldest first (for tests' waits).
    pub fn parked(&self, queue: QueueKind) -> Vec<ParkedMessage> {
        let mut listed: Vec<ParkedMessage> = lock(&self.parked)
            .values()
            .filter(|m| m.queue == queue)
            .cloned()
            .collect();
        listed.sort_by(|a, b| (a.parked_at, &a.id).cmp(&(b.parked_at, &b.id)));
        listed
    }
}

#[async_trait]
impl DeadLetterStore for MemoryDeadLetters {
    async fn park(&self, message: &ParkedMessage) -> PortResult<bool> {
        let mut parked = lock(&self.parked);
        let key = (message.queue, message.id.clone());
        if let Some(existing) = parked.get_mut(&key) {
            existing.parked_at = message.parked_at;
            existing.reason = message.reason.clone();
            existing.because = message.because;
            existing.receive_count = message.receive_count;
            return Ok(false);
        }
        parked.insert(key, message.clone());
        Ok(true)
    }

    async fn list_parked(&self, queue: QueueKind, limit: usize) -> PortResult<Vec<ParkedMessage>> {
        let mut listed = self.parked(queue);
        listed.truncate(limit);
        Ok(listed)
    }

    async fn unpark(&self, queue: QueueKind, id: &str, parked_at: DateTime<Utc>) -> PortResult<()> {
        let mut parked = lock(&self.parked);
        let key = (queue, id.to_owned());
        if parked.get(&key).is_some_and(|m| m.parked_at == parked_at) {
            parked.remove(&key);
        }
        Ok(())
    }
}

/// A set of the in-memory twins wired together, as `hookflow dev` uses them.
pub struct MemoryBackend {
    pub workflows: Arc<MemoryWorkflowStore>,
    pub subscriptions: Arc<MemorySubscriptions>,
    pub runs: Arc<MemoryRunLog>,
    pub dedupe: Arc<MemoryDedupe>,
    pub triggers: Arc<MemoryQueue>,
    pub triggers_dlq: Arc<MemoryQueue>,
    pub steps: Arc<MemoryQueue>,
    pub steps_dlq: Arc<MemoryQueue>,
    pub keys: Arc<MemoryKeys>,
    pub audit: Arc<MemoryAudit>,
    pub hooks: Arc<MemoryHooks>,
    pub dead_letters: Arc<MemoryDeadLetters>,
    pub contacts: Arc<MemoryContacts>,
    pub sites: Arc<MemorySites>,
    pub connections: Arc<MemoryConnections>,
    pub vault: Arc<MemoryVault>,
    /// Webhook endpoints, their messages and attempts.
    pub outbound: Arc<MemoryOutbound>,
    /// What email and SMS steps sent.
    pub outbox: Arc<crate::messaging::MemoryOutbox>,
    /// What the engine counted (`hookflow dev` serves it at `/metrics`).
    pub metrics: Arc<MemoryMetrics>,
}

impl MemoryBackend {
    /// Twins that keep every run and every event identity: what tests
    /// inspect.
    pub fn new(queue_settings: QueueSettings) -> Self {
        Self::assemble(queue_settings, MemoryRunLog::default(), MemoryDedupe::default())
    }

    /// Twins whose memory is bounded: ended runs go past `retention`, and the
    /// event identities remembered for deduplication number at most
    /// `retention.max_runs`, the soonest to expire forgotten first.
    pub fn with_retention(queue_settings: QueueSettings, retention: RunRetention) -> Self {
        Self::assemble(
            queue_settings,
            MemoryRunLog::with_retention(retention),
            MemoryDedupe::with_capacity(retention.max_runs),
        )
    }

    fn assemble(queue_settings: QueueSettings, runs: MemoryRunLog, dedupe: MemoryDedupe) -> Self {
        let (triggers, triggers_dlq) = MemoryQueue::with_dlq("triggers", queue_settings);
        let (steps, steps_dlq) = MemoryQueue::with_dlq("steps", queue_settings);
        let subscriptions = Arc::new(MemorySubscriptions::default());
        Self {
            workflows: Arc::new(MemoryWorkflowStore::new(subscriptions.clone())),
            subscriptions,
            runs: Arc::new(runs),
            dedupe: Arc::new(dedupe),
            triggers,
            triggers_dlq,
            steps,
            steps_dlq,
            keys: Arc::default(),
            audit: Arc::default(),
            hooks: Arc::default(),
            dead_letters: Arc::default(),
            contacts: Arc::default(),
            sites: Arc::default(),
            connections: Arc::default(),
            vault: Arc::default(),
            outbound: Arc::default(),
            outbox: Arc::default(),
            metrics: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::conformance::{run, step_record};
    use crate::run::StepStatus;

    async fn ended_run(log: &MemoryRunLog, run_id: &str, ended_at: DateTime<Utc>) {
        log.create_run(&run(run_id, "ws", "wf", 0)).await.unwrap();
        log.put_step(&step_record(run_id, "s", 1, StepStatus::Succeeded, 0))
            .await
            .unwrap();
        log.put_blob(run_id, "big", "value").await.unwrap();
        log.finish_run(run_id, RunStatus::Succeeded, None, ended_at)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn retention_forgets_the_oldest_ended_runs_whole_and_keeps_running_ones() {
        let log = MemoryRunLog::with_retention(RunRetention {
            max_runs: 3,
            max_age: Duration::from_secs(3600),
        });
        log.create_run(&run("running", "ws", "wf", 0)).await.unwrap();
        let now = Utc::now();
        for n in 0..5 {
            ended_run(&log, &format!("ended_{n}"), now + chrono::Duration::seconds(n)).await;
        }
        assert_eq!(log.held(), 3);
        assert!(
            log.get_run("running").await.unwrap().is_some(),
            "a running run is never forgotten"
        );
        for gone in ["ended_0", "ended_1", "ended_2"] {
            assert!(log.get_run(gone).await.unwrap().is_none(), "{gone}");
            assert!(
                log.list_steps(gone).await.unwrap().is_empty(),
                "{gone}'s steps go with it"
            );
            assert!(
                log.get_blob(gone, "big").await.unwrap().is_none(),
                "{gone}'s blobs go with it"
            );
        }
        assert!(log.get_run("ended_4").await.unwrap().is_some());
        assert_eq!(log.list_steps("ended_3").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn retention_forgets_runs_that_ended_longer_ago_than_its_age() {
        let log = MemoryRunLog::with_retention(RunRetention {
            max_runs: 100,
            max_age: Duration::from_secs(600),
        });
        ended_run(&log, "old", Utc::now() - chrono::Duration::minutes(11)).await;
        ended_run(&log, "recent", Utc::now() - chrono::Duration::minutes(9)).await;
        assert!(log.get_run("old").await.unwrap().is_none());
        assert!(log.get_run("recent").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_reopened_run_leaves_the_retention_order_until_it_ends_again() {
        let log = MemoryRunLog::with_retention(RunRetention {
            max_runs: 1,
            max_age: Duration::from_secs(3600),
        });
        log.create_run(&run("replayed", "ws", "wf", 0)).await.unwrap();
        log.finish_run("replayed", RunStatus::Failed, None, Utc::now())
            .await
            .unwrap();
        assert_eq!(log.reopen_run("replayed", Utc::now()).await.unwrap(), Some(1));
        ended_run(&log, "other", Utc::now()).await;
        assert!(log.get_run("replayed").await.unwrap().is_some(), "running again: kept");
        assert_eq!(
            log.list_overdue(Utc::now() + chrono::Duration::hours(1), 10)
                .await
                .unwrap(),
            ["replayed"]
        );
    }

    #[tokio::test]
    async fn a_bounded_dedupe_forgets_the_identities_expiring_soonest() {
        let dedupe = MemoryDedupe::with_capacity(2);
        dedupe.remember("ws", "short", Duration::from_secs(60)).await.unwrap();
        dedupe.remember("ws", "long", Duration::from_secs(600)).await.unwrap();
        dedupe.remember("ws", "newest", Duration::from_secs(300)).await.unwrap();
        assert!(!dedupe.seen("ws", "short").await.unwrap());
        assert!(dedupe.seen("ws", "long").await.unwrap());
        assert!(dedupe.seen("ws", "newest").await.unwrap());
        // Remembered again: one entry, with the later expiry.
        dedupe.remember("ws", "newest", Duration::from_secs(900)).await.unwrap();
        dedupe.remember("ws", "fourth", Duration::from_secs(700)).await.unwrap();
        assert!(!dedupe.seen("ws", "long").await.unwrap());
        assert!(dedupe.seen("ws", "newest").await.unwrap());
    }

    #[tokio::test]
    async fn a_visible_message_behind_many_invisible_ones_is_delivered() {
        let settings = QueueSettings {
            visibility_timeout: Duration::from_secs(60),
            max_receive_count: 5,
        };
        let queue = MemoryQueue::new("q", settings, None);
        for n in 0..1000 {
            queue.send(format!("later {n}"), Duration::from_secs(60)).await.unwrap();
        }
        queue.send("now".into(), Duration::ZERO).await.unwrap();
        let got = queue.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(), ["now"]);
        queue.ack(&got[0].receipt).await.unwrap();
        queue.ack(&got[0].receipt).await.unwrap();
        assert_eq!(queue.len(), 1000);
        assert_eq!(queue.peek(1).await.unwrap(), ["later 0"]);
    }
}
