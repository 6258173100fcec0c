//! The workflow lifecycle (brief §8): a mutable *head* per workflow, apart
//! from its immutable published *versions*, and the use cases that move it
//! (`draft` → `active` ⇄ `paused` → `archived`).
//!
//! Every change is one [`HeadChange`] that the [`WorkflowCatalog`] port
//! commits atomically, conditional on the head's revision: the head, a new
//! version, and the subscription swap land together or not at all.
//!
//! Invariant: the subscription index holds exactly one subscription per
//! active workflow, for its published version and that version's trigger
//! type, and none for any other workflow.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalogue::is_hook_type;
use crate::hooks::Hooks;
use crate::ports::{Clock, PortError, PortResult, WorkflowStore};
use crate::subscription::Subscription;
use crate::validate::{is_valid_id, validate, Problem, ProblemCode};
use crate::workflow::{WorkflowDefinition, WorkflowStatus};

/// The stored format of a head (brief §10).
pub const HEAD_FORMAT: u32 = 1;

/// The mutable part of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowHead {
    pub format: u32,
    pub workspace_id: String,
    pub id: String,
    pub status: WorkflowStatus,
    /// Counts every change; `If-Match` and every commit are conditional on it.
    pub revision: u64,
    /// The editable definition. It may be invalid until it is published.
    pub draft: WorkflowDefinition,
    /// The version live while the workflow is active or paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_version: Option<u32>,
    /// The highest version ever stored (a rollback publishes past it).
    #[serde(default)]
    pub latest_version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WorkflowHead {
    /// Where the head sorts in a list (newest first is the reverse): its
    /// creation time in microseconds, fixed width so text order is time
    /// order, then its id. API cursors name this position, so pages follow
    /// exactly the order they were cut from.
    pub fn list_position(&self) -> String {
        format!("{:020}|{}", self.created_at.timestamp_micros(), self.id)
    }
}

/// What happens to the head in a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadWrite {
    Put(Box<WorkflowHead>),
    Delete,
}

/// One atomic change of a workflow: applied whole, or not at all when the
/// stored head's revision is not `expected_revision` (`None`: no head may
/// exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadChange {
    pub workspace_id: String,
    pub workflow_id: String,
    pub expected_revision: Option<u64>,
    pub head: HeadWrite,
    /// A new immutable version, stored only if that number is free.
    pub new_version: Option<WorkflowDefinition>,
    /// The workflow's subscription removed: its published version's.
    pub unsubscribe: Option<Subscription>,
    /// The subscription put (replacing the one it is `replaced_by`).
    pub subscribe: Option<Subscription>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Applied,
    /// The head changed since it was read (or exists, for a create).
    Conflict,
}

/// Heads, versions and subscriptions, changed together.
#[async_trait]
pub trait WorkflowCatalog: WorkflowStore {
    async fn get_head(&self, workspace_id: &str, workflow_id: &str) -> PortResult<Option<WorkflowHead>>;
    /// Every head of a workspace, in no particular order.
    async fn list_heads(&self, workspace_id: &str) -> PortResult<Vec<WorkflowHead>>;
    /// Every stored version of a workflow, oldest first.
    async fn list_versions(&self, workspace_id: &str, workflow_id: &str) -> PortResult<Vec<Arc<WorkflowDefinition>>>;
    async fn commit(&self, change: &HeadChange) -> PortResult<Commit>;
}

/// Why a lifecycle request was refused. Only `Port` errors may be retried.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LifecycleError {
    #[error("workflow {0:?} does not exist")]
    NotFound(String),
    #[error("workflow {0:?} exists already")]
    AlreadyExists(String),
    #[error("version {version} of workflow {workflow_id:?} does not exist")]
    VersionNotFound { workflow_id: String, version: u32 },
    #[error("the workflow document is not valid: {0}")]
    Undecodable(String),
    #[error("{field} {value:?} is not a valid id (1-64 characters of A-Z a-z 0-9 _ -)")]
    InvalidId { field: &'static str, value: String },
    #[error("the document's {field} is {found:?}, but the request is for {expected:?}")]
    IdMismatch {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("If-Match with the workflow's revision is required to change its draft")]
    RevisionRequired,
    #[error("revision {given} is stale; the workflow is at revision {current}")]
    RevisionMismatch { given: u64, current: u64 },
    #[error("the workflow changed while this request ran; read it again and retry")]
    Conflict,
    #[error("the draft has {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    #[error("cannot {action} a workflow that is {status}")]
    InvalidTransition { action: &'static str, status: &'static str },
    #[error("workflow {0:?} was published; archive it instead of deleting it")]
    Published(String),
    #[error("workflow {0:?} has no published version to run; dry-run the draft, or publish it first")]
    NotPublished(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl LifecycleError {
    /// The stable code of the public error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "workflow_not_found",
            Self::AlreadyExists(_) => "workflow_exists",
            Self::NotPublished(_) => "not_published",
            Self::VersionNotFound { .. } => "version_not_found",
            Self::Undecodable(_) => "invalid_document",
            Self::InvalidId { .. } => "invalid_id",
            Self::IdMismatch { .. } => "id_mismatch",
            Self::RevisionRequired => "revision_required",
            Self::RevisionMismatch { .. } => "revision_mismatch",
            Self::Conflict => "conflict",
            Self::Invalid(_) => "invalid_workflow",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::Published(_) => "workflow_published",
            Self::Port(_) => "unavailable",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Port(err) if err.retryable)
    }
}

pub type LifecycleResult<T> = Result<T, LifecycleError>;

pub fn status_name(status: WorkflowStatus) -> &'static str {
    match status {
        WorkflowStatus::Draft => "draft",
        WorkflowStatus::Active => "active",
        WorkflowStatus::Paused => "paused",
        WorkflowStatus::Archived => "archived",
    }
}

/// Filters of [`Workflows::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadQuery {
    pub status: Option<WorkflowStatus>,
    pub trigger_type: Option<String>,
}

/// A published version as the lifecycle stores it: status lives on the head,
/// so a version's own `status` field is always `active`.
fn as_version(draft: &WorkflowDefinition, version: u32) -> WorkflowDefinition {
    WorkflowDefinition {
        version,
        status: WorkflowStatus::Active,
        ..draft.clone()
    }
}

/// True when two definitions differ in more than their version and status.
fn same_content(a: &WorkflowDefinition, b: &WorkflowDefinition) -> bool {
    as_version(a, 0) == as_version(b, 0)
}

/// The lifecycle use cases. Every write reads the head, decides, and commits
/// conditional on the revision it read: of two racing writes one wins, the
/// other gets [`LifecycleError::Conflict`].
pub struct Workflows {
    catalog: Arc<dyn WorkflowCatalog>,
    /// Which `Hook.<name>` triggers exist: publishing one no hook emits
    /// would subscribe a workflow nothing can start.
    hooks: Hooks,
    clock: Arc<dyn Clock>,
}

impl Workflows {
    pub fn new(catalog: Arc<dyn WorkflowCatalog>, hooks: Hooks, clock: Arc<dyn Clock>) -> Self {
        Self { catalog, hooks, clock }
    }

    /// Every problem of `workflow`: [`validate`]'s, and a `Hook.<name>`
    /// trigger no hook of the workspace emits.
    async fn problems(&self, workflow: &WorkflowDefinition) -> LifecycleResult<Vec<Problem>> {
        let mut problems = validate(workflow);
        let trigger_type = &workflow.trigger.trigger_type;
        if is_hook_type(trigger_type) && problems.is_empty() {
            let emitted = self.hooks.emits(&workflow.workspace_id, trigger_type).await?;
            if !emitted {
                problems.push(Problem {
                    path: "trigger.type".into(),
                    code: ProblemCode::UnknownHook,
                    message: format!(
                        "no hook of workspace {:?} emits {trigger_type:?}: create the hook first (POST …/hooks)",
                        workflow.workspace_id
                    ),
                });
            }
        }
        Ok(problems)
    }

    pub async fn get(&self, workspace_id: &str, workflow_id: &str) -> LifecycleResult<WorkflowHead> {
        check_id("workspace id", workspace_id)?;
        check_id("workflow id", workflow_id)?;
        self.catalog
            .get_head(workspace_id, workflow_id)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(workflow_id.to_owned()))
    }

    /// Newest first (by creation, then id), filtered.
    pub async fn list(&self, workspace_id: &str, query: &HeadQuery) -> LifecycleResult<Vec<WorkflowHead>> {
        check_id("workspace id", workspace_id)?;
        let mut heads: Vec<WorkflowHead> = self
            .catalog
            .list_heads(workspace_id)
            .await?
            .into_iter()
            .filter(|h| query.status.is_none_or(|s| s == h.status))
            .filter(|h| {
                query
                    .trigger_type
                    .as_ref()
                    .is_none_or(|t| *t == h.draft.trigger.trigger_type)
            })
            .collect();
        heads.sort_by_key(|h| std::cmp::Reverse(h.list_position()));
        Ok(heads)
    }

    /// Creates a draft from a document of the public format. The document's
    /// `status` and `version` are ignored: the lifecycle verbs own them.
    pub async fn create(&self, workspace_id: &str, draft: WorkflowDefinition) -> LifecycleResult<WorkflowHead> {
        check_id("workspace id", workspace_id)?;
        check_id("workflow id", &draft.id)?;
        check_workspace(workspace_id, &draft)?;
        let now = self.clock.now();
        let head = WorkflowHead {
            format: HEAD_FORMAT,
            workspace_id: workspace_id.to_owned(),
            id: draft.id.clone(),
            status: WorkflowStatus::Draft,
            revision: 1,
            draft: as_draft(draft),
            published_version: None,
            latest_version: 0,
            created_at: now,
            updated_at: now,
        };
        let change = HeadChange {
            expected_revision: None,
            ..self.head_only(&head)
        };
        match self.catalog.commit(&change).await? {
            Commit::Applied => Ok(head),
            Commit::Conflict => Err(LifecycleError::AlreadyExists(head.id)),
        }
    }

    /// Replaces the draft. `if_match` must be the current revision.
    pub async fn update_draft(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        draft: WorkflowDefinition,
        if_match: Option<u64>,
    ) -> LifecycleResult<WorkflowHead> {
        check_workspace(workspace_id, &draft)?;
        if draft.id != workflow_id {
            return Err(LifecycleError::IdMismatch {
                field: "id",
                found: draft.id,
                expected: workflow_id.to_owned(),
            });
        }
        let given = if_match.ok_or(LifecycleError::RevisionRequired)?;
        let head = self.get(workspace_id, workflow_id).await?;
        if head.revision != given {
            return Err(LifecycleError::RevisionMismatch {
                given,
                current: head.revision,
            });
        }
        if head.status == WorkflowStatus::Archived {
            return Err(transition("edit", head.status));
        }
        let next = WorkflowHead {
            draft: as_draft(draft),
            ..self.next_revision(&head)
        };
        match self.commit(&head, self.head_only(&next)).await {
            // If-Match matched when read but not when written: still stale.
            Err(LifecycleError::Conflict) => Err(LifecycleError::RevisionMismatch {
                given,
                current: self.get(workspace_id, workflow_id).await?.revision,
            }),
            other => other.map(|()| next),
        }
    }

    /// Every problem of the draft, with its path; empty when it may be published.
    pub async fn validate(&self, workspace_id: &str, workflow_id: &str) -> LifecycleResult<Vec<Problem>> {
        self.problems(&self.get(workspace_id, workflow_id).await?.draft).await
    }

    /// Validates the draft, stores it as a new immutable version (unless it
    /// equals the published one) and makes it the live subscription.
    pub async fn publish(&self, workspace_id: &str, workflow_id: &str) -> LifecycleResult<WorkflowHead> {
        self.publish_as(workspace_id, workflow_id, WorkflowStatus::Active).await
    }

    /// Publishes into `status` (`active`, or `paused`: published but not
    /// subscribed) in one commit.
    async fn publish_as(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        status: WorkflowStatus,
    ) -> LifecycleResult<WorkflowHead> {
        let head = self.get(workspace_id, workflow_id).await?;
        if head.status == WorkflowStatus::Archived {
            return Err(transition("publish", head.status));
        }
        let problems = self.problems(&head.draft).await?;
        if !problems.is_empty() {
            return Err(LifecycleError::Invalid(problems));
        }
        let published = self.published(&head).await?;
        let unchanged = published.as_ref().filter(|p| same_content(p, &head.draft));
        let (version, new_version) = match unchanged {
            Some(current) => ((**current).clone(), None),
            None => {
                let version = as_version(&head.draft, head.latest_version + 1);
                (version.clone(), Some(version))
            }
        };
        self.go_live(&head, published.as_deref(), &version, new_version, status)
            .await
    }

    /// Publishes an older version again, as a new version.
    pub async fn rollback(&self, workspace_id: &str, workflow_id: &str, version: u32) -> LifecycleResult<WorkflowHead> {
        let head = self.get(workspace_id, workflow_id).await?;
        if head.status == WorkflowStatus::Archived {
            return Err(transition("roll back", head.status));
        }
        let old = self.version(workspace_id, workflow_id, version).await?;
        let published = self.published(&head).await?;
        let again = as_version(&old, head.latest_version + 1);
        // Rules may have tightened since that version was published.
        let problems = self.problems(&again).await?;
        if !problems.is_empty() {
            return Err(LifecycleError::Invalid(problems));
        }
        self.go_live(
            &head,
            published.as_deref(),
            &again,
            Some(again.clone()),
            WorkflowStatus::Active,
        )
        .await
    }

    pub async fn pause(&self, workspace_id: &str, workflow_id: &str) -> LifecycleResult<WorkflowHead> {
        let head = self.get(workspace_id, workflow_id).await?;
        if head.status != WorkflowStatus::Active {
            return Err(transition("pause", head.status));
        }
        let published = self.published(&head).await?;
        let next = WorkflowHead {
            status: WorkflowStatus::Paused,
            ..self.next_revision(&head)
        };
        let change = HeadChange {
            unsubscribe: published.map(|p| Subscription::for_version(&p)),
            ..self.head_only(&next)
        };
        self.commit(&head, change).await?;
        Ok(next)
    }

    pub async fn resume(&self, workspace_id: &str, workflow_id: &str) -> LifecycleResult<WorkflowHead> {
        let head = self.get(workspace_id, workflow_id).await?;
        if head.status != WorkflowStatus::Paused {
            return Err(transition("resume", head.status));
        }
        let published = self
            .published(&head)
            .await?
            .ok_or_else(|| transition("resume", WorkflowStatus::Draft))?;
        let next = WorkflowHead {
            status: WorkflowStatus::Active,
            ..self.next_revision(&head)
        };
        let change = HeadChange {
            subscribe: Some(Subscription::for_version(&published)),
            ..self.head_only(&next)
        };
        self.commit(&head, change).await?;
        Ok(next)
    }

    /// Stops the workflow for good; its versions and runs stay readable.
    pub async fn archive(&self, workspace_id: &str, workflow_id: &str) -> LifecycleResult<WorkflowHead> {
        let head = self.get(workspace_id, workflow_id).await?;
        if head.status == WorkflowStatus::Archived {
            return Err(transition("archive", head.status));
        }
        let live = match head.status {
            WorkflowStatus::Active => self.published(&head).await?,
            _ => None,
        };
        let next = WorkflowHead {
            status: WorkflowStatus::Archived,
            ..self.next_revision(&head)
        };
        let change = HeadChange {
            unsubscribe: live.map(|p| Subscription::for_version(&p)),
            ..self.head_only(&next)
        };
        self.commit(&head, change).await?;
        Ok(next)
    }

    /// A new draft with another id and the same definition.
    pub async fn clone_as(&self, workspace_id: &str, workflow_id: &str, new_id: &str) -> LifecycleResult<WorkflowHead> {
        let head = self.get(workspace_id, workflow_id).await?;
        let draft = WorkflowDefinition {
            id: new_id.to_owned(),
            ..head.draft
        };
        self.create(workspace_id, draft).await
    }

    /// Deletes a workflow that was never published.
    pub async fn delete(&self, workspace_id: &str, workflow_id: &str) -> LifecycleResult<()> {
        let head = self.get(workspace_id, workflow_id).await?;
        if head.latest_version > 0 {
            return Err(LifecycleError::Published(head.id));
        }
        let change = HeadChange {
            head: HeadWrite::Delete,
            ..self.head_only(&head)
        };
        self.commit(&head, change).await
    }

    pub async fn versions(
        &self,
        workspace_id: &str,
        workflow_id: &str,
    ) -> LifecycleResult<Vec<Arc<WorkflowDefinition>>> {
        self.get(workspace_id, workflow_id).await?;
        Ok(self.catalog.list_versions(workspace_id, workflow_id).await?)
    }

    pub async fn version(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        version: u32,
    ) -> LifecycleResult<Arc<WorkflowDefinition>> {
        self.catalog
            .get_version(workspace_id, workflow_id, version)
            .await?
            .ok_or_else(|| LifecycleError::VersionNotFound {
                workflow_id: workflow_id.to_owned(),
                version,
            })
    }

    /// The stored version a live test runs: `version`, or the published one.
    /// A draft never runs for real: it has no immutable version for the
    /// run to stay on.
    pub async fn version_to_run(
        &self,
        workspace_id: &str,
        workflow_id: &str,
        version: Option<u32>,
    ) -> LifecycleResult<Arc<WorkflowDefinition>> {
        if let Some(version) = version {
            return self.version(workspace_id, workflow_id, version).await;
        }
        let head = self.get(workspace_id, workflow_id).await?;
        self.published(&head)
            .await?
            .ok_or_else(|| LifecycleError::NotPublished(workflow_id.to_owned()))
    }

    /// Loads one workflow file (`hookflow dev --workflows`): the file becomes
    /// the draft, and is published when its `status` is `active` or `paused`
    /// (then paused). Its `version` is ignored.
    pub async fn apply_file(&self, document: WorkflowDefinition) -> LifecycleResult<WorkflowHead> {
        let wanted = document.status;
        let (workspace_id, id) = (document.workspace_id.clone(), document.id.clone());
        let head = match self.catalog.get_head(&workspace_id, &id).await? {
            None => self.create(&workspace_id, document).await?,
            Some(head) => {
                self.update_draft(&workspace_id, &id, document, Some(head.revision))
                    .await?
            }
        };
        match wanted {
            WorkflowStatus::Active | WorkflowStatus::Paused => self.publish_as(&workspace_id, &id, wanted).await,
            WorkflowStatus::Draft => Ok(head),
            WorkflowStatus::Archived if head.status == WorkflowStatus::Archived => Ok(head),
            WorkflowStatus::Archived => self.archive(&workspace_id, &id).await,
        }
    }

    /// Makes `version` the published one: stores it if new, and swaps the
    /// subscription from the published version's trigger type to its own
    /// (`status` active) or removes it (`status` paused).
    async fn go_live(
        &self,
        head: &WorkflowHead,
        published: Option<&WorkflowDefinition>,
        version: &WorkflowDefinition,
        new_version: Option<WorkflowDefinition>,
        status: WorkflowStatus,
    ) -> LifecycleResult<WorkflowHead> {
        let live = status == WorkflowStatus::Active;
        let next = WorkflowHead {
            status,
            published_version: Some(version.version),
            latest_version: head.latest_version.max(version.version),
            ..self.next_revision(head)
        };
        let subscribed = published.filter(|_| head.status == WorkflowStatus::Active);
        let subscribe = live.then(|| Subscription::for_version(version));
        let change = HeadChange {
            new_version,
            // A put replaces a subscription with the same trigger type and
            // scope; one with another is removed.
            unsubscribe: subscribed
                .map(Subscription::for_version)
                .filter(|old| !subscribe.as_ref().is_some_and(|new| old.replaced_by(new))),
            subscribe,
            ..self.head_only(&next)
        };
        self.commit(head, change).await?;
        Ok(next)
    }

    async fn published(&self, head: &WorkflowHead) -> LifecycleResult<Option<Arc<WorkflowDefinition>>> {
        match head.published_version {
            None => Ok(None),
            Some(n) => Ok(Some(self.version(&head.workspace_id, &head.id, n).await?)),
        }
    }

    fn next_revision(&self, head: &WorkflowHead) -> WorkflowHead {
        WorkflowHead {
            revision: head.revision + 1,
            updated_at: self.clock.now(),
            ..head.clone()
        }
    }

    /// A change of the head alone, conditional on the revision before `head`.
    fn head_only(&self, head: &WorkflowHead) -> HeadChange {
        HeadChange {
            workspace_id: head.workspace_id.clone(),
            workflow_id: head.id.clone(),
            expected_revision: Some(head.revision.saturating_sub(1)),
            head: HeadWrite::Put(Box::new(head.clone())),
            new_version: None,
            unsubscribe: None,
            subscribe: None,
        }
    }

    async fn commit(&self, read: &WorkflowHead, change: HeadChange) -> LifecycleResult<()> {
        let change = HeadChange {
            expected_revision: Some(read.revision),
            ..change
        };
        match self.catalog.commit(&change).await? {
            Commit::Applied => Ok(()),
            Commit::Conflict => Err(LifecycleError::Conflict),
        }
    }
}

fn transition(action: &'static str, status: WorkflowStatus) -> LifecycleError {
    LifecycleError::InvalidTransition {
        action,
        status: status_name(status),
    }
}

/// Ids end up in keys and URLs: refused here, they never reach a store
/// (DynamoDB would refuse a key over 1 KB as a server error).
fn check_id(field: &'static str, value: &str) -> LifecycleResult<()> {
    if is_valid_id(value) {
        return Ok(());
    }
    Err(LifecycleError::InvalidId {
        field,
        value: value.chars().take(80).collect(),
    })
}

fn check_workspace(workspace_id: &str, draft: &WorkflowDefinition) -> LifecycleResult<()> {
    if draft.workspace_id == workspace_id {
        return Ok(());
    }
    Err(LifecycleError::IdMismatch {
        field: "workspace_id",
        found: draft.workspace_id.clone(),
        expected: workspace_id.to_owned(),
    })
}

/// A draft carries no status or version of its own: publishing assigns the
/// version, and status lives on the head. (`version` stays 1, the first
/// valid number, so that validating a draft never reports it.)
fn as_draft(document: WorkflowDefinition) -> WorkflowDefinition {
    WorkflowDefinition {
        status: WorkflowStatus::Draft,
        version: 1,
        ..document
    }
}
