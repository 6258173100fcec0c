//! Step actions as plug-ins (brief §9): each action is one module that
//! implements [`StepAction`], and the executor, the dry run and validation
//! know only that trait. [`Action`] is the one list of them, for the
//! workflow format: adding an action is a module and a variant here.

mod braze;
mod connector;
mod contact;
mod decision;
mod delay;
pub(crate) mod http_request;
mod mailchimp;
mod notify;
mod salesforce;
mod set_variables;

pub use braze::BrazeTrackUser;
pub use contact::{
    AddTier, AddToList, AwardPoints, CreateContact, Points, RedeemPoints, RemoveFromList, RemoveTier, UpdateContact,
};
pub use decision::{Branch, Decision};
pub use delay::Delay;
pub use http_request::{Auth, BodyFormat, HttpRequest, StatusMatch, DEFAULT_TIMEOUT_S};
pub use mailchimp::{MailchimpTagSubscriber, MailchimpUpsertSubscriber, SubscriberStatus};
pub use notify::{SendEmail, SendSms, MAX_RECIPIENTS, MAX_SMS_CHARS};
pub use salesforce::{soql_literal, SalesforceCreateObject, SalesforceGetObject, SalesforceUpdateObject};
pub use set_variables::SetVariables;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connections::ConnectionResolver;
use crate::contacts::ContactStore;
use crate::engine::RenderedRequest;
use crate::messaging::Messaging;
use crate::ports::{EventSink, HttpClient, PortError};
use crate::redact::Secrets;
use crate::retry::RetryOn;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Action {
    // Boxed: the largest action by far, and steps hold one each.
    HttpRequest(Box<HttpRequest>),
    Decision(Decision),
    Delay(Delay),
    SetVariables(SetVariables),
    CreateContact(CreateContact),
    UpdateContact(UpdateContact),
    AddToList(AddToList),
    RemoveFromList(RemoveFromList),
    AwardPoints(AwardPoints),
    RedeemPoints(RedeemPoints),
    AddTier(AddTier),
    RemoveTier(RemoveTier),
    SendEmail(SendEmail),
    SendSms(SendSms),
    SalesforceGetObject(SalesforceGetObject),
    SalesforceCreateObject(SalesforceCreateObject),
    SalesforceUpdateObject(SalesforceUpdateObject),
    MailchimpUpsertSubscriber(MailchimpUpsertSubscriber),
    MailchimpTagSubscriber(MailchimpTagSubscriber),
    BrazeTrackUser(BrazeTrackUser),
}

/// Which action a step runs, as the run log and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActionKind {
    HttpRequest,
    Decision,
    Delay,
    SetVariables,
    CreateContact,
    UpdateContact,
    AddToList,
    RemoveFromList,
    AwardPoints,
    RedeemPoints,
    AddTier,
    RemoveTier,
    SendEmail,
    SendSms,
    SalesforceGetObject,
    SalesforceCreateObject,
    SalesforceUpdateObject,
    MailchimpUpsertSubscriber,
    MailchimpTagSubscriber,
    BrazeTrackUser,
    /// Not a workflow's action: the record of a bulk replay request, kept
    /// in the run log so a repeated request answers the same report.
    #[serde(rename = "bulk_replay")]
    BulkReplay,
}

impl ActionKind {
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::HttpRequest => "HttpRequest",
            ActionKind::Decision => "Decision",
            ActionKind::Delay => "Delay",
            ActionKind::SetVariables => "SetVariables",
            ActionKind::CreateContact => "CreateContact",
            ActionKind::UpdateContact => "UpdateContact",
            ActionKind::AddToList => "AddToList",
            ActionKind::RemoveFromList => "RemoveFromList",
            ActionKind::AwardPoints => "AwardPoints",
            ActionKind::RedeemPoints => "RedeemPoints",
            ActionKind::AddTier => "AddTier",
            ActionKind::RemoveTier => "RemoveTier",
            ActionKind::SendEmail => "SendEmail",
            ActionKind::SendSms => "SendSms",
            ActionKind::SalesforceGetObject => "SalesforceGetObject",
            ActionKind::SalesforceCreateObject => "SalesforceCreateObject",
            ActionKind::SalesforceUpdateObject => "SalesforceUpdateObject",
            ActionKind::MailchimpUpsertSubscriber => "MailchimpUpsertSubscriber",
            ActionKind::MailchimpTagSubscriber => "MailchimpTagSubscriber",
            ActionKind::BrazeTrackUser => "BrazeTrackUser",
            ActionKind::BulkReplay => "bulk_replay",
        }
    }
}

/// Compares with the name the run log shows.
impl PartialEq<&str> for ActionKind {
    fn eq(&self, name: &&str) -> bool {
        self.name() == *name
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Action {
    /// The plug-in behind this step's action.
    pub fn plugin(&self) -> &dyn StepAction {
        match self {
            Action::HttpRequest(action) => action.as_ref(),
            Action::Decision(action) => action,
            Action::Delay(action) => action,
            Action::SetVariables(action) => action,
            Action::CreateContact(action) => action,
            Action::UpdateContact(action) => action,
            Action::AddToList(action) => action,
            Action::RemoveFromList(action) => action,
            Action::AwardPoints(action) => action,
            Action::RedeemPoints(action) => action,
            Action::AddTier(action) => action,
            Action::RemoveTier(action) => action,
            Action::SendEmail(action) => action,
            Action::SendSms(action) => action,
            Action::SalesforceGetObject(action) => action,
            Action::SalesforceCreateObject(action) => action,
            Action::SalesforceUpdateObject(action) => action,
            Action::MailchimpUpsertSubscriber(action) => action,
            Action::MailchimpTagSubscriber(action) => action,
            Action::BrazeTrackUser(action) => action,
        }
    }

    pub fn kind(&self) -> ActionKind {
        self.plugin().kind()
    }

    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// A side-effecting action costs a queue hop of its own so that it is
    /// claimed, retried, recorded and deduplicated alone; pure actions run
    /// inline right after the step before them.
    pub fn has_side_effects(&self) -> bool {
        self.plugin().has_side_effects()
    }

    /// Every template string in the action, with its JSON path relative to
    /// the action, for validation.
    pub fn templates(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        self.plugin().templates(&mut out);
        out
    }

    /// Problems with the action's own settings, as (relative path, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        self.plugin().problems()
    }
}

/// What an action may reach besides the run's context: side effects go
/// through these ports only, so every action runs on the in-memory twins
/// and on AWS alike.
#[derive(Clone)]
pub struct ActionPorts {
    pub http: Arc<dyn HttpClient>,
    pub contacts: Arc<dyn ContactStore>,
    /// Where the events an action emits go: ingest, like any other event.
    pub events: Arc<dyn EventSink>,
    /// Connected apps' credentials, for connector actions.
    pub connections: Arc<ConnectionResolver>,
    /// Email and SMS.
    pub messaging: Messaging,
}

/// One execution of a step's action.
pub struct ActionCall<'a> {
    /// The run's workspace: everything an action changes is in it.
    pub workspace_id: &'a str,
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub attempt: u32,
    /// The template context: the event's data, `event`, `steps`, `vars`, `run`.
    pub context: &'a Value,
    /// Where the run goes on success unless the action chooses (the step's `next`).
    pub next: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// When a wait this step started ends (a Delay being resumed).
    pub resume_at: Option<DateTime<Utc>>,
    pub ports: &'a ActionPorts,
    /// What must not reach the run log; an action adds the secrets it renders.
    pub secrets: &'a mut Secrets,
}

impl ActionCall<'_> {
    /// The key a side effect of this step carries, the same on every attempt
    /// and delivery, so the receiver (or our own stores) can drop a repeat.
    pub fn idempotency_key(&self) -> String {
        crate::run::idempotency_key(self.run_id, self.step_id)
    }

    pub fn succeeded(&self, output: Value) -> Outcome {
        Outcome::Succeeded {
            output,
            next: self.next.map(str::to_owned),
        }
    }
}

/// A dry run of a step: its context, and no ports.
pub struct DryCall<'a> {
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub context: &'a Value,
    pub next: Option<&'a str>,
    pub secrets: &'a mut Secrets,
}

impl DryCall<'_> {
    pub fn ran(&self, output: Value) -> Rehearsal {
        Rehearsal::Ran {
            output,
            next: self.next.map(str::to_owned),
        }
    }
}

/// How a failed action may be retried: the retry policy decides whether a
/// retryable class is retried; a terminal failure never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    Terminal,
    Retryable(RetryOn),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    pub class: FailureClass,
    /// The peer's `Retry-After`, in seconds.
    pub retry_after_s: Option<f64>,
    /// What the peer answered, when it did, for the run log.
    pub output: Option<Value>,
}

impl Failure {
    pub fn terminal(message: impl ToString) -> Self {
        Self {
            message: message.to_string(),
            class: FailureClass::Terminal,
            retry_after_s: None,
            output: None,
        }
    }
}

/// What running an action came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        output: Value,
        next: Option<String>,
    },
    Failed(Failure),
    /// The step waits until then (a Delay): the executor sends the run on
    /// to this same step, due at that time.
    WaitUntil(DateTime<Utc>),
    /// One of our own stores failed: the step is neither done nor failed,
    /// and its delivery is tried again (a retryable error) or parked.
    Interrupted(PortError),
}

/// An outcome, and the request an action sent, for the run log.
#[derive(Debug, Clone, PartialEq)]
pub struct Performed {
    pub outcome: Outcome,
    pub request: Option<Value>,
}

impl From<Outcome> for Performed {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, request: None }
    }
}

/// What a dry run shows of a step: nothing is sent and nothing is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Rehearsal {
    /// A pure step that ran; `next` where the run goes.
    Ran {
        output: Value,
        next: Option<String>,
    },
    /// A side effect, rendered and not performed; later steps see `output`.
    Rendered {
        request: Option<RenderedRequest>,
        output: Value,
    },
    /// A wait, not waited for.
    Skipped,
    Failed(String),
}

/// One action (brief §9). Validation, side effects or purity, rendering,
/// the secrets it carries, its idempotency key ([`ActionCall::idempotency_key`]),
/// how its failures are classified and what it outputs are all its own.
#[async_trait]
pub trait StepAction: Send + Sync {
    fn kind(&self) -> ActionKind;

    /// Side-effecting actions are claimed and run alone (a queue hop each);
    /// pure ones run inline.
    fn has_side_effects(&self) -> bool;

    /// Every template string, with its JSON path relative to the action.
    fn templates(&self, _out: &mut Vec<(String, String)>) {}

    /// Problems with the action's own settings, as (relative path, message).
    fn problems(&self) -> Vec<(String, String)> {
        vec![]
    }

    /// Whether the action chooses the step after it, so the step's own
    /// `next` has no place.
    fn chooses_next(&self) -> bool {
        false
    }

    /// The steps this action itself can lead to (a Decision's branches),
    /// with the JSON path of each reference relative to the step.
    fn edges(&self) -> Vec<(String, &str)> {
        vec![]
    }

    /// The `vars` this step sets for the steps after it, rendered again
    /// from the context: a recorded output may be redacted.
    fn variables(&self, _context: &Value) -> Option<Map<String, Value>> {
        None
    }

    async fn perform(&self, call: ActionCall<'_>) -> Performed;

    /// What the step would do, with nothing sent and nothing stored.
    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal;
}
