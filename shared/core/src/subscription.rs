//! Subscriptions: what the dispatcher reads, for each event, to find the
//! workflows it starts. One per active workflow, kept by (workspace,
//! trigger type, scope), so an event reads those of the scopes it is in.

use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::workflow::{Scope, WorkflowDefinition, WorkflowStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub workspace_id: String,
    pub trigger_type: String,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub scope: Scope,
    /// Copied from the workflow so matching needs no second read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Condition>,
    pub start: String,
}

impl Subscription {
    /// The subscription of an active workflow; `None` for any other status.
    pub fn for_workflow(workflow: &WorkflowDefinition) -> Option<Self> {
        (workflow.status == WorkflowStatus::Active).then(|| Self::for_version(workflow))
    }

    /// Whether putting `other` replaces this one: the same workflow's
    /// subscription to the same trigger type in the same scope (a
    /// subscription is kept by scope, so a new scope is a new one).
    pub fn replaced_by(&self, other: &Subscription) -> bool {
        self.workspace_id == other.workspace_id
            && self.trigger_type == other.trigger_type
            && self.scope == other.scope
            && self.workflow_id == other.workflow_id
    }

    /// The subscription of a published version, whatever its document says
    /// of status: the lifecycle decides whether it is live.
    pub fn for_version(workflow: &WorkflowDefinition) -> Self {
        Self {
            workspace_id: workflow.workspace_id.clone(),
            trigger_type: workflow.trigger.trigger_type.clone(),
            workflow_id: workflow.id.clone(),
            workflow_version: workflow.version,
            scope: workflow.scope.clone(),
            filter: workflow.trigger.filter.clone(),
            start: workflow.start.clone(),
        }
    }
}
